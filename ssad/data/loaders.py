"""Every DataLoader of ssad, from one factory: the training loaders of :class:`ssad.data.datamodule.SSADDataModule`
and the evaluation loaders (:func:`evaluation_loader`). Datasets serve whole batches of cached uint8 images by
fancy indexing (``__getitems__``, no per-image decoding); ``data.num_workers`` fits the machine
(:func:`resolve_num_workers`)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from ssad.cli.errors import ConfigError
from ssad.data.sources import ArraySet

MAX_AUTO_WORKERS = 4  # data.num_workers=auto never asks for more DataLoader workers than this


_job_cpus: int | None = None  # this process's share of the machine while it runs a job of a parallel sweep


def machine_cpus() -> int:
    """The CPUs this process may run on (its affinity mask, as PyTorch's DataLoader counts them)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def set_job_cpus(cpus: int | None) -> None:
    """Count ``cpus`` as this process's CPUs from now on (None: the whole machine again). A job of a parallel sweep
    (:class:`ssad.training.threads.JobThreads`) shares the machine with the jobs beside it, so its
    ``data.num_workers=auto`` must fit its share, not the machine."""
    global _job_cpus
    _job_cpus = cpus


def available_cpus() -> int:
    """The CPUs this process counts as its own: its share of the machine in a parallel sweep's job
    (:func:`set_job_cpus`), otherwise :func:`machine_cpus`."""
    return _job_cpus or machine_cpus()


def resolve_num_workers(value: int | str, processes: int = 1) -> int:
    """``data.num_workers``: an integer as given, or ``auto``: the CPUs of this process's share of the machine
    (``available_cpus() // processes``, the training processes on it sharing the CPUs) less one for the training
    process itself, at most :data:`MAX_AUTO_WORKERS`: 1 on 2 cores, 0 on 1, 4 on 8 or more. Neither PyTorch
    (more workers than CPUs) nor Lightning (fewer workers than it suggests) then warns."""
    if value == "auto":
        return max(0, min(MAX_AUTO_WORKERS, available_cpus() // max(processes, 1) - 1))
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"data.num_workers={value!r}: give an integer >= 0 or 'auto'")
    return value


class ArrayDataset(Dataset):
    """uint8 images (memory-mapped) served a whole batch at a time through ``__getitems__``."""

    def __init__(self, images: np.ndarray, labels: np.ndarray | None = None) -> None:
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        return self.__getitems__([index])

    def __getitems__(self, indices: Sequence[int]) -> dict[str, Tensor]:
        idx = np.asarray(indices)
        batch = {"image": torch.from_numpy(np.ascontiguousarray(self.images[idx])), "index": torch.from_numpy(idx)}
        if self.labels is not None:
            batch["label"] = torch.from_numpy(np.asarray(self.labels[idx], dtype=np.int64))
        return batch


class NegativeDataset(Dataset):
    """The union of the variant's negative sources; every image carries the index of its part."""

    def __init__(self, parts: Sequence[np.ndarray]) -> None:
        self.parts = list(parts)
        self.offsets = np.cumsum([0] + [len(p) for p in self.parts])

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def __getitems__(self, indices: Sequence[int]) -> dict[str, Tensor]:
        idx = np.asarray(indices)
        part = np.searchsorted(self.offsets, idx, side="right") - 1
        images = np.empty((len(idx), *self.parts[0].shape[1:]), dtype=np.uint8)
        for p in np.unique(part):
            rows = part == p
            images[rows] = self.parts[p][idx[rows] - self.offsets[p]]
        return {"image": torch.from_numpy(images), "part": torch.from_numpy(part)}

    def sample_weights(self, part_weights: Sequence[float]) -> Tensor:
        """Per-image weights so that part p is drawn with probability ∝ its weight, whatever its size."""
        sizes = np.diff(self.offsets)
        return torch.from_numpy(np.repeat(np.asarray(part_weights) / sizes, sizes))


def passthrough(batch: Any) -> Any:
    """The collate function of a dataset that builds whole batches itself."""
    return batch


def make_loader(dataset: Dataset, batch_size: int, sampler: Sampler | None = None, workers: int = 0,
                seed: int | None = None, drop_last: bool = False) -> DataLoader:
    """The DataLoader of ``dataset``: its batches as the dataset builds them (``__getitems__``), pinned on CUDA,
    ``workers`` kept alive across epochs; with ``seed`` its own generator, so that creating the iterator draws
    the worker seeds from it, not from the global random state."""
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, drop_last=drop_last, num_workers=workers,
                      collate_fn=passthrough, generator=None if seed is None else torch.Generator().manual_seed(seed),
                      pin_memory=torch.cuda.is_available(), persistent_workers=workers > 0)


def evaluation_loader(array_set: ArraySet, batch_size: int) -> DataLoader:
    """Every image of ``array_set`` once, in order; under DDP each process gets its shard (``DistributedSampler``,
    gathered back in dataset order by :func:`ssad.scoring.features.gather_in_order`)."""
    dataset = ArrayDataset(array_set.images, array_set.labels)
    sampler = DistributedSampler(dataset, shuffle=False) if dist.is_available() and dist.is_initialized() else None
    return make_loader(dataset, batch_size, sampler)
