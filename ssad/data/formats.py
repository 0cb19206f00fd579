"""Readers of the real on-disk formats (DESIGN.md, "Data").

Every reader takes ``size`` plus its own keyword arguments and returns ``(images, labels)``: uint8 images
N×3×size×size and int64 labels (N,) or None. Each image is brought to ``size`` with ONE bicubic
interpolation and nothing else (resize and JPEG artefacts are known shortcuts for OOD scores).

Readers of files on disk have a ``*_files`` companion (a "locator") that finds the files the reader will
read without decoding anything. ``fetch=False`` never downloads and is the cheap start-up check; the readers
themselves call it with ``fetch=True``, which downloads where ``download=True`` and the files are missing.

Pickle-based formats (CIFAR, downsampled ImageNet) are read with a restricted unpickler
(:func:`ssad.safe_load.load_data_pickle`): only the builtin and NumPy types these formats hold, so a crafted
batch file is refused, naming the file, before anything in it runs.
"""

from __future__ import annotations

import math
import os
import re
import warnings
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps
from tqdm.auto import tqdm

from ssad.safe_load import load_data_pickle

Arrays = tuple[np.ndarray, np.ndarray | None]

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm",
                              ".pgm"})
RESIZE_BUDGET = 1 << 24  # float32 elements per interpolation chunk (64 MiB)
PROGRESS_MIN_FILES = 1000
DECODE_THREADS = 4
LISTED_BAD_FILES = 20
NPY_LAYOUTS = "uint8 N×H×W×3 (HWC), N×3×H×W (CHW) or N×H×W (gray)"


# ----------------------------------------------------------------------------------------------- resizing
def resize_images(images: np.ndarray, size: int) -> np.ndarray:
    """uint8 N×3×h×w → N×3×size×size by bicubic interpolation (torch, antialiased when shrinking), rounded
    and clamped to uint8. Works through chunks of bounded memory, so ``images`` may be a memory map.
    Identity (a contiguous copy) when the images already have that size."""
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"resize_images expects N×3×h×w images, got shape {images.shape}")
    height, width = images.shape[-2:]
    if (height, width) == (size, size):
        return np.ascontiguousarray(images, dtype=np.uint8)
    out = np.empty((len(images), 3, size, size), dtype=np.uint8)
    chunk = max(1, RESIZE_BUDGET // (3 * max(height * width, size * size)))
    shrink = height > size or width > size
    for start in range(0, len(images), chunk):
        x = torch.from_numpy(np.array(images[start:start + chunk], dtype=np.float32))
        y = F.interpolate(x, size=(size, size), mode="bicubic", align_corners=False, antialias=shrink)
        out[start:start + chunk] = y.round_().clamp_(0, 255).to(torch.uint8).numpy()
    return out


# ----------------------------------------------------------------------------------------------- image files
def to_rgb(image: Image.Image) -> Image.Image:
    """Any PIL mode as 8-bit RGB. 16-bit gray (I;16*) is scaled to 8 bits (v/257); 32-bit ``I`` is read as
    16-bit when it exceeds 255, else as 8-bit; float ``F`` as [0, 1] when its maximum is ≤ 1, else [0, 255].
    Palettes are expanded through RGBA (no transparency warning); alpha is dropped, not composited, as
    torchvision's image loader does, so pixels match the common OOD benchmarks' loading."""
    if image.mode.startswith("I;16") or image.mode in ("I", "F"):
        return Image.fromarray(_gray_to_uint8(image)).convert("RGB")
    if image.mode in ("P", "PA"):
        image = image.convert("RGBA")
    return image.convert("RGB")


def _gray_to_uint8(image: Image.Image) -> np.ndarray:
    values = np.asarray(image, dtype=np.float64)
    if image.mode == "F":
        top = 1.0 if values.size and values.max() <= 1.0 else 255.0
    else:
        top = 65535.0 if image.mode.startswith("I;16") or (values.size and values.max() > 255) else 255.0
    return (values * (255.0 / top)).round().clip(0, 255).astype(np.uint8)


def load_image(path: str | os.PathLike, size: int) -> np.ndarray:
    """One image file → uint8 3×size×size: decoded with PIL, EXIF orientation applied, any mode converted to
    RGB (:func:`to_rgb`), then ONE bicubic resize to a square (PIL; antialiased when shrinking). The aspect
    ratio is not kept, as in the authors' evaluation of CIFAR-sized images."""
    with Image.open(path) as image:
        image.load()
        ImageOps.exif_transpose(image, in_place=True)
        rgb = to_rgb(image)
    if rgb.size != (size, size):
        rgb = rgb.resize((size, size), Image.Resampling.BICUBIC)
    return np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8).transpose(2, 0, 1))


