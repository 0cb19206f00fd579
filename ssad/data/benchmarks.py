"""The benchmark sets in their distributed formats: CIFAR10/100 (torchvision's pickles), SVHN (``.mat``), STL10
(binary) and Texture (DTD's image folders).

Each reader has a locator (``*_files``) that finds, and with ``download=True`` fetches, its files
(:mod:`ssad.data.downloads`); the readers follow the contract of :mod:`ssad.data.images`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ssad.data.arrays import read_planar_batches
from ssad.data.downloads import (
    CIFAR10_DOWNLOAD,
    CIFAR100_DOWNLOAD,
    DTD_DOWNLOAD,
    STL10_DOWNLOAD,
    SVHN_DOWNLOADS,
    check_split,
    require,
)
from ssad.data.images import Arrays, image_folder, resize_images


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


def cifar100(root: str, size: int, split: str = "train", download: bool = False) -> Arrays:
    """CIFAR100 in torchvision's on-disk format, fine labels (0..99)."""
    return read_planar_batches(cifar100_files(root, split, download), "fine_labels", size)


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
        raise ValueError(f"{x_path}: {raw.size} bytes is not a whole number of 3×96×96 images")
    images = resize_images(raw.reshape(-1, 3, 96, 96).transpose(0, 1, 3, 2), size)
    y_path = x_path.with_name(f"{split}_y.bin")
    if not y_path.is_file():
        return images, None
    labels = np.fromfile(y_path, dtype=np.uint8).astype(np.int64) - 1
    if len(labels) != len(images):
        raise ValueError(f"{y_path}: {len(labels)} labels for {len(images)} images")
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
