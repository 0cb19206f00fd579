"""What the commands print: lines from the libraries underneath that tell a user nothing about their run are
dropped — Lightning's advertisement for its cloud logger (printed by every ``Trainer``) and a deprecation warning
that Lightning's own code raises with recent PyTorch (``LeafSpec``), which no user can act on — and the progress
bars of ssad's own long loops, drawn on a terminal only."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterable
from typing import Any

from tqdm.auto import tqdm

LIGHTNING_LOGGER = "lightning.pytorch.utilities.rank_zero"


class _DropAdvertisements(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("💡 Tip:")


def quiet_libraries() -> None:
    """Install the filters (idempotent: a filter already installed is not added twice)."""
    logger = logging.getLogger(LIGHTNING_LOGGER)
    if not any(isinstance(f, _DropAdvertisements) for f in logger.filters):
        logger.addFilter(_DropAdvertisements())
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)", category=Warning)


def progress_bar(iterable: Iterable, desc: str, show: bool = True, **kwargs: Any) -> tqdm:
    """A bar over ``iterable`` that disappears when done, drawn only where output is a terminal (none in a log, where
    its redraws would pile up into long lines); ``show=False`` never draws it."""
    return tqdm(iterable, desc=desc, leave=False, disable=None if show else True, **kwargs)