def _is_hidden(name: str) -> bool:
    return name.startswith(".")


def _walk_images(root: Path) -> Iterator[Path]:
    """Image files under ``root`` (recursive, symlinks followed; hidden files and folders such as macOS
    ``._*`` resource forks or ``.ipynb_checkpoints`` skipped), in directory order."""
    for folder, subfolders, names in os.walk(root, followlinks=True):
        subfolders[:] = [d for d in subfolders if not _is_hidden(d)]
        for name in names:
            if not _is_hidden(name) and Path(name).suffix.lower() in IMAGE_EXTENSIONS:
                yield Path(folder) / name


def list_images(path: str | os.PathLike) -> list[Path]:
    """Image files under ``path`` (recursive, sorted; see :data:`IMAGE_EXTENSIONS`)."""
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder {root} does not exist (or is not a folder)")
    return sorted(_walk_images(root))


def _decode(path: Path, size: int) -> np.ndarray | str:
    """The image, or why it could not be read (any decoder failure makes the file unusable)."""
    try:
        return load_image(path, size)
    except Exception as err:  # PIL raises OSError, ValueError, SyntaxError, EOFError... on bad files
        return f"{type(err).__name__}: {err}"


class UnreadableFilesError(ValueError):
    """Image files that could not be decoded, listed by name, with the setting that leaves them out. A reader
    knows only its own ``on_error`` argument; a command that sets it under another key re-raises the error
    with that key (:meth:`with_remedy`), so the message names the override that works there."""

    def __init__(self, listing: str, override: str = "on_error=skip") -> None:
        self.listing, self.override = listing, override
        super().__init__(f"{listing}. Repair or remove them, or set {override} to leave them out.")

    def with_remedy(self, override: str) -> UnreadableFilesError:
        """The same error, naming ``override`` (e.g. ``data.on_error=skip``) as the way to skip the files."""
        return UnreadableFilesError(self.listing, override)


def _report_unreadable(bad: dict[Path, str], total: int, on_error: str) -> None:
    """Raise (``on_error="raise"``) or warn (``"skip"``) with the unreadable files by name and why."""
    listed = "; ".join(f"{path} ({why})" for path, why in list(bad.items())[:LISTED_BAD_FILES])
    more = f"; and {len(bad) - LISTED_BAD_FILES} more" if len(bad) > LISTED_BAD_FILES else ""
    message = f"{len(bad)} of {total} image files could not be read: {listed}{more}"
    if on_error == "raise":
        raise UnreadableFilesError(message)
    warnings.warn(f"{message}. Skipping them (on_error=skip).", stacklevel=3)


