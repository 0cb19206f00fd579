"""Readers of the real formats, fed tiny files written in each format (no downloads)."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
import torch.nn.functional as F
from PIL import Image

from ssad.data.readers import arrays, benchmarks, downloads, embedded
from ssad.data.readers.images import image_folder, load_image, resize_images
from ssad.data.sources import FORMATS, ArraySet, check_source, load_source

RNG = np.random.default_rng(0)


def random_images(n: int, side: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 3, side, side), dtype=np.uint8)


def pil_bicubic(image: Image.Image, size: int) -> np.ndarray:
    """PIL's bicubic resize to size×size, as uint8 3×size×size."""
    return np.asarray(image.resize((size, size), Image.Resampling.BICUBIC)).transpose(2, 0, 1)


def write_pickle(path: Path, obj: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)


# ------------------------------------------------------------------------------------------- resizing
def test_resize_is_identity_at_the_same_size():
    images = random_images(3, 8)
    assert np.array_equal(resize_images(images, 8), images)


def test_resize_down_is_antialiased_bicubic_like_pil():
    images = random_images(2, 40)
    out = resize_images(images, 16)
    assert out.shape == (2, 3, 16, 16) and out.dtype == np.uint8
    pil = np.stack([pil_bicubic(Image.fromarray(im.transpose(1, 2, 0)), 16) for im in images])
    assert np.abs(out.astype(int) - pil).max() <= 1


def test_resize_up_is_bicubic_in_bounded_chunks(monkeypatch):
    images = random_images(5, 8)
    expected = F.interpolate(torch.from_numpy(images).float(), size=(20, 20), mode="bicubic")
    expected = expected.round().clamp(0, 255).to(torch.uint8).numpy()
    monkeypatch.setattr("ssad.data.readers.images.RESIZE_BUDGET", 3 * 20 * 20 * 2)  # two images per chunk
    assert np.array_equal(resize_images(images, 20), expected)
    flat = np.full((1, 3, 8, 8), 77, dtype=np.uint8)
    assert (resize_images(flat, 20) == 77).all()


# ------------------------------------------------------------------------------------------- CIFAR
def write_cifar10(root: Path, train: np.ndarray, train_labels: np.ndarray, test: np.ndarray) -> None:
    base = root / "cifar-10-batches-py"
    for i, (chunk, labels) in enumerate(zip(np.array_split(train, 5), np.array_split(train_labels, 5)), 1):
        batch = {b"data": chunk.reshape(len(chunk), -1), b"labels": list(labels)}
        write_pickle(base / f"data_batch_{i}", batch)
    write_pickle(base / "test_batch", {b"data": test.reshape(len(test), -1), b"labels": [3] * len(test)})


def test_cifar10_reads_planar_batches_in_order(tmp_path):
    train, labels, test = random_images(7, 32, 1), RNG.integers(0, 10, 7), random_images(2, 32, 2)
    write_cifar10(tmp_path, train, labels, test)
    images, read_labels = benchmarks.cifar10(str(tmp_path), 32, split="train")
    assert np.array_equal(images, train) and np.array_equal(read_labels, labels)
    assert read_labels.dtype == np.int64
    # planar RGB: the first 1024 bytes of a row are the red plane, row by row
    row = train[0].reshape(-1)
    assert np.array_equal(images[0, 0], row[:1024].reshape(32, 32))
    assert np.array_equal(images[0, 2], row[2048:].reshape(32, 32))
    images, read_labels = benchmarks.cifar10(str(tmp_path), 16, split="test")
    assert np.array_equal(images, resize_images(test, 16)) and list(read_labels) == [3, 3]


def test_cifar10_classes_keep_only_those_labels(tmp_path):
    train, labels = random_images(6, 32), np.array([0, 1, 2, 0, 1, 2])
    write_cifar10(tmp_path, train, labels, random_images(1, 32))
    kept = load_source({"format": "cifar10", "root": str(tmp_path), "classes": [2]}, 32)
    assert kept.labels.tolist() == [2, 2] and np.array_equal(np.asarray(kept.images), train[[2, 5]])


