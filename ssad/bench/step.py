"""The timed training step loop: what one Lightning training step runs, without Lightning's loop around it.

uint8 batch → device, the datamodule's ``on_after_batch_transfer`` (negative transforms and multi-crop on the
device), ``module.training_step`` under the trainer's precision, backward, ``on_before_optimizer_step``,
``configure_gradient_clipping`` (per parameter) and ``module.optimizer_step`` (schedules, AdamW, centre, EMA).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from hydra.utils import instantiate
from lightning.pytorch.strategies import SingleDeviceStrategy
from omegaconf import DictConfig
from torch import Tensor

from ssad.bench.presets import TRAIN_IMAGES
from ssad.bench.timing import PhaseTimer, peak_memory_mib, synchronize
from ssad.data.datamodule import SSADDataModule
from ssad.method.module import SSADModule

Batch = dict[str, list[Tensor]]
PHASES = ("augmentation", "forward+backward", "optimiser", "EMA")


@dataclass
class StepLoopTrainer:
    """What :class:`~ssad.method.module.SSADModule` and :class:`~ssad.data.datamodule.SSADDataModule` read from their
    trainer, for a loop of one process without accumulation, standing at ``current_epoch`` of ``max_epochs``
    (epoch 1: past the frozen last layer). A ``lightning.Trainer`` has these only inside ``fit`` (its epoch, step
    and ``estimated_stepping_batches`` come from the fit loop); the strategy is Lightning's single-device one."""

    max_epochs: int
    steps_per_epoch: int
    current_epoch: int = 1
    world_size: int = 1
    accumulate_grad_batches: int = 1
    training: bool = True
    global_step: int = 0
    strategy: SingleDeviceStrategy = field(default_factory=SingleDeviceStrategy)

    @property
    def estimated_stepping_batches(self) -> int:
        """Optimiser steps of the whole run (the schedules' length)."""
        return self.max_epochs * self.steps_per_epoch


def build_module(cfg: DictConfig, device: torch.device) -> tuple[SSADModule, torch.optim.Optimizer]:
    """The SSADModule of ``cfg`` on ``device``, attached to a :class:`StepLoopTrainer` at epoch 1 of the
    configured run on CIFAR10, its ``configure_model`` hook run, and its optimiser."""
    module = instantiate(cfg.model, _convert_="all").to(device)
    steps_per_epoch = TRAIN_IMAGES // cfg.data.batch_size
    module.trainer = StepLoopTrainer(cfg.trainer.max_epochs, steps_per_epoch, global_step=steps_per_epoch)
    module.log = module.log_dict = _no_log
    module.configure_model()
    return module, module.configure_optimizers()


def _no_log(*args: Any, **kwargs: Any) -> None:
    """``self.log`` without a trainer's result collection: nothing to record in a benchmark."""


def ssad_batches(images: Tensor, datamodule: SSADDataModule, device: torch.device) -> Callable[[], Batch]:
    """Batches as the datamodule makes them in training: random uint8 positives and negatives (a part drawn ∝ its
    weight) in the shape of its loaders' batches, pinned and moved to the device, then its
    ``on_after_batch_transfer`` (the datamodule is attached to a :class:`StepLoopTrainer` in training)."""
    parts = datamodule.parts
    weights = torch.tensor([p.weight for p in parts] or [1.0])
    batch_size, pin = datamodule.batch_size, device.type == "cuda"

    def to_device(x: Tensor) -> Tensor:
        return (x.pin_memory() if pin else x).to(device, non_blocking=True)

    def draw() -> Tensor:
        return to_device(images[torch.randint(len(images), (batch_size,))])

    def next_batch() -> Batch:
        batch = {"pos": {"image": draw()}}
        if parts:
            batch["neg"] = {"image": draw(),
                            "part": to_device(torch.multinomial(weights, batch_size, replacement=True))}
        return datamodule.on_after_batch_transfer(batch, 0)

    return next_batch


def time_training(
    module: SSADModule,
    optimizer: torch.optim.Optimizer,
    next_batch: Callable[[], Batch],
    bf16: bool,
    steps: int,
    warmup: int,
) -> dict[str, Any]:
    """Images/s, ms per step and per phase (:data:`PHASES`), and peak memory over ``steps`` steps after
    ``warmup`` more.

    A step is what Lightning runs: the batch (→ augmentation), ``training_step`` under autocast and backward
    (→ forward+backward), last-layer freezing, clipping and ``optimizer_step`` up to the end of AdamW's step
    (→ optimiser, ended by the optimiser's step hook), the rest of ``optimizer_step``: the centre's and the EMA
    teacher's update (→ EMA).
    """
    device = module.device
    timer = PhaseTimer(device)
    hook = optimizer.register_step_post_hook(lambda *_: timer.lap("optimiser"))
    try:
        for step in range(warmup + steps):
            if step == warmup:
                synchronize(device)
                if device.type == "cuda":
                    torch.cuda.reset_peak_memory_stats(device)
                timer.marks.clear()
                timer.lap("start")
                start = time.perf_counter()
            batch = next_batch()
            timer.lap("augmentation")
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                loss = module.training_step(batch, step)
            loss.backward()
            timer.lap("forward+backward")
            module.on_before_optimizer_step(optimizer)
            module.configure_gradient_clipping(optimizer)
            module.optimizer_step(module.current_epoch, step, optimizer)
            timer.lap("EMA")
            module.trainer.global_step += 1
    finally:
        hook.remove()
    synchronize(device)
    wall = time.perf_counter() - start
    images = steps * len(batch["pos_global"][0])
    return {"images_per_s": images / wall, "step_ms": 1000 * wall / steps,
            "phase_ms": {k: 1000 * v / steps for k, v in timer.totals().items()},
            "peak_memory_mib": peak_memory_mib(device), "loss": loss.item()}
