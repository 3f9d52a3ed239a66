"""Class-balanced training draws that stay balanced on every rank under DDP.

Real FF++ has four fakes per real. Trained on it as is, a detector sees a fake
four times out of five, and a plain shuffle gives no control over that. Of the
two usual remedies, dfbench samples rather than weights the loss: every
detector's loss stays the one its paper writes, and each batch carries both
classes in equal shares.

:class:`BalancedSampler` draws, per epoch, ``len(dataset) // 2`` training
items of each class (items are the training set's (video, slot) pairs, so a
class is balanced by videos and by frames alike). The smaller class is cycled
through whole shuffled passes, so each of its items appears equally often
(to within one); the larger class contributes a shuffled subset without
repetition. Each rank takes its own disjoint share of each class (the same
count on every rank) and shuffles it, from a generator seeded by the seed and
the epoch: every epoch differs, and a rerun with the same seed repeats it.

It subclasses :class:`torch.utils.data.DistributedSampler`, which Lightning
leaves in place under DDP (a plain sampler would be wrapped in one that
re-splits its output across ranks and loses the balance per rank).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DistributedSampler

from src.errors import DFBenchError


def _draw(items: np.ndarray, count: int, generator: torch.Generator) -> np.ndarray:
    """``count`` of ``items`` from whole shuffled passes over them (each pass a new order)."""
    passes = -(-count // len(items))
    orders = [torch.randperm(len(items), generator=generator).numpy() for _ in range(passes)]
    return items[np.concatenate(orders)[:count]]


class BalancedSampler(DistributedSampler):
    """Equal numbers of real and fake items per epoch and per rank (see the module docstring).

    Args:
        labels: label of each item of the dataset (0 real, anything else fake).
        num_replicas: number of ranks (1 outside DDP).
        rank: this process's rank.
        seed: base seed; epoch ``e`` draws from ``seed + e`` (the same on every rank).
    """

    def __init__(
        self, labels: Sequence[int], num_replicas: int = 1, rank: int = 0, seed: int = 0
    ) -> None:
        labels = np.asarray(labels)
        super().__init__(labels, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed)
        self.reals = np.flatnonzero(labels == 0)
        self.fakes = np.flatnonzero(labels != 0)
        if not len(self.reals) or not len(self.fakes):
            raise DFBenchError(
                f"balanced sampling needs real and fake training items, got {len(self.reals)} "
                f"reals and {len(self.fakes)} fakes"
            )
        self.per_class = max(1, (len(labels) // 2) // num_replicas)

    def __len__(self) -> int:
        return 2 * self.per_class

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator()
        generator.manual_seed(self.seed + self.epoch)
        total = self.per_class * self.num_replicas
        shares = [
            _draw(items, total, generator)[self.rank :: self.num_replicas]
            for items in (self.reals, self.fakes)
        ]
        mine = np.concatenate(shares)
        order = torch.randperm(len(mine), generator=generator).numpy()
        return iter(mine[order].tolist())
