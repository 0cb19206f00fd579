"""Training schedules as pure functions of the step or epoch (so a resumed run recomputes them exactly)."""

from __future__ import annotations

import math


def cosine(step: int, total_steps: int, start: float, end: float, warmup_steps: int = 0,
           warmup_start: float = 0.0) -> float:
    """Linear warm-up from ``warmup_start`` to ``start`` over ``warmup_steps``, then cosine to ``end``.

    Used for the learning rate (warm-up then cosine), the weight decay (0.04 → 0.4) and the teacher
    momentum m (0.996 → 1), as in DINO.
    """
    if step < warmup_steps:
        return warmup_start + (start - warmup_start) * step / warmup_steps
    decay_steps = max(total_steps - warmup_steps, 1)
    progress = min((step - warmup_steps) / decay_steps, 1.0)
    return end + 0.5 * (start - end) * (1.0 + math.cos(math.pi * progress))


def linear(epoch: int, total_epochs: int, start: float, end: float) -> float:
    """Linear interpolation per epoch: τ_t from 0.055 (CIFAR10) / 0.050 (CIFAR100) down to 0.01 (Sec. 4)."""
    if total_epochs <= 1:
        return end
    return start + (end - start) * min(epoch / (total_epochs - 1), 1.0)