def load_images(files: Sequence[Path], size: int, on_error: str = "raise",
                desc: str = "images") -> tuple[np.ndarray, list[int]]:
    """Decode ``files`` to uint8 N×3×size×size (a small thread pool; a progress bar over 1000 files).

    Returns the images and the indices of ``files`` that decoded. Unreadable files (corrupt, truncated, not
    an image) are all collected and listed by name: ``on_error="raise"`` raises one ValueError listing them,
    ``"skip"`` warns and leaves them out."""
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error={on_error!r}: choose 'raise' or 'skip'")
    out = np.empty((len(files), 3, size, size), dtype=np.uint8)
    bad: dict[int, str] = {}
    with ThreadPoolExecutor(max_workers=min(DECODE_THREADS, os.cpu_count() or 1)) as pool:
        results = pool.map(partial(_decode, size=size), files)
        quiet = len(files) <= PROGRESS_MIN_FILES
        for i, result in enumerate(tqdm(results, total=len(files), desc=desc, leave=False, disable=quiet)):
            if isinstance(result, str):
                bad[i] = result
            else:
                out[i] = result
    if bad:
        _report_unreadable({files[i]: why for i, why in bad.items()}, len(files), on_error)
    kept = [i for i in range(len(files)) if i not in bad]
    if not kept:
        raise ValueError(f"none of the {len(files)} image files could be read")
    return (out if len(kept) == len(files) else out[kept]), kept


def image_folder_files(path: str | os.PathLike) -> list[Path]:
    """Locator of :func:`image_folder`: ``[path]`` when it is a folder holding at least one image file."""
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder {root} does not exist; put the images there (any depth, "
                                f"{', '.join(sorted(IMAGE_EXTENSIONS))}) or point the path at them")
    if next(_walk_images(root), None) is None:
        raise FileNotFoundError(f"image folder {root} holds no image files "
                                f"({', '.join(sorted(IMAGE_EXTENSIONS))}, searched recursively)")
    return [root]


def _folder_labels(root: Path, files: Sequence[Path]) -> np.ndarray | None:
    """Class indices (sorted first-level subfolder names) when every image sits in such a subfolder."""
    parts = [f.relative_to(root).parts for f in files]
    if not all(len(p) == 2 for p in parts):
        return None
    classes = {name: i for i, name in enumerate(sorted({p[0] for p in parts}))}
    return np.array([classes[p[0]] for p in parts], dtype=np.int64)


def image_folder(path: str, size: int, on_error: str = "raise") -> Arrays:
    """A folder of image files, recursive, any size and mode (see :func:`load_image`). If every image lies
    in a first-level subfolder, the labels are the indices of the sorted subfolder names, else None.
    ``on_error``: ``raise`` (default) or ``skip`` unreadable files, which are listed by name either way."""
    root = image_folder_files(path)[0]
    files = list_images(root)
    labels = _folder_labels(root, files)
    images, kept = load_images(files, size, on_error, desc=root.name)
    return images, (None if labels is None else labels[kept])


def folder_root_files(root: str) -> list[Path]:
    """Locator of the image-folder datasets given by ``root``."""
    return image_folder_files(root)


def places365(root: str, size: int, on_error: str = "raise") -> Arrays:
    """Places365 as OOD set: any folder of images, e.g. the 10,000-image subset of the OOD benchmarks
    (``places365/<class>/*.jpg``, labels from the class folders) or torchvision's flat ``val_256``."""
    return image_folder(root, size, on_error)


def lsun(root: str, size: int, on_error: str = "raise") -> Arrays:
    """LSUN as OOD set: a folder of images, read as given. The presets (ssad/conf/data) expect the "resize"
    variant (LSUN_resize: 10,000 test scenes downsampled to 32×32, from the ODIN release); "crop" (LSUN_C:
    random patches of the full-size scenes) is another variant in the literature and scores differently."""
    return image_folder(root, size, on_error)


def tinyimagenet(root: str, size: int, on_error: str = "raise") -> Arrays:
    """TinyImageNet as OOD set: a folder of images, read as given. The presets (ssad/conf/data) expect the
    "resize" variant (TIN_resize / Imagenet_resize: 10,000 test images downsampled to 32×32, from the ODIN
    release); "crop" (TIN_C: random patches) is another variant. Its classes overlap ImageNet negatives."""
    return image_folder(root, size, on_error)


