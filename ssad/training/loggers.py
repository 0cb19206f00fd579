"""Experiment trackers. Weights & Biases goes online only when the user is logged in."""

from __future__ import annotations

import netrc
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import Logger, WandbLogger

WANDB_MODES = ("auto", "online", "offline", "disabled")


def has_wandb_credentials() -> bool:
    """An API key in the environment or in ~/.netrc (what `wandb login` writes)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError):
        return False


def wandb_logger(mode: str = "auto", **kwargs: Any) -> WandbLogger:
    """A ``WandbLogger``: ``auto`` = online when logged in, else offline (``wandb sync <dir>`` later)."""
    if mode not in WANDB_MODES:
        raise ValueError(f"logger.wandb.mode={mode!r}: choose one of {WANDB_MODES}")
    if kwargs.get("save_dir"):
        Path(kwargs["save_dir"]).mkdir(parents=True, exist_ok=True)
    if mode == "disabled":
        kwargs["mode"] = "disabled"
    offline = mode == "offline" or (mode == "auto" and not has_wandb_credentials())
    return WandbLogger(offline=offline, **kwargs)


def publish_results(loggers: Iterable[Logger], flat_results: Mapping[str, float], images: Iterable[Path]) -> None:
    """Final results into each W&B run's summary, plots as images."""
    for logger in loggers:
        if isinstance(logger, WandbLogger):
            logger.experiment.summary.update(dict(flat_results))
            images = [str(p) for p in images]
            if images:
                logger.log_image(key="plots", images=images, caption=[Path(p).stem for p in images])


def finish(loggers: Iterable[Logger]) -> None:
    """Close W&B runs so their config and summary are written (and an offline run is ready to sync)."""
    for logger in loggers:
        if isinstance(logger, WandbLogger) and logger._experiment is not None:
            logger.experiment.finish()
