"""Score new images: ``python -m ssad.score detector=detector.pt input=FOLDER_IMAGE_OR_NPY out=scores.csv``.

Writes one CSV row per image (file, score, anomalous) and prints a summary (count and share flagged, quantiles,
and a note when the detector's threshold rests on few in-distribution images). The score is the detector's
R = 1 − τ·log(−S) (:func:`ssad.scoring.metrics.readable_score`, S of Eq. 6): in [0, 2], higher = more anomalous.
``tpr=0.99`` flags with the threshold that accepts 99% of the detector's in-distribution calibration images
instead of the exported one; the histogram shows both score distributions and the threshold. The outputs'
folders are checked for writing, and the input for existence, before the detector is loaded.
"""

from __future__ import annotations

import csv
import io
import logging
from pathlib import Path
from typing import TYPE_CHECKING

import hydra
import numpy as np
import torch
from omegaconf import DictConfig

from ssad.cli.checks import check_config_dirs, disk_full_reported
from ssad.cli.errors import InputError, MissingFileError, user_errors
from ssad.config.keys import CONFIG_DIR
from ssad.config.validation import validate
from ssad.data.readers.arrays import npy
from ssad.data.readers.images import IMAGE_EXTENSIONS, list_images, load_images
from ssad.deploy.detector import Detector
from ssad.utils.files import atomic_path, check_writable, write_text_atomic

if TYPE_CHECKING:
    from matplotlib.figure import Figure

log = logging.getLogger(__name__)


def npy_image_size(path: Path) -> tuple[int, int] | None:
    """Height and width of the images of a ``.npy`` array from its header (HWC when the last axis holds 1 or 3
    channels, else CHW; N×H×W gray), or None when it cannot say (:func:`ssad.data.readers.arrays.npy` then reports
    why)."""
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


def read_input(path: str | Path, size: int, on_error: str = "raise") -> tuple[list[str], np.ndarray]:
    """Names and uint8 images (N, 3, size, size) of a folder (recursive), one image file or a ``.npy`` array.
    A ``.npy`` array of another image size than ``size`` is resized to it, with one warning in the log."""
    path = check_input(path)
    if path.suffix == ".npy" and path.is_file():
        found = npy_image_size(path)
        if found is not None and found != (size, size):
            log.warning("%s: images of size %d×%d resized to the detector's training size %d×%d (one bicubic "
                        "interpolation); save them at that size to skip this", path, *found, size, size)
        images, _ = npy(str(path), size)
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


def summary(scores: torch.Tensor, flags: torch.Tensor, threshold: float, detector: Detector | None = None) -> str:
    """The console summary: how many images (and what share) are flagged, the score quantiles, and, when the
    detector's threshold rests on few in-distribution images, a note saying so."""
    q = np.quantile(scores.numpy(), [0.0, 0.05, 0.5, 0.95, 1.0])
    share = 100 * flags.double().mean().item() if len(flags) else 0.0
    text = (f"{int(flags.sum())} of {len(flags)} images ({share:.1f}%) flagged as anomalous (score > {threshold:.4g}); "
            f"score quantiles min/5%/50%/95%/max: {' / '.join(f'{v:.4g}' for v in q)}")
    note = detector.calibration_note() if detector is not None else None
    return f"{text}\nnote: {note}" if note else text


def histogram_figure(scores: torch.Tensor, threshold: float, calibration: torch.Tensor | None = None) -> Figure:
    """Histogram of the scores beside the in-distribution calibration scores, with the threshold."""
    import matplotlib.pyplot as plt

    from ssad.scoring.plots import legend_below, overlaid_histograms

    fig, ax = plt.subplots(figsize=(5, 3.6))
    samples = {"scored images": scores.double().numpy()}
    if calibration is not None:
        samples = {"in-distribution (calibration)": calibration.double().numpy(), **samples}
    overlaid_histograms(ax, samples, bins=50, density=calibration is not None)
    ax.axvline(threshold, color="r", ls="--", label="threshold")
    ax.set_xlabel("anomaly score 1 − τ·log(−S)")
    legend_below(ax, ncol=3)
    fig.tight_layout()
    return fig


def plot_histogram(scores: torch.Tensor, threshold: float, path: str | Path,
                   calibration: torch.Tensor | None = None) -> None:
    """Write :func:`histogram_figure` to ``path`` (PNG) through a temporary file, so that a failed write leaves
    any earlier histogram there as it was."""
    import matplotlib.pyplot as plt

    fig = histogram_figure(scores, threshold, calibration)
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    finally:
        plt.close(fig)


def score_images(cfg: DictConfig) -> tuple[list[str], torch.Tensor, torch.Tensor]:
    """Score ``cfg.input`` with ``cfg.detector``; write ``cfg.out`` (CSV) and, if asked, a histogram."""
    validate(cfg, "score")
    check_writable(cfg.out, "out")  # before any work: a long scoring job does not fail at its end
    if cfg.get("histogram"):
        check_writable(cfg.histogram, "histogram")
    check_input(cfg.input)
    detector = Detector.load(cfg.detector, device=cfg.device, trust_file=bool(cfg.get("trust_file", False)))
    threshold = detector.threshold if cfg.get("tpr") is None else detector.threshold_at(cfg.tpr)
    names, images = read_input(cfg.input, detector.data_size, cfg.on_error)
    scores, flags = detector.predict(torch.from_numpy(np.ascontiguousarray(images)), cfg.batch_size,
                                     progress=True, threshold=threshold)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["file", "score", "anomalous"])
    writer.writerows((n, f"{s:.8g}", int(f)) for n, s, f in zip(names, scores.tolist(), flags.tolist()))
    with disk_full_reported(cfg.out, "out"):
        write_text_atomic(cfg.out, buffer.getvalue())
    print(summary(scores, flags, threshold, detector))
    if cfg.get("histogram"):
        with disk_full_reported(cfg.histogram, "histogram"):
            plot_histogram(scores, threshold, cfg.histogram, detector.calibration)
    log.info("wrote %s", cfg.out)
    return names, scores, flags


@check_config_dirs
@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="score")
@user_errors
def main(cfg: DictConfig) -> None:
    score_images(cfg)


if __name__ == "__main__":
    main()
