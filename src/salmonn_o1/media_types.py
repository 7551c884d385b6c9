"""The in-memory form of decoded media, shared by the decoder, the synthetic
renderer and the processor (so rendered clips skip the mp4 round trip)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

SAMPLE_RATE = 16_000

MediaKind = Literal["video", "image", "audio"]


@dataclass
class DecodedMedia:
    """Frames and audio of one input, already sampled as the model wants them.

    frames: (F, H, W, 3) uint8 RGB, or None for audio-only input.
    frame_times: (F,) seconds from the start of the media, one per frame.
    audio: (n,) float32 mono at 16 kHz, or None for an image.
    duration: seconds of media (video duration; audio length for audio-only).
    has_audio: False when the container had no audio track (audio is then silence).
    """

    frames: np.ndarray | None
    frame_times: np.ndarray
    audio: np.ndarray | None
    duration: float
    has_audio: bool
    kind: MediaKind
    source: str = "<memory>"

    @property
    def num_frames(self) -> int:
        return 0 if self.frames is None else int(self.frames.shape[0])

    def without_audio(self) -> DecodedMedia:
        """This video as a file without an audio track decodes (`salmonn_o1.media`): the same frames,
        silence as long as the video, `has_audio` False. Used where a request drops a video's sound
        (Qwen2.5-Omni's `use_audio_in_video=False`)."""
        return replace(self, audio=np.zeros(int(round(self.duration * SAMPLE_RATE)), np.float32), has_audio=False)
