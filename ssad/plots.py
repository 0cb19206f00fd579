"""PNG plots of a run: Eq. 6 score histograms and ROC curves per OOD set, and its training curves with the
collapse signals."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
from torch import Tensor  # noqa: E402

from ssad.metrics import readable_score  # noqa: E402


def display_score(scores: Tensor, temperature: float = 0.04) -> np.ndarray:
    """Eq. 6 scores S as the anomaly score a detector publishes, 1 − τ·log(−S) (order-preserving, in [0, 2];
    :func:`ssad.metrics.readable_score`), where S spans many orders of magnitude."""
    return readable_score(scores.cpu(), temperature).numpy()


def roc_curve(scores_in: Tensor, scores_out: Tensor) -> tuple[np.ndarray, np.ndarray]:
    """(FPR, TPR) with OOD as the positive class, thresholds at every score."""
    s = np.concatenate([scores_in.numpy(), scores_out.numpy()])
    y = np.concatenate([np.zeros(len(scores_in)), np.ones(len(scores_out))])
    order = np.argsort(-s, kind="mergesort")
    tpr = np.concatenate([[0.0], np.cumsum(y[order]) / max(y.sum(), 1)])
    fpr = np.concatenate([[0.0], np.cumsum(1 - y[order]) / max((1 - y).sum(), 1)])
    return fpr, tpr


def plot_scores(scores: Mapping[str, Tensor], results: Mapping, out_dir: str | Path, title: str = "",
                temperature: float = 0.04) -> list[Path]:
    """``scores``: Eq. 6 scores with key ``test`` (in-distribution) and one key per OOD set, drawn as
    1 − τ·log(−S) (τ = ``temperature``). Writes ``score_histograms.png`` and ``roc_curves.png`` in ``out_dir``;
    returns their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ood = [k for k in scores if k != "test"]
    if "test" not in scores or not ood:
        return []
    fig, axes = plt.subplots(1, len(ood), figsize=(4 * len(ood), 3.2), squeeze=False)
    in_scores = display_score(scores["test"], temperature)
    for ax, name in zip(axes[0], ood):
        out_scores = display_score(scores[name], temperature)
        bins = np.histogram_bin_edges(np.concatenate([in_scores, out_scores]), bins=40)
        ax.hist(in_scores, bins=bins, alpha=0.6, density=True, label="in-distribution test")
        ax.hist(out_scores, bins=bins, alpha=0.6, density=True, label=name)
        ax.set_title(f"{name}: AUROC {100 * results['ood'][name]['auroc']:.1f}")
        ax.set_xlabel("anomaly score 1 − τ·log(−S)")
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
                title: str = "", drift_curve: Sequence[Mapping] | None = None,
                thresholds: Mapping[str, float] | None = None) -> list[Path]:
    """``training_curves.png``: the epoch loss, AUROC per OOD set and their average, and kNN accuracy,
    sensitivity and occupied soft-classes, against the epoch; then the collapse signals (ssad.diagnostics):
    teacher and student drift (per epoch from ``drift_curve``, else per evaluation) with the
    ``min_teacher_drift`` floor, and teacher entropy / log K, entropy of the mean / log K, effective rank /
    width and mean cosine with their ``thresholds`` (``callbacks.collapse.*``), and the warnings that hold at
    the last evaluation. ``records`` are the lines of ``metrics.jsonl`` (one per evaluation; of an epoch
    evaluated twice, as after a resume, the last counts). Returns the path, or nothing when there is nothing
    to draw."""
    records = sorted({r["epoch"]: r for r in records}.values(), key=lambda r: r["epoch"])
    epochs = [r["epoch"] for r in records]
    ood = list(dict.fromkeys(name for r in records for name in r.get("ood") or {}))
    scalars = {"kNN accuracy": "knn_accuracy", "sensitivity": "sensitivity"}
    scalars = {label: key for label, key in scalars.items() if any(r.get(key) is not None for r in records)}
    occupied = [r.get("occupied_soft_classes") for r in records]
    drift = _drift_series(records, drift_curve)
    shares = _share_series(records)
    panels = [bool(loss_curve), bool(ood), bool(scalars) or any(v is not None for v in occupied), bool(drift),
              bool(shares)]
    if not any(panels):
        return []
    n = sum(panels)
    cols = min(n, 3)
    rows = -(-n // cols)
    fig, grid = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.3 * rows), squeeze=False)
    for ax in grid.flat:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    for ax in grid.flat[n:]:
        ax.set_visible(False)
    axes = iter(grid.flat)
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
    thresholds = thresholds or {}
    if drift:
        ax = next(axes)
        for (label, points), style in zip(drift.items(), ("C0", "C1")):
            ax.plot(*zip(*points), style, marker=".", label=label)
        if thresholds.get("min_teacher_drift"):
            ax.axhline(thresholds["min_teacher_drift"], color="C3", ls=":", lw=1.2, label="floor (teacher_not_moving)")
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_ylabel("‖θ − θ⁰‖ / ‖θ⁰‖ (backbone)")
        ax.set_title("weight drift from the start", fontsize=9)
        ax.legend(fontsize=7)
    if shares:
        ax = next(axes)
        limits = {"teacher entropy / log K": ("max_entropy_share", "uniform"),
                  "entropy of mean / log K": ("min_entropy_of_mean_share", "constant"),
                  "effective rank / width": ("min_rank_share", "rank"),
                  "mean feature cosine": ("max_cosine", "cosine")}
        for i, (label, points) in enumerate(shares.items()):
            ax.plot(*zip(*points), f"C{i}", marker=".", label=label)
            key = limits[label][0]
            if thresholds.get(key) is not None:
                ax.axhline(thresholds[key], color=f"C{i}", ls=":", lw=1.0)
        ax.set_ylim(-0.03, 1.03)
        ax.set_xlabel("epoch")
        ax.set_ylabel("share (dotted: warning thresholds)")
        ax.set_title("collapse signals of the teacher", fontsize=9)
        ax.legend(fontsize=7)
    held = [w["code"] if isinstance(w, Mapping) else str(w) for w in (records[-1].get("warnings") or [])] \
        if records else []
    fig.suptitle(title)
    if held:
        fig.text(0.5, 0.005, "warnings at the last evaluation: " + ", ".join(held) + " (see results.json)",
                 ha="center", va="bottom", color="C3", fontsize=10, weight="bold")
    fig.tight_layout(rect=(0, 0.04 if held else 0, 1, 1))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "training_curves.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [path]


