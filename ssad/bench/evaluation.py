"""Evaluation speed: feature extraction images/s and the Eq. 6 scoring time."""

from __future__ import annotations

import time

import torch
from torch import Tensor

from ssad.bench.timing import synchronize
from ssad.scoring.features import extract
from ssad.scoring.scores import Eq6Score

EVAL_BATCHES = 8  # batches timed by eval_throughput


def eval_throughput(backbone: torch.nn.Module, images: Tensor, size: int, batch_size: int) -> float:
    """Images/s of :func:`ssad.scoring.features.extract` (bf16 on CUDA) over ``EVAL_BATCHES`` batches, after one."""
    device = next(backbone.parameters()).device
    chunks = images[: batch_size * EVAL_BATCHES].split(batch_size)
    batches = [{"image": c.pin_memory() if device.type == "cuda" else c} for c in chunks]
    extract(backbone, batches[:1], size, progress=False)
    synchronize(device)
    start = time.perf_counter()
    extract(backbone, batches, size, progress=False)
    return sum(len(c) for c in chunks) / (time.perf_counter() - start)


def scoring_seconds(queries: int, bank: int, dim: int, device: torch.device) -> float:
    """Seconds of Eq. 6 (:class:`ssad.scoring.scores.Eq6Score`) for ``queries`` × ``bank`` random features."""
    q = torch.randn(queries, dim, device=device)
    scorer = Eq6Score().fit(torch.randn(bank, dim, device=device))
    scorer.score(q[:64])
    synchronize(device)
    start = time.perf_counter()
    scorer.score(q)
    synchronize(device)
    return time.perf_counter() - start