def imagenet30(root: str, size: int, on_error: str = "raise") -> Arrays:
    """ImageNet30 (Hendrycks et al. 2019) test split: ``<root>/<class>/**/*.JPEG`` (30 class folders, labels
    from their sorted names; nested images get no labels). Its classes overlap ImageNet negatives."""
    return image_folder(root, size, on_error)


# ----------------------------------------------------------------------------------------------- downloads
@dataclass(frozen=True)
class Download:
    """An official download: an archive extracted into the root, or a single file saved there."""

    url: str
    md5: str
    extract: bool = True

    def fetch(self, root: Path) -> None:
        from torchvision.datasets.utils import download_and_extract_archive, download_url

        try:
            if self.extract:
                download_and_extract_archive(self.url, str(root), md5=self.md5)
            else:
                download_url(self.url, str(root), md5=self.md5)
        except (OSError, RuntimeError) as err:  # no network, HTTP errors (URLError), md5 mismatch
            raise FileNotFoundError(f"could not download {self.url} into {root} ({err}); fetch it by hand, "
                                    "place it there (extracted) and set download=false") from err


CIFAR10_DOWNLOAD = Download("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
                            "c58f30108f718f92721af3b95e74349a")
CIFAR100_DOWNLOAD = Download("https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
                             "eb9058c3a382ffc7106e4002c42a8d85")
SVHN_DOWNLOADS = {
    "train": Download("http://ufldl.stanford.edu/housenumbers/train_32x32.mat",
                      "e26dedcc434d2e4c54c9b2d4a06d8373", extract=False),
    "test": Download("http://ufldl.stanford.edu/housenumbers/test_32x32.mat",
                     "eb5a983be6a315427106f1b164d9cef3", extract=False),
    "extra": Download("http://ufldl.stanford.edu/housenumbers/extra_32x32.mat",
                      "a93ce644f1a588dc4d68dda5feec44a7", extract=False),
}
STL10_DOWNLOAD = Download("http://ai.stanford.edu/~acoates/stl10/stl10_binary.tar.gz",
                          "91f7769df0f17e558f3565bffb0c7dfb")
DTD_DOWNLOAD = Download("https://www.robots.ox.ac.uk/~vgg/data/dtd/download/dtd-r1.0.1.tar.gz",
                        "fff73e5086ae6bdbea199a49dfb8a4c1")


def _require(files: list[Path], root: str, source: Download, download: bool, fetch: bool,
             how: str) -> list[Path]:
    """``files`` when they all exist. Missing ones are downloaded when ``download`` (and ``fetch``; without
    it they are expected to be downloaded later), else a FileNotFoundError names them and the fix."""
    missing = [f for f in files if not f.exists()]
    if missing and download:
        if not fetch:
            return files
        source.fetch(Path(root))
        missing = [f for f in files if not f.exists()]
    if missing:
        raise FileNotFoundError(f"missing {', '.join(str(f) for f in missing)}; {how} (from {source.url}), "
                                "or set download=true where the network allows")
    return files


def _check_split(split: str, choices: Sequence[str], dataset: str) -> None:
    if split not in choices:
        raise ValueError(f"{dataset}: split={split!r}; choose one of {list(choices)}")


# ----------------------------------------------------------------------------------------------- CIFAR
def _unpickle(path: Path) -> dict[str, Any]:
    """A pickled dict with str keys, whether written by Python 2 (CIFAR) or Python 3 (bytes or str keys), read
    with the restricted unpickler (anything but builtin and NumPy data types is refused, naming the file)."""
    data = load_data_pickle(path)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a pickled dict, found {type(data).__name__}")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in data.items()}


def _load_batch(path: Path) -> dict[str, Any]:
    """A batch dict from a pickle, or from the ``.npz`` edition of the downsampled-ImageNet batches."""
    if path.suffix != ".npz":
        return _unpickle(path)
    with np.load(path) as archive:
        return {key: archive[key] for key in archive.files}


