"""What a training stage optimises, separated from how the loop runs it.

The SFT and pDPO stages share one engine (`salmonn_o1.train.trainer`): data
order, accumulation, accelerate, checkpoints and logging live there; an
`Objective` says how a list of examples becomes a batch and a batch becomes a
loss. A new stage is a new objective, not a new loop.
"""

from __future__ import annotations

from typing import Any, Protocol

import torch
from torch import nn

from salmonn_o1.model.media_batch import MediaBatch


class Objective(Protocol):
    """collate(examples) -> batch (None when every example was bad); loss(model, batch) -> (loss, metrics).

    Optional, read by the Trainer when present: `progress_keys` (metrics for the progress bar),
    `state_dict()` / `load_state_dict(state)` (counters saved with each checkpoint, restored on
    resume) and `finished` (true after a step ends the run there: checkpoint and final model).
    """

    name: str

    def collate(self, examples: list[Any]) -> dict[str, Any] | None: ...

    def loss(self, model: nn.Module, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]: ...


def batch_to(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """Move every tensor (and `MediaBatch`) of a (possibly nested) batch to `device`."""
    moved: dict[str, Any] = {}
    for key, value in batch.items():
        if isinstance(value, torch.Tensor | MediaBatch):
            moved[key] = value.to(device)
        elif isinstance(value, dict):
            moved[key] = batch_to(value, device)
        else:
            moved[key] = value
    return moved
