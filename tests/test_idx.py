"""MNIST's idx reader on tiny files written in the real format: big-endian header (magic, dimensions), then bytes;
gzipped or not, in the root or torchvision's MNIST/raw layout."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from ssad.data.readers.benchmarks import mnist
from ssad.data.readers.downloads import MNIST_DOWNLOADS
from ssad.data.sources import check_source, load_source

NAMES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
         "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def idx_bytes(array: np.ndarray, magic: int | None = None) -> bytes:
    """``array`` (uint8) as an idx file: magic 0x0000 08 <ndim>, each dimension as a big-endian uint32, the data."""
    magic = 0x0800 | array.ndim if magic is None else magic
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def write_idx(path: Path, array: np.ndarray, gz: bool, magic: int | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = idx_bytes(array, magic)
    target = path.with_name(path.name + ".gz") if gz else path
    target.write_bytes(gzip.compress(data) if gz else data)
    return target


def write_split(root: Path, split: str, n: int, gz: bool, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    pixels, labels = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), rng.integers(0, 10, n, dtype=np.uint8)
    images_name, labels_name = NAMES[split]
    write_idx(root / images_name, pixels, gz)
    write_idx(root / labels_name, labels, gz)
    return pixels, labels


def test_gzipped_and_plain_files_round_trip_and_all_is_train_then_test(tmp_path):
    train, train_labels = write_split(tmp_path, "train", 5, gz=True, seed=1)
    test, test_labels = write_split(tmp_path, "test", 3, gz=False, seed=2)
    images, labels = mnist(str(tmp_path), 28, split="test")
    assert images.shape == (3, 3, 28, 28) and images.dtype == np.uint8
    assert all(np.array_equal(images[:, c], test) for c in range(3))  # gray → the same three channels
    assert labels.dtype == np.int64 and list(labels) == list(test_labels)
    images, labels = mnist(str(tmp_path), 28, split="all")
    assert np.array_equal(images[:, 0], np.concatenate([train, test]))
    assert list(labels) == [*train_labels, *test_labels]
    resized = load_source({"format": "mnist", "root": str(tmp_path), "split": "train"}, 32)
    assert resized.images.shape == (5, 3, 32, 32) and list(resized.labels) == list(train_labels)


def test_torchvision_layout_is_found(tmp_path):
    test, _ = write_split(tmp_path / "MNIST" / "raw", "test", 2, gz=False)
    assert np.array_equal(mnist(str(tmp_path), 28)[0][:, 1], test)


def test_wrong_magic_names_the_file_and_the_expected_number(tmp_path):
    write_split(tmp_path, "test", 2, gz=True)
    labels_file = write_idx(tmp_path / NAMES["test"][1], np.zeros(2, np.uint8), gz=True, magic=0x00000803)
    with pytest.raises(ValueError, match="magic number 0x00000803, expected 0x00000801") as err:
        mnist(str(tmp_path), 28)
    assert str(labels_file) in str(err.value)


def test_swapped_or_misnamed_files_say_what_to_do(tmp_path):
    write_split(tmp_path, "test", 2, gz=False)
    images_file = tmp_path / NAMES["test"][0]
    images_file.write_bytes(gzip.compress(images_file.read_bytes()))  # gzipped, but named as extracted
    with pytest.raises(ValueError, match=f"gzip-compressed: name it {images_file.name}.gz or gunzip it"):
        mnist(str(tmp_path), 28)
    images_file.unlink()
    (tmp_path / f"{images_file.name}.gz").write_bytes(b"<html>not found</html>")  # a failed download
    with pytest.raises(ValueError, match="not a readable gzip file.*download it again"):
        mnist(str(tmp_path), 28)


def test_truncated_file_and_count_mismatch_are_clear_errors(tmp_path):
    write_split(tmp_path, "test", 4, gz=False)
    images_file, labels_file = (tmp_path / name for name in NAMES["test"])
    whole = images_file.read_bytes()
    images_file.write_bytes(whole[:-100])
    with pytest.raises(ValueError, match="4×28×28 bytes of data .* truncated or corrupt") as err:
        mnist(str(tmp_path), 28)
    assert str(images_file) in str(err.value)
    images_file.write_bytes(whole)
    write_idx(labels_file, np.zeros(3, np.uint8), gz=False)
    with pytest.raises(ValueError, match="4 images but .*t10k-labels-idx1-ubyte 3 labels"):
        mnist(str(tmp_path), 28)


def test_missing_files_and_bad_split_fail_at_start_up(tmp_path):
    with pytest.raises(FileNotFoundError, match="t10k-images-idx3-ubyte.gz.*download=true"):
        check_source({"format": "mnist", "root": str(tmp_path)})
    write_split(tmp_path, "test", 2, gz=True)
    check_source({"format": "mnist", "root": str(tmp_path)})
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte"):
        check_source({"format": "mnist", "root": str(tmp_path), "split": "all"})
    with pytest.raises(ValueError, match=r"split='val'.*\['train', 'test', 'all'\]"):
        check_source({"format": "mnist", "root": str(tmp_path), "split": "val"})


def test_download_fetches_the_missing_gz_files(tmp_path, monkeypatch):
    import torchvision.datasets.utils as tv_utils

    fetched = []

    def fake_download(url, root, md5=None):  # stands in for the network: saves the file the url names
        fetched.append((url, md5))
        name = url.rsplit("/", 1)[1].removesuffix(".gz")
        array = np.zeros((2, 28, 28) if "images" in name else 2, dtype=np.uint8)
        write_idx(Path(root) / name, array, gz=True)

    monkeypatch.setattr(tv_utils, "download_url", fake_download)
    spec = {"format": "mnist", "root": str(tmp_path), "download": True}
    check_source(spec)
    assert not fetched  # the start-up check never downloads
    assert len(load_source(spec, 28)) == 2
    assert fetched == [(MNIST_DOWNLOADS[name].url, MNIST_DOWNLOADS[name].md5) for name in NAMES["test"]]
    assert fetched[0][0].endswith("/mnist/t10k-images-idx3-ubyte.gz")
