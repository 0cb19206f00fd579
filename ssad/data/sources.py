"""Dataset specs → cached uint8 arrays.

A spec is a mapping ``{"format": NAME, **reader arguments}`` (plus an optional display ``name``), e.g.
``{"format": "cifar10", "root": "data/cifar10", "split": "test"}``; :data:`FORMATS` lists the readers.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, ListConfig, OmegaConf

from ssad.cli.errors import ConfigError, InputError
from ssad.data.readers import arrays, benchmarks, embedded, glyphs, images
from ssad.data.readers.cache import cached_arrays, fingerprint

Reader = Callable[..., images.Arrays]
Locator = Callable[..., list[Path]]

# Benchmark sets distributed as plain image folders, by the names the presets use: each is read by
# image_folder with its folder given as `root` (which variant of the set a preset means is said in the preset).
FOLDER_SETS = ("places365", "lsun", "tinyimagenet", "imagenet30")
FORMATS: dict[str, Reader] = {
    **{reader.__name__: reader for reader in (
        embedded.digits, embedded.fashion_mnist_subset, glyphs.glyphs, embedded.sklearn_photos, embedded.synthetic,
        benchmarks.cifar10, benchmarks.cifar100, benchmarks.svhn, benchmarks.stl10, benchmarks.dtd, benchmarks.mnist,
        images.image_folder, arrays.npy, arrays.imagenet_pickle)},
    **dict.fromkeys(FOLDER_SETS, images.image_folder),
}
# The files each path-based reader reads, found without decoding (formats without one need no files).
LOCATORS: dict[str, Locator] = {
    "cifar10": benchmarks.cifar10_files, "cifar100": benchmarks.cifar100_files, "svhn": benchmarks.svhn_files,
    "stl10": benchmarks.stl10_files, "dtd": benchmarks.dtd_files, "mnist": benchmarks.mnist_files,
    "image_folder": images.image_folder_files, "npy": arrays.npy_files,
    "imagenet_pickle": arrays.imagenet_pickle_files, **dict.fromkeys(FOLDER_SETS, images.image_folder_files),
}
SPEC_KEYS = ("format", "name", "classes", "label_names")  # spec keys that are not reader arguments
NOT_CONTENT = ("size", "download")  # reader arguments that do not change the arrays (size is keyed apart)


class RowView:
    """Rows ``rows`` of an array (e.g. a memory-mapped cache), read only when indexed: a subset without a copy.

    Supports what the datasets use: ``len``, ``shape``, ``dtype``, indexing by an int, a slice or an index
    array (relative to the view), and ``np.asarray`` (which does read every row)."""

    def __init__(self, base: np.ndarray, rows: np.ndarray) -> None:
        self.base, self.rows = base, np.asarray(rows)

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.rows), *self.base.shape[1:])

    @property
    def dtype(self) -> np.dtype:
        return self.base.dtype

    def __getitem__(self, index: Any) -> np.ndarray:
        return self.base[self.rows[index]]

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        return np.asarray(self.base[self.rows], dtype=dtype)


@dataclass
class ArraySet:
    """uint8 images N×3×H×W (memory-mapped when cached, or a :class:`RowView` of such an array), int64
    labels (N,) or None, a display name."""

    images: np.ndarray | RowView
    labels: np.ndarray | None
    name: str

    def __len__(self) -> int:
        return len(self.images)


def plain(value: Any) -> Any:
    """Hydra/OmegaConf containers as plain dicts and lists (JSON-able, picklable); other values unchanged."""
    if isinstance(value, (DictConfig, ListConfig)):
        return OmegaConf.to_container(value, resolve=True)
    return value


def _reader(spec: Mapping[str, Any]) -> tuple[str, Reader, dict[str, Any]]:
    """The format name, its reader and the spec's reader arguments, checked against the reader's
    signature (unknown or missing arguments → :class:`ConfigError` naming the format and what it accepts)."""
    if not isinstance(plain(spec), Mapping):
        raise ConfigError(f"dataset spec {spec!r} is not a mapping; give one like {{format: image_folder, path: "
                          "DIR}} (formats: " + ", ".join(sorted(FORMATS)) + ")")
    spec = dict(plain(spec))
    fmt = spec.get("format")
    if fmt not in FORMATS:
        raise ConfigError(f"dataset spec {spec}: unknown format {fmt!r}; choose one of {sorted(FORMATS)}")
    names = spec.get("label_names")
    if names is not None and not (isinstance(names, list) and names and all(isinstance(n, str) for n in names)):
        raise ConfigError(f"dataset spec {spec}: label_names={names!r} must be a list of names, one per label in label "
                         "order, e.g. [airplane, automobile, bird]")
    reader = FORMATS[fmt]
    params = {k: p for k, p in inspect.signature(reader).parameters.items() if k != "size"}
    kwargs = {k: v for k, v in spec.items() if k not in SPEC_KEYS}
    if fmt in FOLDER_SETS and "root" in kwargs:
        kwargs["path"] = kwargs.pop("root")
    unknown = sorted(set(kwargs) - set(params))
    missing = sorted(k for k, p in params.items() if p.default is inspect.Parameter.empty and k not in kwargs)
    if unknown or missing:
        near = {k: difflib.get_close_matches(k, params, n=1) for k in unknown}
        hints = [f"{k!r}: did you mean {m[0]!r}?" for k, m in near.items() if m]
        problems = "; ".join(f"{what} {names}" for what, names in (("unknown", unknown), ("missing", missing))
                             if names) + " argument(s)" + (f" ({', '.join(hints)})" if hints else "")
        accepted = ", ".join(k if p.default is inspect.Parameter.empty else f"{k}={p.default!r}"
                             for k, p in params.items())
        alias = " (an image folder: `root` stands for `path`)" if fmt in FOLDER_SETS else ""
        raise ConfigError(f"format {fmt!r}: {problems}; it accepts: {accepted}{alias}")
    return fmt, reader, kwargs


def label_names(specs: Mapping[str, Mapping[str, Any]] | None) -> dict[str, list[str]]:
    """The ``label_names`` of each named spec that has them (set name → names in label order), for printing
    results by label."""
    return {name: list(plain(spec)["label_names"]) for name, spec in (plain(specs) or {}).items()
            if isinstance(plain(spec), Mapping) and plain(spec).get("label_names")}


def accepts(spec: Mapping[str, Any], argument: str) -> bool:
    """Whether the reader of ``spec``'s format takes ``argument`` (e.g. ``on_error``); False for an unknown
    format (which :func:`check_source` reports)."""
    reader = FORMATS.get(dict(plain(spec)).get("format"))
    return reader is not None and argument in inspect.signature(reader).parameters


def _locate(fmt: str, kwargs: Mapping[str, Any], fetch: bool) -> list[Path]:
    """The files ``fmt`` reads for ``kwargs`` (downloading them first when ``fetch`` and allowed)."""
    if fmt not in LOCATORS:
        return []
    locator = LOCATORS[fmt]
    accepted = inspect.signature(locator).parameters
    return locator(**{k: v for k, v in {**kwargs, "fetch": fetch}.items() if k in accepted})


def check_source(spec: Mapping[str, Any]) -> None:
    """Cheap start-up check, no decoding: the spec's format and arguments are valid and the files it
    needs exist (or will be downloaded: ``download=true``). Raises :class:`ConfigError` for a bad spec and a
    :class:`MissingFileError` or :class:`InputError` saying which files are expected where and how to provide
    them."""
    fmt, _, kwargs = _reader(spec)
    _locate(fmt, kwargs, fetch=False)


def _cache_key(fmt: str, reader: Reader, kwargs: Mapping[str, Any], size: int,
               files: list[Path]) -> dict[str, Any]:
    """What determines the arrays: the format, its arguments with defaults filled in (so equivalent specs
    share an entry), the size and the fingerprints of the files read."""
    bound = inspect.signature(reader).bind(size=size, **kwargs)
    bound.apply_defaults()
    args = {k: v for k, v in bound.arguments.items() if k not in NOT_CONTENT}
    return {"format": fmt, "args": args, "size": size, "sources": [fingerprint(f) for f in files]}


def _checked(arrays: images.Arrays, fmt: str, size: int) -> images.Arrays:
    """The reader's output, verified: uint8 N×3×size×size, int64 labels of length N or None."""
    images, labels = arrays
    if images.dtype != np.uint8 or images.shape[1:] != (3, size, size):
        raise ValueError(f"format {fmt!r} returned {images.dtype} images of shape {images.shape}; "
                         f"expected uint8 N×3×{size}×{size}")
    if labels is not None:
        labels = np.asarray(labels, dtype=np.int64)
        if labels.shape != (len(images),):
            raise ValueError(f"format {fmt!r} returned labels of shape {labels.shape} for {len(images)} "
                             "images")
    return images, labels


