"""PNG plots of a run: Eq. 6 score histograms and ROC curves per OOD set, and its training curves with the
collapse signals."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from ssad.scoring.results import metric_value  # noqa: E402

if TYPE_CHECKING:  # torch is imported where scores are drawn, not by ssad.report's figures
    from torch import Tensor

    from ssad.scoring.scores import Scorer


def display_score(scores: Tensor, temperature: float = 0.04, scorer: Scorer | None = None) -> np.ndarray:
    """Scores as a detector publishes them (:meth:`ssad.scoring.scores.Scorer.readable`); without ``scorer``, Eq. 6
    scores S as 1 − τ·log(−S) (order-preserving, in [0, 2]; :func:`ssad.scoring.metrics.readable_score`), where S
    spans many orders of magnitude."""
    from ssad.scoring.metrics import readable_score

    shown = readable_score(scores.cpu(), temperature) if scorer is None else scorer.readable(scores.cpu())
    return shown.numpy()


def roc_curve(scores_in: Tensor, scores_out: Tensor) -> tuple[np.ndarray, np.ndarray]:
    """(FPR, TPR) with OOD as the positive class, thresholds at every score."""
    s = np.concatenate([scores_in.numpy(), scores_out.numpy()])
    y = np.concatenate([np.zeros(len(scores_in)), np.ones(len(scores_out))])
    order = np.argsort(-s, kind="mergesort")
    tpr = np.concatenate([[0.0], np.cumsum(y[order]) / max(y.sum(), 1)])
    fpr = np.concatenate([[0.0], np.cumsum(1 - y[order]) / max((1 - y).sum(), 1)])
    return fpr, tpr


def overlaid_histograms(ax: plt.Axes, samples: Mapping[str, np.ndarray], bins: int = 40,
                        density: bool = True) -> None:
    """``samples`` (label → values) as translucent histograms on shared bins, each with an outline in its colour so
    that none hides another; at most 5 ticks on the x axis (score ranges can be narrow: long tick labels)."""
    edges = np.histogram_bin_edges(np.concatenate(list(samples.values())), bins=bins)
    for i, (label, values) in enumerate(samples.items()):
        ax.hist(values, bins=edges, density=density, alpha=0.35, color=f"C{i}", label=label)
        ax.hist(values, bins=edges, density=density, histtype="step", color=f"C{i}", lw=1.2)
    ax.xaxis.set_major_locator(MaxNLocator(nbins=4))
    ax.set_ylabel("density" if density else "images")


def legend_below(ax: plt.Axes, *more: plt.Axes, ncol: int = 2) -> None:
    """One legend for ``ax`` (and twin axes ``more``) under the axes, outside the plotting area: never over a
    line, a bar or a marker."""
    handles, labels = [], []
    for axis in (ax, *more):
        h, lab = axis.get_legend_handles_labels()
        handles, labels = handles + h, labels + lab
    if handles:
        ax.legend(handles, labels, fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=ncol,
                  frameon=False)


def histograms_figure(scores: Mapping[str, Tensor], results: Mapping, title: str = "",
                      temperature: float = 0.04, scorer: Scorer | None = None) -> plt.Figure:
    """One panel per OOD set: its anomaly scores over the in-distribution test set's, as ``scorer`` publishes them
    (:func:`display_score`; default Eq. 6's 1 − τ·log(−S))."""
    ood = [k for k in scores if k != "test"]
    fig, axes = plt.subplots(1, len(ood), figsize=(4 * len(ood), 3.6), squeeze=False)
    in_scores = display_score(scores["test"], temperature, scorer)
    label = "1 − τ·log(−S)" if scorer is None else scorer.published
    for ax, name in zip(axes[0], ood):
        overlaid_histograms(ax, {"in-distribution test": in_scores,
                                 name: display_score(scores[name], temperature, scorer)})
        ax.set_title(f"{name}: AUROC {100 * results['ood'][name]['auroc']:.1f}")
        ax.set_xlabel(f"anomaly score {label}")
        legend_below(ax)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def roc_figure(scores: Mapping[str, Tensor], results: Mapping, title: str = "") -> plt.Figure:
    """ROC curves of every OOD set against the in-distribution test set, AUROC in the legend."""
    fig, ax = plt.subplots(figsize=(4.5, 4.6))
    for name in (k for k in scores if k != "test"):
        fpr, tpr = roc_curve(scores["test"], scores[name])
        ax.plot(fpr, tpr, label=f"{name} ({100 * results['ood'][name]['auroc']:.1f})")
    ax.plot([0, 1], [0, 1], "k:", lw=0.8, label="chance")
    ax.set_xlabel("false positive rate (in-distribution flagged)")
    ax.set_ylabel("true positive rate (OOD flagged)")
    ax.set_title(title or "ROC")
    legend_below(ax, ncol=3)
    fig.tight_layout()
    return fig


def save_figure(fig: plt.Figure, path: Path, dpi: int = 110) -> Path:
    """Write ``fig`` as a PNG (legends outside the axes included) and close it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_scores(scores: Mapping[str, Tensor], results: Mapping, out_dir: str | Path, title: str = "",
                temperature: float = 0.04, scorer: Scorer | None = None) -> list[Path]:
    """``scores``: the scores of ``scorer`` (default Eq. 6 at ``temperature``) with key ``test`` (in-distribution)
    and one key per OOD set, drawn as it publishes them (Eq. 6: 1 − τ·log(−S)). Writes ``score_histograms.png``
    and ``roc_curves.png`` in ``out_dir``; returns their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if "test" not in scores or len(scores) < 2:
        return []
    return [save_figure(histograms_figure(scores, results, title, temperature, scorer),
                        out_dir / "score_histograms.png"),
            save_figure(roc_figure(scores, results, title), out_dir / "roc_curves.png")]


MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">", "p", "h")  # a series' or a variant's shape
REFERENCE_STYLES = (":", "--")  # the line styles of the reference results in the AUROC panel


