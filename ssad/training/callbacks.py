"""Lightning callbacks: the paper's evaluation every N epochs, written to metrics.jsonl / results.json, with
the collapse warnings of ``CollapseMonitor`` (ssad.scoring.collapse); a stop by Ctrl-C or SIGTERM that writes a
checkpoint to resume from; and checkpoints written beside their final place and renamed (``AtomicCheckpointIO``)."""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import signal
from collections.abc import Mapping
from pathlib import Path
from types import FrameType
from typing import IO, Any

import lightning as L
import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from lightning.pytorch.utilities.exceptions import SIGTERMException
from lightning.pytorch.utilities.rank_zero import WarningCache
from lightning.pytorch.utilities.seed import isolate_rng
from torch import Tensor

from ssad.cli.errors import UserError
from ssad.scoring.collapse import CollapseMonitor, find_monitor
from ssad.scoring.evaluation import EvalSettings, evaluate_network, ood_skipped_reason
from ssad.scoring.plots import plot_curves, plot_scores
from ssad.scoring.results import BASELINES, baselines_path, flatten_metrics
from ssad.scoring.scores import Scorer, build_scorer
from ssad.training.loggers import publish_results
from ssad.utils.files import append_jsonl, atomic_path, read_jsonl, write_json_atomic, write_text_atomic

__all__ = ["AtomicCheckpointIO", "CheckpointOnInterrupt", "CollapseMonitor", "DiskFullError", "OODEvaluation"]

log = logging.getLogger(__name__)


class DiskFullError(UserError, OSError):
    """No space left where a checkpoint is written; the previous checkpoint is unchanged."""


def write_checkpoint(checkpoint: dict[str, Any], f: IO[bytes]) -> None:
    """Serialise ``checkpoint`` into the open file ``f`` (``torch.save``)."""
    torch.save(checkpoint, f)


def _size(n: float) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 1e9 else f"{n / 1e6:.1f} MB"


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint writer, writing each checkpoint to a temporary file beside its final place, synced,
    then renamed over it: a crash or a full disk leaves the previous checkpoint whole. (Lightning's own stages the
    file in the system's temporary folder and copies it across file systems, which is not atomic.) A full disk
    raises :class:`DiskFullError`, naming the folder and the space left."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | os.PathLike,
                        storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__}.save_checkpoint takes no storage_options")
        path = Path(path)
        try:
            with atomic_path(path) as tmp, open(tmp, "wb") as f:
                write_checkpoint(checkpoint, f)
                f.flush()
                os.fsync(f.fileno())
        except OSError as err:
            if err.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            free = shutil.disk_usage(path.parent).free
            kept = (f"the previous {path.name} is unchanged" if path.exists()
                    else f"{path.name} was not written; the checkpoints already there are unchanged")
            raise DiskFullError(
                f"disk full: no space left in {path.parent} to write the checkpoint {path.name} ({_size(free)} "
                f"free); {kept}. Free some space (or give a hydra.run.dir on another disk) and rerun with the same "
                "hydra.run.dir to resume") from None


class CheckpointOnInterrupt(L.Callback):
    """On Ctrl-C (SIGINT) or SIGTERM (e.g. a cluster pre-emption), write ``last.ckpt`` before exiting, so
    rerunning the same run directory resumes from the interrupted step.

    During training, Ctrl-C is handled as Lightning handles SIGTERM: it sets the trainer's stop flag, the current
    step (and an end-of-epoch evaluation under way) finishes, and the loop stops at the next step boundary, so the
    checkpoint holds a consistent state (a KeyboardInterrupt in the middle of the evaluation would lose it and
    leave the epoch's end half done). ``received`` records the signal; a second Ctrl-C stops at once."""

    def __init__(self, dirpath: str) -> None:
        self.path = Path(dirpath) / "last.ckpt"
        self.received: signal.Signals | None = None
        self._trainer: L.Trainer | None = None

    def _on_sigint(self, signum: int, frame: FrameType | None) -> None:
        trainer = self._trainer
        if self.received is not None or trainer is None:
            raise KeyboardInterrupt
        self.received = signal.SIGINT
        rank_zero_info("Ctrl-C: stopping after the current step, then writing last.ckpt (Ctrl-C again stops at once)")
        connector = trainer._signal_connector  # Lightning's SIGTERM flag, checked at every step boundary
        notify = getattr(connector, "_sigterm_notifier_fn", None)
        if trainer.world_size > 1 and notify is not None:  # as for SIGTERM: also tells the other processes
            notify(signum, frame)
        else:
            connector.received_sigterm = True

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.received, self._trainer = None, trainer
        try:  # Lightning restores the handlers it found at the end of fit
            signal.signal(signal.SIGINT, self._on_sigint)
        except ValueError:  # not the main thread: Ctrl-C stays a KeyboardInterrupt
            pass

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        if isinstance(exception, (KeyboardInterrupt, SIGTERMException)) and trainer.global_step > 0:
            trainer.save_checkpoint(self.path, weights_only=False)
            rank_zero_warn(f"interrupted at step {trainer.global_step}: saved {self.path}; rerun with the same "
                           "hydra.run.dir to resume")


