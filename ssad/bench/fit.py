"""Training images/s through the real ``trainer.fit``: the figure users get, beside the step loop's."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from torch import Tensor

from ssad.bench.timing import synchronize
from ssad.training.run import build


class FitTimer(L.Callback):
    """Wall time of the training batches after ``warmup`` (device synchronised at both ends), and the part of it
    inside the model: from ``on_train_batch_start`` to ``on_train_batch_end`` (``training_step``, backward and
    the optimiser step; CUDA events on a GPU, so the GPU's own timeline). The rest of a step is outside the
    model: fetching the batch, moving it to the device, its augmentation, the loop and logging."""

    def __init__(self, warmup: int, stop_at: float | None = None) -> None:
        self.warmup, self.start, self.seconds, self.batches, self.stop_at = warmup, 0.0, 0.0, 0, stop_at
        self.marks: list[tuple[Any, Any]] = []

    def _stamp(self, device: torch.device) -> Any:
        if device.type != "cuda":
            return time.perf_counter()
        event = torch.cuda.Event(enable_timing=True)
        event.record()
        return event

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, idx: int) -> None:
        if idx == self.warmup:
            synchronize(pl_module.device)
            self.start = time.perf_counter()
        if idx >= self.warmup:
            self.marks.append((self._stamp(pl_module.device), None))

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        self.batches += 1
        if self.marks and self.marks[-1][1] is None:
            self.marks[-1] = (self.marks[-1][0], self._stamp(pl_module.device))
        if self.stop_at is not None and time.monotonic() >= self.stop_at and self.batches > self.warmup:
            trainer.should_stop = True  # the epoch ends after this batch: a time budget is spent

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        synchronize(pl_module.device)
        self.seconds = time.perf_counter() - self.start

    def model_seconds(self) -> float:
        """Seconds inside the model over the timed batches."""
        pairs = [(start, end) for start, end in self.marks if end is not None]
        if pairs and isinstance(pairs[0][0], float):
            return sum(end - start for start, end in pairs)
        return sum(start.elapsed_time(end) for start, end in pairs) / 1000


def fit_throughput(
    cfg: DictConfig, images: Tensor, steps: int, warmup: int, stop_at: float | None = None
) -> dict[str, Any]:
    """Training images/s of the real ``trainer.fit`` on ``images`` (saved as a ``.npy`` training set, also
    standing in for every auxiliary source), over ``steps`` batches after ``warmup``; one epoch, the
    configured logger, no checkpoints and no evaluation. ``stop_at`` (a ``time.monotonic()`` time): the fit ends
    after the first timed batch past it, and the figures are over the batches timed (``timed_steps``)."""
    with tempfile.TemporaryDirectory() as tmp:
        spec = {"format": "npy", "path": str(Path(tmp) / "synthetic.npy")}
        np.save(spec["path"], images.permute(0, 2, 3, 1).numpy())
        cfg = cfg.copy()
        own = {"data.train": spec, "data.test": None, "data.ood": {}, "sources": {name: spec for name in cfg.sources},
               "paths.data_dir": tmp, "paths.cache_dir": f"{tmp}/cache", "paths.output_dir": f"{tmp}/run",
               "callbacks": None, "trainer.enable_checkpointing": False, "trainer.max_epochs": 1,
               "trainer.limit_train_batches": warmup + steps,
               "trainer.enable_progress_bar": False, "trainer.enable_model_summary": False}
        for key, value in own.items():  # Trainer arguments the config may not hold yet: added (++KEY)
            OmegaConf.update(cfg, key, value, merge=False, force_add=True)
        datamodule, module, trainer = build(cfg)
        timer = FitTimer(warmup, stop_at)
        trainer.callbacks.append(timer)
        trainer.fit(module, datamodule=datamodule)
    timed = timer.batches - warmup
    return {"images_per_s": timed * cfg.data.batch_size / timer.seconds, "step_ms": 1000 * timer.seconds / timed,
            "outside_model_share": 1 - timer.model_seconds() / timer.seconds, "timed_steps": timed}
