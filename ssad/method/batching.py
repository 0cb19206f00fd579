"""The effective batch of a run and the learning rate it sets.

Rafiee et al. 2022 (Sec. 4) train with an effective batch of 256 and lr = 0.004 × batch / 256, DINO's linear
scaling rule (Caron et al. 2021; Goyal et al. 2017). The effective batch is the per-process batch × processes ×
gradient-accumulation steps: ``optim.effective_batch`` fixes it, and the accumulation makes up what the devices
do not hold (one GPU at batch 64: 4 micro-batches per optimiser step; 4 GPUs at 64: none).
"""

from __future__ import annotations

from typing import Any

from ssad.cli.errors import ConfigError

LR_REFERENCE_BATCH = 256  # lr = base_lr × effective batch / 256


def scaled_lr(base_lr: float, effective_batch: int) -> float:
    """The linear scaling rule: ``base_lr`` × ``effective_batch`` / 256."""
    return base_lr * effective_batch / LR_REFERENCE_BATCH


def accumulation_steps(effective_batch: int | None, batch_size: int, world_size: int, accumulate: int = 1) -> int:
    """Micro-batches per optimiser step that give ``effective_batch`` images over ``world_size`` processes at
    ``batch_size`` each; with ``effective_batch`` None, the trainer's own ``accumulate`` (default 1)."""
    if effective_batch is None:
        return accumulate
    if accumulate != 1:
        raise ConfigError(f"optim.effective_batch={effective_batch} and trainer.accumulate_grad_batches={accumulate} "
                         "are both set: drop trainer.accumulate_grad_batches (the accumulation follows from the "
                         "effective batch) or set optim.effective_batch=null")
    per_step = batch_size * world_size
    if effective_batch % world_size:
        raise ConfigError(f"optim.effective_batch={effective_batch} does not split over {world_size} processes: "
                         f"make it a multiple of {world_size} or change the number of devices")
    if effective_batch % per_step:
        raise ConfigError(f"optim.effective_batch={effective_batch} is not a multiple of data.batch_size × processes "
                         f"= {batch_size} × {world_size} = {per_step}: set data.batch_size to a divisor of "
                         f"{effective_batch // world_size} (fewer images per device, more accumulation steps) or "
                         "change optim.effective_batch")
    return effective_batch // per_step


def configure_accumulation(trainer: Any, batch_size: int, effective_batch: int | None, base_lr: float) -> dict:
    """Set ``trainer.accumulate_grad_batches`` for ``effective_batch`` on the trainer's processes; return the
    run's batch figures: ``effective_batch``, ``batch_size`` (per process and micro-batch), ``world_size``,
    ``accumulate_grad_batches`` and the peak ``lr`` they give."""
    world = int(trainer.world_size)
    steps = accumulation_steps(effective_batch, batch_size, world, int(trainer.accumulate_grad_batches))
    trainer.accumulate_grad_batches = steps
    total = batch_size * world * steps
    return {"effective_batch": total, "batch_size": batch_size, "world_size": world,
            "accumulate_grad_batches": steps, "lr": scaled_lr(base_lr, total)}
