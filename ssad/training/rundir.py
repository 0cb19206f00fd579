"""The run folder: a failed start removes only what it created, one run at a time holds it, and an old run's
records are set aside when a new run starts over in it.

Hydra creates the run folder (``.hydra/`` and the job's ``.log``) before ``ssad.train`` reads its config, so a
typo, a missing dataset or an unreadable file used to leave an empty-looking folder per attempt.
:func:`snapshot` records, first thing in ``main``, what the folder held besides what Hydra has just written; on
failure :func:`remove_if_unused` deletes the folder only when it held nothing else before (Hydra created it, or it
was empty) and holds only what every start writes (``.hydra/``, logs, the loggers' folders), and then its parents
that are empty below the working directory. A folder that held anything before (a checkpoint, ``metrics.jsonl``, a
user's own files) keeps all of it; only the loggers' files this run created in it are removed.

:class:`RunLock` (``.lock``: process id and host) refuses a second run on a folder in use; a lock whose process has
died is taken over.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

from ssad.cli.errors import UserError

log = logging.getLogger(__name__)

START_UP_DIRS = frozenset({".hydra", "csv", "wandb"})  # Hydra's config copy, the csv and W&B loggers' folders
START_UP_SUFFIXES = (".log",)  # Hydra's job log
HYDRA_FILES = frozenset({".hydra", ".hydra/config.yaml", ".hydra/hydra.yaml", ".hydra/overrides.yaml"})
LOCK_NAME = ".lock"


@dataclass(frozen=True)
class Snapshot:
    """What ``run_dir`` held at the start of ``main``: ``before``, every path in it (relative, posix) except the
    files Hydra has just written (its ``.hydra/`` copy, and job logs that are still empty)."""

    run_dir: Path
    before: frozenset[str] = field(default_factory=frozenset)

    @property
    def fresh(self) -> bool:
        """True when the folder held nothing of its own before this run (Hydra created it, or it was empty)."""
        return not self.before


def _relative_paths(root: Path) -> set[str]:
    """Every path below ``root`` (symbolic links not followed), relative and in posix form."""
    paths = set()
    for top, dirs, files in os.walk(root):
        for name in dirs + files:
            paths.add((Path(top) / name).relative_to(root).as_posix())
    return paths


def snapshot(run_dir: str | os.PathLike) -> Snapshot:
    """Record what ``run_dir`` holds now, less what Hydra wrote for this run; call it before anything else."""
    run_dir = Path(run_dir).resolve()
    if not run_dir.is_dir():
        return Snapshot(run_dir)
    before = {p for p in _relative_paths(run_dir) if p not in HYDRA_FILES}
    # Hydra opens the job log (appending) before main, but writes nothing to it until main logs
    before -= {p for p in before if "/" not in p and p.endswith(START_UP_SUFFIXES)
               and (run_dir / p).is_file() and (run_dir / p).stat().st_size == 0}
    return Snapshot(run_dir, frozenset(before))


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


def _remove_created_start_up_files(shot: Snapshot) -> None:
    """In a folder that held something before: remove the loggers' files that this run created (not Hydra's
    config copy or log, which Hydra has already rewritten or appended to), then their folders left empty."""
    created = sorted(_relative_paths(shot.run_dir) - shot.before - HYDRA_FILES, key=lambda p: -p.count("/"))
    for rel in created:
        top = rel.split("/", 1)[0]
        if top not in START_UP_DIRS - {".hydra"}:
            continue
        path = shot.run_dir / rel
        try:
            path.rmdir() if path.is_dir() and not path.is_symlink() else path.unlink()
        except OSError:
            continue


def remove_if_unused(run_dir: str | os.PathLike | Snapshot, cwd: str | os.PathLike | None = None) -> bool:
    """Delete the run folder if it held nothing before this run (``run_dir`` a :class:`Snapshot`; a bare path
    counts as fresh) and :func:`is_unused`, and its parents below ``cwd`` (default: the working directory) that
    are then empty; never ``cwd`` or a folder that holds it. Returns whether the folder was deleted."""
    shot = run_dir if isinstance(run_dir, Snapshot) else Snapshot(Path(run_dir).resolve())
    path = shot.run_dir
    cwd = Path(cwd or os.getcwd()).resolve()
    if path == cwd or path in cwd.parents or not path.is_dir():
        return False
    if not shot.fresh:
        _remove_created_start_up_files(shot)
        return False
    if not is_unused(path):
        return False
    shutil.rmtree(path)
    parent = path.parent
    while parent != cwd and cwd in parent.parents:
        try:
            parent.rmdir()  # only while empty
        except OSError:
            break
        parent = parent.parent
    return True


# ---------------------------------------------------------------------------------------------------- the lock
class RunDirBusyError(UserError):
    """Another process is running in the same run folder."""


def _alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


class RunLock:
    """``<run dir>/.lock`` holding ``pid host``, taken at the start of a run and released at its end.

    :meth:`acquire` refuses (:class:`RunDirBusyError`) while the process named in the lock is alive, or runs on
    another host (where it cannot be checked); a lock of a process that no longer exists is taken over."""

    def __init__(self, run_dir: str | os.PathLike) -> None:
        self.path = Path(run_dir) / LOCK_NAME
        self.host = socket.gethostname()
        self.held = False

    def _create(self) -> bool:
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as f:
            f.write(f"{os.getpid()} {self.host} {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        return True

    def holder(self) -> tuple[int | None, str]:
        """The process id and host named in the lock (None, '' if unreadable)."""
        try:
            fields = self.path.read_text().split()
            return int(fields[0]), fields[1] if len(fields) > 1 else ""
        except (OSError, ValueError, IndexError):
            return None, ""

    def busy(self) -> RunDirBusyError | None:
        """The refusal to give while the lock names a process that runs (or one on another host), else None."""
        if not self.path.is_file():
            return None
        return self._refusal(*self.holder())

    def _refusal(self, pid: int | None, host: str) -> RunDirBusyError | None:
        """The refusal for a lock naming ``pid`` on ``host``: None when unreadable or its process has ended here."""
        if pid is None or (host == self.host and not _alive(pid)):
            return None
        where = "" if host == self.host else f" on host {host}"
        return RunDirBusyError(
            f"run folder {self.path.parent} is in use by process {pid}{where} (lock {self.path}); wait for it to "
            f"end or give another hydra.run.dir. If that process no longer runs, delete {self.path}")

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(3):
            if self._create():
                self.held = True
                return
            pid, host = self.holder()  # read once: the refusal and the takeover's log line name the same process
            busy = self._refusal(pid, host)
            if busy is not None:
                raise busy
            log.warning("taking over %s: its process %s no longer runs", self.path, pid if pid is not None else "?")
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass
        raise RunDirBusyError(f"run folder {self.path.parent}: could not take the lock {self.path}; another run may "
                              "be starting in it. Give another hydra.run.dir or retry")

    def release(self) -> None:
        if not self.held:
            return
        pid, _ = self.holder()
        if pid == os.getpid():
            try:
                self.path.unlink()
            except OSError as err:
                if err.errno != errno.ENOENT:
                    log.warning("could not remove the lock %s: %s", self.path, err)
        self.held = False


def set_aside(path: Path, stamp: str | None = None) -> Path | None:
    """Rename ``path`` (``metrics.jsonl``) to ``metrics.<stamp>.jsonl`` beside it, never over another file;
    returns the new path, or None when there is no ``path``."""
    if not path.exists():
        return None
    stamp = stamp or time.strftime("%Y-%m-%d_%H-%M-%S", time.localtime(path.stat().st_mtime))
    target = path.with_name(f"{path.stem}.{stamp}{path.suffix}")
    n = 1
    while target.exists():
        target = path.with_name(f"{path.stem}.{stamp}-{n}{path.suffix}")
        n += 1
    os.rename(path, target)
    return target
