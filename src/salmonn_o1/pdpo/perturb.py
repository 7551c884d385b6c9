"""Perturbed copies of a question's media, for contrastive step selection.

A step whose tokens the model predicts very differently once the media is
degraded is a step that leans on the audio-visual input; those are the steps
worth a pairwise rollout. The released recipe degrades the frames with the
forward process of a diffusion model (as in Visual Contrastive Decoding):

    betas   = sigmoid(linspace(-6, 6, 1000)) * (5e-3 - 1e-5) + 1e-5
    abar_t  = prod_{s <= t} (1 - betas_s)          (t counted from 0, as the release indexes it)
    x'      = sqrt(abar_t) * x + sqrt(1 - abar_t) * eps,   eps ~ N(0, I),  t = 100 by default

applied to the normalised pixel values (SigLIP's mean 0.5 / std 0.5, so
pixels lie in [-1, 1] as a diffusion model's do). The audio options, for
questions the frames alone cannot explain, work on the log-mel chunks the model
sees: the same schedule on the log-mel values (`audio-noise`), or the log-mel
of silence (`audio-mute`). `frame-shuffle` keeps every frame but breaks their
order (never the identity order). All are seeded and return new features.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from salmonn_o1.processor import MediaFeatures

PERTURBATIONS = ("frames-noise", "audio-noise", "audio-mute", "frame-shuffle")
NUM_DIFFUSION_STEPS = 1000
DEFAULT_NOISE_STEP = 100


def diffusion_alphas_cumprod(num_steps: int = NUM_DIFFUSION_STEPS) -> torch.Tensor:
    """abar_t for t = 0..num_steps-1 of the release's sigmoid schedule, float64."""
    betas = torch.sigmoid(torch.linspace(-6, 6, num_steps, dtype=torch.float64)) * (5e-3 - 1e-5) + 1e-5
    return torch.cumprod(1 - betas, dim=0)


def diffusion_noise(x: torch.Tensor, noise_step: int = DEFAULT_NOISE_STEP,
                    generator: torch.Generator | None = None) -> torch.Tensor:
    """sqrt(abar_t) x + sqrt(1 - abar_t) eps for any tensor x."""
    if not 0 <= noise_step < NUM_DIFFUSION_STEPS:
        raise ValueError(f"noise step {noise_step} outside 0..{NUM_DIFFUSION_STEPS - 1}")
    abar = float(diffusion_alphas_cumprod()[noise_step])
    eps = torch.randn(x.shape, generator=generator, dtype=torch.float32).to(x)
    return abar ** 0.5 * x + (1 - abar) ** 0.5 * eps


def shuffled_order(n: int, generator: torch.Generator) -> torch.Tensor:
    """A random permutation of 0..n-1 that moves at least one frame (n >= 2)."""
    order = torch.randperm(n, generator=generator)
    if torch.equal(order, torch.arange(n)):
        order = order.roll(1)
    return order


@lru_cache(maxsize=4)
def _silence_chunk(num_mel_bins: int) -> torch.Tensor:
    from salmonn_o1.features import audio_to_features

    return audio_to_features(np.zeros(30 * 16_000, np.float32), num_mel_bins=num_mel_bins)[0]  # (mel, 3000)


@dataclass(frozen=True)
class Perturbation:
    """One way of degrading media: `Perturbation("frames-noise", noise_step=100, seed=0)(features)`."""

    kind: str = "frames-noise"
    noise_step: int = DEFAULT_NOISE_STEP
    seed: int = 0

    def __post_init__(self):
        if self.kind not in PERTURBATIONS:
            raise ValueError(f"unknown perturbation {self.kind!r}; choose from {', '.join(PERTURBATIONS)}")

    def __call__(self, features: MediaFeatures | None, seed: int | None = None) -> MediaFeatures:
        """A perturbed copy; `seed` (e.g. a question's index) overrides the default seed."""
        generator = torch.Generator().manual_seed(self.seed if seed is None else seed)
        kind = self.kind
        if kind in ("frames-noise", "frame-shuffle"):
            if features is None or features.pixel_values is None:
                raise ValueError(f"{kind}: the input has no frames; use --perturb audio-noise or audio-mute")
            pixels = features.pixel_values
            if kind == "frames-noise":
                return dataclasses.replace(features, pixel_values=diffusion_noise(pixels, self.noise_step, generator))
            if pixels.shape[0] < 2:
                raise ValueError("frame-shuffle: the input has fewer than two frames; use --perturb frames-noise")
            return dataclasses.replace(features, pixel_values=pixels[shuffled_order(pixels.shape[0], generator)])
        if features is None or features.input_features is None:
            raise ValueError(f"{kind}: the input has no audio; use --perturb frames-noise")
        mel = features.input_features  # (C, mel, 3000)
        if kind == "audio-noise":
            return dataclasses.replace(features, input_features=diffusion_noise(mel, self.noise_step, generator))
        silence = _silence_chunk(mel.shape[1]).to(mel).expand_as(mel).clone()
        return dataclasses.replace(features, input_features=silence)