class OODEvaluation(L.Callback):
    """Evaluate the teacher every ``every_n_epochs`` epochs and after the last one, on views of ``size`` pixels.

    Each evaluation appends a line to ``metrics.jsonl`` and logs the metrics; the last one also writes
    ``results.json`` (final metrics, the run's identity and its per-epoch loss curve) and the plots (with
    ``baselines``, a ``baselines.json`` or ``auto`` for the run folder's, its untrained network and raw pixels as
    reference lines).
    All processes extract their shard of the features; only rank 0 writes files. With a ``CollapseMonitor``
    among the callbacks, each record also carries the backbone drift and the collapse warnings that hold
    (``warnings``), ``results.json`` the per-epoch drift, and a stop makes that evaluation the final one.
    """

    def __init__(self, output_dir: str, size: int, every_n_epochs: int = 10, settings: Mapping[str, Any] | None = None,
                 meta: Mapping[str, Any] | None = None, plots: bool = True, baselines: str | None = None,
                 scorer: Scorer | None = None) -> None:
        self.output_dir = Path(output_dir)
        self.baselines = baselines_path(baselines, output_dir)
        self.baselines_optional = baselines == "auto"  # not written when there is no OOD set to score them on
        self.size = size
        self.every_n_epochs, self.plots = every_n_epochs, plots
        self.settings = EvalSettings(**dict(settings or {}))
        self.scorer = build_scorer(scorer, self.settings.temperature)  # the OOD score (scorer=; default Eq. 6)
        self.meta = dict(meta or {})
        self.loss_curve: list[float] = []
        # the current epoch's loss so far (summed over its micro-batches, mean over processes): kept in
        # checkpoints, so that an epoch interrupted and resumed has the mean of all its steps
        self.epoch_loss_sum: Tensor | float = 0.0
        self.epoch_loss_steps = 0
        self.last_results: dict[str, Any] | None = None
        self.notes = WarningCache()  # what an evaluation skipped, said once per run
        self.restored = False  # resumed from a checkpoint

    def references(self) -> dict[str, dict[str, Any]]:
        """The untrained network and raw pixels of ``baselines`` (a ``baselines.json``), by label, for the AUROC
        panel of the training curves; none when no file was given, a warning when it is missing or unreadable."""
        if self.baselines is None or (self.baselines_optional and not self.baselines.is_file()):
            return {}
        try:
            baselines = json.loads(self.baselines.read_text())
        except (OSError, ValueError) as err:
            rank_zero_warn(f"eval.baselines={self.baselines}: not drawn in the training curves ({err}); write it "
                           "with python -m ssad.scoring.baselines [the run's overrides] hydra.run.dir=DIR")
            return {}
        return {BASELINES[key]: baselines[key] for key in ("untrained", "raw_pixels") if key in baselines}

    def state_dict(self) -> dict[str, Any]:
        return {"loss_curve": list(self.loss_curve), "epoch_loss_sum": float(self.epoch_loss_sum),
                "epoch_loss_steps": self.epoch_loss_steps}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.loss_curve = list(state_dict.get("loss_curve", []))
        self.epoch_loss_sum = float(state_dict.get("epoch_loss_sum", 0.0))
        self.epoch_loss_steps = int(state_dict.get("epoch_loss_steps", 0))
        self.restored = True

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """A resumed run drops the records of epochs that its checkpoint had not completed (written before a
        stop that came after the evaluation but before the checkpoint): they are written again."""
        if self.restored and trainer.is_global_zero:
            drop_records_after(self.output_dir / "metrics.jsonl", trainer.current_epoch)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        loss = getattr(pl_module, "last_loss", None)
        if loss is not None:  # on the device: no host sync per step
            self.epoch_loss_sum = self.epoch_loss_sum + trainer.strategy.reduce(loss, reduce_op="mean")
            self.epoch_loss_steps += 1

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.epoch_loss_steps:
            self.loss_curve.append(float(self.epoch_loss_sum) / self.epoch_loss_steps)
        self.epoch_loss_sum, self.epoch_loss_steps = 0.0, 0
        epoch = trainer.current_epoch + 1
        last = epoch >= trainer.max_epochs
        if last or epoch % self.every_n_epochs == 0:
            with isolate_rng():  # its loaders draw seeds: without this, every_n_epochs would change the training
                self.run(trainer, pl_module, epoch, final=last)

    def run(self, trainer: L.Trainer, pl_module: L.LightningModule, epoch: int, final: bool) -> dict[str, Any]:
        datamodule = trainer.datamodule
        sets = datamodule.eval_sets()
        results, scores = evaluate_network(pl_module.teacher, pl_module.center, sets,
                                           self.size, self.settings,
                                           teacher_temp=pl_module.teacher_temperature(), scorer=self.scorer)
        results = {**self.meta, **results, "epoch": epoch, "step": trainer.global_step,
                   "loss": self.loss_curve[-1] if self.loss_curve else None}
        monitor = find_monitor(trainer)
        if monitor is not None:  # drift, and the collapse warnings that hold now (a stop makes this one final)
            results.update({k: v for k, v in monitor.drift(pl_module, epoch).items() if k != "epoch"})
            results["warnings"] = monitor.judge(results, epoch, trainer, pl_module)
            final = final or monitor.stopping is not None
        flat = flatten_metrics(results)
        pl_module.log_dict(flat, sync_dist=True)  # equal on every process (gathered features): the mean is the value
        if results["knn_accuracy"] is None:
            self.notes.info("kNN accuracy skipped: the in-distribution train/test sets have no labels")
        if not results["ood"]:
            self.notes.info(f"OOD metrics skipped: {ood_skipped_reason(sets, '+data.ood')}")
        if trainer.is_global_zero:
            append_jsonl(self.output_dir / "metrics.jsonl", results)
            if final:
                drift_curve = monitor.drift_curve if monitor is not None else None
                write_json_atomic(self.output_dir / "results.json",
                                  {**results, "loss_curve": self.loss_curve,
                                   **({"drift_curve": drift_curve} if drift_curve is not None else {})})
                title = f"{self.meta.get('dataset', '')} / {self.meta.get('variant', '')}"
                images = []
                if self.plots:
                    records = read_jsonl(self.output_dir / "metrics.jsonl")
                    images = (plot_scores(scores, results, self.output_dir / "plots", title,
                                          self.settings.temperature, self.scorer)
                              + plot_curves(records, self.loss_curve, self.output_dir / "plots", title,
                                            drift_curve=drift_curve,
                                            thresholds=vars(monitor.thresholds) if monitor else None,
                                            references=self.references()))
                publish_results(trainer.loggers, flat, images)
        self.last_results = results
        return results


def drop_records_after(path: Path, epoch: int) -> int:
    """Rewrite the JSON-lines file ``path`` without its records of epochs after ``epoch`` (and without a torn
    line); returns how many records were dropped."""
    records = read_jsonl(path)
    kept = [r for r in records if not (isinstance(r, dict) and isinstance(r.get("epoch"), int) and r["epoch"] > epoch)]
    if len(kept) < len(records):
        write_text_atomic(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in kept))
        log.info("%s: dropped the records of epoch(s) after %d, which the resumed checkpoint had not completed",
                 path, epoch)
    return len(records) - len(kept)
