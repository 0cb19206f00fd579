"""Training images/s through the real ``trainer.fit``: the figure users get, beside the step loop's."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
from omegaconf import DictConfig, OmegaConf
from torch import Tensor

from ssad.bench.timing import synchronize
from ssad.train import build


class FitTimer(L.Callback):
    """Wall time of the training batches after ``warmup`` (device synchronised at both ends)."""

    def __init__(self, warmup: int) -> None:
        self.warmup, self.start, self.seconds, self.batches = warmup, 0.0, 0.0, 0

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, idx: int) -> None:
        if idx == self.warmup:
            synchronize(pl_module.device)
            self.start = time.perf_counter()

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        self.batches += 1

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        synchronize(pl_module.device)
        self.seconds = time.perf_counter() - self.start


def fit_throughput(cfg: DictConfig, images: Tensor, steps: int, warmup: int) -> dict[str, Any]:
    """Training images/s of the real ``trainer.fit`` on ``images`` (saved as a ``.npy`` training set, also
    standing in for every auxiliary source), over ``steps`` batches after ``warmup``; one epoch, the
    configured logger, no checkpoints and no evaluation."""
    with tempfile.TemporaryDirectory() as tmp:
        spec = {"format": "npy", "path": str(Path(tmp) / "synthetic.npy")}
        np.save(spec["path"], images.permute(0, 2, 3, 1).numpy())
        cfg = cfg.copy()
        own = {"data.train": spec, "data.test": None, "data.ood": {}, "sources": {name: spec for name in cfg.sources},
               "paths": {"data_dir": tmp, "cache_dir": f"{tmp}/cache", "output_dir": f"{tmp}/run"},
               "callbacks": None, "trainer.max_epochs": 1, "trainer.limit_train_batches": warmup + steps,
               "trainer.enable_progress_bar": False, "trainer.enable_model_summary": False}
        for key, value in own.items():  # Trainer arguments the config may not hold yet: added (++KEY)
            OmegaConf.update(cfg, key, value, merge=False, force_add=True)
        datamodule, module, trainer = build(cfg)
        timer = FitTimer(warmup)
        trainer.callbacks.append(timer)
        trainer.fit(module, datamodule=datamodule)
    timed = timer.batches - warmup
    return {"images_per_s": timed * cfg.data.batch_size / timer.seconds, "step_ms": 1000 * timer.seconds / timed}
