"""Embedded sets that need no download (the quick-start, the tests, benchmarks of speed): a subset of
Fashion-MNIST shipped with ssad, scikit-learn's handwritten digits and its two sample photos, and uniformly random
images. The rendered letters live in :mod:`ssad.data.readers.glyphs`. Readers follow the contract of
:mod:`ssad.data.readers.images`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ssad.cli.errors import ConfigError
from ssad.data.readers.benchmarks import mnist
from ssad.data.readers.downloads import check_split
from ssad.data.readers.images import Arrays, resize_images

FASHION_SUBSET_DIR = Path(__file__).parents[1] / "fashion_mnist_subset"  # in ssad/data/ (package data)


def fashion_mnist_subset(size: int, split: str = "train") -> Arrays:
    """The Fashion-MNIST subset shipped with ssad (Xiao et al. 2017; Zalando SE, MIT licence): a seeded draw of
    5,000 training and 2,000 test images of all ten classes (``tools/make_fashion_subset.py``), stored in
    the set's own gzipped idx files and read by :func:`ssad.data.readers.benchmarks.mnist`; labels 0..9."""
    check_split(split, ("train", "test"), "fashion_mnist_subset")
    return mnist(str(FASHION_SUBSET_DIR), size, split)


def digits(size: int, split: str = "train", test_fraction: float = 0.3, seed: int = 0) -> Arrays:
    """scikit-learn's embedded handwritten digits (1,797 images, 8×8, values 0..16 → 0..255, gray → RGB),
    a deterministic stratified train/test split; labels are the digit values."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    check_split(split, ("train", "test"), "digits")
    data = load_digits()
    train_idx, test_idx = train_test_split(np.arange(len(data.target)), test_size=test_fraction,
                                           random_state=seed, stratify=data.target)
    idx = np.sort(train_idx if split == "train" else test_idx)
    gray = (data.images[idx] * (255.0 / 16.0)).round().astype(np.uint8)
    return resize_images(np.repeat(gray[:, None], 3, axis=1), size), data.target[idx].astype(np.int64)


def sklearn_photos(size: int, n: int = 500, crop: int = 64, seed: int = 0) -> Arrays:
    """``n`` random square crops (side ``crop`` px) of scikit-learn's two embedded photos (china, flower;
    427×640), alternating between them: a far-OOD set for the quick-start. No labels."""
    from sklearn.datasets import load_sample_images

    photos = [np.asarray(p, dtype=np.uint8) for p in load_sample_images().images]
    if not 1 <= crop <= min(min(p.shape[:2]) for p in photos) or n < 1:
        raise ConfigError(f"sklearn_photos: n={n}, crop={crop}; need n ≥ 1 and 1 ≤ crop ≤ 427")
    rng = np.random.default_rng(seed)
    crops = np.empty((n, 3, crop, crop), dtype=np.uint8)
    for i in range(n):
        photo = photos[i % len(photos)]
        top = rng.integers(0, photo.shape[0] - crop + 1)
        left = rng.integers(0, photo.shape[1] - crop + 1)
        crops[i] = photo[top:top + crop, left:left + crop].transpose(2, 0, 1)
    return resize_images(crops, size), None


def synthetic(size: int, n: int = 1000, num_classes: int = 10, seed: int = 0) -> Arrays:
    """``n`` uniformly random uint8 images with random labels in 0..num_classes-1 (benchmarks, tests)."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, 3, size, size), dtype=np.uint8)
    return images, rng.integers(0, num_classes, n, dtype=np.int64)
