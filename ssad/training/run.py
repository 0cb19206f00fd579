"""A training run from a composed config: build the datamodule, model and trainer, check a checkpoint to resume from,
fit, and what a stop by a signal means for the exit status (``python -m ssad.train`` is its command)."""

from __future__ import annotations

import logging
import signal
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from lightning.pytorch.utilities import rank_zero_only
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf

from ssad.cli.errors import ConfigError
from ssad.cli.estimate import check_budget
from ssad.config.validation import validate
from ssad.deploy.safe_load import load_torch_file
from ssad.method.batching import configure_accumulation
from ssad.scoring.baselines import write_baselines
from ssad.training.callbacks import AtomicCheckpointIO, CheckpointOnInterrupt
from ssad.training.loggers import finish as finish_loggers
from ssad.training.rundir import RunLock, remove_if_unused, set_aside, snapshot
from ssad.utils.console import quiet_libraries
from ssad.utils.files import check_checkpoint

log = logging.getLogger(__name__)


def interrupting_signal(stop: SystemExit, trainer: L.Trainer | None = None) -> signal.Signals | None:
    """The signal that ended ``trainer.fit``: SIGTERM or SIGINT (Lightning raises ``SIGTERMException``, whose exit
    status would be 0, for both: ``CheckpointOnInterrupt`` turns Ctrl-C into the same stop and records it), or
    SIGINT where Lightning turned a KeyboardInterrupt into ``sys.exit(1)``; None otherwise."""
    if isinstance(stop, SIGTERMException):
        received = [c.received for c in (trainer.callbacks if trainer is not None else [])
                    if isinstance(c, CheckpointOnInterrupt) and c.received is not None]
        return received[0] if received else signal.SIGTERM
    if isinstance(stop.__context__, KeyboardInterrupt):
        return signal.SIGINT
    return None


def resolve_precision(precision: str) -> str:
    """``auto`` = bf16 mixed precision on a GPU that supports it, full fp32 elsewhere."""
    if precision != "auto":
        return precision
    return "bf16-mixed" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "32-true"


def build(cfg: DictConfig) -> tuple[L.LightningDataModule, L.LightningModule, L.Trainer]:
    """Instantiate datamodule, model and trainer (with callbacks and loggers) from a composed config."""
    validate(cfg)
    quiet_libraries()
    datamodule = instantiate(cfg.data)
    datamodule.check_sources()
    model = instantiate(cfg.model, _convert_="all")
    model.run_config = OmegaConf.to_container(cfg, resolve=True)
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values()]
    loggers = [instantiate(c) for c in (cfg.get("logger") or {}).values()]
    trainer_cfg = OmegaConf.to_container(cfg.trainer, resolve=True)
    trainer_cfg["precision"] = resolve_precision(str(trainer_cfg.get("precision", "auto")))
    # checkpoints written beside their final place and renamed (a crash or a full disk keeps the previous one)
    plugins = {} if trainer_cfg.get("plugins") else {"plugins": [AtomicCheckpointIO()]}
    trainer = instantiate(trainer_cfg, callbacks=callbacks, logger=loggers or False, **plugins)
    # effective batch and lr (optim.effective_batch → gradient accumulation on the trainer's processes): in the
    # checkpoint's config, the loggers' hyperparameters and results.json
    batching = configure_accumulation(trainer, cfg.data.batch_size, cfg.optim.get("effective_batch"),
                                      cfg.optim.base_lr)
    model.run_config["batching"] = batching
    for callback in callbacks:
        if isinstance(getattr(callback, "meta", None), dict):
            callback.meta.update(batching)
    log.info("effective batch %d = %d per process × %d process(es) × %d micro-batch(es) per optimiser step; "
             "lr %.4g (= %g × %d / 256)", batching["effective_batch"], batching["batch_size"], batching["world_size"],
             batching["accumulate_grad_batches"], batching["lr"], cfg.optim.base_lr, batching["effective_batch"])
    for logger in loggers:
        logger.log_hyperparams(model.run_config)
    return datamodule, model, trainer


def checkpoint_to_resume(cfg: DictConfig, output_dir: Path) -> str | None:
    """``ckpt_path`` if given, else ``<run dir>/checkpoints/last.ckpt`` when ``resume`` and it exists; checked
    before anything is read or written (:func:`verify_checkpoint`)."""
    trust_file = bool(cfg.get("trust_file", False))
    if cfg.get("ckpt_path"):
        path = Path(cfg.ckpt_path)
        if not path.is_file():
            raise FileNotFoundError(f"ckpt_path={path} does not exist; give an existing checkpoint or drop it")
        return verify_checkpoint(path, trust_file)
    last = output_dir / "checkpoints" / "last.ckpt"
    if not (cfg.get("resume", True) and last.is_file()):
        return None
    return verify_checkpoint(last, trust_file)


def verify_checkpoint(path: Path, trust_file: bool = False) -> str:
    """``path`` once it is known to be a complete archive (:func:`check_checkpoint`) whose pickle holds only
    tensors and plain values (:func:`load_torch_file`, memory-mapped: the tensors themselves are not read), so
    that the resume in ``trainer.fit`` (``weights_only=True``) cannot fail on it after the data are set up."""
    check_checkpoint(path)
    load_torch_file(path, "checkpoint", f"resume from one written by `python -m ssad.train`, or move this one aside "
                    f"(mv {path} {path}.bad) to start over", trust_file, mmap=True)
    return str(path.resolve())


