"""A run that fails before it trained anything leaves no run folder behind.

Hydra creates the run folder (``.hydra/`` and the job's ``.log``) before ``ssad.train`` reads its config, so a
typo, a missing dataset or an unreadable file used to leave an empty-looking folder per attempt. On failure
:func:`remove_if_unused` deletes the folder when it holds only what every start writes (``.hydra/``, logs, the
loggers' folders), and then its parents that Hydra created empty below the working directory. A folder with
anything else in it (a checkpoint, ``metrics.jsonl``, a file of the user's) is left exactly as it is.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

START_UP_DIRS = frozenset({".hydra", "csv", "wandb"})  # Hydra's config copy, the csv and W&B loggers' folders
START_UP_SUFFIXES = (".log",)  # Hydra's job log


def is_unused(run_dir: str | os.PathLike) -> bool:
    """True when ``run_dir`` exists and holds nothing but start-up files (:data:`START_UP_DIRS`, logs)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return False
    for entry in run_dir.iterdir():
        start_up = entry.name in START_UP_DIRS if entry.is_dir() and not entry.is_symlink() \
            else entry.suffix in START_UP_SUFFIXES and entry.is_file()
        if not start_up:
            return False
    return True


def remove_if_unused(run_dir: str | os.PathLike, cwd: str | os.PathLike | None = None) -> bool:
    """Delete ``run_dir`` if :func:`is_unused`, and its parents below ``cwd`` (default: the working directory)
    that are then empty; never ``cwd`` or a folder that holds it. Returns whether ``run_dir`` was deleted."""
    run_dir = Path(run_dir).resolve()
    cwd = Path(cwd or os.getcwd()).resolve()
    if run_dir == cwd or run_dir in cwd.parents or not is_unused(run_dir):
        return False
    shutil.rmtree(run_dir)
    parent = run_dir.parent
    while parent != cwd and cwd in parent.parents:
        try:
            parent.rmdir()  # only while empty
        except OSError:
            break
        parent = parent.parent
    return True