def test_cifar100_fine_labels_python2_style_str_keys(tmp_path):
    data = random_images(3, 32, 3)
    base = tmp_path / "cifar-100-python"
    batch = {"data": data.reshape(3, -1), "fine_labels": [99, 0, 42], "coarse_labels": [1, 2, 3]}
    write_pickle(base / "test", batch)
    images, labels = benchmarks.cifar100(str(tmp_path), 32, split="test")
    assert np.array_equal(images, data) and list(labels) == [99, 0, 42]


@pytest.mark.parametrize("fmt, expected", [("cifar10", "cifar-10-batches-py/data_batch_1"),
                                           ("cifar100", "cifar-100-python/train")])
def test_missing_cifar_names_the_path_and_the_fix(tmp_path, fmt, expected):
    spec = {"format": fmt, "root": str(tmp_path), "split": "train"}
    for call in (lambda: check_source(spec), lambda: FORMATS[fmt](str(tmp_path), 32)):
        with pytest.raises(FileNotFoundError, match="download=true") as err:
            call()
        assert str(tmp_path / expected) in str(err.value)
    check_source({**spec, "download": True})  # will be downloaded: not an error at start-up


def test_download_fetches_missing_files_once_and_reports_failure(tmp_path, monkeypatch):
    import torchvision.datasets.utils as tv_utils

    fetched = []

    def fake_archive(url, download_root, md5=None):  # stands in for the network: writes the extracted files
        fetched.append((url, md5))
        write_cifar10(Path(download_root), random_images(5, 32), np.arange(5), random_images(1, 32))

    monkeypatch.setattr(tv_utils, "download_and_extract_archive", fake_archive)
    spec = {"format": "cifar10", "root": str(tmp_path / "c10"), "download": True}
    check_source(spec)
    assert not fetched  # the start-up check never downloads
    assert len(load_source(spec, 32)) == 5 and len(load_source(spec, 32)) == 5
    assert fetched == [(downloads.CIFAR10_DOWNLOAD.url, "c58f30108f718f92721af3b95e74349a")]

    def offline(*args, **kwargs):
        raise OSError("Name or service not known")

    monkeypatch.setattr(tv_utils, "download_and_extract_archive", offline)
    with pytest.raises(FileNotFoundError, match="could not download .*cifar-100-python.tar.gz"):
        benchmarks.cifar100(str(tmp_path), 32, download=True)


# ------------------------------------------------------------------------------------------- SVHN, STL10
def test_svhn_mat_layout_and_label_10_is_digit_0(tmp_path):
    images = random_images(4, 32, 4)
    scipy.io.savemat(tmp_path / "test_32x32.mat", {"X": images.transpose(2, 3, 1, 0),
                                                   "y": np.array([[10], [1], [9], [10]], dtype=np.uint8)})
    read, labels = benchmarks.svhn(str(tmp_path), 32)
    assert np.array_equal(read, images) and list(labels) == [0, 1, 9, 0]
    with pytest.raises(FileNotFoundError, match="train_32x32.mat"):
        benchmarks.svhn(str(tmp_path), 32, split="train")


def test_stl10_column_major_binary(tmp_path):
    images = random_images(3, 96, 5)
    base = tmp_path / "stl10_binary"
    base.mkdir()
    images.transpose(0, 1, 3, 2).tofile(base / "test_X.bin")  # each channel stored column by column
    np.array([1, 10, 5], dtype=np.uint8).tofile(base / "test_y.bin")
    images[:1].transpose(0, 1, 3, 2).tofile(base / "unlabeled_X.bin")
    read, labels = benchmarks.stl10(str(tmp_path), 96)
    assert np.array_equal(read, images) and list(labels) == [0, 9, 4]
    read, labels = benchmarks.stl10(str(tmp_path), 32, split="unlabeled")
    assert read.shape == (1, 3, 32, 32) and labels is None
    with pytest.raises(FileNotFoundError, match="stl10_binary/train_X.bin"):
        check_source({"format": "stl10", "root": str(tmp_path), "split": "train"})


# ------------------------------------------------------------------------------------------- image folders
def save(path: Path, image: Image.Image, **kwargs) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, **kwargs)


