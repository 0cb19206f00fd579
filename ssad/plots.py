"""PNG plots of an evaluation: Eq. 6 score histograms and ROC curves per OOD set."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from torch import Tensor  # noqa: E402


def display_score(scores: Tensor) -> np.ndarray:
    """−log(−S): an order-preserving view of Eq. 6 scores, which span many orders of magnitude."""
    return -np.log(np.clip(-scores.double().numpy(), 1e-300, None))


def roc_curve(scores_in: Tensor, scores_out: Tensor) -> tuple[np.ndarray, np.ndarray]:
    """(FPR, TPR) with OOD as the positive class, thresholds at every score."""
    s = np.concatenate([scores_in.numpy(), scores_out.numpy()])
    y = np.concatenate([np.zeros(len(scores_in)), np.ones(len(scores_out))])
    order = np.argsort(-s, kind="mergesort")
    tpr = np.concatenate([[0.0], np.cumsum(y[order]) / max(y.sum(), 1)])
    fpr = np.concatenate([[0.0], np.cumsum(1 - y[order]) / max((1 - y).sum(), 1)])
    return fpr, tpr


def plot_scores(scores: Mapping[str, Tensor], results: Mapping, out_dir: str | Path, title: str = "") -> list[Path]:
    """``scores``: Eq. 6 scores with key ``test`` (in-distribution) and one key per OOD set. Writes
    ``score_histograms.png`` and ``roc_curves.png`` in ``out_dir``; returns their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ood = [k for k in scores if k != "test"]
    if "test" not in scores or not ood:
        return []
    fig, axes = plt.subplots(1, len(ood), figsize=(4 * len(ood), 3.2), squeeze=False)
    in_scores = display_score(scores["test"])
    for ax, name in zip(axes[0], ood):
        out_scores = display_score(scores[name])
        bins = np.histogram_bin_edges(np.concatenate([in_scores, out_scores]), bins=40)
        ax.hist(in_scores, bins=bins, alpha=0.6, density=True, label="in-distribution test")
        ax.hist(out_scores, bins=bins, alpha=0.6, density=True, label=name)
        ax.set_title(f"{name}: AUROC {100 * results['ood'][name]['auroc']:.1f}")
        ax.set_xlabel("anomaly score −log(−S)")
        ax.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    hist_path = out_dir / "score_histograms.png"
    fig.savefig(hist_path, dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(4.5, 4.2))
    for name in ood:
        fpr, tpr = roc_curve(scores["test"], scores[name])
        ax.plot(fpr, tpr, label=f"{name} ({100 * results['ood'][name]['auroc']:.1f})")
    ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    ax.set_xlabel("false positive rate (in-distribution flagged)")
    ax.set_ylabel("true positive rate (OOD flagged)")
    ax.set_title(title or "ROC")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    roc_path = out_dir / "roc_curves.png"
    fig.savefig(roc_path, dpi=110)
    plt.close(fig)
    return [hist_path, roc_path]