def check_model_shapes(path: str, model: L.LightningModule, trust_file: bool = False) -> None:
    """Raise a :class:`ConfigError` when the checkpoint at ``path`` holds weights of another shape (or other
    weights) than ``model``, built from this run's config: before any baseline is scored or data drawn."""
    stored = load_torch_file(path, "checkpoint", "resume from one written by `python -m ssad.train`", trust_file,
                             mmap=True)
    weights = stored.get("state_dict") if isinstance(stored, dict) else None
    if not isinstance(weights, dict):
        raise ConfigError(f"checkpoint {path} holds no model weights (state_dict); resume from one written by "
                          "`python -m ssad.train`")
    own = model.state_dict()
    problems = [f"{k}: {tuple(weights[k].shape)} in the file, {tuple(v.shape)} here" for k, v in own.items()
                if k in weights and hasattr(weights[k], "shape") and tuple(weights[k].shape) != tuple(v.shape)]
    missing = [k for k in own if k not in weights]
    problems += [f"{len(missing)} weight(s) missing from the file (e.g. {missing[0]})"] if missing else []
    if not problems:
        return
    config = stored.get("ssad_config") or {}
    model_cfg = config.get("model") if isinstance(config, dict) else None
    given = ""
    if isinstance(model_cfg, dict):
        backbone = model_cfg.get("backbone") or {}
        given = (f" It was trained with model.backbone={backbone.get('name', backbone.get('_target_', '?'))}"
                 if isinstance(backbone, dict) else "")
    raise ConfigError(f"checkpoint {path} holds a model of another shape than this config builds "
                      f"({'; '.join(problems[:3])}{'; ...' if len(problems) > 3 else ''}).{given} Give the model "
                      "overrides it was trained with (its config: python -m ssad.evaluate ckpt=... shows it), or "
                      "drop ckpt_path to train from scratch")


def train(cfg: DictConfig) -> dict[str, Any]:
    """Fit the model of ``cfg``; returns a summary (variant, dataset, seed, run dir, final epoch)."""
    validate(cfg)  # every key and value first: a typo is reported before any estimate or data read
    output_dir = Path(cfg.paths.output_dir)
    ckpt = checkpoint_to_resume(cfg, output_dir)  # before any data is read: a bad checkpoint fails at once
    check_budget(cfg)  # before the model is built: a run that cannot fit or finish here stops with an estimate
    L.seed_everything(cfg.seed, workers=True)  # after the estimate, which draws random numbers of its own
    datamodule, model, trainer = build(cfg)
    if ckpt:
        check_model_shapes(ckpt, model, bool(cfg.get("trust_file", False)))
    elif rank_zero_only.rank == 0:  # a fresh start keeps an older run's records, apart from its own
        for name in ("metrics.jsonl", "results.json"):
            moved = set_aside(output_dir / name)
            if moved is not None:
                log.info("starting over: moved the earlier run's %s to %s", name, moved)
    if cfg.eval.get("baselines") == "auto" and rank_zero_only.rank == 0:  # after every check of the config
        if datamodule.ood_specs:  # as configured, or derived (the one-class protocol's `others`)
            write_baselines(cfg, output_dir)
        else:
            log.info("eval.baselines=auto: no OOD set (+data.ood.NAME=...) to score the baselines on; skipped")
    if ckpt:
        log.info("resuming from %s", ckpt)
    try:
        trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt, weights_only=not cfg.get("trust_file", False))
    except SystemExit as stop:
        signum = interrupting_signal(stop, trainer)
        if signum is None:
            raise
        # the conventional 128 + signal, so that `train && export` stops and a requeue script can tell a
        # pre-emption (143) from a finished run (0) and from a failure (1)
        last = output_dir / "checkpoints" / "last.ckpt"
        advice = "rerun with the same hydra.run.dir to resume" if last.is_file() else "no checkpoint to resume from"
        log.warning("stopped by %s at step %d; exit status %d (%s)", signum.name, trainer.global_step,
                    128 + signum, advice)
        raise SystemExit(128 + signum) from None
    finally:
        finish_loggers(trainer.loggers)
    return {"variant": cfg.negatives.name, "dataset": cfg.data.name, "seed": cfg.seed,
            "run_dir": str(output_dir), "epochs": trainer.current_epoch}


def train_in_run_dir(cfg: DictConfig, run_dir: str | Path) -> dict[str, Any]:
    """:func:`train` in the run folder ``run_dir`` (Hydra's), holding its lock (:class:`RunLock`) meanwhile. A run
    that fails or is stopped before anything worth keeping was written removes only what it created there; Ctrl-C
    before training started exits with status 130."""
    before = snapshot(run_dir)  # first: what the folder held before this run (a failed start removes only its own)
    lock = RunLock(run_dir)
    if rank_zero_only.rank == 0:  # DDP's other processes run in the same folder
        lock.acquire()
    log.info("run directory: %s", run_dir)
    try:
        return train(cfg)
    except KeyboardInterrupt:  # Ctrl-C before training started (while the data or baselines were prepared)
        lock.release()
        removed = remove_if_unused(before)
        log.warning("stopped by SIGINT before training started; exit status 130%s",
                    f" (removed the run directory {run_dir}: nothing was trained)" if removed else "")
        raise SystemExit(128 + signal.SIGINT) from None
    except BaseException:
        lock.release()
        if remove_if_unused(before):  # failed before anything worth keeping was written
            log.info("removed the run directory %s: nothing was trained", run_dir)
        raise
    finally:
        lock.release()
