"""Dataset specs → cached uint8 arrays. A spec is a mapping ``{format: NAME, **reader arguments}``."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, ListConfig, OmegaConf

from ssad.data import formats
from ssad.data.cache import cached_arrays, fingerprint

FORMATS = {f.__name__: f for f in (
    formats.digits, formats.sklearn_photos, formats.synthetic, formats.cifar10, formats.cifar100,
    formats.svhn, formats.stl10, formats.dtd, formats.places365, formats.lsun, formats.tinyimagenet,
    formats.imagenet30, formats.image_folder, formats.npy, formats.imagenet_pickle,
)}
PATH_ARGS = ("root", "path")


@dataclass
class ArraySet:
    """uint8 images N×3×H×W (memory-mapped when cached), int64 labels or None, a display name."""

    images: np.ndarray
    labels: np.ndarray | None
    name: str

    def __len__(self) -> int:
        return len(self.images)


def plain(value: Any) -> Any:
    """Hydra/OmegaConf containers as plain dicts and lists (JSON-able, picklable)."""
    if isinstance(value, (DictConfig, ListConfig)):
        return OmegaConf.to_container(value, resolve=True)
    return value


def _reader(spec: Mapping[str, Any]) -> tuple[Any, dict[str, Any]]:
    """The reader of ``spec['format']`` and its checked keyword arguments."""
    spec = plain(spec)
    if "format" not in spec:
        raise ValueError(f"dataset spec {dict(spec)} has no 'format'; choose one of {sorted(FORMATS)}")
    name = spec["format"]
    if name not in FORMATS:
        raise ValueError(f"unknown dataset format {name!r}; choose one of {sorted(FORMATS)}")
    reader = FORMATS[name]
    params = inspect.signature(reader).parameters
    kwargs = {k: v for k, v in spec.items() if k not in ("format", "name")}
    accepted = [p for p in params if p != "size"]
    unknown = sorted(set(kwargs) - set(accepted))
    missing = sorted(p for p, v in params.items()
                     if p != "size" and v.default is inspect.Parameter.empty and p not in kwargs)
    if unknown or missing:
        raise ValueError(f"format {name!r}: {'unknown ' + str(unknown) if unknown else ''}"
                         f"{' missing ' + str(missing) if missing else ''} arguments; it takes {accepted}")
    return reader, kwargs


def check_source(spec: Mapping[str, Any]) -> None:
    """Cheap start-up check (no decoding): arguments valid and the named file or folder exists."""
    _, kwargs = _reader(spec)
    for arg in PATH_ARGS:
        if arg in kwargs and not Path(kwargs[arg]).exists():
            raise FileNotFoundError(f"{spec['format']}: {arg}={kwargs[arg]} does not exist; put the dataset "
                                    f"there (see README, 'Datasets') or point {arg} / data_dir at it")


def load_source(spec: Mapping[str, Any], size: int, cache_dir: str | None = None) -> ArraySet:
    """Read ``spec`` at ``size`` through the cache (``cache_dir`` None: in memory only)."""
    reader, kwargs = _reader(spec)
    check_source(spec)
    key = {"spec": kwargs, "format": spec["format"], "size": size,
           "source": [fingerprint(kwargs[a]) for a in PATH_ARGS if a in kwargs]}
    images, labels = cached_arrays(spec["format"], key, lambda: reader(size=size, **kwargs), cache_dir)
    return ArraySet(images, labels, str(spec.get("name", spec["format"])))