def _drift_series(records: Sequence[Mapping], drift_curve: Sequence[Mapping] | None) -> dict[str, list]:
    """{"teacher": [(epoch, drift)], "student": [...]} per epoch (``drift_curve``) or per evaluation."""
    source = sorted({d["epoch"]: d for d in drift_curve}.values(), key=lambda d: d["epoch"]) if drift_curve \
        else records
    series = {}
    for who in ("teacher", "student"):
        # a drift of exactly 0 cannot be drawn on a log axis: shown at the smallest float32 step
        points = [(d["epoch"], max(d[f"{who}_drift"], 1e-12)) for d in source if d.get(f"{who}_drift") is not None]
        if points:
            series[who] = points
    return series


def _share_series(records: Sequence[Mapping]) -> dict[str, list]:
    """The collapse signals of each evaluation as shares in [0, 1] (of log K, of the feature width)."""
    def share(r: Mapping, key: str, of: str | None) -> float | None:
        value, scale = r.get(key), (r.get(of) if of else 1.0)
        return None if value is None or not scale else value / scale

    series = {}
    for label, key, of in (("teacher entropy / log K", "teacher_entropy", "log_k"),
                           ("entropy of mean / log K", "teacher_entropy_of_mean", "log_k"),
                           ("effective rank / width", "effective_rank", "feature_dim"),
                           ("mean feature cosine", "mean_cosine", None)):
        points = [(r["epoch"], v) for r in records if (v := share(r, key, of)) is not None]
        if points:
            series[label] = points
    return series
