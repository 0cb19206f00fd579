"""The one way images reach a detector: one input path (a folder, one image file or a ``.npy`` array) and one resize.

Every entry point (``python -m ssad.score``, :meth:`ssad.deploy.detector.Detector.score_files`, an in-memory
array given to :meth:`~ssad.deploy.detector.Detector.predict`, the ONNX scoring and the stand-alone script of
docs/howto/deploy-onnx.md) brings images to the training size with :func:`resize_to`: PIL's bicubic resize of the
decoded 8-bit RGB image, which is also what :func:`ssad.data.readers.images.load_image` does to an image file, so the
same PNG gets the same score whichever way it comes in.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from PIL import Image

from ssad.cli.errors import InputError, MissingFileError
from ssad.data.readers.images import IMAGE_EXTENSIONS, list_images, load_images

log = logging.getLogger(__name__)

THUMBNAIL_SIZE = 64  # at most this many pixels a side for the training thumbnails a detector file keeps


def resize_to(images: np.ndarray, size: int) -> np.ndarray:
    """uint8 N×3×h×w → N×3×size×size, each image by PIL's bicubic resize (antialiased when shrinking), as an image
    file is read (:func:`ssad.data.readers.images.load_image`). A contiguous copy when they have that size."""
    if images.ndim != 4 or images.shape[1] != 3 or images.dtype != np.uint8:
        raise ValueError(f"expected uint8 images of shape (N, 3, H, W), got {images.dtype} {tuple(images.shape)}")
    if images.shape[-2:] == (size, size):
        return np.ascontiguousarray(images)
    out = np.empty((len(images), 3, size, size), dtype=np.uint8)
    for i, image in enumerate(images):
        rgb = Image.fromarray(np.ascontiguousarray(image.transpose(1, 2, 0)), "RGB")
        out[i] = np.asarray(rgb.resize((size, size), Image.Resampling.BICUBIC)).transpose(2, 0, 1)
    return out


def thumbnails(images: np.ndarray, limit: int) -> np.ndarray | None:
    """uint8 thumbnails (at most :data:`THUMBNAIL_SIZE` px a side) of the training ``images`` of a detector's bank,
    in bank order, or None when there are more than ``limit`` of them (the report then shows scores only)."""
    if len(images) > limit:
        return None
    return resize_to(np.asarray(images), min(THUMBNAIL_SIZE, images.shape[-1]))


def npy_image_size(path: Path) -> tuple[int, int] | None:
    """Height and width of the images of a ``.npy`` array from its header (HWC when the last axis holds 1 or 3
    channels, else CHW; N×H×W gray), or None when it cannot say (the reader then reports why)."""
    try:
        shape = np.load(path, mmap_mode="r").shape
    except (OSError, ValueError):
        return None
    if len(shape) == 3:
        return shape[1], shape[2]
    if len(shape) == 4:
        return (shape[1], shape[2]) if shape[3] in (1, 3) else (shape[2], shape[3])
    return None


def check_input(path: str | Path) -> Path:
    """``path`` when it is something :func:`read_input` reads: a folder, a ``.npy`` file or one image file; else a
    :class:`ssad.cli.errors.UserError` saying what it is and what is accepted."""
    path = Path(path)
    if not path.exists():
        raise MissingFileError(f"input={path} does not exist; give a folder of images, one image file or a .npy "
                               "array of images")
    if path.is_file() and path.suffix.lower() not in (".npy", *IMAGE_EXTENSIONS):
        raise InputError(f"input={path} is neither an image file ({', '.join(sorted(IMAGE_EXTENSIONS))}), a .npy "
                         "array of images nor a folder of images; give one of those")
    return path


def read_npy(path: Path, size: int) -> np.ndarray:
    """The images of a ``.npy`` array (any layout :func:`ssad.data.readers.arrays.npy` accepts) at ``size``, resized
    by :func:`resize_to` with one warning in the log when their size differs."""
    from ssad.data.readers.arrays import _as_chw, _npy_layout, _open_npy

    array = _open_npy(path)
    layout = _npy_layout(array, path)
    found = npy_image_size(path)
    if found is not None and found != (size, size):
        log.warning("%s: images of size %d×%d resized to the detector's training size %d×%d (one bicubic "
                    "interpolation); save them at that size to skip this", path, *found, size, size)
    chunk = 4096
    return np.concatenate([resize_to(np.ascontiguousarray(_as_chw(array[i:i + chunk], layout), np.uint8), size)
                           for i in range(0, len(array), chunk)]) if len(array) else np.empty((0, 3, size, size),
                                                                                               np.uint8)


def read_input(path: str | Path, size: int, on_error: str = "raise") -> tuple[list[str], np.ndarray]:
    """Names and uint8 images (N, 3, size, size) of a folder (recursive), one image file or a ``.npy`` array."""
    path = check_input(path)
    if path.suffix.lower() == ".npy" and path.is_file():
        images = read_npy(path, size)
        return [f"{path.name}[{i}]" for i in range(len(images))], images
    if path.is_file():
        images, _ = load_images([path], size, on_error, desc="reading")
        return [path.name], images
    files = list_images(path)
    if not files:
        raise InputError(f"input={path}: no image files in this folder or below it "
                         f"({', '.join(sorted(IMAGE_EXTENSIONS))}); point input= at the images")
    images, kept = load_images(files, size, on_error, desc="reading")
    return [str(files[i].relative_to(path)) for i in kept], images
