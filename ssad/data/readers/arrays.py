"""Arrays and pickled batches: ``.npy`` image arrays (e.g. the 300K random images), and batches of planar RGB
rows (the downsampled-ImageNet pickles here; CIFAR's, which have the same layout, in
:mod:`ssad.data.readers.benchmarks`).

Pickle-based formats are read with a restricted unpickler (:func:`ssad.deploy.safe_load.load_data_pickle`): only the
builtin and NumPy types these formats hold, so a crafted batch file is refused, naming the file, before
anything in it runs.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ssad.cli.errors import InputError, MissingFileError
from ssad.data.readers.downloads import check_split
from ssad.data.readers.images import RESIZE_BUDGET, Arrays, resize_images
from ssad.deploy.safe_load import load_data_pickle

NPY_LAYOUTS = "uint8 N×H×W×3 (HWC), N×3×H×W (CHW), or gray N×H×W, N×H×W×1 or N×1×H×W"


# ----------------------------------------------------------------------------------------------- pickled batches
def _unpickle(path: Path) -> dict[str, Any]:
    """A pickled dict with str keys, whether written by Python 2 (CIFAR) or Python 3 (bytes or str keys), read
    with the restricted unpickler (anything but builtin and NumPy data types is refused, naming the file)."""
    data = load_data_pickle(path)
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a pickled dict, found {type(data).__name__}; replace it with the "
                         "dataset's official file")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in data.items()}


def _load_batch(path: Path) -> dict[str, Any]:
    """A batch dict from a pickle, or from the ``.npz`` edition of the downsampled-ImageNet batches."""
    if path.suffix != ".npz":
        return _unpickle(path)
    with np.load(path) as archive:
        return {key: archive[key] for key in archive.files}


def read_planar_batches(files: Sequence[Path], label_key: str, size: int, label_offset: int = 0) -> Arrays:
    """Batches with ``data`` uint8 N×(3·s·s) planar RGB (s inferred) and labels under ``label_key``."""
    images, labels = [], []
    for path in files:
        batch = _load_batch(path)
        data = np.asarray(batch["data"], dtype=np.uint8)
        side = math.isqrt(data.shape[1] // 3) if data.ndim == 2 else 0
        if data.ndim != 2 or 3 * side * side != data.shape[1]:
            raise InputError(f"{path}: 'data' of shape {data.shape} is not N×(3·s·s) planar RGB; replace it with the "
                             "dataset's official file")
        batch_labels = np.asarray(batch[label_key], dtype=np.int64).reshape(-1) - label_offset
        if len(batch_labels) != len(data):
            raise InputError(f"{path}: {len(data)} images but {len(batch_labels)} labels; replace it with the "
                             "dataset's official file")
        images.append(resize_images(data.reshape(-1, 3, side, side), size))
        labels.append(batch_labels)
    return np.concatenate(images), np.concatenate(labels)


# ----------------------------------------------------------------------------------------------- .npy
def _npy_layout(array: np.ndarray, path: Path) -> str:
    """``hwc``, ``chw``, ``gray``, ``hw1`` or ``1hw`` (gray with a channel axis, as tfds and PyTorch write
    them); an :class:`InputError` naming what was found and how to save it otherwise."""
    found = f"{path}: found dtype {array.dtype}, shape {array.shape}; accepted: {NPY_LAYOUTS}"
    if array.dtype != np.uint8:
        raise InputError(f"{found}. Save the images as uint8 0–255, e.g. np.save(path, (x * 255).round()"
                         ".astype(np.uint8)) for floats in [0, 1]")
    if array.ndim == 0 or len(array) == 0:
        raise InputError(f"{found}. It holds no images; save at least one there")
    if array.ndim == 3:
        return "gray"
    if array.ndim == 4 and array.shape[-1] == 3:
        return "hwc"
    if array.ndim == 4 and array.shape[1] == 3:
        return "chw"
    if array.ndim == 4 and array.shape[-1] == 1:
        return "hw1"
    if array.ndim == 4 and array.shape[1] == 1:
        return "1hw"
    raise InputError(f"{found}. Save the images as one array with the image index first")


def _open_npy(path: Path) -> np.ndarray:
    """The array of a ``.npy`` file, memory-mapped; an :class:`InputError` for a file that is not a plain array
    (empty, cut short, an object array or another format)."""
    try:
        return np.load(path, mmap_mode="r")
    except (ValueError, EOFError, OSError) as err:  # object arrays (pickles) cannot be memory-mapped either
        raise InputError(f"{path}: not a readable plain array file ({err}); save the array again with np.save "
                         f"({NPY_LAYOUTS} for images, N integers for labels)") from None


def npy_files(path: str, labels: str | None = None) -> list[Path]:
    """Locator of :func:`npy`: the file (and the labels file), whose headers (shape, dtype) are checked without
    reading the data."""
    file = Path(path)
    if not file.is_file():
        raise MissingFileError(f"array file {file} does not exist; save your images there with np.save "
                               f"({NPY_LAYOUTS})")
    images = _open_npy(file)
    _npy_layout(images, file)
    if labels is None:
        return [file]
    label_file = Path(labels)
    if not label_file.is_file():
        raise MissingFileError(f"labels file {label_file} does not exist; save the {len(images)} integer labels "
                               f"of {file} there with np.save")
    found = _open_npy(label_file)
    if found.shape not in ((len(images),), (len(images), 1)) or not np.issubdtype(found.dtype, np.integer):
        raise InputError(f"{label_file}: found dtype {found.dtype}, shape {found.shape}; expected {len(images)} "
                         f"integers (one label per image of {file}, shape ({len(images)},) or ({len(images)}, 1)); "
                         "save them again with np.save(path, labels.astype(np.int64))")
    return [file, label_file]


def _as_chw(chunk: np.ndarray, layout: str) -> np.ndarray:
    if layout in ("gray", "hw1", "1hw"):
        plane = {"gray": chunk, "hw1": chunk[..., 0], "1hw": chunk[:, 0]}[layout]
        return np.repeat(plane[:, None], 3, axis=1)
    return chunk.transpose(0, 3, 1, 2) if layout == "hwc" else chunk


def npy(path: str, size: int, labels: str | None = None) -> Arrays:
    """A ``.npy`` uint8 image array: N×H×W×3 (HWC, e.g. the 300K random images file, 300000×32×32×3),
    N×3×H×W, or gray N×H×W, N×H×W×1 or N×1×H×W (→ 3 channels), of any H×W. Memory-mapped and converted chunk
    by chunk. When the last axis and the second are both 3, HWC is assumed. ``labels``: an optional ``.npy`` of
    N integers (shape (N,) or (N, 1), as Keras writes them)."""
    files = npy_files(path, labels)
    file = files[0]
    array = _open_npy(file)
    layout = _npy_layout(array, file)
    height, width = array.shape[2:4] if layout in ("chw", "1hw") else array.shape[1:3]
    chunk = max(1, RESIZE_BUDGET // (3 * height * width))
    out = np.empty((len(array), 3, size, size), dtype=np.uint8)
    for start in range(0, len(array), chunk):
        out[start:start + chunk] = resize_images(_as_chw(array[start:start + chunk], layout), size)
    return out, (np.load(files[1]).astype(np.int64).reshape(-1) if labels is not None else None)



# ----------------------------------------------------------------------------------------------- ImageNet
def _batch_number(path: Path) -> int:
    return int(re.fullmatch(r"train_data_batch_(\d+)(\.npz)?", path.name).group(1))


def imagenet_pickle_files(root: str, split: str = "train") -> list[Path]:
    """Locator of :func:`imagenet_pickle`: every ``train_data_batch_<k>`` (sorted by k) or ``val_data``;
    the ``.npz`` editions of the same files are accepted too."""
    check_split(split, ("train", "val"), "imagenet_pickle")
    base = Path(root)
    pattern = r"train_data_batch_\d+(\.npz)?" if split == "train" else r"val_data(\.npz)?"
    files = [p for p in base.glob("*") if re.fullmatch(pattern, p.name) and p.is_file()]
    if not files:
        expected = "train_data_batch_1 … train_data_batch_10" if split == "train" else "val_data"
        raise MissingFileError(f"imagenet_pickle: no {expected} under {base}; put the downsampled-ImageNet "
                               "batches there (Imagenet32_train.zip / Imagenet32_val.zip from "
                               "image-net.org, unzipped)")
    return sorted(files, key=_batch_number) if split == "train" else files[:1]


def imagenet_pickle(root: str, size: int, split: str = "train") -> Arrays:
    """Downsampled ImageNet (Chrabaszcz et al. 2017, any side s: 8, 16, 32, 64): batches each holding a dict
    with ``data`` uint8 N×(3·s·s) planar RGB and ``labels`` 1..1000 (→ 0..999)."""
    return read_planar_batches(imagenet_pickle_files(root, split), "labels", size, label_offset=1)

