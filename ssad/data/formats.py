"""Readers of the real on-disk formats. Each returns ``(images, labels)``: uint8 N×3×size×size and int64
labels (N,) or None, brought to ``size`` with one bicubic interpolation (DESIGN.md "Data")."""

from __future__ import annotations

import pickle
import re
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm.auto import tqdm

Arrays = tuple[np.ndarray, "np.ndarray | None"]
IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
CIFAR = {
    "cifar10": ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"], b"labels",
                "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a"),
    "cifar100": ("cifar-100-python", ["train"], ["test"], b"fine_labels",
                 "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz", "eb9058c3a382ffc7106e4002c42a8d85"),
}


def resize_images(images: np.ndarray, size: int, chunk: int = 1024) -> np.ndarray:
    """uint8 N×3×h×w → N×3×size×size, bicubic (antialiased when shrinking), rounded and clamped."""
    if images.shape[-2:] == (size, size):
        return np.ascontiguousarray(images)
    out = np.empty((len(images), 3, size, size), dtype=np.uint8)
    shrink = min(images.shape[-2:]) > size
    for i in range(0, len(images), chunk):
        x = torch.from_numpy(np.ascontiguousarray(images[i:i + chunk])).float()
        y = F.interpolate(x, size=(size, size), mode="bicubic", align_corners=False, antialias=shrink)
        out[i:i + chunk] = y.round_().clamp_(0, 255).to(torch.uint8).numpy()
    return out


