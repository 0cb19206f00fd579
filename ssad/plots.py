"""PNG plots of a run: Eq. 6 score histograms and ROC curves per OOD set, and its training curves."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
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


def plot_curves(records: Sequence[Mapping], loss_curve: Sequence[float], out_dir: str | Path,
                title: str = "") -> list[Path]:
    """``training_curves.png``: the epoch loss, AUROC per OOD set and their average, and kNN accuracy,
    sensitivity and occupied soft-classes, against the epoch. ``records`` are the lines of ``metrics.jsonl``
    (one per evaluation; of an epoch evaluated twice, as after a resume, the last counts). Returns the path,
    or nothing when there is nothing to draw."""
    records = sorted({r["epoch"]: r for r in records}.values(), key=lambda r: r["epoch"])
    epochs = [r["epoch"] for r in records]
    ood = list(dict.fromkeys(name for r in records for name in r.get("ood") or {}))
    scalars = {"kNN accuracy": "knn_accuracy", "sensitivity": "sensitivity"}
    scalars = {label: key for label, key in scalars.items() if any(r.get(key) is not None for r in records)}
    occupied = [r.get("occupied_soft_classes") for r in records]
    panels = [bool(loss_curve), bool(ood), bool(scalars) or any(v is not None for v in occupied)]
    if not any(panels):
        return []
    fig, axes = plt.subplots(1, sum(panels), figsize=(4.2 * sum(panels), 3.2), squeeze=False)
    for ax in axes[0]:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes = iter(axes[0])
    if loss_curve:
        ax = next(axes)
        ax.plot(range(1, len(loss_curve) + 1), loss_curve, marker=".")
        ax.set_xlabel("epoch")
        ax.set_ylabel("training loss L")
    if ood:
        ax = next(axes)
        aurocs = {name: [(r["epoch"], 100 * r["ood"][name]["auroc"]) for r in records if name in (r.get("ood") or {})]
                  for name in ood}
        aurocs["average"] = [(r["epoch"], 100 * r["average"]["auroc"]) for r in records if r.get("average")]
        for name, points in aurocs.items():
            if points:
                ax.plot(*zip(*points), marker=".", label=name, lw=2.2 if name == "average" else 1.2)
        ax.set_xlabel("epoch")
        ax.set_ylabel("AUROC (%)")
        ax.legend(fontsize=7)
    if panels[2]:
        ax = next(axes)
        for label, key in scalars.items():
            points = [(r["epoch"], 100 * r[key]) for r in records if r.get(key) is not None]
            ax.plot(*zip(*points), marker=".", label=label)
        ax.set_xlabel("epoch")
        ax.set_ylabel("%")
        if any(v is not None for v in occupied):
            twin = ax.twinx()
            twin.plot(*zip(*[(e, v) for e, v in zip(epochs, occupied) if v is not None]), "k--", marker=".",
                      label="occupied soft-classes")
            twin.set_ylabel("occupied soft-classes")
            twin.legend(fontsize=7, loc="lower right")
        if scalars:
            ax.legend(fontsize=7, loc="upper left")
    fig.suptitle(title)
    fig.tight_layout()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "training_curves.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [path]
