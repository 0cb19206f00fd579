"""Score new images: ``python -m ssad.score detector=detector.pt input=FOLDER_IMAGE_OR_NPY out=scores.csv``.

Writes one CSV row per image, most anomalous first (rank, file, score, anomalous), and prints a summary (count and
share flagged, quantiles, and a note when the detector's threshold rests on few in-distribution images). The score
is the detector's R = 1 − τ·log(−S) (:func:`ssad.scoring.metrics.readable_score`, S of Eq. 6): in [0, 2], higher =
more anomalous. ``detector=detector.onnx`` scores through onnxruntime (:mod:`ssad.deploy.onnx_scoring`; PyTorch is
imported only for a ``.pt`` detector). ``tpr=0.99`` flags with the threshold that accepts 99% of the detector's
in-distribution calibration images instead of the exported one; ``histogram=PNG`` shows both score distributions
and the threshold; ``report=DIR`` writes a static HTML report (:mod:`ssad.deploy.html_report`). Images are read
and resized one way for every entry point (:mod:`ssad.deploy.inputs`), and streamed: a folder or array of any size is
read, resized and scored a chunk at a time in bounded memory, with a progress bar and the images/s at the end. The
outputs' folders are checked for writing, and the input for existence, before the detector is loaded.
"""

from __future__ import annotations

import csv
import io
import logging
import time
from pathlib import Path
from typing import Any

import hydra
import numpy as np
from omegaconf import DictConfig

from ssad.cli.checks import check_config_dirs, disk_full_reported
from ssad.cli.errors import InputError, user_errors
from ssad.cli.help import command_help
from ssad.config.keys import CONFIG_DIR
from ssad.config.validation import validate
from ssad.deploy.html_report import NORMAL, SHOWN, histogram_figure, save_figure, write_report
from ssad.deploy.inputs import check_input, input_chunks, npy_image_size, read_input
from ssad.deploy.onnx_scoring import OnnxDetector, is_onnx
from ssad.utils.console import progress_bar
from ssad.utils.files import check_writable, write_text_atomic

__all__ = ["check_input", "histogram_figure", "npy_image_size", "plot_histogram", "read_input", "score_images",
           "scores_csv", "summary"]

log = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 27  # pixels (uint8) of the images read and scored at once: memory, not results
CHUNK_IMAGES = 2048  # and at most this many images a chunk, so that the progress bar moves


def summary(scores: Any, flags: Any, threshold: float, detector: Any = None) -> str:
    """The console summary: how many images (and what share) are flagged, the score quantiles, and, when the
    detector's threshold rests on few in-distribution images, a note saying so."""
    scores, flags = np.asarray(scores, dtype=np.float64), np.asarray(flags, dtype=bool)
    q = np.quantile(scores, [0.0, 0.05, 0.5, 0.95, 1.0])
    share = 100 * flags.mean() if len(flags) else 0.0
    text = (f"{int(flags.sum())} of {len(flags)} images ({share:.1f}%) flagged as anomalous (score > {threshold:.4g}); "
            f"score quantiles min/5%/50%/95%/max: {' / '.join(f'{v:.4g}' for v in q)}")
    note = detector.calibration_note() if detector is not None else None
    return f"{text}\nnote: {note}" if note else text


def plot_histogram(scores: Any, threshold: float, path: str | Path, calibration: Any = None) -> None:
    """Write :func:`ssad.deploy.html_report.histogram_figure` to ``path`` (PNG) through a temporary file, so that a
    failed write leaves any earlier histogram there as it was."""
    save_figure(histogram_figure(scores, threshold, calibration), path)


def scores_csv(names: list[str], scores: Any, flags: Any) -> str:
    """The CSV text: rank, file, score, anomalous; most anomalous first (ties in file order)."""
    scores, flags = np.asarray(scores, dtype=np.float64), np.asarray(flags, dtype=bool)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["rank", "file", "score", "anomalous"])
    order = np.argsort(-scores, kind="stable")
    writer.writerows((rank, names[i], f"{scores[i]:.8g}", int(flags[i])) for rank, i in enumerate(order, 1))
    return buffer.getvalue()


def load_detector(cfg: DictConfig) -> Any:
    """The detector of ``cfg.detector``: an :class:`~ssad.deploy.onnx_scoring.OnnxDetector` for ``.onnx``, else a
    :class:`~ssad.deploy.detector.Detector` (PyTorch imported here, only for it)."""
    if is_onnx(cfg.detector):
        return OnnxDetector(cfg.detector)
    try:
        from ssad.deploy.detector import Detector
    except ModuleNotFoundError as err:
        if (err.name or "").split(".")[0] not in ("torch", "timm", "torchvision"):
            raise
        raise InputError(f"detector={cfg.detector}: scoring a .pt detector needs PyTorch and timm, and {err.name} "
                         "is not installed here; pip install ssad (with its dependencies), or export the detector "
                         "to ONNX where PyTorch is (python -m ssad.export ckpt=... out=detector.onnx) and score "
                         "the .onnx file here") from err

    return Detector.load(cfg.detector, device=cfg.device, trust_file=bool(cfg.get("trust_file", False)))


