"""Every reader on tiny files written in its real on-disk format."""

import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.io import savemat

from ssad.data.datamodule import SSADDataModule
from ssad.data.readers import arrays, benchmarks
from ssad.data.readers.images import image_folder, resize_images
from ssad.data.sources import check_source, load_source

RNG = np.random.default_rng(0)


def _images(n, side=32):
    return RNG.integers(0, 256, (n, 3, side, side), dtype=np.uint8)


CIFAR = {"cifar10": ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"], b"labels"),
         "cifar100": ("cifar-100-python", ["train"], ["test"], b"fine_labels")}


def _write_cifar(root: Path, name: str, train: np.ndarray, test: np.ndarray) -> None:
    folder, train_files, test_files, label_key = CIFAR[name]
    (root / folder).mkdir(parents=True)
    for files, images in ((train_files, train), (test_files, test)):
        for i, file in enumerate(files):
            part = images[i::len(files)]
            batch = {b"data": part.reshape(len(part), -1), label_key: list(range(len(part)))}
            with open(root / folder / file, "wb") as f:
                pickle.dump(batch, f)


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_cifar_pickles_round_trip(tmp_path, name):
    train, test = _images(10), _images(3)
    _write_cifar(tmp_path, name, train, test)
    images, labels = getattr(benchmarks, name)(str(tmp_path), 32, split="test")
    assert np.array_equal(images, test) and labels.tolist() == [0, 1, 2]
    images, _ = getattr(benchmarks, name)(str(tmp_path), 32, split="train")
    assert len(images) == 10 and {img.tobytes() for img in images} == {img.tobytes() for img in train}


def test_cifar_missing_files_say_where_and_how(tmp_path):
    with pytest.raises(FileNotFoundError, match="cifar-10-batches-py.*download=true"):
        benchmarks.cifar10(str(tmp_path), 32, split="test")


def test_svhn_mat(tmp_path):
    images = _images(4)
    savemat(tmp_path / "test_32x32.mat", {"X": images.transpose(2, 3, 1, 0), "y": np.array([[10], [1], [2], [3]])})
    got, labels = benchmarks.svhn(str(tmp_path), 32)
    assert np.array_equal(got, images) and labels.tolist() == [0, 1, 2, 3]


def test_stl10_binary_column_major(tmp_path):
    images = _images(2, side=96)
    (tmp_path / "stl10_binary").mkdir()
    images.transpose(0, 1, 3, 2).tofile(tmp_path / "stl10_binary" / "test_X.bin")
    np.array([1, 10], dtype=np.uint8).tofile(tmp_path / "stl10_binary" / "test_y.bin")
    got, labels = benchmarks.stl10(str(tmp_path), 96)
    assert np.array_equal(got, images) and labels.tolist() == [0, 9]
    assert benchmarks.stl10(str(tmp_path), 32)[0].shape == (2, 3, 32, 32)


def test_imagenet_pickle_batches(tmp_path):
    images = [_images(3), _images(2)]
    for i, part in enumerate(images, start=1):
        with open(tmp_path / f"train_data_batch_{i}", "wb") as f:
            pickle.dump({"data": part.reshape(len(part), -1), "labels": [1, 1000, 5][: len(part)]}, f)
    got, labels = arrays.imagenet_pickle(str(tmp_path), 32)
    assert np.array_equal(got, np.concatenate(images)) and labels.tolist() == [0, 999, 4, 0, 999]
    with pytest.raises(FileNotFoundError, match="train_data_batch"):
        arrays.imagenet_pickle(str(tmp_path / "nothing"), 32)


def test_npy_layouts_and_bad_shapes(tmp_path):
    chw = _images(3)
    np.save(tmp_path / "hwc.npy", chw.transpose(0, 2, 3, 1))
    np.save(tmp_path / "chw.npy", chw)
    np.save(tmp_path / "gray.npy", chw[:, 0])
    np.save(tmp_path / "bad.npy", np.zeros((3, 32, 32, 5), dtype=np.uint8))
    np.save(tmp_path / "float.npy", np.zeros((3, 32, 32, 3), dtype=np.float32))
    assert np.array_equal(arrays.npy(str(tmp_path / "hwc.npy"), 32)[0], chw)
    assert np.array_equal(arrays.npy(str(tmp_path / "chw.npy"), 32)[0], chw)
    assert np.array_equal(arrays.npy(str(tmp_path / "gray.npy"), 32)[0][:, 2], chw[:, 0])
    with pytest.raises(ValueError, match=r"shape \(3, 32, 32, 5\)"):
        arrays.npy(str(tmp_path / "bad.npy"), 32)
    with pytest.raises(ValueError, match="dtype float32"):
        arrays.npy(str(tmp_path / "float.npy"), 32)


def test_image_folder_modes_labels_and_resize(tmp_path):
    root = tmp_path / "dtd" / "images"
    for cls in ("banded", "zigzag"):
        (root / cls).mkdir(parents=True)
    rgb = RNG.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(root / "banded" / "a.png")
    Image.fromarray(RNG.integers(0, 256, (40, 50, 4), dtype=np.uint8), "RGBA").save(root / "banded" / "b.png")
    Image.fromarray(np.full((10, 10), 65535, dtype=np.uint16)).save(root / "zigzag" / "c.png")
    Image.fromarray(RNG.integers(0, 256, (20, 20), dtype=np.uint8), "L").save(root / "zigzag" / "d.jpg")
    images, labels = benchmarks.dtd(str(tmp_path), 32)
    assert images.shape == (4, 3, 32, 32) and labels.tolist() == [0, 0, 1, 1]
    assert np.array_equal(images[0], rgb.transpose(2, 0, 1))  # same size: pixels kept exactly
    assert images[2].min() == 255  # 16-bit white stays white
    (root / "zigzag" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    with pytest.raises(ValueError, match="broken.png.*on_error=skip"):
        image_folder(str(root), 32)
    with pytest.warns(UserWarning, match="broken.png"):
        assert len(image_folder(str(root), 32, on_error="skip")[0]) == 4


def test_resize_is_one_bicubic_interpolation():
    images = _images(2, side=8)
    out = resize_images(images, 16)
    assert out.shape == (2, 3, 16, 16) and out.dtype == np.uint8
    flat = np.full((1, 3, 8, 8), 77, dtype=np.uint8)
    assert (resize_images(flat, 32) == 77).all()


def test_unknown_format_and_arguments_are_named():
    with pytest.raises(ValueError, match="unknown format 'cifar11'.*cifar10"):
        load_source({"format": "cifar11"}, 32)
    with pytest.raises(ValueError, match="'digits'.*unknown \\['root'\\]"):
        load_source({"format": "digits", "root": "x"}, 32)


def test_missing_ood_set_fails_at_start_up_saying_where(tmp_path):
    from hydra.utils import instantiate

    from tests.conftest import compose_cfg

    cfg = compose_cfg(tmp_path, "+data.ood.svhn={format: svhn, root: " + str(tmp_path / "svhn") + "}")
    datamodule: SSADDataModule = instantiate(cfg.data)
    with pytest.raises(FileNotFoundError, match="data.ood.svhn: .*test_32x32.mat"):
        datamodule.check_sources()
    with pytest.raises(FileNotFoundError):
        check_source({"format": "lsun", "root": str(tmp_path / "lsun")})
