"""Where each visual and audio token goes in the media sequence.

The layout is computed as an *index plan* over the concatenation
`[visual tokens (F * Tv), audio tokens (A), time tokens (F * K)]`: the processor
uses its length to expand the media placeholder, and the model gathers the
embeddings with it, so the two can never disagree about the count.

Two modes (docs/released-model.md):
- "release": the released model's layout. The first round(50 T) audio tokens
  (T = duration; for T >= 3 s that is every token, padding included) are
  nearest-neighbour stretched to a multiple of F and split evenly by count;
  per frame [visual, its k audio tokens], then leftover audio at the end.
- "aligned": each frame gets the audio tokens whose window starts inside the
  frame's time span [t_f, t_{f+1}) (the first frame also takes anything
  before it), and tokens of the zero padding after the media's end are dropped.

A video of one frame with `frame_as_image` (the release's `single_frame_as_image`)
takes the release's image branch instead: the frame's pooled grid row by row
without the per-row newlines, then one newline, and no audio or time tokens.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

RELEASE_AUDIO_TOKENS_PER_SECOND = 50  # the release's constant (its audio runs at 5/s)


@dataclass(frozen=True)
class MediaSpec:
    """What one sample's media looks like, as far as the layout is concerned.

    kind: "video", "image", "audio" or "none".
    frame_as_image: a one-frame video laid out as the release's image branch (grid + 1 newline).
    num_frames / tokens_per_frame: visual tokens are (num_frames, tokens_per_frame).
    num_audio_tokens: all audio tokens the encoder produced (chunks x tokens per chunk).
    duration: seconds of media. frame_times: one timestamp per frame (seconds).
    """

    kind: str
    num_frames: int = 0
    tokens_per_frame: int = 0
    num_audio_tokens: int = 0
    duration: float = 0.0
    frame_times: tuple[float, ...] = ()
    audio_tokens_per_second: float = 5.0
    time_tokens: bool = False
    time_tokens_per_frame: int = 1
    mode: str = "aligned"
    frame_as_image: bool = False


def nearest_indices(input_size: int, output_size: int) -> np.ndarray:
    """Source index of each output position of torch's `F.interpolate(mode="nearest")`, bit for bit.

    torch computes floor(float32(j) * float32(in / out)) in single precision (with exact shortcuts
    for out == in and out == 2 * in), so for long inputs (over 150 chunks into 60 frames) a few
    indices are one off the exact floor(j * in / out); the release stretched its audio with it.
    """
    if output_size == input_size:
        return np.arange(output_size)
    if output_size == 2 * input_size:
        return np.arange(output_size) >> 1
    scale = np.float32(input_size) / np.float32(output_size)
    source = np.floor(np.arange(output_size, dtype=np.float32) * scale).astype(np.int64)
    return np.minimum(source, input_size - 1)


def _release_frame_audio(num_audio: int, num_frames: int, duration: float) -> tuple[list[np.ndarray], np.ndarray]:
    """Audio indices per frame and the leftover tail, as the release splits them."""
    front = min(round(duration * RELEASE_AUDIO_TOKENS_PER_SECOND), num_audio)
    back = np.arange(front, num_audio)
    if front == 0:
        return [np.zeros(0, dtype=np.int64)] * num_frames, back
    size = front if front % num_frames == 0 else front + num_frames - front % num_frames
    stretched = nearest_indices(front, size)
    per_frame = size // num_frames
    return [stretched[f * per_frame:(f + 1) * per_frame] for f in range(num_frames)], back


def _aligned_frame_audio(
    num_audio: int, frame_times: tuple[float, ...], duration: float, tokens_per_second: float
) -> list[np.ndarray]:
    valid = min(num_audio, max(1, math.ceil(duration * tokens_per_second - 1e-6)))
    starts = np.arange(valid) / tokens_per_second
    boundaries = np.asarray(frame_times[1:], dtype=np.float64)
    owner = np.searchsorted(boundaries, starts + 1e-9, side="right")
    return [np.nonzero(owner == f)[0] for f in range(len(frame_times))]


@lru_cache(maxsize=4096)
def _plan(spec: MediaSpec) -> np.ndarray:
    visual_total = spec.num_frames * spec.tokens_per_frame
    audio_offset = visual_total
    time_offset = visual_total + spec.num_audio_tokens
    if spec.kind == "none":
        return np.zeros(0, dtype=np.int64)
    if spec.frame_as_image:
        # The frame's tokens are rows of (grid + newline): keep each row's grid, then the last newline.
        grid = (math.isqrt(4 * spec.tokens_per_frame + 1) - 1) // 2  # tokens_per_frame = g * (g + 1)
        row = grid + 1
        if grid * row != spec.tokens_per_frame or spec.num_frames != 1:
            raise ValueError(f"frame_as_image needs one frame of g * (g + 1) tokens, got {spec}")
        cells = (np.arange(grid)[:, None] * row + np.arange(grid)[None, :]).reshape(-1)
        return np.concatenate([cells, [spec.tokens_per_frame - 1]]).astype(np.int64)
    if spec.kind == "audio":
        if spec.mode == "release":
            return np.arange(spec.num_audio_tokens) + audio_offset
        valid = min(spec.num_audio_tokens, max(1, math.ceil(spec.duration * spec.audio_tokens_per_second - 1e-6)))
        return np.arange(valid) + audio_offset
    if spec.kind == "image" or spec.num_audio_tokens == 0:
        frame_audio = [np.zeros(0, dtype=np.int64)] * spec.num_frames
        back = np.zeros(0, dtype=np.int64)
    elif spec.mode == "release":
        frame_audio, back = _release_frame_audio(spec.num_audio_tokens, spec.num_frames, spec.duration)
    else:
        frame_audio = _aligned_frame_audio(
            spec.num_audio_tokens, spec.frame_times, spec.duration, spec.audio_tokens_per_second
        )
        back = np.zeros(0, dtype=np.int64)
    pieces: list[np.ndarray] = []
    for f in range(spec.num_frames):
        if spec.time_tokens:
            k = spec.time_tokens_per_frame
            pieces.append(np.arange(time_offset + f * k, time_offset + (f + 1) * k))
        pieces.append(np.arange(f * spec.tokens_per_frame, (f + 1) * spec.tokens_per_frame))
        pieces.append(frame_audio[f] + audio_offset)
    pieces.append(back + audio_offset)
    return np.concatenate(pieces).astype(np.int64)


def interleave_plan(spec: MediaSpec) -> torch.Tensor:
    """(N,) indices into cat([visual.flatten(0, 1), audio, time_tokens]) giving the media sequence."""
    return torch.from_numpy(_plan(spec))


def media_token_count(spec: MediaSpec) -> int:
    """How many placeholder tokens this sample's media expands to."""
    return int(_plan(spec).shape[0])


