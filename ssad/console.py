"""What the commands print: lines from the libraries underneath that tell a user nothing about their run are
dropped — Lightning's advertisement for its cloud logger (printed by every ``Trainer``) and a deprecation warning
that Lightning's own code raises with recent PyTorch (``LeafSpec``), which no user can act on."""

from __future__ import annotations

import logging
import warnings

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