def marker(i: int) -> dict[str, object]:
    """The ``i``-th series' marker: a shape of its own, hollow, so that coinciding points stay visible."""
    return {"marker": MARKERS[i % len(MARKERS)], "mfc": "none", "ms": 5}


def epoch_axis(axes: Sequence[plt.Axes], last_epoch: int) -> None:
    """Epochs 1 … ``last_epoch`` on every axis: integer ticks and the same range (a one-epoch run too)."""
    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=6, min_n_ticks=1))
        ax.set_xlim(0.5, last_epoch + 0.5)


def plot_curves(records: Sequence[Mapping], loss_curve: Sequence[float], out_dir: str | Path,
                title: str = "", drift_curve: Sequence[Mapping] | None = None,
                thresholds: Mapping[str, float] | None = None,
                references: Mapping[str, Mapping] | None = None) -> list[Path]:
    """``training_curves.png`` in ``out_dir`` (:func:`curves_figure`); returns its path, or nothing when there is
    nothing to draw."""
    fig = curves_figure(records, loss_curve, title, drift_curve, thresholds, references)
    return [] if fig is None else [save_figure(fig, Path(out_dir) / "training_curves.png")]


def curves_figure(records: Sequence[Mapping], loss_curve: Sequence[float], title: str = "",
                  drift_curve: Sequence[Mapping] | None = None,
                  thresholds: Mapping[str, float] | None = None,
                  references: Mapping[str, Mapping] | None = None) -> plt.Figure | None:
    """The training curves: the epoch loss, AUROC per OOD set and their average, and kNN accuracy,
    sensitivity and occupied soft-classes, against the epoch; then the collapse signals (ssad.scoring.diagnostics):
    teacher and student drift (per epoch from ``drift_curve``, else per evaluation) with the
    ``min_teacher_drift`` floor, and teacher entropy / log K, entropy of the mean / log K, effective rank /
    width and mean cosine with their ``thresholds`` (``callbacks.collapse.*``), and the warnings that hold at
    the last evaluation. ``records`` are the lines of ``metrics.jsonl`` (one per evaluation; of an epoch
    evaluated twice, as after a resume, the last counts). Every panel spans epochs 1 … the last, each series
    has a marker of its own and the legends sit under the panels. ``references`` (label → a results record, e.g.
    the baselines of ``baselines.json``) are drawn in the AUROC panel as horizontal lines in each set's colour, one
    line style per reference. None when there is nothing to draw."""
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
        return None
    n = sum(panels)
    cols = min(n, 3)
    rows = -(-n // cols)
    fig, grid = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.9 * rows), squeeze=False)
    last_epoch = max([len(loss_curve), *epochs, *(e for points in drift.values() for e, _ in points)], default=1)
    epoch_axis(list(grid.flat), last_epoch)
    for ax in grid.flat[n:]:
        ax.set_visible(False)
    axes = iter(grid.flat)
    if loss_curve:
        ax = next(axes)
        ax.plot(range(1, len(loss_curve) + 1), loss_curve, **marker(0))
        ax.set_xlabel("epoch")
        ax.set_ylabel("training loss L")
    if ood:
        ax = next(axes)
        aurocs = {name: [(r["epoch"], 100 * r["ood"][name]["auroc"]) for r in records if name in (r.get("ood") or {})]
                  for name in ood}
        aurocs["average"] = [(r["epoch"], 100 * r["average"]["auroc"]) for r in records if r.get("average")]
        for i, (name, points) in enumerate(aurocs.items()):
            if points:
                line, = ax.plot(*zip(*points), label=name, lw=2.2 if name == "average" else 1.2, **marker(i))
                for style, record in zip(REFERENCE_STYLES, (references or {}).values()):
                    value = metric_value(record, name, "auroc")
                    if value is not None:
                        ax.axhline(100 * value, color=line.get_color(), ls=style, lw=0.9)
        for style, label in zip(REFERENCE_STYLES, references or {}):
            ax.plot([], [], color="gray", ls=style, lw=0.9, label=label)
        ax.set_xlabel("epoch")
        ax.set_ylabel("AUROC (%)")
        legend_below(ax, ncol=3)
    if panels[2]:
        ax = next(axes)
        for i, (label, key) in enumerate(scalars.items()):
            points = [(r["epoch"], 100 * r[key]) for r in records if r.get(key) is not None]
            ax.plot(*zip(*points), label=label, **marker(i))
        ax.set_xlabel("epoch")
        ax.set_ylabel("%")
        twins = []
        if any(v is not None for v in occupied):
            twin = ax.twinx()
            values = [(e, v) for e, v in zip(epochs, occupied) if v is not None]
            twin.plot(*zip(*values), "k--", label="occupied soft-classes (right)", **marker(len(scalars)))
            twin.set_ylabel("occupied soft-classes")
            twin.yaxis.set_major_locator(MaxNLocator(integer=True))
            twin.set_ylim(0, max(v for _, v in values) * 1.15 + 1)
            twins.append(twin)
        legend_below(ax, *twins)
    thresholds = thresholds or {}
    if drift:
        ax = next(axes)
        for i, (label, points) in enumerate(drift.items()):
            ax.plot(*zip(*points), f"C{i}", label=label, **marker(i))
        if thresholds.get("min_teacher_drift"):
            ax.axhline(thresholds["min_teacher_drift"], color="C3", ls=":", lw=1.2, label="floor (teacher_not_moving)")
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_ylabel("‖θ − θ⁰‖ / ‖θ⁰‖ (backbone)")
        ax.set_title("weight drift from the start", fontsize=9)
        legend_below(ax)
    if shares:
        ax = next(axes)
        limits = {"teacher entropy / log K": ("max_entropy_share", "uniform"),
                  "entropy of mean / log K": ("min_entropy_of_mean_share", "constant"),
                  "effective rank / width": ("min_rank_share", "rank"),
                  "mean feature cosine": ("max_cosine", "cosine")}
        for i, (label, points) in enumerate(shares.items()):
            ax.plot(*zip(*points), f"C{i}", label=label, **marker(i))
            key = limits[label][0]
            if thresholds.get(key) is not None:
                ax.axhline(thresholds[key], color=f"C{i}", ls=":", lw=1.0)
        ax.set_ylim(-0.03, 1.03)
        ax.set_xlabel("epoch")
        ax.set_ylabel("share (dotted: warning thresholds)")
        ax.set_title("collapse signals of the teacher", fontsize=9)
        legend_below(ax)
    held = [w["code"] if isinstance(w, Mapping) else str(w) for w in (records[-1].get("warnings") or [])] \
        if records else []
    fig.suptitle(title)
    if held:
        fig.text(0.5, 0.005, "warnings at the last evaluation: " + ", ".join(held) + " (see results.json)",
                 ha="center", va="bottom", color="C3", fontsize=10, weight="bold")
    fig.tight_layout(rect=(0, 0.04 if held else 0, 1, 1))
    return fig


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