class ReportImages:
    """The images the HTML report shows, kept while the input streams past: those of the ``high`` highest scores and
    the ``low`` lowest (ties in input order, as :func:`ssad.deploy.html_report.write_report` ranks them), indexed by
    their position in the input (``images[i]``, ``images[index_array]``), so the report needs no other image."""

    def __init__(self, high: int, low: int) -> None:
        self.high, self.low = high, low
        self.index, self.scores = np.empty(0, np.int64), np.empty(0, np.float64)
        self.images: np.ndarray | None = None
        self._where: dict[int, int] = {}

    def offer(self, start: int, scores: np.ndarray, images: np.ndarray) -> None:
        """Take the images of one chunk (input positions ``start``, ``start + 1``, ...) that rank among the kept."""
        index = np.concatenate([self.index, start + np.arange(len(scores))])
        values = np.concatenate([self.scores, np.asarray(scores, dtype=np.float64)])
        keep = np.unique(np.concatenate([np.lexsort((index, -values))[:self.high],
                                         np.lexsort((-index, values))[:self.low]]))
        old = keep[keep < len(self.index)]
        new = keep[keep >= len(self.index)] - len(self.index)
        kept = [images[new]] if self.images is None else [self.images[old], images[new]]
        self.index, self.scores, self.images = index[keep], values[keep], np.concatenate(kept)
        self._where = {int(i): j for j, i in enumerate(self.index)}

    def __getitem__(self, index: Any) -> np.ndarray:
        if np.ndim(index) == 0:
            return self.images[self._where[int(index)]]
        return self.images[[self._where[int(i)] for i in np.asarray(index)]]


def chunk_length(size: int) -> int:
    """Images read and scored at once at the training size ``size``: :data:`CHUNK_BYTES` of pixels, at most
    :data:`CHUNK_IMAGES`."""
    return max(1, min(CHUNK_IMAGES, CHUNK_BYTES // (3 * size * size)))


def score_images(cfg: DictConfig, chunk: int | None = None) -> tuple[list[str], Any, Any]:
    """Score ``cfg.input`` with ``cfg.detector``; write ``cfg.out`` (CSV) and, if asked, a histogram and a report.
    The input streams through ``chunk`` images at a time (default :func:`chunk_length`; rounded down to a multiple
    of ``cfg.batch_size``): read, resized and scored a chunk at a time, so memory stays bounded for a folder or
    array of any size; only the names, the scores and the images the report shows (:class:`ReportImages`) are
    kept. Prints images/s at the end. Returns the names, scores and flags in input order (tensors for a ``.pt``
    detector, arrays for ``.onnx``)."""
    validate(cfg, "score")
    check_writable(cfg.out, "out")  # before any work: a long scoring job does not fail at its end
    for key in ("histogram", "report"):
        if cfg.get(key):
            check_writable(Path(cfg[key]) / "index.html" if key == "report" else cfg[key], key)
    check_input(cfg.input)
    detector = load_detector(cfg)
    threshold = detector.threshold if cfg.get("tpr") is None else detector.threshold_at(cfg.tpr)
    onnx = isinstance(detector, OnnxDetector)
    start = time.perf_counter()
    # a multiple of the batch size: the batches are those of one chunk, so the scores are the same bits
    chunk = max(cfg.batch_size, (chunk or chunk_length(detector.data_size)) // cfg.batch_size * cfg.batch_size)
    total, chunks = input_chunks(cfg.input, detector.data_size, cfg.on_error, chunk)
    kept = ReportImages(SHOWN, NORMAL) if cfg.get("report") else None
    names: list[str] = []
    scores, flags = [], []
    with progress_bar(None, "scoring", total=total, unit="img") as bar:
        for part_names, images in chunks:
            if onnx:
                part_scores, part_flags = detector.predict(images, cfg.batch_size, threshold=threshold)
            else:
                import torch

                part_scores, part_flags = detector.predict(torch.from_numpy(images), cfg.batch_size,
                                                           threshold=threshold)
            if kept is not None:
                kept.offer(len(names), np.asarray(part_scores), images)
            names += part_names
            scores.append(part_scores)
            flags.append(part_flags)
            bar.update(len(part_names))
    scores, flags = (np.concatenate(scores), np.concatenate(flags)) if onnx else _cat(scores, flags)
    with disk_full_reported(cfg.out, "out"):
        write_text_atomic(cfg.out, scores_csv(names, scores, flags))
    seconds = time.perf_counter() - start
    print(summary(scores, flags, threshold, detector))
    print(f"read and scored {len(names)} images in {seconds:.1f} s ({len(names) / max(seconds, 1e-9):.0f} images/s)")
    if cfg.get("histogram"):
        with disk_full_reported(cfg.histogram, "histogram"):
            plot_histogram(scores, threshold, cfg.histogram, detector.calibration)
    if kept is not None:
        with disk_full_reported(cfg.report, "report"):
            page = write_report(cfg.report, detector, names, kept, np.asarray(scores), np.asarray(flags), threshold)
        print(f"wrote the report {page}")
    log.info("wrote %s", cfg.out)
    return names, scores, flags


def _cat(scores: list[Any], flags: list[Any]) -> tuple[Any, Any]:
    import torch

    return torch.cat(scores), torch.cat(flags)


@command_help("score", "python -m ssad.score detector=detector.pt input=/data/new_images out=scores.csv "
              "histogram=scores.png")
@check_config_dirs
@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="score")
@user_errors
def main(cfg: DictConfig) -> None:
    score_images(cfg)


if __name__ == "__main__":
    main()
