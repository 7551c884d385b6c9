"""In-memory clips for pipeline tests (no decoding needed)."""

from __future__ import annotations

import numpy as np

from salmonn_o1.media_types import SAMPLE_RATE, DecodedMedia


def colour_clip(duration: float = 3.0, colour=(255, 0, 0), pitch: float = 440.0) -> DecodedMedia:
    times = np.arange(0, duration, 0.5)
    frames = np.zeros((len(times), 32, 32, 3), np.uint8)
    frames[...] = colour
    t = np.arange(int(duration * SAMPLE_RATE)) / SAMPLE_RATE
    audio = (0.3 * np.sin(2 * np.pi * pitch * t)).astype(np.float32)
    return DecodedMedia(frames, times, audio, duration, True, "video")