def test_load_image_converts_every_mode_to_rgb(tmp_path):
    rgb = RNG.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    gray16 = (np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000)
    palette = Image.fromarray(rgb).quantize(colors=16)
    cmyk = Image.new("CMYK", (8, 8), (0, 255, 255, 0))
    cases = {
        "rgb.png": (Image.fromarray(rgb), rgb),
        "rgba.png": (Image.fromarray(np.dstack([rgb, np.full((8, 8), 9, np.uint8)])), rgb),  # alpha dropped
        "gray.png": (Image.fromarray(rgb[..., 0]), np.repeat(rgb[..., :1], 3, axis=2)),
        "la.png": (Image.fromarray(rgb[..., :2].copy(), mode="LA"), np.repeat(rgb[..., :1], 3, axis=2)),
        "gray16.png": (Image.fromarray(gray16), np.repeat((gray16 / 257).round()[..., None], 3, 2)),
        "palette.png": (palette, np.asarray(palette.convert("RGB"))),
        "bw.png": (Image.fromarray(rgb[..., 0] > 127), np.repeat(np.where(rgb[..., :1] > 127, 255, 0), 3, 2)),
        "cmyk.tif": (cmyk, np.broadcast_to(np.array([255, 0, 0]), (8, 8, 3))),
    }
    for name, (image, expected) in cases.items():
        save(tmp_path / name, image)
        loaded = load_image(tmp_path / name, 8)
        assert loaded.shape == (3, 8, 8) and loaded.dtype == np.uint8, name
        assert np.array_equal(loaded.transpose(1, 2, 0), expected), name
    assert Image.open(tmp_path / "gray16.png").mode == "I;16"


def test_load_image_resizes_to_a_square_with_pil_bicubic(tmp_path):
    image = Image.fromarray(RNG.integers(0, 256, (20, 40, 3), dtype=np.uint8))
    save(tmp_path / "wide.jpg", image, quality=95)
    loaded = load_image(tmp_path / "wide.jpg", 16)
    assert np.array_equal(loaded, pil_bicubic(Image.open(tmp_path / "wide.jpg").convert("RGB"), 16))


def write_labelled_folder(root: Path) -> dict[str, np.ndarray]:
    """Two class folders of lossless 8×8 images (one 16-bit gray, one RGBA) and one JPEG."""
    pixels = {name: RNG.integers(0, 256, (8, 8, 3), dtype=np.uint8) for name in ("cat/1.png", "dog/2.png")}
    for name, rgb in pixels.items():
        save(root / name, Image.fromarray(rgb))
    save(root / "cat/3.png", Image.fromarray(np.full((8, 8), 257 * 40, dtype=np.uint16)))
    save(root / "dog/4.bmp", Image.fromarray(np.full((8, 8, 4), 200, dtype=np.uint8)))
    save(root / "dog/5.jpeg", Image.fromarray(RNG.integers(0, 256, (30, 30, 3), dtype=np.uint8)))
    (root / "dog/notes.txt").write_text("not an image, not listed")
    save(root / "dog/.hidden.png", Image.fromarray(pixels["cat/1.png"]))
    return pixels


def test_image_folder_labels_from_sorted_subfolders(tmp_path):
    pixels = write_labelled_folder(tmp_path)
    images, labels = image_folder(str(tmp_path), 8)
    assert images.shape == (5, 3, 8, 8) and list(labels) == [0, 0, 1, 1, 1]  # cat/1 cat/3 dog/2 dog/4 dog/5
    assert np.array_equal(images[0].transpose(1, 2, 0), pixels["cat/1.png"])
    assert (images[1] == 40).all() and (images[3] == 200).all()
    assert np.array_equal(images[2].transpose(1, 2, 0), pixels["dog/2.png"])


def test_image_folder_without_class_layout_has_no_labels(tmp_path):
    save(tmp_path / "top.png", Image.new("RGB", (5, 5)))
    save(tmp_path / "a/b/deep.png", Image.new("RGB", (5, 5)))
    images, labels = image_folder(str(tmp_path), 4)
    assert images.shape == (2, 3, 4, 4) and labels is None


