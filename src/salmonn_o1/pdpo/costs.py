"""Cost accounting, a first-class output of every stage.

Two numbers compare selection strategies on equal terms: tokens *generated*
(sampling dominates the cost of step values) and LLM *forward passes* (a
batched call counts once; `forward_positions` adds up batch rows x new
positions, the work a batched call actually does, and `prefill_positions` the
part of it fed more than one position at a time: prompts, media, shared prefixes
counted once, follow-up questions). Forward passes are counted by a hook on the
language model, so every caller (the pipeline's decode loop, teacher-forced
scoring, reference log-probs) is counted the same way. Work batched across
questions is shared out among them by `Cost.split` (by rows), so per-question
costs still add up to what ran.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass

from torch import nn


@dataclass
class Cost:
    generated_tokens: int = 0
    forward_passes: int = 0
    forward_positions: int = 0
    prefill_positions: int = 0

    def add(self, other: Cost | dict) -> Cost:
        other = other if isinstance(other, Cost) else Cost(**other)
        self.generated_tokens += other.generated_tokens
        self.forward_passes += other.forward_passes
        self.forward_positions += other.forward_positions
        self.prefill_positions += other.prefill_positions
        return self

    def split(self, weights: Sequence[int]) -> list[Cost]:
        """This cost shared out in proportion to `weights` (e.g. each question's rows in a batched call),
        in whole numbers that add up to it exactly (largest remainders first)."""
        total = sum(weights)
        if total <= 0:
            raise ValueError("Cost.split needs a positive total weight")
        parts = [Cost() for _ in weights]
        for name in ("generated_tokens", "forward_passes", "forward_positions", "prefill_positions"):
            whole = getattr(self, name)
            exact = [whole * w / total for w in weights]
            shares = [int(x) for x in exact]
            order = sorted(range(len(weights)), key=lambda i: (shares[i] - exact[i], i))
            for i in order[:whole - sum(shares)]:
                shares[i] += 1
            for part, share in zip(parts, shares):
                setattr(part, name, share)
        return parts

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def unwrapped(model: nn.Module) -> nn.Module:
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
            if x.shape[1] > 1:
                cost.prefill_positions += int(x.shape[0] * x.shape[1])

    handle = unwrapped(model).register_forward_hook(hook, with_kwargs=True)
    try:
        yield cost
    finally:
        handle.remove()
