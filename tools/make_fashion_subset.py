"""Write the embedded Fashion-MNIST subset (ssad/data/fashion_mnist_subset/) from the full set's idx files.

A seeded draw (numpy default_rng(0)) of 5,000 training and 2,000 test images, all ten classes, written back in
Fashion-MNIST's own gzipped idx format so that the ``mnist`` reader reads it like the full set. The full files
come from Debian's ``dataset-fashion-mnist`` package (``apt-get install dataset-fashion-mnist``) or the
authors' repository. Fashion-MNIST: Copyright 2017 Zalando SE, MIT (Expat) licence; the notice travels in
``ssad/data/fashion_mnist_subset/LICENSE``.

Usage: ``python tools/make_fashion_subset.py [SOURCE_FOLDER]`` (default /usr/share/datasets/fashion-mnist).
"""

from __future__ import annotations

import gzip
import sys
from pathlib import Path

import numpy as np

from ssad.data.readers.benchmarks import IDX_IMAGES, IDX_LABELS, MNIST_NAMES, read_idx
from ssad.data.readers.embedded import FASHION_SUBSET_DIR

SIZES = {"train": 5000, "test": 2000}


def write_idx(path: Path, array: np.ndarray, magic: int) -> None:
    """``array`` (uint8) as an idx file: magic, one big-endian int32 per dimension, the bytes; gzipped with a
    fixed timestamp so that the same subset gives the same file."""
    header = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, compresslevel=9) as f:
        f.write(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes())


def main(source: Path) -> None:
    rng = np.random.default_rng(0)
    FASHION_SUBSET_DIR.mkdir(exist_ok=True)
    for split, n in SIZES.items():
        image_name, label_name = MNIST_NAMES[split]
        images = read_idx(source / f"{image_name}.gz", IDX_IMAGES)
        labels = read_idx(source / f"{label_name}.gz", IDX_LABELS)
        keep = rng.permutation(len(images))[:n]
        write_idx(FASHION_SUBSET_DIR / f"{image_name}.gz", images[keep], IDX_IMAGES)
        write_idx(FASHION_SUBSET_DIR / f"{label_name}.gz", labels[keep], IDX_LABELS)
        print(f"{split}: {n} images, per class {np.bincount(labels[keep], minlength=10).tolist()}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "/usr/share/datasets/fashion-mnist"))
