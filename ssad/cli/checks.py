"""Checks a command makes before its work starts, so that a bad argument fails at once with one ``error:`` line.

- :func:`config_dir_problem` / :func:`check_config_dirs`: a YAML syntax error in a file of ``--config-dir``
  (``-cd``), which Hydra would report as a parser traceback, named by file, line and column.
- :func:`disk_full_reported`: a write that fails for want of space (``ENOSPC``, or torch's "unexpected pos"
  when ``torch.save`` runs out of it) is one line saying so and that the previous file is unchanged.
- :func:`readable_checkpoint`: the checkpoint ``ssad.evaluate`` / ``ssad.export`` read exists and is a
  complete ``torch.save`` archive; if not, the message says what to do in that command (another checkpoint of
  the run, by its full path), not how to resume training.
"""

from __future__ import annotations

import errno
import functools
import os
import sys
import zipfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import yaml

from ssad.cli.errors import InputError, MissingFileError, UserError, exit_with, verbose

F = TypeVar("F", bound=Callable[..., Any])
CONFIG_DIR_FLAGS = ("--config-dir", "-cd")
# what torch.save's archive writer says when a write comes up short (a full disk)
TORCH_SHORT_WRITE = ("unexpected pos", "file write failed", "PytorchStreamWriter failed writing")
MAX_CONFIG_FILES = 2000  # a config folder is small; a mistaken one (a home folder) is not searched further


def config_dirs(argv: Sequence[str]) -> list[str]:
    """The folders given with ``--config-dir X``, ``--config-dir=X``, ``-cd X`` or ``-cd=X`` on ``argv``."""
    found = []
    for i, arg in enumerate(argv):
        for flag in CONFIG_DIR_FLAGS:
            if arg == flag and i + 1 < len(argv):
                found.append(argv[i + 1])
            elif arg.startswith(f"{flag}="):
                found.append(arg[len(flag) + 1:])
    return found


def yaml_problem(path: Path) -> str | None:
    """Why ``path`` is not valid YAML (with its line and column), or None when it parses."""
    try:
        yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as err:
        return f"{path} is not UTF-8 text (byte {err.start}); save it as UTF-8"
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        what = " ".join(part for part in (err.problem, err.context) if part) or "not valid YAML"
        opened = err.context_mark
        if opened is not None and mark is not None and opened.line != mark.line:
            what += f" (opened at line {opened.line + 1}, column {opened.column + 1})"
        return f"YAML syntax error in {path}{where}: {what}; fix that line"
    except yaml.YAMLError as err:
        return f"YAML error in {path}: {err}"
    return None


def config_dir_problem(argv: Sequence[str]) -> str | None:
    """The first YAML problem among the ``.yaml`` files of the ``--config-dir`` folders on ``argv`` (sorted,
    recursive), or None. A missing folder is left to Hydra, which names it."""
    for folder in map(Path, config_dirs(argv)):
        if not folder.is_dir():
            continue
        files = sorted(p for p in folder.rglob("*.yaml") if p.is_file())[:MAX_CONFIG_FILES]
        for path in files:
            problem = yaml_problem(path)
            if problem:
                return f"{problem} (a config of --config-dir {folder})"
    return None


def check_config_dirs(fn: F) -> F:
    """Wrap a ``@hydra.main`` command: before Hydra composes, a YAML syntax error in a ``--config-dir`` file is
    one ``error:`` line and exit status 2 (unless :func:`ssad.cli.errors.verbose`, which lets Hydra report it);
    then the schema is stored and Hydra's refusals worded (:func:`ssad.config.keys.prepare_hydra`)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from ssad.config.keys import prepare_hydra  # the command's start-up, before Hydra composes

        prepare_hydra()
        problem = None if verbose() else config_dir_problem(sys.argv[1:])
        if problem:
            exit_with(InputError(problem))
        return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def run_dir_arg(argv: Sequence[str]) -> str | None:
    """The folder of ``hydra.run.dir=X`` (or ``+``/``++hydra.run.dir=X``) on ``argv``, unquoted; None when absent
    or when it interpolates (``${...}``: only Hydra can resolve it)."""
    found = None
    for arg in argv:
        key, sep, value = arg.lstrip("+").partition("=")
        if sep and key == "hydra.run.dir":
            found = value.strip("'\"")
    return None if found is None or "${" in found else found


def check_run_dir_free(fn: F) -> F:
    """Wrap ``ssad.train``'s ``@hydra.main``: when ``hydra.run.dir`` names a folder in which another run is
    training (its lock, :class:`ssad.training.rundir.RunLock`), refuse before Hydra starts, since Hydra would
    first rewrite that run's ``.hydra/`` files."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from ssad.training.rundir import RunLock

        run_dir = run_dir_arg(sys.argv[1:])
        # the processes that DDP starts beside global rank 0 rerun this command line while rank 0 holds the lock
        worker = any(os.environ.get(name, "0") != "0" for name in ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID"))
        busy = RunLock(run_dir).busy() if run_dir and not worker else None
        if busy is not None:
            exit_with(busy)
        return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def readable_checkpoint(path: str | os.PathLike, command: str) -> Path:
    """``path`` when it is a complete checkpoint file; else a :class:`ssad.cli.errors.UserError` that says what to
    do in ``command`` (``ssad.evaluate``, ``ssad.export``): give another checkpoint of the run, by full path."""
    path = Path(path)
    full = path.absolute()
    if path.is_dir():
        inside = sorted(str(p.absolute()) for p in path.glob("*.ckpt"))
        hint = f"e.g. ckpt={inside[-1]}" if inside else "e.g. ckpt=<run dir>/checkpoints/last.ckpt"
        raise InputError(f"ckpt={path} is a folder; {command} reads one checkpoint file, {hint}")
    if not path.is_file():
        raise MissingFileError(f"checkpoint {full} does not exist; a run keeps its checkpoints in <run dir>/"
                               "checkpoints/ (last.ckpt and one per saved epoch): give one with ckpt=...")
    try:
        with zipfile.ZipFile(path):
            return path
    except (zipfile.BadZipFile, OSError) as err:
        reason = str(err)
    others = sorted((p.absolute() for p in full.parent.glob("*.ckpt") if p.name != path.name),
                    key=lambda p: p.stat().st_mtime)
    instead = (f"run {command} on another checkpoint of the run: ckpt={others[-1]}"
               + (f" (others: {', '.join(map(str, others[:-1]))})" if len(others) > 1 else "")
               if others else f"this folder has no other checkpoint; give {command} a complete one with ckpt=...")
    raise InputError(f"checkpoint {full} cannot be read ({reason}): it is incomplete, perhaps cut short while "
                     f"being written. Nothing was changed; {instead}")


@contextmanager
def disk_full_reported(path: str | os.PathLike, key: str) -> Iterator[None]:
    """Run a write of ``path`` (given as ``key=``, e.g. ``out``) through an atomic writer; a full disk becomes a
    :class:`ssad.cli.errors.UserError` saying so and that the file there before (if any) is unchanged."""
    existed = Path(path).exists()
    try:
        yield
    except (OSError, RuntimeError) as err:
        full = (err.errno == errno.ENOSPC if isinstance(err, OSError)
                else any(marker in str(err) for marker in TORCH_SHORT_WRITE))
        if not full:
            raise
        kept = "the previous file is unchanged" if existed else "nothing was written there"
        raise UserError(f"disk full while writing {Path(path).absolute()}; {kept}. Free some space, or write "
                        f"elsewhere with {key}=...") from None