def test_unreadable_files_are_listed_by_name(tmp_path):
    write_labelled_folder(tmp_path)
    (tmp_path / "cat/broken.png").write_bytes(b"this is not a png")
    jpeg = tmp_path / "full.jpg"
    save(jpeg, Image.fromarray(RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8)))
    (tmp_path / "dog/truncated.jpg").write_bytes(jpeg.read_bytes()[: jpeg.stat().st_size // 2])
    jpeg.unlink()
    with pytest.raises(ValueError, match="on_error=skip") as err:
        image_folder(str(tmp_path), 8)
    assert "broken.png" in str(err.value) and "truncated.jpg" in str(err.value)
    with pytest.warns(UserWarning, match="broken.png") as caught:
        images, labels = image_folder(str(tmp_path), 8, on_error="skip")
    assert "truncated.jpg" in str(caught[0].message)
    assert len(images) == 5 and list(labels) == [0, 0, 1, 1, 1]


def test_empty_or_missing_folder_is_a_clear_error(tmp_path):
    (tmp_path / "notes.txt").write_text("no images here")
    with pytest.raises(FileNotFoundError, match="no image files"):
        image_folder(str(tmp_path), 8)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        check_source({"format": "lsun", "root": str(tmp_path / "lsun")})


@pytest.mark.parametrize("fmt", ["places365", "lsun", "tinyimagenet", "imagenet30"])
def test_folder_datasets_read_the_given_folder(tmp_path, fmt):
    pixels = write_labelled_folder(tmp_path / fmt)
    images, labels = FORMATS[fmt](str(tmp_path / fmt), 8)
    assert np.array_equal(images[0].transpose(1, 2, 0), pixels["cat/1.png"]) and len(labels) == 5


@pytest.mark.parametrize("layout", ["dtd/images", "dtd/dtd/images"])  # the archive's and torchvision's
def test_dtd_texture_classes(tmp_path, layout):
    for cls in ("banded", "zigzagged"):
        save(tmp_path / layout / cls / f"{cls}_0001.jpg", Image.new("RGB", (60, 50), (10, 200, 30)))
    images, labels = benchmarks.dtd(str(tmp_path), 16)
    assert images.shape == (2, 3, 16, 16) and list(labels) == [0, 1]
    assert np.abs(images[:, 1].astype(int) - 200).max() <= 3  # JPEG of a flat colour


# ------------------------------------------------------------------------------------------- .npy
@pytest.mark.parametrize("layout", ["hwc", "chw", "gray", "hw1", "1hw"])
def test_npy_layouts_round_trip(tmp_path, layout):
    chw = random_images(5, 6, 7)
    if layout in ("gray", "hw1", "1hw"):
        chw = np.repeat(chw[:, :1], 3, axis=1)
    stored = {"hwc": chw.transpose(0, 2, 3, 1), "chw": chw, "gray": chw[:, 0], "hw1": chw[:, 0, :, :, None],
              "1hw": chw[:, :1]}[layout]
    np.save(tmp_path / "x.npy", np.ascontiguousarray(stored))
    images, labels = arrays.npy(str(tmp_path / "x.npy"), 6)
    assert np.array_equal(images, chw) and labels is None
    images, _ = arrays.npy(str(tmp_path / "x.npy"), 12)
    assert np.array_equal(images, resize_images(chw, 12))


@pytest.mark.parametrize("array, found", [(np.zeros((2, 8, 8, 4), np.uint8), r"\(2, 8, 8, 4\)"),
                                          (np.zeros((2, 8, 8, 3), np.float32), "float32"),
                                          (np.zeros((2, 8), np.uint8), r"\(2, 8\)")])
def test_npy_bad_arrays_name_what_was_found_and_what_is_accepted(tmp_path, array, found):
    np.save(tmp_path / "bad.npy", array)
    for call in (lambda: arrays.npy(str(tmp_path / "bad.npy"), 8),
                 lambda: check_source({"format": "npy", "path": str(tmp_path / "bad.npy")})):
        with pytest.raises(ValueError, match=found) as err:
            call()
        assert "N×H×W×3" in str(err.value)


# ------------------------------------------------------------------------------------------- ImageNet pickles
def test_imagenet_pickle_batches_sorted_numerically_labels_shifted(tmp_path):
    batches = {k: random_images(2, 8, k) for k in (1, 2, 10)}
    for k, data in batches.items():
        write_pickle(tmp_path / f"train_data_batch_{k}", {"data": data.reshape(2, -1), "labels": [k, 1000]})
    write_pickle(tmp_path / "val_data", {"data": batches[1].reshape(2, -1), "labels": [1, 500]})
    images, labels = arrays.imagenet_pickle(str(tmp_path), 8)
    assert np.array_equal(images, np.concatenate([batches[1], batches[2], batches[10]]))
    assert list(labels) == [0, 999, 1, 999, 9, 999]
    images, labels = arrays.imagenet_pickle(str(tmp_path), 32, split="val")
    assert images.shape == (2, 3, 32, 32) and list(labels) == [0, 499]


def test_imagenet_pickle_missing_names_the_expected_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="train_data_batch_1") as err:
        check_source({"format": "imagenet_pickle", "root": str(tmp_path)})
    assert str(tmp_path) in str(err.value)


# ------------------------------------------------------------------------------------------- embedded sets
def test_digits_split_is_deterministic_stratified_and_restricted():
    train, train_labels = embedded.digits(8, "train")
    test, test_labels = embedded.digits(8, "test")
    assert len(train) + len(test) == 1797 and abs(len(test) / 1797 - 0.3) < 0.01
    assert np.array_equal(embedded.digits(8, "test")[0], test)
    share = [np.bincount(labels) / len(labels) for labels in (train_labels, test_labels)]
    assert np.allclose(*share, atol=0.01)
    assert train.max() == 255 and (train[:, 0] == train[:, 2]).all()
    held_out = load_source({"format": "digits", "split": "test", "classes": [5, 9]}, 32)
    assert held_out.images.shape[1:] == (3, 32, 32) and set(held_out.labels) == {5, 9}
    assert len(held_out) == int(np.isin(test_labels, [5, 9]).sum())
    with pytest.raises(ValueError, match=r"classes \[12\] do not occur"):
        load_source({"format": "digits", "classes": [12]}, 8)


def test_npy_labels_and_classes_keep_only_those_labels(tmp_path):
    """The class-split protocol on a labelled array set: `labels: PATH` and `classes: [...]`."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (12, 28, 28), dtype=np.uint8)  # gray, any size
    labels = np.arange(12) % 4
    np.save(tmp_path / "x.npy", images)
    np.save(tmp_path / "y.npy", labels)
    spec = {"format": "npy", "path": str(tmp_path / "x.npy"), "labels": str(tmp_path / "y.npy")}
    full = load_source(spec, 16, str(tmp_path / "cache"))
    assert full.labels.tolist() == labels.tolist() and full.images.shape == (12, 3, 16, 16)
    kept = load_source({**spec, "classes": [1, 3]}, 16, str(tmp_path / "cache"))
    assert kept.labels.tolist() == [1, 3] * 3
    assert np.array_equal(np.asarray(kept.images), np.asarray(full.images)[labels % 2 == 1])
    np.save(tmp_path / "column.npy", labels[:, None])  # Keras writes labels as (N, 1)
    column = load_source({**spec, "labels": str(tmp_path / "column.npy"), "classes": [1, 3]}, 16)
    assert column.labels.tolist() == [1, 3] * 3
    np.save(tmp_path / "short.npy", labels[:5])
    with pytest.raises(ValueError, match="expected 12 integers"):
        load_source({**spec, "labels": str(tmp_path / "short.npy")}, 16)
    with pytest.raises(ValueError, match="needs labels"):
        load_source({"format": "npy", "path": str(tmp_path / "x.npy"), "classes": [1]}, 16)
    with pytest.raises(ValueError, match="non-empty list of integer"):
        load_source({**spec, "classes": "1"}, 16)


def test_sklearn_photos_and_synthetic():
    photos, labels = embedded.sklearn_photos(16, n=6, crop=40, seed=1)
    assert photos.shape == (6, 3, 16, 16) and labels is None
    assert np.array_equal(embedded.sklearn_photos(16, n=6, crop=40, seed=1)[0], photos)
    images, labels = embedded.synthetic(8, n=10, num_classes=3)
    assert images.shape == (10, 3, 8, 8) and labels.dtype == np.int64 and labels.max() < 3


# ------------------------------------------------------------------------------------------- specs
def test_load_source_checks_the_spec():
    with pytest.raises(ValueError, match="choose one of"):
        load_source({"format": "emnist"}, 8)  # not a format
    with pytest.raises(ValueError, match=r"'digits'.*unknown \['colour'\].*split='train'"):
        load_source({"format": "digits", "colour": "red"}, 8)
    with pytest.raises(ValueError, match=r"missing \['root'\]"):
        check_source({"format": "cifar10"})
    data = load_source({"format": "synthetic", "n": 4, "name": "noise"}, 8)
    assert isinstance(data, ArraySet) and len(data) == 4 and data.name == "noise"
