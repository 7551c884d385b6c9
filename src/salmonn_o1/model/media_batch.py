"""The media half of a model input: one sample's features, and a batch of them.

The processor featurises each media input once into `MediaFeatures`, whose
`MediaSpec` (the layout the interleave plan needs) it computes then and there;
the same spec decides how many placeholder tokens the prompt gets and, later,
where the model writes each encoded token. `MediaBatch` (in the spirit of
transformers' `BatchFeature`) stacks a batch's frames and audio chunks and
keeps the per-sample specs beside them, so the model never rebuilds a spec
from flattened tensors. Both live at the model layer: the model consumes
them and must not import the processor that produces them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch

from salmonn_o1.model.interleave import MediaSpec, media_token_count, spec_for


@dataclass
class MediaFeatures:
    """One sample's media as tensors, with its layout spec (computed once, by the processor)."""

    kind: str  # "video", "image" or "audio"
    pixel_values: torch.Tensor | None  # (F, 3, S, S)
    input_features: torch.Tensor | None  # (C, mel, 3000)
    frame_times: torch.Tensor  # (F,) seconds
    duration: float
    spec: MediaSpec
    has_audio: bool = True

    @classmethod
    def build(cls, config, kind: str, pixel_values: torch.Tensor | None, input_features: torch.Tensor | None,
              frame_times: torch.Tensor, duration: float, has_audio: bool = True,
              frame_as_image: bool = False) -> MediaFeatures:
        """Features plus the spec `config` gives them (the one place a spec is made).

        frame_as_image: a one-frame video laid out as the release's image branch (no audio).
        """
        spec = spec_for(
            config, kind,
            num_frames=0 if pixel_values is None else pixel_values.shape[0],
            num_chunks=0 if input_features is None else input_features.shape[0],
            duration=duration, frame_times=tuple(frame_times.tolist()), frame_as_image=frame_as_image,
        )
        return cls(kind, pixel_values, input_features, frame_times, float(duration), spec, has_audio)

    @property
    def token_count(self) -> int:
        """How many placeholder tokens this media expands to in the prompt."""
        return media_token_count(self.spec)

    @property
    def num_frames(self) -> int:
        return 0 if self.pixel_values is None else int(self.pixel_values.shape[0])

    @property
    def num_chunks(self) -> int:
        return 0 if self.input_features is None else int(self.input_features.shape[0])


@dataclass
class MediaBatch:
    """A batch's media: every frame and audio chunk stacked, and each sample's spec and counts.

    specs[b] is None for a text-only sample. Frames of sample b are rows
    sum(frames_per_sample[:b]) ... of `pixel_values` (likewise chunks of
    `input_features`), so per-sample tensors are recovered by splitting.
    """

    specs: tuple[MediaSpec | None, ...]
    frames_per_sample: tuple[int, ...]
    chunks_per_sample: tuple[int, ...]
    pixel_values: torch.Tensor | None = None  # (sum F, 3, S, S)
    input_features: torch.Tensor | None = None  # (sum C, mel, 3000)
    frame_times: torch.Tensor | None = None  # (sum F,) seconds

    @classmethod
    def collate(cls, media: Sequence[MediaFeatures | None]) -> MediaBatch:
        """Stack the features of a batch (None = a text-only sample)."""
        pixel = [m.pixel_values for m in media if m is not None and m.pixel_values is not None]
        audio = [m.input_features for m in media if m is not None and m.input_features is not None]
        times = [m.frame_times for m in media if m is not None and m.pixel_values is not None]
        return cls(
            specs=tuple(m.spec if m is not None else None for m in media),
            frames_per_sample=tuple(m.num_frames if m is not None else 0 for m in media),
            chunks_per_sample=tuple(m.num_chunks if m is not None else 0 for m in media),
            pixel_values=torch.cat(pixel) if pixel else None,
            input_features=torch.cat(audio) if audio else None,
            frame_times=torch.cat(times).float() if pixel else None,
        )

    def __len__(self) -> int:
        return len(self.specs)

    @property
    def kinds(self) -> list[str]:
        """Each sample's media kind; "none" for text only."""
        return [spec.kind if spec is not None else "none" for spec in self.specs]

    @property
    def durations(self) -> list[float]:
        return [spec.duration if spec is not None else 0.0 for spec in self.specs]

    def to(self, device: torch.device | str, non_blocking: bool = False) -> MediaBatch:
        """The same batch with its tensors on `device` (dtypes unchanged: the encoders cast)."""
        def move(tensor: torch.Tensor | None) -> torch.Tensor | None:
            return None if tensor is None else tensor.to(device, non_blocking=non_blocking)

        return replace(self, pixel_values=move(self.pixel_values), input_features=move(self.input_features),
                       frame_times=move(self.frame_times))
