"""Files that are never half-written or half-read: atomic writes (a temporary file in the same directory,
then a rename, so an interrupted write never leaves a file that looks valid), a JSON-lines reader that skips
a torn last line, and a completeness check of checkpoints before they are loaded."""

from __future__ import annotations

import json
import os
import secrets
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ssad.cli.errors import InputError


def _create_temporary(path: Path) -> Path:
    """A new empty file ``.{name}.{random}.tmp`` beside ``path``, created with mode 0666 less the umask (as any
    other file the process writes; ``tempfile.mkstemp`` would make it 0600, and the rename keeps that mode)."""
    while True:
        tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            return tmp
        except FileExistsError:
            continue


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path``, on failure it is removed. The
    file ends up with the mode any newly written file gets (0666 less the umask)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _create_temporary(path)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_json_atomic(path: str | os.PathLike, data: Any) -> Path:
    return write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def save_atomic(path: str | os.PathLike, obj: Any) -> Path:
    """``torch.save`` through :func:`atomic_path`."""
    import torch  # here: the other helpers serve code without PyTorch (scoring an .onnx detector)

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
    return Path(path)


def append_jsonl(path: str | os.PathLike, record: Any) -> None:
    """Append one JSON line (a single small write; readers skip a torn last line)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        f.write(json.dumps(record, sort_keys=True) + "\n")


def read_jsonl(path: str | os.PathLike) -> list[Any]:
    """The records of a JSON-lines file written by :func:`append_jsonl`; a torn (unparsable) line is skipped,
    a missing file is empty."""
    path = Path(path)
    if not path.is_file():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def check_checkpoint(path: str | os.PathLike) -> None:
    """Raise an :class:`InputError` (a ValueError) naming the file and the way out (full paths) when ``path`` is
    not a complete ``torch.save`` archive (truncated by a crash or a full disk, or not a checkpoint at all). Reads
    only the archive's directory at the end of the file, so it costs nothing beside the load; changes nothing."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path):
            reason = None
    except (zipfile.BadZipFile, OSError) as err:
        reason = str(err)
    if reason:
        path = path.resolve()
        others = sorted(str(p) for p in path.parent.glob("*.ckpt") if p != path)
        raise InputError(f"checkpoint {path} cannot be read ({reason}); it may have been cut short while being "
                         f"written. Nothing was changed. Move it aside (mv {path} {path}.bad) to start over"
                         + (f", or resume from another one with ckpt_path={others[-1]}"
                            + (f" (or: {', '.join(others[:-1])})" if len(others) > 1 else "")
                            if others else ""))


def check_writable(path: str | os.PathLike, key: str) -> Path:
    """Raise an :class:`ssad.cli.errors.InputError` naming ``key`` (the option that gave ``path``, e.g. ``out``) when
    a file cannot be written at ``path``: it is a folder, or the nearest existing folder above it is a file or
    refuses a new file. Probes by creating and removing a hidden file there, so a long job fails before it
    starts rather than at its end; creates no folder. Returns ``path``."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{key}={path} is a folder; give the path of a file, e.g. a new name inside it")
    folder = path.absolute().parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise InputError(f"{key}={path}: {folder} is a file, not a folder, so nothing can be written under it; "
                         f"choose another {key}=...")
    probe = folder / f".{path.name}.{secrets.token_hex(6)}.probe"
    try:
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        probe.unlink()
    except OSError as err:
        raise InputError(f"{key}={path}: cannot write in {folder} ({err.strerror or err}); choose a folder you "
                         f"can write to with {key}=...") from None
    return path
