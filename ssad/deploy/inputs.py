"""The one way images reach a detector: one input path (a folder, one image file or a ``.npy`` array) and one resize.

Every entry point (``python -m ssad.score``, :meth:`ssad.deploy.detector.Detector.score_files`, an in-memory
array given to :meth:`~ssad.deploy.detector.Detector.predict`, the ONNX scoring and the stand-alone script of
docs/howto/deploy-onnx.md) brings images to the training size with :func:`resize_to`: PIL's bicubic resize of the
decoded 8-bit RGB image, which is also what :func:`ssad.data.readers.images.load_image` does to an image file, so the
same PNG gets the same score whichever way it comes in.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from ssad.cli.errors import ConfigError, InputError, MissingFileError
from ssad.data.readers.images import (
    DECODE_THREADS,
    IMAGE_EXTENSIONS,
    LISTED_BAD_FILES,
    UnreadableFilesError,
    _decode,
    _report_unreadable,
    list_images,
)

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


def _npy_chunks(path: Path, array: np.ndarray, layout: str, size: int,
                chunk: int) -> Iterator[tuple[list[str], np.ndarray]]:
    """Names and images of a memory-mapped array, ``chunk`` images at a time."""
    from ssad.data.readers.arrays import _as_chw

    for start in range(0, len(array), chunk):
        part = resize_to(np.ascontiguousarray(_as_chw(array[start:start + chunk], layout), np.uint8), size)
        yield [f"{path.name}[{i}]" for i in range(start, start + len(part))], part


def _file_chunks(files: list[Path], root: Path, size: int, on_error: str,
                 chunk: int) -> Iterator[tuple[list[str], np.ndarray]]:
    """Names (relative to ``root``) and images of ``files``, ``chunk`` files at a time, decoded by a small thread
    pool that reads the next chunk while the caller uses this one (two chunks in memory at most). Unreadable files:
    ``on_error="raise"`` stops at the first chunk that holds any, listing them; ``"skip"`` leaves them out and warns
    once at the end, listing all; an :class:`InputError` when none could be read."""
    bad: dict[Path, str] = {}
    read = 0
    with ThreadPoolExecutor(max_workers=min(DECODE_THREADS, os.cpu_count() or 1)) as pool:
        def submit(start: int) -> list[Future]:
            return [pool.submit(_decode, f, size) for f in files[start:start + chunk]]

        ahead = submit(0)
        for start in range(0, len(files), chunk):
            current, ahead = ahead, submit(start + chunk)
            results = [future.result() for future in current]
            kept = [i for i, r in enumerate(results) if not isinstance(r, str)]
            found = {files[start + i]: r for i, r in enumerate(results) if isinstance(r, str)}
            if found and on_error == "raise":
                seen = start + len(results)
                listed = "; ".join(f"{p} ({why})" for p, why in list(found.items())[:LISTED_BAD_FILES])
                where = f"{len(files)}" if seen == len(files) else f"the first {seen} of {len(files)}"
                raise UnreadableFilesError(f"{len(found)} of {where} image files could not be read: {listed}")
            bad.update(found)
            read += len(kept)
            if kept:
                images = np.stack([results[i] for i in kept])
                yield [str(files[start + i].relative_to(root)) for i in kept], images
    if bad:
        _report_unreadable(bad, len(files), on_error)
    if not read:
        first = next(iter(bad.items()))
        where = f" under {Path(os.path.commonpath(files))}" if len(files) > 1 else ""
        raise InputError(f"none of the {len(files)} image files{where} could be read (e.g. {first[0]}: {first[1]}); "
                         "repair them or point the path at a folder of readable images")


def input_chunks(path: str | Path, size: int, on_error: str = "raise",
                 chunk: int | None = None) -> tuple[int, Iterator[tuple[list[str], np.ndarray]]]:
    """What :func:`read_input` reads, as a stream: the number of images (of files, for a folder: before decoding)
    and an iterator over (names, uint8 images (n, 3, size, size)), ``chunk`` images at a time (None: all at once),
    so that a folder or array of any size is scored in bounded memory. The input is checked (it exists, a folder
    holds image files, an array's layout) before this returns; unreadable image files are found as they are read."""
    if on_error not in ("raise", "skip"):
        raise ConfigError(f"on_error={on_error!r}: choose 'raise' or 'skip'")
    path = check_input(path)
    if path.suffix.lower() == ".npy" and path.is_file():
        from ssad.data.readers.arrays import _npy_layout, _open_npy

        array = _open_npy(path)
        layout = _npy_layout(array, path)
        found = npy_image_size(path)
        if found is not None and found != (size, size):
            log.warning("%s: images of size %d×%d resized to the detector's training size %d×%d (one bicubic "
                        "interpolation); save them at that size to skip this", path, *found, size, size)
        return len(array), _npy_chunks(path, array, layout, size, chunk or len(array))
    if path.is_file():
        return 1, _file_chunks([path], path.parent, size, on_error, 1)
    files = list_images(path)
    if not files:
        raise InputError(f"input={path}: no image files in this folder or below it "
                         f"({', '.join(sorted(IMAGE_EXTENSIONS))}); point input= at the images")
    return len(files), _file_chunks(files, path, size, on_error, chunk or len(files))


def read_input(path: str | Path, size: int, on_error: str = "raise") -> tuple[list[str], np.ndarray]:
    """Names and uint8 images (N, 3, size, size) of a folder (recursive), one image file or a ``.npy`` array, all
    in memory (:func:`input_chunks` streams them)."""
    _, chunks = input_chunks(path, size, on_error)
    parts = list(chunks)
    return [name for names, _ in parts for name in names], np.concatenate([images for _, images in parts])
