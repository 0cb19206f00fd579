"""The training order as a function of (seed, epoch), so that a run interrupted mid-epoch resumes with the very
batches it would have drawn (and, with the random state restored from the checkpoint, the very same crops)."""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.distributed as dist
from torch import Tensor
from torch.utils.data import DistributedSampler


class EpochSampler(DistributedSampler):
    """``size`` indices per epoch over all processes, drawn from a generator seeded with ``seed + epoch``.

    Without ``weights``: a permutation of ``range(size)`` (the positives). With ``weights`` (one per dataset
    item): ``size`` draws with replacement, each item with probability ∝ its weight (the negatives). As in
    ``DistributedSampler`` (whose subclass it is, so Lightning leaves it in place under DDP), the epoch's list
    is padded to a multiple of the number of processes and process r takes items r, r+W, r+2W, ….
    :meth:`resume_at` makes the next iteration skip what an interrupted run already consumed; :meth:`truncate`
    shortens every epoch (to whole optimiser steps under gradient accumulation).
    """

    def __init__(self, size: int, seed: int = 0, weights: Tensor | None = None) -> None:
        distributed = dist.is_available() and dist.is_initialized()
        world, rank = (dist.get_world_size(), dist.get_rank()) if distributed else (1, 0)
        super().__init__(range(size), num_replicas=world, rank=rank, shuffle=True, seed=seed)
        self.size, self.weights, self.skip = size, weights, 0

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
            order = torch.randperm(self.size, generator=generator)
        else:
            order = torch.multinomial(self.weights, self.size, replacement=True, generator=generator)
        order = order.tolist()
        order += order[: self.total_size - len(order)]
        mine = order[self.rank : self.total_size : self.num_replicas][: self.num_samples]
        skip, self.skip = self.skip, 0
        return iter(mine[skip:])
