"""Batches of dataset positions: in order, or length-grouped within pools.

Grouping similar lengths wastes less padding (the paper's videos range from
seconds to minutes). Pools are consecutive runs of `batch_size * group_factor`
positions, so the order stays deterministic and a resumed run can skip whole
batches.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
from torch.utils.data import Sampler


def epoch_order(size: int, total: int, seed: int) -> list[int]:
    """`total` indices into `size` items: seeded shuffles of them, one after another (every item once
    per epoch), cut at `total`. pDPO's pairs and GRPO's questions are planned so."""
    rng = np.random.default_rng(seed)
    order: list[int] = []
    while len(order) < total:
        order += rng.permutation(size).tolist()
    return order[:total]


class PlannedBatches(Sampler[list[int]]):
    """Fixed batches over positions 0..n-1 (n a multiple of batch_size)."""

    def __init__(self, n: int, batch_size: int, seed: int, length_of: Callable[[int], int] | None = None,
                 group_factor: int = 16):
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.batch_size = batch_size  # accelerate reads it to split batches across processes
        self.drop_last = True
        self.batches = plan_batches(n, batch_size, seed, length_of, group_factor)

    def __iter__(self) -> Iterator[list[int]]:
        return iter([list(b) for b in self.batches])

    def __len__(self) -> int:
        return len(self.batches)


def plan_batches(n: int, batch_size: int, seed: int, length_of: Callable[[int], int] | None,
                 group_factor: int) -> list[list[int]]:
    positions = list(range(n - n % batch_size))
    if length_of is None:
        return [positions[i:i + batch_size] for i in range(0, len(positions), batch_size)]
    rng = np.random.default_rng(seed)
    pool_size = batch_size * max(1, group_factor)
    batches: list[list[int]] = []
    for start in range(0, len(positions), pool_size):
        pool = sorted(positions[start:start + pool_size], key=lambda p: (-length_of(p), p))
        grouped = [pool[i:i + batch_size] for i in range(0, len(pool), batch_size)]
        batches += [grouped[i] for i in rng.permutation(len(grouped))]
    return batches
