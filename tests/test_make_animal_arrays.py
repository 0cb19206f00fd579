"""tools/make_animal_arrays.py on a wheel written in the package's real layout (gzipped NumPy pickles)."""

import gzip
import pickle
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent.parent / "tools"))
from make_animal_arrays import MEMBERS, main  # noqa: E402


def write_wheel(path: Path, images: np.ndarray, labels: np.ndarray) -> None:
    with zipfile.ZipFile(path, "w") as wheel:
        for key, array in (("images", images), ("labels", labels)):
            wheel.writestr(MEMBERS[key], gzip.compress(pickle.dumps(array)))


def test_splits_the_silhouettes_into_training_and_test_arrays(tmp_path):
    labels = np.repeat(np.arange(10), 1000)
    images = np.broadcast_to(labels[:, None, None], (10000, 28, 28)).astype(np.uint8)  # filled with its label
    write_wheel(tmp_path / "a.whl", images, labels)
    main(str(tmp_path / "a.whl"), str(tmp_path / "out"))
    tr_x, tr_y, te_x, te_y = (np.load(tmp_path / "out" / f"{n}.npy") for n in ("tr_x", "tr_y", "te_x", "te_y"))
    assert tr_x.shape == (8000, 28, 28) and te_x.shape == (2000, 28, 28) and tr_x.dtype == np.uint8
    assert np.array_equal(tr_x[:, 0, 0], tr_y) and np.array_equal(te_x[:, 0, 0], te_y)  # images keep their labels
    assert sorted(np.concatenate([tr_y, te_y]).tolist()) == labels.tolist()  # every image once
    assert not np.array_equal(tr_y[:1000], labels[:1000])  # shuffled, not the package's order


def test_refuses_a_wheel_of_another_shape(tmp_path):
    write_wheel(tmp_path / "a.whl", np.zeros((5, 28, 28), np.uint8), np.zeros(5, np.int64))
    with pytest.raises(SystemExit, match="expected 10,000"):
        main(str(tmp_path / "a.whl"), str(tmp_path / "out"))
