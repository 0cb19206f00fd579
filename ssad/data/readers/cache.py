"""The uint8 cache: each dataset decoded once, stored as ``.npy`` and memory-mapped on reuse.

An entry ``{cache_dir}/{name}-{digest}`` is three files: ``.npy`` (images N×3×H×W uint8), ``-labels.npy``
(int64, only when labels exist) and ``.json`` (the key, shape and whether labels exist). Each is written to
a temporary file in the same folder, flushed to disk and renamed into place; the images file comes last and
is the commit marker, so an interrupted write is never read as valid. Builders of one entry serialise on an
``fcntl.flock`` lock file: the first builds, the others wait and then just load. The key carries the
source's :func:`fingerprint`, so a changed source gets a new entry.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import stat
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ssad.data.readers.walk import walk_once
from ssad.utils.files import atomic_path

CACHE_VERSION = 2  # bump when the stored layout or the readers' output changes
Arrays = tuple[np.ndarray, np.ndarray | None]


def fingerprint(path: str | os.PathLike) -> dict[str, Any]:
    """Cheap identity of a source file or folder (no reading): resolved path, total size in bytes, newest
    modification time (files and folders, so renames count) and file count. A missing path gives zeros. Links
    are followed, each real folder counted once (:func:`ssad.data.readers.walk.walk_once`: a link loop ends)."""
    root = Path(path)
    entries = [] if root.is_dir() else [root]
    for folder, names in walk_once(root) if root.is_dir() else ():
        entries += [folder, *(folder / n for n in names)]
    stats = [s for s in map(_stat, entries) if s is not None]
    files = [s for s in stats if not stat.S_ISDIR(s.st_mode)]
    return {"path": str(root.resolve()), "bytes": sum(s.st_size for s in files),
            "mtime_ns": max((s.st_mtime_ns for s in stats), default=0), "files": len(files)}


def _stat(path: Path) -> os.stat_result | None:
    """``path``'s status (links followed); None for a missing path, a broken link or a link that leads to itself."""
    try:
        return path.stat()
    except OSError:
        return None


def entry_stem(name: str, key: Mapping[str, Any], cache_dir: str | os.PathLike) -> Path:
    """``{cache_dir}/{name}-{sha1 of the key (sorted JSON) and the cache version}``, without a suffix."""
    text = json.dumps({"version": CACHE_VERSION, "key": key}, sort_keys=True, default=str)
    safe_name = re.sub(r"[^A-Za-z0-9_.-]", "_", name)
    return Path(cache_dir) / f"{safe_name}-{hashlib.sha1(text.encode()).hexdigest()}"


def _paths(stem: Path) -> tuple[Path, Path, Path]:
    """The images, labels and meta files of an entry."""
    return Path(f"{stem}.npy"), Path(f"{stem}-labels.npy"), Path(f"{stem}.json")


def _write_durably(path: Path, write: Callable[[Any], None]) -> None:
    """``write(file)`` to a temporary file beside ``path``, fsync, then rename it to ``path``."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())


def _load_valid(stem: Path) -> Arrays | None:
    """The entry's arrays when it is complete and consistent, else None."""
    images_file, labels_file, meta_file = _paths(stem)
    if not (images_file.is_file() and meta_file.is_file()):
        return None
    try:
        meta = json.loads(meta_file.read_text())
        images = np.load(images_file, mmap_mode="r")
        labels = np.load(labels_file) if meta["labels"] else None
    except (OSError, ValueError, KeyError):
        return None
    if list(images.shape) != meta["shape"] or (labels is not None and len(labels) != len(images)):
        return None
    return images, labels


def _remove_leftovers(stem: Path) -> None:
    """Temporary files of this entry left by an interrupted writer (only called under the entry's lock)."""
    for tmp in stem.parent.glob(f".{stem.name}*.tmp"):
        tmp.unlink(missing_ok=True)


def _write_entry(stem: Path, name: str, key: Mapping[str, Any], images: np.ndarray,
                 labels: np.ndarray | None) -> None:
    """Labels and meta first, images last (the commit marker); an old images file goes first of all."""
    images_file, labels_file, meta_file = _paths(stem)
    images_file.unlink(missing_ok=True)
    labels_file.unlink(missing_ok=True)
    if labels is not None:
        _write_durably(labels_file, lambda f: np.save(f, np.asarray(labels, dtype=np.int64)))
    meta = {"name": name, "key": key, "shape": list(images.shape), "labels": labels is not None,
            "version": CACHE_VERSION}
    text = json.dumps(meta, indent=2, sort_keys=True, default=str) + "\n"
    _write_durably(meta_file, lambda f: f.write(text.encode()))
    _write_durably(images_file, lambda f: np.save(f, np.ascontiguousarray(images, dtype=np.uint8)))


def cached_arrays(name: str, key: Mapping[str, Any], build: Callable[[], Arrays],
                  cache_dir: str | os.PathLike | None) -> Arrays:
    """``build()`` once per ``key`` and return its ``(images, labels)``; later calls (other processes
    included) return the images memory-mapped (read-only) from ``cache_dir`` and the labels in memory.
    ``cache_dir`` None: build in memory, no files."""
    if cache_dir is None:
        return build()
    stem = entry_stem(name, key, cache_dir)
    stem.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{stem}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        arrays = _load_valid(stem)
        if arrays is None:
            _remove_leftovers(stem)
            _write_entry(stem, name, key, *build())
            arrays = _load_valid(stem)
    if arrays is None:
        raise RuntimeError(f"cache entry {stem} is unreadable right after being written")
    return arrays
