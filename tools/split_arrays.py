"""The class-split ``.npy`` files the experiments' set builders write (make_animal_arrays, make_mnist_arrays): a
labelled image set split by a seeded permutation into training and test arrays, the inputs of README's
class-split command line."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def write_split(images: np.ndarray, labels: np.ndarray, out: str, n_train: int) -> None:
    """Shuffle ``images`` (N×H×W) and ``labels`` (N) by numpy default_rng(0) and write the first ``n_train`` as
    ``OUT/tr_x.npy`` (uint8) and ``tr_y.npy`` (int64), the rest as ``te_x.npy`` and ``te_y.npy``."""
    order = np.random.default_rng(0).permutation(len(images))
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, index in (("tr", order[:n_train]), ("te", order[n_train:])):
        np.save(folder / f"{prefix}_x.npy", images[index].astype(np.uint8))
        np.save(folder / f"{prefix}_y.npy", labels[index].astype(np.int64))
    print(f"wrote {folder}/{{tr,te}}_{{x,y}}.npy: {n_train} training and {len(images) - n_train} test images")