def _read_planar_batches(files: Sequence[Path], label_key: str, size: int, label_offset: int = 0) -> Arrays:
    """Batches with ``data`` uint8 N×(3·s·s) planar RGB (s inferred) and labels under ``label_key``."""
    images, labels = [], []
    for path in files:
        batch = _load_batch(path)
        data = np.asarray(batch["data"], dtype=np.uint8)
        side = math.isqrt(data.shape[1] // 3) if data.ndim == 2 else 0
        if data.ndim != 2 or 3 * side * side != data.shape[1]:
            raise ValueError(f"{path}: 'data' of shape {data.shape} is not N×(3·s·s) planar RGB")
        batch_labels = np.asarray(batch[label_key], dtype=np.int64).reshape(-1) - label_offset
        if len(batch_labels) != len(data):
            raise ValueError(f"{path}: {len(data)} images but {len(batch_labels)} labels")
        images.append(resize_images(data.reshape(-1, 3, side, side), size))
        labels.append(batch_labels)
    return np.concatenate(images), np.concatenate(labels)


def cifar10_files(root: str, split: str = "train", download: bool = False, fetch: bool = True) -> list[Path]:
    """Locator of :func:`cifar10`: ``root/cifar-10-batches-py/data_batch_1..5`` or ``test_batch``."""
    _check_split(split, ("train", "test"), "cifar10")
    names = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    files = [Path(root) / "cifar-10-batches-py" / n for n in names]
    return _require(files, root, CIFAR10_DOWNLOAD, download, fetch,
                    f"extract cifar-10-python.tar.gz into {root} (torchvision's layout)")


def cifar10(root: str, size: int, split: str = "train", download: bool = False) -> Arrays:
    """CIFAR10 in torchvision's on-disk format (read without torchvision's md5 checks)."""
    return _read_planar_batches(cifar10_files(root, split, download), "labels", size)


def cifar100_files(root: str, split: str = "train", download: bool = False, fetch: bool = True) -> list[Path]:
    """Locator of :func:`cifar100`: ``root/cifar-100-python/train`` or ``test``."""
    _check_split(split, ("train", "test"), "cifar100")
    return _require([Path(root) / "cifar-100-python" / split], root, CIFAR100_DOWNLOAD, download, fetch,
                    f"extract cifar-100-python.tar.gz into {root} (torchvision's layout)")


def cifar100(root: str, size: int, split: str = "train", download: bool = False) -> Arrays:
    """CIFAR100 in torchvision's on-disk format, fine labels (0..99)."""
    return _read_planar_batches(cifar100_files(root, split, download), "fine_labels", size)


# ----------------------------------------------------------------------------------------------- SVHN, STL10
def svhn_files(root: str, split: str = "test", download: bool = False, fetch: bool = True) -> list[Path]:
    """Locator of :func:`svhn`: ``root/{split}_32x32.mat``."""
    _check_split(split, tuple(SVHN_DOWNLOADS), "svhn")
    return _require([Path(root) / f"{split}_32x32.mat"], root, SVHN_DOWNLOADS[split], download, fetch,
                    f"save {split}_32x32.mat into {root}")


def svhn(root: str, size: int, split: str = "test", download: bool = False) -> Arrays:
    """SVHN cropped digits (``{split}_32x32.mat``: X 32×32×3×N, y 1..10 with 10 for the digit 0 → 0..9)."""
    from scipy.io import loadmat

    path = svhn_files(root, split, download)[0]
    mat = loadmat(path)
    images = np.ascontiguousarray(np.asarray(mat["X"], dtype=np.uint8).transpose(3, 2, 0, 1))
    return resize_images(images, size), np.asarray(mat["y"], dtype=np.int64).reshape(-1) % 10


def stl10_files(root: str, split: str = "test", download: bool = False, fetch: bool = True) -> list[Path]:
    """Locator of :func:`stl10`: ``root/stl10_binary/{split}_X.bin``."""
    _check_split(split, ("train", "test", "unlabeled"), "stl10")
    return _require([Path(root) / "stl10_binary" / f"{split}_X.bin"], root, STL10_DOWNLOAD, download, fetch,
                    f"extract stl10_binary.tar.gz into {root}")


def stl10(root: str, size: int, split: str = "test", download: bool = False) -> Arrays:
    """STL10 binary format: ``{split}_X.bin`` uint8, each channel a column-major 96×96 plane, and
    ``{split}_y.bin`` labels 1..10 → 0..9 (None for ``unlabeled`` or when the file is absent)."""
    x_path = stl10_files(root, split, download)[0]
    raw = np.fromfile(x_path, dtype=np.uint8)
    if raw.size % (3 * 96 * 96):
        raise ValueError(f"{x_path}: {raw.size} bytes is not a whole number of 3×96×96 images")
    images = resize_images(raw.reshape(-1, 3, 96, 96).transpose(0, 1, 3, 2), size)
    y_path = x_path.with_name(f"{split}_y.bin")
    if not y_path.is_file():
        return images, None
    labels = np.fromfile(y_path, dtype=np.uint8).astype(np.int64) - 1
    if len(labels) != len(images):
        raise ValueError(f"{y_path}: {len(labels)} labels for {len(images)} images")
    return images, labels


# ----------------------------------------------------------------------------------------------- DTD
def dtd_files(root: str, download: bool = False, fetch: bool = True) -> list[Path]:
    """Locator of :func:`dtd`: ``root/dtd/images`` (the archive's layout), or torchvision's
    ``root/dtd/dtd/images``."""
    candidates = [Path(root) / "dtd" / "images", Path(root) / "dtd" / "dtd" / "images"]
    found = [c for c in candidates if c.is_dir()]
    files = found[:1] or candidates[:1]
    return _require(files, root, DTD_DOWNLOAD, download, fetch,
                    f"extract dtd-r1.0.1.tar.gz into {root} (giving dtd/images/<class>/*.jpg)")


def dtd(root: str, size: int, on_error: str = "raise", download: bool = False) -> Arrays:
    """Texture (DTD): all 5,640 images of ``root/dtd/images/<class>/*.jpg`` (47 classes), as the OOD
    benchmarks use them."""
    return image_folder(str(dtd_files(root, download)[0]), size, on_error)


# ----------------------------------------------------------------------------------------------- .npy
def _npy_layout(array: np.ndarray, path: Path) -> str:
    """``hwc``, ``chw`` or ``gray``; a ValueError naming what was found otherwise."""
    found = f"{path}: found dtype {array.dtype}, shape {array.shape}; accepted: {NPY_LAYOUTS}"
    if array.dtype != np.uint8 or len(array) == 0:
        raise ValueError(found)
    if array.ndim == 3:
        return "gray"
    if array.ndim == 4 and array.shape[-1] == 3:
        return "hwc"
    if array.ndim == 4 and array.shape[1] == 3:
        return "chw"
    raise ValueError(found)


def _open_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r")
    except ValueError as err:  # object arrays (pickles) cannot be memory-mapped
        raise ValueError(f"{path}: not a plain array file ({err}); accepted: {NPY_LAYOUTS}") from err


def npy_files(path: str, labels: str | None = None) -> list[Path]:
    """Locator of :func:`npy`: the file (and the labels file), whose headers (shape, dtype) are checked without
    reading the data."""
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"array file {file} does not exist; save your images there with np.save "
                                f"({NPY_LAYOUTS})")
    images = _open_npy(file)
    _npy_layout(images, file)
    if labels is None:
        return [file]
    label_file = Path(labels)
    if not label_file.is_file():
        raise FileNotFoundError(f"labels file {label_file} does not exist; save the {len(images)} integer labels "
                                f"of {file} there with np.save")
    found = _open_npy(label_file)
    if found.shape != (len(images),) or not np.issubdtype(found.dtype, np.integer):
        raise ValueError(f"{label_file}: found dtype {found.dtype}, shape {found.shape}; expected {len(images)} "
                         f"integers (one label per image of {file}, shape ({len(images)},))")
    return [file, label_file]


