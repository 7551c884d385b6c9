"""Model features from decoded media: SigLIP pixels and Whisper log-mel chunks.

Audio is split into 30 s chunks *before* the Whisper feature extractor,
which would otherwise silently truncate everything after 30 s.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch
from PIL import Image
from transformers import WhisperFeatureExtractor

from salmonn_o1.media_types import SAMPLE_RATE

# Whisper chunks featurised per extractor call: bounds its transient memory (STFT, padded copies), which
# grows by tens of MB per chunk in a call; the values do not depend on it.
FEATURE_GROUP_CHUNKS = 1


def frames_to_pixel_values(
    frames: np.ndarray, image_size: int, mean: tuple[float, ...] = (0.5, 0.5, 0.5),
    std: tuple[float, ...] = (0.5, 0.5, 0.5),
) -> torch.Tensor:
    """(F, H, W, 3) uint8 -> (F, 3, S, S) float: bicubic resize (aspect not kept), /255, normalise."""
    if frames.shape[1:3] != (image_size, image_size):
        frames = np.stack([
            np.asarray(Image.fromarray(f).resize((image_size, image_size), Image.BICUBIC)) for f in frames
        ])
    pixels = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float() / 255.0
    mean_t = torch.tensor(mean).view(1, 3, 1, 1)
    std_t = torch.tensor(std).view(1, 3, 1, 1)
    return (pixels - mean_t) / std_t


def num_audio_chunks(num_samples: int, chunk_seconds: float = 30.0, min_seconds: float = 1.0) -> int:
    samples = max(num_samples, int(min_seconds * SAMPLE_RATE))
    return max(1, math.ceil(samples / (chunk_seconds * SAMPLE_RATE)))


@lru_cache(maxsize=8)
def _extractor(num_mel_bins: int) -> WhisperFeatureExtractor:
    return WhisperFeatureExtractor(feature_size=num_mel_bins, sampling_rate=SAMPLE_RATE)


def audio_to_features(
    audio: np.ndarray, num_mel_bins: int = 128, chunk_seconds: float = 30.0, min_seconds: float = 1.0,
    group_chunks: int = FEATURE_GROUP_CHUNKS,
) -> torch.Tensor:
    """(n,) float32 16 kHz -> (C, mel, 3000): padded to >= 1 s, chunked, log-mel per chunk.

    The extractor runs on `group_chunks` chunks at a time, written into one preallocated tensor:
    each chunk's log-mel depends on that chunk only, so the values are those of one call over all
    chunks, without that call's padded copy of every chunk and its spectrogram intermediates
    (hundreds of MB for a 10-minute clip).
    """
    audio = np.asarray(audio, dtype=np.float32)
    min_samples = int(min_seconds * SAMPLE_RATE)
    if audio.shape[0] < min_samples:
        audio = np.pad(audio, (0, min_samples - audio.shape[0]))
    chunk = int(chunk_seconds * SAMPLE_RATE)
    starts = range(0, audio.shape[0], chunk)
    extractor = _extractor(num_mel_bins)
    out = None
    for first in range(0, len(starts), max(1, group_chunks)):
        group = [audio[i:i + chunk] for i in starts[first:first + max(1, group_chunks)]]
        features = extractor(group, sampling_rate=SAMPLE_RATE, return_tensors="np").input_features
        if out is None:
            out = torch.empty((len(starts),) + features.shape[1:], dtype=torch.float32)
        out[first:first + len(group)] = torch.from_numpy(features)
    return out
