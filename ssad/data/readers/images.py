"""Image files and folders, and the one resize every reader uses (docs/reference/datasets.md).

The reader contract (every module of ``ssad.data`` that reads a set follows it): a reader takes ``size`` plus its
own keyword arguments and returns :data:`Arrays` ``(images, labels)``: uint8 images N×3×size×size and int64
labels (N,) or None. Each image is brought to ``size`` with ONE bicubic interpolation and nothing else (resize
and JPEG artefacts are known shortcuts for OOD scores). Readers of files on disk have a ``*_files`` companion
(a "locator") that finds the files the reader will read without decoding anything.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from ssad.cli.errors import ConfigError, InputError, MissingFileError, UserError
from ssad.data.readers.walk import walk_once
from ssad.utils.console import progress_bar

Arrays = tuple[np.ndarray, np.ndarray | None]

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm",
                              ".pgm"})
RESIZE_BUDGET = 1 << 24  # float32 elements per interpolation chunk (64 MiB)
PROGRESS_MIN_FILES = 1000
DECODE_THREADS = 4
LISTED_BAD_FILES = 20


# ----------------------------------------------------------------------------------------------- resizing
def resize_images(images: np.ndarray, size: int) -> np.ndarray:
    """uint8 N×3×h×w → N×3×size×size by bicubic interpolation (torch, antialiased when shrinking), rounded
    and clamped to uint8. Works through chunks of bounded memory, so ``images`` may be a memory map.
    Identity (a contiguous copy) when the images already have that size."""
    import torch  # here: the image files are read without PyTorch (scoring an .onnx detector)
    import torch.nn.functional as F

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


def _walk_images(root: Path) -> Iterator[Path]:
    """Image files under ``root`` (recursive, symlinks followed, each real folder once; hidden files and folders
    such as macOS ``._*`` resource forks or ``.ipynb_checkpoints`` skipped), in directory order."""
    for folder, names in walk_once(root, skip_hidden=True):
        for name in names:
            if Path(name).suffix.lower() in IMAGE_EXTENSIONS:
                yield folder / name


def list_images(path: str | os.PathLike) -> list[Path]:
    """Image files under ``path`` (recursive, sorted; see :data:`IMAGE_EXTENSIONS`)."""
    root = Path(path)
    if not root.is_dir():
        raise MissingFileError(f"image folder {root} does not exist (or is not a folder); give a folder of images")
    return sorted(_walk_images(root))


def _decode(path: Path, size: int) -> np.ndarray | str:
    """The image, or why it could not be read (any decoder failure makes the file unusable)."""
    try:
        return load_image(path, size)
    except Exception as err:  # PIL raises OSError, ValueError, SyntaxError, EOFError... on bad files
        return f"{type(err).__name__}: {err}"


class UnreadableFilesError(UserError, ValueError):
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
    an image) are all collected and listed by name: ``on_error="raise"`` raises one :class:`UnreadableFilesError`
    listing them, ``"skip"`` warns and leaves them out; when none is left, an :class:`InputError` says so."""
    if on_error not in ("raise", "skip"):
        raise ConfigError(f"on_error={on_error!r}: choose 'raise' or 'skip'")
    out = np.empty((len(files), 3, size, size), dtype=np.uint8)
    bad: dict[int, str] = {}
    with ThreadPoolExecutor(max_workers=min(DECODE_THREADS, os.cpu_count() or 1)) as pool:
        results = pool.map(partial(_decode, size=size), files)
        show = len(files) > PROGRESS_MIN_FILES
        for i, result in enumerate(progress_bar(results, desc, show, total=len(files))):
            if isinstance(result, str):
                bad[i] = result
            else:
                out[i] = result
    if bad:
        _report_unreadable({files[i]: why for i, why in bad.items()}, len(files), on_error)
    kept = [i for i in range(len(files)) if i not in bad]
    if not kept:
        where = f" under {Path(os.path.commonpath(files))}" if files else ""
        raise InputError(f"none of the {len(files)} image files{where} could be read (e.g. {files[0]}: {bad[0]}); "
                         "repair them or point the path at a folder of readable images")
    return (out if len(kept) == len(files) else out[kept]), kept


def image_folder_files(path: str | os.PathLike) -> list[Path]:
    """Locator of :func:`image_folder`: ``[path]`` when it is a folder holding at least one image file."""
    root = Path(path)
    kinds = ", ".join(sorted(IMAGE_EXTENSIONS))
    if not root.is_dir():
        found = "is a file, not a folder" if root.exists() else "does not exist"
        raise MissingFileError(f"image folder {root} {found}; put the images there (any depth, {kinds}) or point "
                               "the path at them")
    if next(_walk_images(root), None) is None:
        other = next((folder / name for folder, names in walk_once(root, skip_hidden=True) for name in names), None)
        held = f"it holds other files, e.g. {other.relative_to(root)}" if other else "it is empty"
        raise MissingFileError(f"image folder {root} holds no image files ({kinds}, searched recursively): {held}; "
                               "put the images there or point the path at the folder that holds them")
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