def load_source(spec: Mapping[str, Any], size: int, cache_dir: str | None = None) -> ArraySet:
    """Read ``spec`` at ``size``×``size`` through the cache (``cache_dir`` None: in memory only). The first
    read decodes the real files (downloading them where the spec says ``download: true``); later reads
    memory-map the cached array until a source file changes."""
    if not isinstance(size, (int, np.integer)) or size < 1:
        raise ConfigError(f"size={size!r}: expected a positive integer (pixels)")
    size = int(size)
    fmt, reader, kwargs = _reader(spec)
    files = _locate(fmt, kwargs, fetch=True)
    key = _cache_key(fmt, reader, kwargs, size, files)

    def build() -> images.Arrays:
        return _checked(reader(size=size, **kwargs), fmt, size)

    images, labels = cached_arrays(fmt, key, build, cache_dir)
    name = str(plain(spec).get("name", fmt))
    classes = plain(plain(spec).get("classes"))
    return ArraySet(images, labels, name) if classes is None else select_classes(images, labels, classes, name)


def select_classes(images: np.ndarray, labels: np.ndarray | None, classes: Any, name: str) -> ArraySet:
    """The images whose label is in ``classes`` (the one-class / near-OOD protocol), as a :class:`RowView` of
    the cached array; labels keep their values."""
    if labels is None:
        raise InputError(f"{name}: classes={classes} needs labels, and this set has none; drop `classes` or give "
                         "labels (npy: `labels: PATH` to a .npy of N integers; image folders: one subfolder per "
                         "class)")
    if not isinstance(classes, (list, tuple)) or not classes or not all(isinstance(c, int) for c in classes):
        raise ConfigError(f"{name}: classes={classes!r} must be a non-empty list of integer labels, e.g. [0, 1, 2]")
    present = set(np.unique(labels).tolist())
    missing = sorted(set(classes) - present)
    if missing:
        raise ConfigError(f"classes {missing} do not occur in the labels of {name} (present: "
                          f"{sorted(present)[:20]}{' …' if len(present) > 20 else ''}); choose classes among them")
    rows = np.flatnonzero(np.isin(labels, classes))
    return ArraySet(RowView(images, rows), labels[rows], name)


def check_ood_groups(groups: Mapping[str, Any] | None, ood: Mapping[str, Any]) -> dict[str, list[str]]:
    """``data.ood_groups`` as a plain ``{group: [OOD set names]}`` (e.g. OpenOOD's near and far), every name a
    key of ``ood``; a :class:`ConfigError` names the group, the names that are not OOD sets, and the fix."""
    groups = plain(groups) or {}
    if not isinstance(groups, dict) or not all(
            isinstance(names, list) and all(isinstance(n, str) for n in names) for names in groups.values()):
        raise ConfigError(f"data.ood_groups={groups!r}: give a mapping of group names to lists of data.ood keys, "
                         "e.g. {near: [cifar100, tin], far: [svhn]}")
    for group, names in groups.items():
        unknown = [n for n in names if n not in ood]
        if unknown:
            raise ConfigError(f"data.ood_groups.{group} names {unknown}, which data.ood does not have (it has "
                             f"{sorted(ood)}); add them to data.ood or drop them from the group")
    return groups
