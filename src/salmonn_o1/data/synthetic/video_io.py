"""Writing rendered clips to mp4 (H.264 yuv420p + AAC) with PyAV, so synthetic
items go through the same decoder as real videos."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from salmonn_o1.errors import MediaError
from salmonn_o1.media_types import SAMPLE_RATE

AUDIO_FRAME = 1024  # AAC's frame size


def write_mp4(
    path: str | Path,
    frames: np.ndarray,
    fps: int,
    audio: np.ndarray | None = None,
    sample_rate: int = SAMPLE_RATE,
    crf: int = 18,
) -> Path:
    """Encode (F, H, W, 3) uint8 frames at `fps` and an optional mono float waveform.

    Writes to a temporary name and renames at the end, so an interrupted run
    never leaves a truncated file that a resumed run would skip as done.
    H and W must be even (yuv420p).
    """
    import av

    path = Path(path)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise MediaError(f"{path}: frames must be (F, H, W, 3) uint8, got {frames.shape} {frames.dtype}")
    height, width = frames.shape[1:3]
    if height % 2 or width % 2:
        raise MediaError(f"{path}: frame size {width}x{height} must be even for yuv420p")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.partial{path.suffix}")
    with av.open(str(tmp), mode="w", format="mp4") as container:
        video = container.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.options = {"crf": str(crf), "preset": "veryfast"}
        sound = None
        if audio is not None:
            sound = container.add_stream("aac", rate=sample_rate, layout="mono")
        for frame in frames:
            for packet in video.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
        if sound is not None and audio is not None:
            samples = np.ascontiguousarray(audio, dtype=np.float32)
            for offset in range(0, len(samples), AUDIO_FRAME):
                chunk = samples[offset : offset + AUDIO_FRAME][None, :]
                frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
                frame.sample_rate = sample_rate
                frame.pts = offset
                for packet in sound.encode(frame):
                    container.mux(packet)
            for packet in sound.encode():
                container.mux(packet)
    os.replace(tmp, path)
    return path
