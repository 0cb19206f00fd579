"""The collapse monitor: weight drift per epoch, and warnings with their cure at every evaluation.

``CollapseMonitor`` keeps the backbone weights of the start of the run (in its checkpointed state, so a
resumed run measures from the true start) and measures, after every training epoch, how far the teacher and
student backbones have moved (``ssad.scoring.diagnostics.relative_drift``; logged as ``train/teacher_drift`` and
``train/student_drift``). ``OODEvaluation`` asks it at every evaluation to add the drift to the record and to
judge the record (``ssad.scoring.diagnostics.collapse_warnings``); a warning is printed once, when it first holds.
With ``stop=true`` a warning that holds for ``patience`` evaluations in a row ends the run: that evaluation
becomes the final one (results.json, plots), ``last.ckpt`` is written at the end of the epoch, and fitting
raises ``CollapseStopError`` (a non-zero exit from ``python -m ssad.train``).
"""

from __future__ import annotations

import logging
from typing import Any

import lightning as L
from torch import Tensor

from ssad.config.fields import check_values
from ssad.config.schema import CollapseSchema
from ssad.scoring.diagnostics import CollapseThresholds, collapse_warnings, relative_drift
from ssad.scoring.results import CODES

log = logging.getLogger(__name__)


class CollapseStopError(RuntimeError):
    """Raised at the end of a run stopped by ``callbacks.collapse.stop``."""


class CollapseMonitor(L.Callback):
    """Drift of the teacher and student backbones from their start, and collapse warnings (issue 15).

    ``warmup_epochs``: the drift is judged from the end of the learning-rate warm-up on (and at the last
    epoch of a shorter run). Thresholds: see ``ssad.scoring.diagnostics.CollapseThresholds``. Every argument comes from
    ``callbacks.collapse`` (conf/callbacks/default.yaml, where the defaults and their measurement live).
    """

    def __init__(self, *, warmup_epochs: int, min_teacher_drift: float, max_entropy_share: float,
                 min_entropy_of_mean_share: float, min_rank_share: float, max_cosine: float, stop: bool,
                 patience: int) -> None:
        check_values(CollapseSchema, {"warmup_epochs": warmup_epochs, "min_teacher_drift": min_teacher_drift,
                                      "max_entropy_share": max_entropy_share,
                                      "min_entropy_of_mean_share": min_entropy_of_mean_share,
                                      "min_rank_share": min_rank_share, "max_cosine": max_cosine, "stop": stop,
                                      "patience": patience}, "callbacks.collapse.")
        self.thresholds = CollapseThresholds(min_teacher_drift, max_entropy_share, min_entropy_of_mean_share,
                                             min_rank_share, max_cosine)
        self.warmup_epochs, self.stop, self.patience = warmup_epochs, bool(stop), patience
        self.reference: list[Tensor] | None = None  # student backbone weights at the start (= teacher's)
        self.drift_curve: list[dict[str, float]] = []  # one {"epoch", "teacher_drift", "student_drift"} per epoch
        self.streaks: dict[str, int] = {}  # code -> evaluations in a row it has held
        self.since: dict[str, int] = {}  # code -> first epoch of that streak
        self.printed: set[str] = set()
        self.current: list[dict[str, Any]] = []  # the warnings of the last evaluation
        self.stopping: str | None = None
        self.stopped_at: int | None = None

    # ----------------------------------------------------------------- state (checkpointed)
    def state_dict(self) -> dict[str, Any]:
        return {"reference": self.reference, "drift_curve": list(self.drift_curve), "streaks": dict(self.streaks),
                "since": dict(self.since), "printed": sorted(self.printed)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if state_dict.get("reference") is not None:
            self.reference = list(state_dict["reference"])
        self.drift_curve = list(state_dict.get("drift_curve", []))
        self.streaks = dict(state_dict.get("streaks", {}))
        self.since = dict(state_dict.get("since", {}))
        self.printed = set(state_dict.get("printed", []))

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        """Keep the initial weights. Runs before a checkpoint is restored: a resumed run replaces them with
        the reference stored in its checkpoint (``load_state_dict``); one resumed from a checkpoint without it
        measures from the freshly built network (the same weights when built with the run's seed)."""
        if stage == "fit" and self.reference is None:
            self.reference = [p.detach().to("cpu", copy=True) for p in pl_module.student.backbone.parameters()]

    # ----------------------------------------------------------------- drift
    def drift(self, pl_module: L.LightningModule, epoch: int) -> dict[str, float]:
        """Teacher and student drift after ``epoch`` (measured once per epoch)."""
        if self.drift_curve and self.drift_curve[-1]["epoch"] == epoch:
            return self.drift_curve[-1]
        if self.reference is None:
            raise RuntimeError("CollapseMonitor.drift before setup(): the initial weights are unknown")
        record = {"epoch": epoch,
                  "teacher_drift": relative_drift(pl_module.teacher.backbone.parameters(), self.reference),
                  "student_drift": relative_drift(pl_module.student.backbone.parameters(), self.reference)}
        self.drift_curve.append(record)
        return record

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        record = self.drift(pl_module, trainer.current_epoch + 1)
        # the same value on every process (DDP keeps the weights equal): the mean over processes is the value
        pl_module.log_dict({f"train/{k}": v for k, v in record.items() if k != "epoch"}, on_epoch=True, sync_dist=True)

    # ----------------------------------------------------------------- warnings
    def judge(self, record: dict[str, Any], epoch: int, trainer: L.Trainer,
              pl_module: L.LightningModule) -> list[dict[str, Any]]:
        """The warnings that hold for this evaluation's ``record`` (a list of {code, message, since_epoch,
        evaluations}); prints each code the first time it holds; with ``stop``, asks the trainer to stop when
        one has held for ``patience`` evaluations."""
        context = {"base_lr": pl_module.optim["base_lr"], "effective_lr": pl_module.effective_lr(),
                   "batch": pl_module.effective_batch()}
        check_drift = epoch >= min(self.warmup_epochs, trainer.max_epochs)
        found = collapse_warnings(record, self.thresholds, check_drift, context)
        for code in CODES:
            if code in found:
                self.streaks[code] = self.streaks.get(code, 0) + 1
                self.since.setdefault(code, epoch)
            else:
                self.streaks.pop(code, None)
                self.since.pop(code, None)
        for code, message in found.items():
            if code not in self.printed:
                self.printed.add(code)
                if trainer.is_global_zero:
                    log.warning("%s (epoch %d): %s", code, epoch, message)
        self.current = [{"code": c, "message": m, "since_epoch": self.since[c], "evaluations": self.streaks[c]}
                        for c, m in found.items()]
        held = [c for c in found if self.streaks[c] >= self.patience]
        if self.stop and held and self.stopping is None:
            self.stopping, self.stopped_at = held[0], epoch
            trainer.should_stop = True
        return self.current

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.stopping is not None:
            code = self.stopping
            raise CollapseStopError(
                f"training stopped after epoch {self.stopped_at}: {code} held at {self.streaks.get(code)} "
                f"evaluation(s) in a row (callbacks.collapse.stop=true, patience={self.patience}): "
                f"{next(w['message'] for w in self.current if w['code'] == code)} checkpoints/last.ckpt, "
                "results.json and the plots hold the run so far; set callbacks.collapse.stop=false to train on.")


def find_monitor(trainer: L.Trainer) -> CollapseMonitor | None:
    """The trainer's ``CollapseMonitor``, if it has one."""
    return next((c for c in trainer.callbacks if isinstance(c, CollapseMonitor)), None)