def to_rgb(image: Image.Image) -> Image.Image:
    """Any PIL mode to 8-bit RGB: 16/32-bit gray scaled to 8 bits, alpha dropped, palettes expanded."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        array = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") or array.max() > 255 else 255.0
        image = Image.fromarray((array / top * 255.0).round().clip(0, 255).astype(np.uint8))
    elif image.mode == "F":
        image = Image.fromarray((np.asarray(image).clip(0, 1) * 255).round().astype(np.uint8))
    return image.convert("RGB")


def load_image(path: str | Path, size: int) -> np.ndarray:
    """One image file → 3×size×size uint8 (bicubic; the aspect ratio is not kept)."""
    with Image.open(path) as image:
        image.load()
        rgb = to_rgb(image)
    if rgb.size != (size, size):
        rgb = rgb.resize((size, size), Image.Resampling.BICUBIC)
    return np.asarray(rgb, dtype=np.uint8).transpose(2, 0, 1)


def list_images(path: str | Path) -> list[Path]:
    """Image files under ``path`` (recursive, sorted)."""
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder {root} does not exist")
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())


def load_images(files: Sequence[Path], size: int, on_error: str = "raise",
                desc: str = "images") -> tuple[np.ndarray, list[int]]:
    """Decode ``files`` (thread pool, progress bar); returns the images and the indices that decoded.
    Unreadable files are listed by name: ``raise`` stops with all of them, ``skip`` warns and drops them."""
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error={on_error!r}: choose 'raise' or 'skip'")

    def decode(path: Path) -> np.ndarray | None:
        try:
            return load_image(path, size)
        except Exception:  # noqa: BLE001 - any decoder failure means an unusable file
            return None

    with ThreadPoolExecutor(max_workers=4) as pool:
        decoded = list(tqdm(pool.map(decode, files), total=len(files), desc=desc, disable=len(files) < 1000,
                            leave=False))
    bad = [str(f) for f, img in zip(files, decoded) if img is None]
    if bad and on_error == "raise":
        raise ValueError(f"{len(bad)} unreadable image file(s): {', '.join(bad[:20])}"
                         f"{' ...' if len(bad) > 20 else ''}; remove them or set on_error=skip")
    if bad:
        warnings.warn(f"skipping {len(bad)} unreadable image file(s): {', '.join(bad[:20])}", stacklevel=2)
    kept = [i for i, img in enumerate(decoded) if img is not None]
    if not kept:
        raise ValueError("no readable images")
    return np.stack([decoded[i] for i in kept]), kept


def image_folder(path: str, size: int, on_error: str = "raise") -> Arrays:
    """A folder of images, recursive, any size and mode. If every image sits in a first-level subfolder,
    labels are the indices of the sorted subfolder names; otherwise there are none."""
    files = list_images(path)
    if not files:
        raise FileNotFoundError(f"no image files ({', '.join(sorted(IMAGE_EXTENSIONS))}) under {path}")
    images, kept = load_images(files, size, on_error, desc=Path(path).name)
    files = [files[i] for i in kept]
    root = Path(path)
    parents = [f.relative_to(root).parts for f in files]
    if all(len(p) == 2 for p in parents):
        classes = sorted({p[0] for p in parents})
        return images, np.array([classes.index(p[0]) for p in parents], dtype=np.int64)
    return images, None


def dtd(root: str, size: int, on_error: str = "raise") -> Arrays:
    """Texture (DTD): all 5640 images of ``root/dtd/images/<class>/*.jpg``, as OOD benchmarks use."""
    return image_folder(str(Path(root) / "dtd" / "images"), size, on_error)


def places365(root: str, size: int, on_error: str = "raise") -> Arrays:
    """Places365: a folder of images (the OOD-benchmark subset, e.g. 10k test images)."""
    return image_folder(root, size, on_error)


def lsun(root: str, size: int, on_error: str = "raise") -> Arrays:
    """LSUN as OOD set: a folder of images; the paper's numbers use the "resize" variant (LSUN_resize)."""
    return image_folder(root, size, on_error)


def tinyimagenet(root: str, size: int, on_error: str = "raise") -> Arrays:
    """TinyImageNet as OOD set: a folder of images; the "resize" variant (TIN_resize, 10k test images)."""
    return image_folder(root, size, on_error)


def imagenet30(root: str, size: int, on_error: str = "raise") -> Arrays:
    """ImageNet30 test split: a folder of class subfolders (labels from their names)."""
    return image_folder(root, size, on_error)


def npy(path: str, size: int) -> Arrays:
    """A ``.npy`` uint8 array N×H×W×3 (HWC, e.g. the 300K random images file), N×3×H×W, or N×H×W (gray)."""
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"array file {file} does not exist")
    array = np.load(file, mmap_mode="r")
    if array.dtype != np.uint8:
        raise ValueError(f"{file}: dtype {array.dtype}; expected uint8 images (N×H×W×3, N×3×H×W or N×H×W)")
    if array.ndim == 3:
        array = np.repeat(array[:, None], 3, axis=1)
    elif array.ndim == 4 and array.shape[-1] == 3:
        array = array.transpose(0, 3, 1, 2)
    elif not (array.ndim == 4 and array.shape[1] == 3):
        raise ValueError(f"{file}: shape {array.shape}; expected N×H×W×3, N×3×H×W or N×H×W uint8 images")
    return resize_images(array, size), None


def _unpickle(path: Path) -> dict:
    with open(path, "rb") as f:
        return pickle.load(f, encoding="bytes")


def _cifar(name: str, root: str, split: str, size: int, download: bool) -> Arrays:
    folder, train_files, test_files, label_key, url, md5 = CIFAR[name]
    if split not in ("train", "test"):
        raise ValueError(f"{name} split={split!r}: choose 'train' or 'test'")
    base = Path(root) / folder
    files = [base / f for f in (train_files if split == "train" else test_files)]
    if not all(f.is_file() for f in files) and download:
        from torchvision.datasets.utils import download_and_extract_archive

        download_and_extract_archive(url, str(root), md5=md5)
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise FileNotFoundError(f"{name}: missing {', '.join(missing)}; put torchvision's {folder}/ under {root} "
                                f"or set download=true where the network allows")
    batches = [_unpickle(f) for f in files]
    images = np.concatenate([np.asarray(b[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32) for b in batches])
    labels = np.concatenate([np.asarray(b[label_key], dtype=np.int64) for b in batches])
    return resize_images(images, size), labels


def cifar10(root: str, size: int, split: str = "train", download: bool = False) -> Arrays:
    """CIFAR10 in torchvision's format: ``root/cifar-10-batches-py/data_batch_1..5, test_batch``."""
    return _cifar("cifar10", root, split, size, download)


def cifar100(root: str, size: int, split: str = "train", download: bool = False) -> Arrays:
    """CIFAR100 in torchvision's format: ``root/cifar-100-python/train, test`` (fine labels)."""
    return _cifar("cifar100", root, split, size, download)


def svhn(root: str, size: int, split: str = "test") -> Arrays:
    """SVHN: ``root/{split}_32x32.mat`` (X 32×32×3×N, y with 10 for the digit 0)."""
    from scipy.io import loadmat

    file = Path(root) / f"{split}_32x32.mat"
    if not file.is_file():
        raise FileNotFoundError(f"svhn: missing {file}; download {file.name} from the SVHN site into {root}")
    mat = loadmat(file)
    images = np.ascontiguousarray(mat["X"].transpose(3, 2, 0, 1)).astype(np.uint8)
    return resize_images(images, size), (mat["y"].reshape(-1).astype(np.int64) % 10)


def stl10(root: str, size: int, split: str = "test") -> Arrays:
    """STL10 binary format: ``root/stl10_binary/{split}_X.bin`` (column-major 96×96), ``{split}_y.bin``."""
    base = Path(root) / "stl10_binary"
    x_file, y_file = base / f"{split}_X.bin", base / f"{split}_y.bin"
    if not x_file.is_file():
        raise FileNotFoundError(f"stl10: missing {x_file}; extract stl10_binary.tar.gz under {root}")
    images = np.fromfile(x_file, dtype=np.uint8).reshape(-1, 3, 96, 96).transpose(0, 1, 3, 2)
    labels = np.fromfile(y_file, dtype=np.uint8).astype(np.int64) - 1 if y_file.is_file() else None
    return resize_images(images, size), labels


def imagenet_pickle(root: str, size: int, split: str = "train") -> Arrays:
    """Downsampled ImageNet (Chrabaszcz et al. 2017): pickled batches ``train_data_batch_1..10`` or
    ``val_data``, each a dict with ``data`` uint8 N×(3·s·s) planar RGB and ``labels`` 1..1000."""
    base = Path(root)
    if split == "train":
        files = sorted(base.glob("train_data_batch_*"), key=lambda p: int(re.sub(r"\D", "", p.name) or 0))
    else:
        files = [base / "val_data"] if (base / "val_data").is_file() else []
    if not files:
        raise FileNotFoundError(f"imagenet_pickle: no {'train_data_batch_1..10' if split == 'train' else 'val_data'}"
                                f" under {base}; put the downsampled-ImageNet pickle batches there")
    images, labels = [], []
    for f in files:
        with open(f, "rb") as handle:
            batch = pickle.load(handle)
        data = np.asarray(batch["data"], dtype=np.uint8)
        side = int(round((data.shape[1] // 3) ** 0.5))
        images.append(resize_images(data.reshape(-1, 3, side, side), size))
        labels.append(np.asarray(batch["labels"], dtype=np.int64) - 1)
    return np.concatenate(images), np.concatenate(labels)


def digits(size: int, split: str = "train", classes: Sequence[int] | None = None, test_fraction: float = 0.3,
           seed: int = 0) -> Arrays:
    """scikit-learn's embedded 8×8 handwritten digits (0..16 → 0..255, gray → RGB), a deterministic
    stratified train/test split, optionally restricted to ``classes`` (labels stay the digit values)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    images = (data.images * (255.0 / 16.0)).round().astype(np.uint8)
    idx_train, idx_test = train_test_split(np.arange(len(images)), test_size=test_fraction, random_state=seed,
                                           stratify=data.target)
    idx = np.sort(idx_train if split == "train" else idx_test)
    if classes is not None:
        idx = idx[np.isin(data.target[idx], list(classes))]
    gray = images[idx][:, None]
    return resize_images(np.repeat(gray, 3, axis=1), size), data.target[idx].astype(np.int64)


def sklearn_photos(size: int, n: int = 500, crop: int = 64, seed: int = 0) -> Arrays:
    """Random square crops of scikit-learn's two embedded photos (china, flower): far-OOD, no labels."""
    from sklearn.datasets import load_sample_images

    photos = [np.asarray(p) for p in load_sample_images().images]
    rng = np.random.default_rng(seed)
    crops = np.empty((n, 3, crop, crop), dtype=np.uint8)
    for i in range(n):
        photo = photos[i % len(photos)]
        y, x = rng.integers(0, photo.shape[0] - crop), rng.integers(0, photo.shape[1] - crop)
        crops[i] = photo[y:y + crop, x:x + crop].transpose(2, 0, 1)
    return resize_images(crops, size), None


def synthetic(size: int, n: int = 1000, num_classes: int = 10, seed: int = 0) -> Arrays:
    """Random uint8 images with random labels (benchmarks and tests)."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 3, size, size), dtype=np.uint8), rng.integers(0, num_classes, n)
