"""Score new images: ``python -m ssad.score detector=detector.pt input=FOLDER_OR_NPY out=scores.csv``.

Writes one CSV row per image (file, score, anomalous) and prints a summary (count flagged, quantiles).
``tpr=0.99`` flags with the threshold that accepts 99% of the detector's in-distribution calibration images
instead of the exported one; the histogram shows both score distributions and the threshold.
"""

from __future__ import annotations

import csv
import io
import logging
from pathlib import Path

import hydra
import numpy as np
import torch
from omegaconf import DictConfig

from ssad.data.formats import list_images, load_images, npy
from ssad.detector import Detector
from ssad.io import write_text_atomic
from ssad.train import CONFIG_DIR

log = logging.getLogger(__name__)


def read_input(path: str | Path, size: int, on_error: str = "raise") -> tuple[list[str], np.ndarray]:
    """Names and uint8 images (N, 3, size, size) of a folder (recursive) or a ``.npy`` array."""
    path = Path(path)
    if path.suffix == ".npy":
        images, _ = npy(str(path), size)
        return [f"{path.name}[{i}]" for i in range(len(images))], images
    if not path.is_dir():
        raise FileNotFoundError(f"input={path}: neither a folder of images nor a .npy file")
    files = list_images(path)
    if not files:
        raise FileNotFoundError(f"input={path}: no image files in this folder")
    images, kept = load_images(files, size, on_error, desc="reading")
    return [str(files[i].relative_to(path)) for i in kept], images


def summary(scores: torch.Tensor, flags: torch.Tensor, threshold: float) -> str:
    q = np.quantile(scores.numpy(), [0.0, 0.05, 0.5, 0.95, 1.0])
    return (f"{int(flags.sum())} of {len(flags)} images flagged as anomalous (score > {threshold:.4g}); "
            f"score quantiles min/5%/50%/95%/max: {' / '.join(f'{v:.4g}' for v in q)}")


def plot_histogram(scores: torch.Tensor, threshold: float, path: str | Path,
                   calibration: torch.Tensor | None = None) -> None:
    """Histogram of the scores (as −log(−S)) beside the in-distribution calibration scores, with the threshold."""
    import matplotlib.pyplot as plt

    from ssad.plots import display_score

    fig, ax = plt.subplots(figsize=(5, 3.2))
    shown = display_score(scores)
    if calibration is not None:
        reference = display_score(calibration)
        bins = np.histogram_bin_edges(np.concatenate([shown, reference]), bins=50)
        ax.hist(reference, bins=bins, alpha=0.5, density=True, label="in-distribution (calibration)")
        ax.hist(shown, bins=bins, alpha=0.5, density=True, label="scored images")
        ax.set_ylabel("density")
    else:
        ax.hist(shown, bins=50)
        ax.set_ylabel("images")
    ax.axvline(float(display_score(torch.tensor([threshold]))[0]), color="r", ls="--", label="threshold")
    ax.set_xlabel("anomaly score −log(−S)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def score_images(cfg: DictConfig) -> tuple[list[str], torch.Tensor, torch.Tensor]:
    """Score ``cfg.input`` with ``cfg.detector``; write ``cfg.out`` (CSV) and, if asked, a histogram."""
    detector = Detector.load(cfg.detector, device=cfg.device, trust_file=bool(cfg.get("trust_file", False)))
    threshold = detector.threshold if cfg.get("tpr") is None else detector.threshold_at(cfg.tpr)
    names, images = read_input(cfg.input, detector.data_size, cfg.on_error)
    scores, flags = detector.predict(torch.from_numpy(np.ascontiguousarray(images)), cfg.batch_size,
                                     progress=True, threshold=threshold)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["file", "score", "anomalous"])
    writer.writerows((n, f"{s:.8g}", int(f)) for n, s, f in zip(names, scores.tolist(), flags.tolist()))
    write_text_atomic(cfg.out, buffer.getvalue())
    print(summary(scores, flags, threshold))
    if cfg.get("histogram"):
        plot_histogram(scores, threshold, cfg.histogram, detector.calibration)
    log.info("wrote %s", cfg.out)
    return names, scores, flags


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="score")
def main(cfg: DictConfig) -> None:
    score_images(cfg)


if __name__ == "__main__":
    main()