def spec_for(
    config,
    kind: str,
    num_frames: int = 0,
    num_chunks: int = 0,
    duration: float = 0.0,
    frame_times: tuple[float, ...] = (),
    frame_as_image: bool = False,
) -> MediaSpec:
    """The MediaSpec of one sample under a model config (shared by processor and model).

    frame_as_image: a one-frame video in the release's image branch (the processor decides,
    from `config.single_frame_as_image`, and then featurises no audio).
    """
    if kind == "none":
        return MediaSpec(kind="none")
    if frame_as_image:
        if kind != "video" or num_frames != 1:
            raise ValueError(f"only a one-frame video can take the image branch (got {kind}, {num_frames} frames)")
        return MediaSpec(
            kind="video", num_frames=1, tokens_per_frame=config.video_tokens_per_frame, duration=float(duration),
            frame_times=tuple(float(t) for t in frame_times), audio_tokens_per_second=config.audio_tokens_per_second,
            mode=config.interleave_mode, frame_as_image=True,
        )
    tokens_per_frame = config.image_tokens if kind == "image" else config.video_tokens_per_frame
    time_tokens = bool(config.time_tokens) and kind != "audio"
    return MediaSpec(
        kind=kind,
        num_frames=num_frames if kind != "audio" else 0,
        tokens_per_frame=tokens_per_frame if kind != "audio" else 0,
        num_audio_tokens=num_chunks * config.audio_tokens_per_chunk if kind != "image" else 0,
        duration=float(duration),
        frame_times=tuple(float(t) for t in frame_times),
        audio_tokens_per_second=config.audio_tokens_per_second,
        time_tokens=time_tokens,
        time_tokens_per_frame=config.time_tokens_per_frame if time_tokens else 1,
        mode=config.interleave_mode,
    )
