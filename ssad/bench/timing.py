"""Timers: per-phase time on the device's own timeline, device synchronisation and peak memory."""

from __future__ import annotations

import resource
import time
from typing import Any

import torch


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (a no-op on a CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class PhaseTimer:
    """Time per phase summed over steps: ``lap(name)`` ends the phase ``name`` begun at the previous lap.

    CUDA events on a GPU (the GPU's own timeline, idle gaps included, no host sync inside a step),
    ``perf_counter`` on a CPU.
    """

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.marks: list[tuple[str, Any]] = []

    def lap(self, name: str) -> None:
        """End the phase ``name`` now (and begin the next)."""
        if self.cuda:
            stamp = torch.cuda.Event(enable_timing=True)
            stamp.record()
        else:
            stamp = time.perf_counter()
        self.marks.append((name, stamp))

    def totals(self) -> dict[str, float]:
        """Seconds per phase (synchronises the GPU)."""
        if self.cuda:
            torch.cuda.synchronize()
        out: dict[str, float] = {}
        for (_, start), (name, end) in zip(self.marks, self.marks[1:]):
            out[name] = out.get(name, 0.0) + (start.elapsed_time(end) / 1000 if self.cuda else end - start)
        return out


def peak_memory_mib(device: torch.device) -> float:
    """Peak allocated device memory since the last reset (CUDA), or the process's peak RSS (CPU)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
