"""Drawing a Timeline: RGB frames at any times and the 16 kHz sound track.

Numpy only and vectorised per frame, so a clip renders to model-ready
`DecodedMedia` in milliseconds; training can skip the mp4 round trip and the
mp4 writer uses the same pixels and samples.
"""

from __future__ import annotations

import numpy as np

from salmonn_o1.data.synthetic.timeline import COLOURS, SOUNDS, Timeline, scene_at
from salmonn_o1.media_types import SAMPLE_RATE

BACKGROUND = (16, 16, 16)
SHAPE_RADIUS = 0.16  # half the shape's size, as a fraction of the frame side
AMPLITUDE = 0.5
FADE_SECONDS = 0.01  # ramps at each sound's ends avoid clicks (and broadband energy)


def shape_mask(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Inside-mask of a unit shape; (u, v) are coordinates relative to its centre in
    radii, v pointing down."""
    if shape == "square":
        return (np.abs(u) <= 0.85) & (np.abs(v) <= 0.85)
    if shape == "circle":
        return u * u + v * v <= 1.0
    if shape == "triangle":  # apex up
        return (v >= -1.0) & (v <= 1.0) & (np.abs(u) <= (v + 1.0) / 2.0)
    if shape == "cross":
        return ((np.abs(u) <= 0.33) & (np.abs(v) <= 1.0)) | ((np.abs(v) <= 0.33) & (np.abs(u) <= 1.0))
    raise ValueError(f"unknown shape {shape!r}")


def render_frames(timeline: Timeline, times: np.ndarray, size: int | tuple[int, int] = 64) -> np.ndarray:
    """(F, H, W, 3) uint8 frames showing the timeline at `times` (seconds)."""
    height, width = (size, size) if isinstance(size, int) else size
    frames = np.empty((len(times), height, width, 3), dtype=np.uint8)
    frames[...] = np.array(BACKGROUND, dtype=np.uint8)
    # Pixel centres in frame fractions: (H, 1) and (1, W).
    ys = ((np.arange(height) + 0.5) / height)[:, None]
    xs = ((np.arange(width) + 0.5) / width)[None, :]
    for i, t in enumerate(times):
        scene = scene_at(timeline, float(t))
        if scene is None:
            continue
        cx, cy = scene.position(float(t))
        mask = shape_mask(scene.shape, (xs - cx) / SHAPE_RADIUS, (ys - cy) / SHAPE_RADIUS)
        frames[i][mask] = COLOURS[scene.colour_at(float(t))]
    return frames


def sound_wave(kind: str, n: int, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """n samples of one sound kind, unit peak, faded at both ends."""
    t = np.arange(n, dtype=np.float64) / sample_rate
    freq = SOUNDS[kind][1]
    if kind == "buzz":
        wave = np.sign(np.sin(2 * np.pi * freq * t)) * 0.8
    elif kind == "chirp":
        f0, f1, span = 500.0, 2500.0, max(n / sample_rate, 1e-3)
        wave = np.sin(2 * np.pi * (f0 * t + (f1 - f0) * t * t / (2 * span)))
    elif kind == "thud":
        wave = np.sin(2 * np.pi * freq * t) * np.exp(-t / 0.15)
    else:
        wave = np.sin(2 * np.pi * freq * t)
    fade = min(int(FADE_SECONDS * sample_rate), n // 2)
    if fade:
        ramp = np.linspace(0.0, 1.0, fade)
        wave[:fade] *= ramp
        wave[n - fade :] *= ramp[::-1]
    return wave


def render_audio(timeline: Timeline, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """(n,) float32 mono waveform of the whole clip; silence between sounds."""
    audio = np.zeros(int(round(timeline.duration * sample_rate)), dtype=np.float64)
    for sound in timeline.sounds:
        a = int(round(sound.start * sample_rate))
        b = min(int(round(sound.end * sample_rate)), len(audio))
        if b > a:
            audio[a:b] += AMPLITUDE * sound_wave(sound.kind, b - a, sample_rate)
    return audio.astype(np.float32)


def frame_times(duration: float, fps: float) -> np.ndarray:
    """0, 1/fps, 2/fps, ... strictly below the duration."""
    count = int(np.ceil(duration * fps - 1e-9))
    return np.arange(count, dtype=np.float64) / fps