def _as_chw(chunk: np.ndarray, layout: str) -> np.ndarray:
    if layout == "gray":
        return np.repeat(chunk[:, None], 3, axis=1)
    return chunk.transpose(0, 3, 1, 2) if layout == "hwc" else chunk


def npy(path: str, size: int, labels: str | None = None) -> Arrays:
    """A ``.npy`` uint8 image array: N×H×W×3 (HWC, e.g. the 300K random images file, 300000×32×32×3),
    N×3×H×W, or N×H×W (gray → 3 channels), of any H×W. Memory-mapped and converted chunk by chunk. When the
    last axis and the second are both 3, HWC is assumed. ``labels``: an optional ``.npy`` of N integers."""
    files = npy_files(path, labels)
    file = files[0]
    array = _open_npy(file)
    layout = _npy_layout(array, file)
    height, width = array.shape[1:3] if layout != "chw" else array.shape[2:4]
    chunk = max(1, RESIZE_BUDGET // (3 * height * width))
    out = np.empty((len(array), 3, size, size), dtype=np.uint8)
    for start in range(0, len(array), chunk):
        out[start:start + chunk] = resize_images(_as_chw(array[start:start + chunk], layout), size)
    return out, (np.load(files[1]).astype(np.int64) if labels is not None else None)


# ----------------------------------------------------------------------------------------------- ImageNet
def _batch_number(path: Path) -> int:
    return int(re.fullmatch(r"train_data_batch_(\d+)(\.npz)?", path.name).group(1))


def imagenet_pickle_files(root: str, split: str = "train") -> list[Path]:
    """Locator of :func:`imagenet_pickle`: every ``train_data_batch_<k>`` (sorted by k) or ``val_data``;
    the ``.npz`` editions of the same files are accepted too."""
    _check_split(split, ("train", "val"), "imagenet_pickle")
    base = Path(root)
    pattern = r"train_data_batch_\d+(\.npz)?" if split == "train" else r"val_data(\.npz)?"
    files = [p for p in base.glob("*") if re.fullmatch(pattern, p.name) and p.is_file()]
    if not files:
        expected = "train_data_batch_1 … train_data_batch_10" if split == "train" else "val_data"
        raise FileNotFoundError(f"imagenet_pickle: no {expected} under {base}; put the downsampled-ImageNet "
                                "batches there (Imagenet32_train.zip / Imagenet32_val.zip from "
                                "image-net.org, unzipped)")
    return sorted(files, key=_batch_number) if split == "train" else files[:1]


def imagenet_pickle(root: str, size: int, split: str = "train") -> Arrays:
    """Downsampled ImageNet (Chrabaszcz et al. 2017, any side s: 8, 16, 32, 64): batches each holding a dict
    with ``data`` uint8 N×(3·s·s) planar RGB and ``labels`` 1..1000 (→ 0..999)."""
    return _read_planar_batches(imagenet_pickle_files(root, split), "labels", size, label_offset=1)


# ----------------------------------------------------------------------------------------------- embedded
def digits(size: int, split: str = "train", test_fraction: float = 0.3, seed: int = 0) -> Arrays:
    """scikit-learn's embedded handwritten digits (1,797 images, 8×8, values 0..16 → 0..255, gray → RGB),
    a deterministic stratified train/test split; labels are the digit values."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    _check_split(split, ("train", "test"), "digits")
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
        raise ValueError(f"sklearn_photos: n={n}, crop={crop}; need n ≥ 1 and 1 ≤ crop ≤ 427")
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

