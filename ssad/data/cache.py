"""The uint8 cache: each dataset decoded once, stored as ``.npy`` and memory-mapped afterwards.

Files are written atomically (temporary file + rename; the images file, written last, marks a complete
entry) under an exclusive file lock, so an interrupted write is never read as valid and two sweep members
building the same entry at once do not corrupt it. The key holds the source's fingerprint (sizes and
modification times), so a changed source rebuilds.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ssad.io import atomic_path, write_json_atomic

CACHE_VERSION = 1
Arrays = tuple[np.ndarray, "np.ndarray | None"]


def fingerprint(path: str | os.PathLike) -> dict[str, Any]:
    """Cheap identity of a source file or folder: total size, newest modification time, file count."""
    root = Path(path)
    files = [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file()] if root.is_dir() else []
    stats = [f.stat() for f in files]
    return {"path": str(root.resolve()), "bytes": sum(s.st_size for s in stats),
            "mtime": max((s.st_mtime_ns for s in stats), default=0), "files": len(stats)}


def _save_npy(path: Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, array)


def cached_arrays(name: str, key: Mapping[str, Any], build: Callable[[], Arrays],
                  cache_dir: str | os.PathLike | None) -> Arrays:
    """``build()`` once per ``key``; later calls return the images memory-mapped from ``cache_dir``."""
    if cache_dir is None:
        return build()
    digest = hashlib.sha1(json.dumps({"v": CACHE_VERSION, **key}, sort_keys=True, default=str).encode())
    stem = Path(cache_dir) / f"{name}-{digest.hexdigest()[:16]}"
    images_file, labels_file = stem.with_suffix(".npy"), Path(f"{stem}-labels.npy")
    stem.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{stem}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not images_file.is_file():
            images, labels = build()
            labels_file.unlink(missing_ok=True)
            if labels is not None:
                _save_npy(labels_file, np.asarray(labels, dtype=np.int64))
            write_json_atomic(Path(f"{stem}.json"), {"name": name, "key": key, "shape": list(images.shape)})
            _save_npy(images_file, np.ascontiguousarray(images, dtype=np.uint8))
    images = np.load(images_file, mmap_mode="r")
    return images, (np.load(labels_file) if labels_file.is_file() else None)
