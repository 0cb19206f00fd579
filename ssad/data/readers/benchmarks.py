"""The benchmark sets in their distributed formats: CIFAR10/100 (torchvision's pickles), SVHN (``.mat``), STL10
(binary), Texture (DTD's image folders) and MNIST (idx files).

Each reader has a locator (``*_files``) that finds, and with ``download=True`` fetches, its files
(:mod:`ssad.data.readers.downloads`); the readers follow the contract of :mod:`ssad.data.readers.images`.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from ssad.cli.errors import ConfigError, InputError
from ssad.data.readers.arrays import read_planar_batches
from ssad.data.readers.downloads import (
    CIFAR10_DOWNLOAD,
    CIFAR100_DOWNLOAD,
    DTD_DOWNLOAD,
    MNIST_DOWNLOADS,
    STL10_DOWNLOAD,
    SVHN_DOWNLOADS,
    check_split,
    require,
)
from ssad.data.readers.images import Arrays, image_folder, resize_images

IDX_IMAGES, IDX_LABELS = 0x00000803, 0x00000801  # idx magic: unsigned bytes, 3 (N×H×W) or 1 (N) dimensions
GZIP_MAGIC = b"\x1f\x8b"
MNIST_NAMES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
               "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


# ----------------------------------------------------------------------------------------------- CIFAR
def cifar10_files(root: str, split: str = "train", download: bool = False, fetch: bool = True) -> list[Path]:
    """Locator of :func:`cifar10`: ``root/cifar-10-batches-py/data_batch_1..5`` or ``test_batch``."""
    check_split(split, ("train", "test"), "cifar10")
    names = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    files = [Path(root) / "cifar-10-batches-py" / n for n in names]
    return require(files, root, CIFAR10_DOWNLOAD, download, fetch,
                    f"extract cifar-10-python.tar.gz into {root} (torchvision's layout)")


def cifar10(root: str, size: int, split: str = "train", download: bool = False) -> Arrays:
    """CIFAR10 in torchvision's on-disk format (read without torchvision's md5 checks)."""
    return read_planar_batches(cifar10_files(root, split, download), "labels", size)


def cifar100_files(root: str, split: str = "train", download: bool = False, fetch: bool = True) -> list[Path]:
    """Locator of :func:`cifar100`: ``root/cifar-100-python/train`` or ``test``."""
    check_split(split, ("train", "test"), "cifar100")
    return require([Path(root) / "cifar-100-python" / split], root, CIFAR100_DOWNLOAD, download, fetch,
                    f"extract cifar-100-python.tar.gz into {root} (torchvision's layout)")


def cifar100(root: str, size: int, split: str = "train", download: bool = False, labels: str = "fine") -> Arrays:
    """CIFAR100 in torchvision's on-disk format: ``labels: fine`` (0..99) or ``coarse`` (the 20 superclasses, 0..19,
    as the one-class literature uses them)."""
    if labels not in ("fine", "coarse"):
        raise ConfigError(f"cifar100: labels={labels!r}; choose 'fine' (100 classes) or 'coarse' (20 superclasses)")
    return read_planar_batches(cifar100_files(root, split, download), f"{labels}_labels", size)


# ----------------------------------------------------------------------------------------------- SVHN, STL10
def svhn_files(root: str, split: str = "test", download: bool = False, fetch: bool = True) -> list[Path]:
    """Locator of :func:`svhn`: ``root/{split}_32x32.mat``."""
    check_split(split, tuple(SVHN_DOWNLOADS), "svhn")
    return require([Path(root) / f"{split}_32x32.mat"], root, SVHN_DOWNLOADS[split], download, fetch,
                    f"save {split}_32x32.mat into {root}")


def svhn(root: str, size: int, split: str = "test", download: bool = False) -> Arrays:
    """SVHN cropped digits (``{split}_32x32.mat``: X 32×32×3×N, y 1..10 with 10 for the digit 0 → 0..9)."""
    from scipy.io import loadmat

    path = svhn_files(root, split, download)[0]
    mat = loadmat(path)
    images = np.ascontiguousarray(np.asarray(mat["X"], dtype=np.uint8).transpose(3, 2, 0, 1))
    return resize_images(images, size), np.asarray(mat["y"], dtype=np.int64).reshape(-1) % 10


def stl10_files(root: str, split: str = "test", download: bool = False, fetch: bool = True) -> list[Path]:
    """Locator of :func:`stl10`: ``root/stl10_binary/{split}_X.bin``."""
    check_split(split, ("train", "test", "unlabeled"), "stl10")
    return require([Path(root) / "stl10_binary" / f"{split}_X.bin"], root, STL10_DOWNLOAD, download, fetch,
                    f"extract stl10_binary.tar.gz into {root}")


def stl10(root: str, size: int, split: str = "test", download: bool = False) -> Arrays:
    """STL10 binary format: ``{split}_X.bin`` uint8, each channel a column-major 96×96 plane, and
    ``{split}_y.bin`` labels 1..10 → 0..9 (None for ``unlabeled`` or when the file is absent)."""
    x_path = stl10_files(root, split, download)[0]
    raw = np.fromfile(x_path, dtype=np.uint8)
    if raw.size % (3 * 96 * 96):
        raise InputError(f"{x_path}: {raw.size} bytes is not a whole number of 3×96×96 images; download it again")
    images = resize_images(raw.reshape(-1, 3, 96, 96).transpose(0, 1, 3, 2), size)
    y_path = x_path.with_name(f"{split}_y.bin")
    if not y_path.is_file():
        return images, None
    labels = np.fromfile(y_path, dtype=np.uint8).astype(np.int64) - 1
    if len(labels) != len(images):
        raise InputError(f"{y_path}: {len(labels)} labels for {len(images)} images; download it again")
    return images, labels


# ----------------------------------------------------------------------------------------------- DTD
def dtd_files(root: str, download: bool = False, fetch: bool = True) -> list[Path]:
    """Locator of :func:`dtd`: ``root/dtd/images`` (the archive's layout), or torchvision's
    ``root/dtd/dtd/images``."""
    candidates = [Path(root) / "dtd" / "images", Path(root) / "dtd" / "dtd" / "images"]
    found = [c for c in candidates if c.is_dir()]
    files = found[:1] or candidates[:1]
    return require(files, root, DTD_DOWNLOAD, download, fetch,
                    f"extract dtd-r1.0.1.tar.gz into {root} (giving dtd/images/<class>/*.jpg)")


def dtd(root: str, size: int, on_error: str = "raise", download: bool = False) -> Arrays:
    """Texture (DTD): all 5,640 images of ``root/dtd/images/<class>/*.jpg`` (47 classes), as the OOD
    benchmarks use them."""
    return image_folder(str(dtd_files(root, download)[0]), size, on_error)


# ----------------------------------------------------------------------------------------------- MNIST (idx)
def _idx_file(root: Path, name: str, download: bool, fetch: bool) -> Path:
    """``name`` or ``name.gz`` under ``root`` or torchvision's ``root/MNIST/raw``."""
    found = [candidate for folder in (root, root / "MNIST" / "raw")
             for candidate in (folder / name, folder / f"{name}.gz") if candidate.is_file()]
    return require(found[:1] or [root / f"{name}.gz"], str(root), MNIST_DOWNLOADS[name], download, fetch,
                   f"save {name}.gz (or the extracted {name}) into {root}")[0]


def mnist_files(root: str, split: str = "test", download: bool = False, fetch: bool = True) -> list[Path]:
    """Locator of :func:`mnist`: the images and labels files of the split (``all``: train's, then test's),
    each gzipped (``.gz``) or extracted, in ``root`` or torchvision's ``root/MNIST/raw``."""
    check_split(split, ("train", "test", "all"), "mnist")
    splits = ("train", "test") if split == "all" else (split,)
    return [_idx_file(Path(root), name, download, fetch) for s in splits for name in MNIST_NAMES[s]]


def read_idx(path: Path, magic: int) -> np.ndarray:
    """The uint8 array of an idx file (gzipped when its name ends in ``.gz``), its magic number and its size
    checked against ``magic`` and the dimensions in its header; a ValueError names the file and the fix."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as err:  # gzip.BadGzipFile is an OSError
        raise InputError(f"{path}: not a readable gzip file ({err}); download it again, or drop the .gz from "
                         "its name if it is already extracted") from err
    found = int.from_bytes(raw[:4], "big") if len(raw) >= 4 else None
    if found != magic:
        hint = (f"it is gzip-compressed: name it {path.name}.gz or gunzip it" if raw[:2] == GZIP_MAGIC
                else "is it the right file (images: idx3, labels: idx1), downloaded whole?")
        shown = "none (shorter than 4 bytes)" if found is None else f"0x{found:08x}"
        raise InputError(f"{path}: magic number {shown}, expected 0x{magic:08x} (idx, unsigned bytes, "
                         f"{magic & 0xFF} dimension(s)); {hint}")
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    shape = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(shape))
    if len(raw) != expected:
        raise InputError(f"{path}: the header says {'×'.join(map(str, shape))} bytes of data ({expected} bytes in "
                         f"all) but the file holds {len(raw)}; it is truncated or corrupt: download it again")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def mnist(root: str, size: int, split: str = "test", download: bool = False) -> Arrays:
    """MNIST's idx files (``train-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, …; gzipped or not): gray
    N×28×28 → 3 channels, labels 0..9. ``split``: ``train`` (60,000), ``test`` (10,000) or ``all`` (both, in that
    order). Fashion-MNIST and KMNIST ship the same files and read the same way (``download`` fetches MNIST)."""
    files = mnist_files(root, split, download)
    images, labels = [], []
    for image_file, label_file in zip(files[::2], files[1::2]):
        pixels, targets = read_idx(image_file, IDX_IMAGES), read_idx(label_file, IDX_LABELS)
        if len(pixels) != len(targets):
            raise InputError(f"{image_file} holds {len(pixels)} images but {label_file} {len(targets)} labels; "
                             "are they of the same split and set?")
        images.append(resize_images(np.repeat(pixels[:, None], 3, axis=1), size))
        labels.append(targets.astype(np.int64))
    return np.concatenate(images), np.concatenate(labels)
