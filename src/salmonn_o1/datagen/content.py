"""One video as OpenAI chat content parts: JPEG frames as image_url data URLs, the audio as input_audio.

Frames carry a text label with their time, so generated steps can cite when things happen. An
endpoint that takes no audio gets the video's transcript instead (a sidecar .srt or .txt file),
or nothing about the sound at all.
"""

from __future__ import annotations

import base64
import io
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from salmonn_o1.errors import DataError

AudioMode = Literal["input_audio", "transcript", "none"]
AUDIO_MODES: tuple[str, ...] = ("input_audio", "transcript", "none")
TRANSCRIPT_SUFFIXES = (".srt", ".txt")


@dataclass
class VideoContent:
    """The content parts for one video, and the sentence the prompt uses to say what audio it gets."""

    parts: list[dict[str, Any]]
    audio_note: str


def jpeg_data_url(frame: np.ndarray, quality: int = 85) -> str:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(frame).save(buffer, format="JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def wav_base64(audio: np.ndarray, sample_rate: int) -> str:
    """16-bit mono WAV, base64: the input_audio format every audio-capable endpoint reads."""
    pcm = (np.clip(audio, -1.0, 1.0) * 32767).astype("<i2").tobytes()
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(sample_rate)
        out.writeframes(pcm)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def transcript_for(video: Path) -> str | None:
    """The text of a sidecar transcript (<video stem>.srt or .txt beside the video), if there is one."""
    for suffix in TRANSCRIPT_SUFFIXES:
        side = video.with_suffix(suffix)
        if side.is_file():
            if suffix == ".srt":
                from salmonn_o1.data.omni_loaders import read_srt

                return "\n".join(f"[{start:.1f}-{end:.1f} s] {text}" for start, end, text in read_srt(side))
            return side.read_text(encoding="utf-8").strip()
    return None


def video_content(path: str | Path, frames: int = 8, audio: AudioMode = "input_audio") -> VideoContent:
    """Decode `path` (PyAV) into at most `frames` labelled frames plus its audio as `audio` says.

    A file that does not decode raises MediaError (the pipeline records it as the video's failure).
    """
    from salmonn_o1.media import load_media
    from salmonn_o1.media_types import SAMPLE_RATE

    path = Path(path)
    media = load_media(path, fps=2.0, max_frames=frames)
    parts: list[dict[str, Any]] = []
    if media.frames is not None:
        for time, frame in zip(media.frame_times, media.frames):
            parts.append({"type": "text", "text": f"Frame at {float(time):.1f} s:"})
            parts.append({"type": "image_url", "image_url": {"url": jpeg_data_url(frame)}})
    if audio == "input_audio":
        if media.audio is None or not media.has_audio:
            return VideoContent(parts, " (this video has no audio track)")
        parts.append({"type": "text", "text": "The video's audio:"})
        parts.append({"type": "input_audio", "input_audio": {"data": wav_base64(media.audio, SAMPLE_RATE),
                                                             "format": "wav"}})
        return VideoContent(parts, "")
    if audio == "transcript":
        text = transcript_for(path)
        if text is None:
            raise DataError(f"{path}: --audio transcript needs a transcript beside the video "
                            f"({path.with_suffix('.srt').name} or {path.with_suffix('.txt').name})")
        parts.append({"type": "text", "text": f"Transcript of the video's audio:\n{text}"})
        return VideoContent(parts, " (given as a transcript)")
    return VideoContent(parts, " (not given: ask about what is seen)")
