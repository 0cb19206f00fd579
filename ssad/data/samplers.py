"""The training order as a function of (seed, epoch), so that a run interrupted mid-epoch resumes with the very
batches it would have drawn (and, with the random state restored from the checkpoint, the very same crops)."""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
import torch.distributed as dist
from torch import Tensor
from torch.utils.data import DistributedSampler


class EpochSampler(DistributedSampler):
    """``count`` indices per epoch over all processes (``size`` when not given), drawn from a generator seeded
    with ``seed + epoch``.

    Without ``weights`` (the positives): successive permutations of ``range(size)``, cut at ``count``, so an
    epoch shorter than the set is a new random subset each epoch and a longer one passes over every item about
    equally often. With ``weights`` (one per item of the dataset they index; the negatives): ``count`` draws with
    replacement, each item with probability ∝ its weight. Either list begins the same whatever ``count`` is. As in
    ``DistributedSampler`` (whose subclass it is, so Lightning leaves it in place under DDP), the epoch's list
    is padded to a multiple of the number of processes and process r takes items r, r+W, r+2W, ….
    :meth:`resume_at` makes the next iteration skip what an interrupted run already consumed; :meth:`truncate`
    shortens every epoch (to whole optimiser steps under gradient accumulation).
    """

    def __init__(self, size: int, seed: int = 0, weights: Tensor | None = None, count: int | None = None) -> None:
        distributed = dist.is_available() and dist.is_initialized()
        world, rank = (dist.get_world_size(), dist.get_rank()) if distributed else (1, 0)
        super().__init__(range(size), num_replicas=world, rank=rank, shuffle=True, seed=seed)
        self.size, self.count, self.weights, self.skip = size, count or size, weights, 0
        self.num_samples = math.ceil(self.count / world)
        self.total_size = self.num_samples * world

    def truncate(self, count: int) -> None:
        """Serve only the first ``count`` indices of this process in every epoch."""
        self.num_samples = min(self.num_samples, count)

    def resume_at(self, epoch: int, consumed: int) -> None:
        """The next iteration is epoch ``epoch`` without its first ``consumed`` indices (of this process)."""
        self.set_epoch(epoch)
        self.skip = consumed

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        if self.weights is None:
            passes = -(-self.count // self.size)
            order = torch.cat([torch.randperm(self.size, generator=generator) for _ in range(passes)])
        else:
            order = torch.multinomial(self.weights, self.count, replacement=True, generator=generator)
        order = order[: self.count].tolist()
        order += order[: self.total_size - len(order)]
        mine = order[self.rank : self.total_size : self.num_replicas][: self.num_samples]
        skip, self.skip = self.skip, 0
        return iter(mine[skip:])
