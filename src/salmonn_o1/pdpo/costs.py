"""Cost accounting, a first-class output of every stage.

Two numbers compare selection strategies on equal terms: tokens *generated*
(sampling dominates the cost of step values) and LLM *forward passes* (a
batched call counts once; `forward_positions` adds up batch rows x new
positions, the work a batched call actually does). Forward passes are counted
by a hook on the language model, so every caller (the pipeline's decode loop,
teacher-forced scoring, reference log-probs) is counted the same way.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass

from torch import nn


@dataclass
class Cost:
    generated_tokens: int = 0
    forward_passes: int = 0
    forward_positions: int = 0

    def add(self, other: Cost | dict) -> Cost:
        other = other if isinstance(other, Cost) else Cost(**other)
        self.generated_tokens += other.generated_tokens
        self.forward_passes += other.forward_passes
        self.forward_positions += other.forward_positions
        return self

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def _unwrapped(model: nn.Module) -> nn.Module:
    """The model itself under distributed / compiled wrappers (which keep it in `.module`)."""
    while hasattr(model, "module") and isinstance(model.module, nn.Module):
        model = model.module
    return model


@contextmanager
def count_forward(model: nn.Module | None, cost: Cost) -> Iterator[Cost]:
    """Count the model's forward calls (one per LLM pass: every caller decodes through the model's own
    forward) made inside the block into `cost` (no-op for model None: scripted policies)."""
    if model is None:
        yield cost
        return

    def hook(module, args, kwargs, output):
        x = kwargs.get("inputs_embeds")
        if x is None:
            x = kwargs.get("input_ids", args[0] if args else None)
        cost.forward_passes += 1
        if x is not None:
            cost.forward_positions += int(x.shape[0] * x.shape[1])

    handle = _unwrapped(model).register_forward_hook(hook, with_kwargs=True)
    try:
        yield cost
    finally:
        handle.remove()
