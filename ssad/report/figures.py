"""The paper's Figures 2 and 3 from a sweep's runs: occupied soft-classes, and AUROC against kNN accuracy and
sensitivity, one point per run and a colour and marker shape per variant (the run's own plots: ssad.scoring.plots)."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from ssad.report.names import name, ordered, paper_order, variant_labels  # noqa: E402
from ssad.report.runs import Run  # noqa: E402
from ssad.scoring.plots import MARKERS, save_figure  # noqa: E402
from ssad.scoring.results import AVERAGE  # noqa: E402
from ssad.utils.tables import percent_value  # noqa: E402

DPI = 120


def _skip(ax: plt.Axes, message: str) -> None:
    ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True, transform=ax.transAxes)
    ax.set_axis_off()


def _scatter(ax: plt.Axes, runs: Sequence[Run], x: Callable[[Run], float | None],
             y: Callable[[Run], float | None], colors: Mapping[str, Any], labels: Mapping[str, str], xlabel: str,
             ylabel: str) -> None:
    """One point per run with both values; a variant is a colour and a hollow marker shape of its own (named by
    its label in the figure's legend), so that runs at the same place stay visible and no label covers another."""
    points = [(r, x(r), y(r)) for r in runs]
    points = [(r, a, b) for r, a, b in points if a is not None and b is not None]
    if not points:
        return _skip(ax, f"no run reports both\n{xlabel} and {ylabel}")
    shapes = {v: MARKERS[i % len(MARKERS)] for i, v in enumerate(colors)}
    for variant in colors:
        mine = [(a, b) for r, a, b in points if r.variant == variant]
        if mine:
            ax.scatter(*zip(*mine), marker=shapes[variant], facecolors="none", edgecolors=[colors[variant]],
                       linewidths=1.4, s=42, label=labels.get(variant, variant))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)


def _legend_right(fig: plt.Figure, axes: Sequence[plt.Axes]) -> None:
    """One legend of the variants for the whole figure, right of the panels (never over a point)."""
    entries: dict[str, Any] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            entries.setdefault(label, handle)
    if entries:
        fig.legend(list(entries.values()), list(entries), loc="center left", bbox_to_anchor=(1.0, 0.5),
                   fontsize=8, title="variant", frameon=False)


def _finished(runs: Sequence[Run], in_dist: str) -> tuple[list[Run], dict[str, Any], dict[str, str]]:
    """The ``in_dist`` runs with results, a colour per variant (paper order) and the variants' labels."""
    labels = variant_labels(runs)
    runs = [r for r in runs if r.dataset == in_dist and r.results is not None]
    cmap = plt.get_cmap("tab10" if len({r.variant for r in runs}) <= 10 else "tab20")
    variants = ordered({r.variant for r in runs}, paper_order(labels, ("2", "1")))
    return runs, {v: cmap(i % cmap.N) for i, v in enumerate(variants)}, labels


def figure2(runs: Sequence[Run], in_dist: str, path: Path) -> Path:
    """Figure 2 (:func:`figure2_figure`) as a PNG at ``path``."""
    return save_figure(figure2_figure(runs, in_dist), path, DPI)


def figure2_figure(runs: Sequence[Run], in_dist: str) -> plt.Figure:
    """Left: occupied soft-classes per variant (mean ± std over seeds). Right: occupied soft-classes vs
    CIFAR100 AUROC (average AUROC when no run has CIFAR100 as OOD set), one point per run."""
    runs, colors, labels = _finished(runs, in_dist)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    occupied = {v: [x for r in runs if r.variant == v and (x := r.value("occupied_soft_classes")) is not None]
                for v in colors}
    occupied = {v: xs for v, xs in occupied.items() if xs}
    if occupied:
        # horizontal bars: the variants' names stay horizontal and apart however long or many they are
        left.barh(range(len(occupied)), [statistics.fmean(xs) for xs in occupied.values()],
                  xerr=[statistics.stdev(xs) if len(xs) > 1 else 0 for xs in occupied.values()],
                  color=[colors[v] for v in occupied], capsize=3)
        left.set_yticks(range(len(occupied)), [labels.get(v, v) for v in occupied])
        left.invert_yaxis()  # the first variant on top
        left.set_xlabel("occupied soft-classes (mean ± std over seeds)")
    else:
        _skip(left, "no run reports occupied soft-classes")
    ood = "cifar100" if any(r.value("cifar100", "auroc") is not None for r in runs) else AVERAGE
    average = "average AUROC over the OOD sets (%) (the paper plots CIFAR100's)"
    xlabel = "CIFAR100 AUROC (%)" if ood == "cifar100" else average
    _scatter(right, runs, lambda r: percent_value(r.value(ood, "auroc")), lambda r: r.value("occupied_soft_classes"),
             colors, labels, xlabel, "occupied soft-classes")
    right.yaxis.set_major_locator(MaxNLocator(integer=True))  # a count
    fig.suptitle(f"Figure 2: occupied soft-classes, {name(in_dist)} as in-distribution")
    fig.tight_layout()
    _legend_right(fig, [right])
    return fig


def figure3(runs: Sequence[Run], in_dist: str, path: Path) -> Path:
    """Figure 3 (:func:`figure3_figure`) as a PNG at ``path``."""
    return save_figure(figure3_figure(runs, in_dist), path, DPI)


def figure3_figure(runs: Sequence[Run], in_dist: str) -> plt.Figure:
    """Average AUROC vs kNN accuracy (left) and vs sensitivity (right), one point per run."""
    runs, colors, labels = _finished(runs, in_dist)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))

    def auroc(run: Run) -> float | None:
        return percent_value(run.value(AVERAGE, "auroc"))

    _scatter(axes[0], runs, lambda r: percent_value(r.value("knn_accuracy")), auroc, colors, labels, "kNN accuracy (%)",
             "average AUROC (%)")
    _scatter(axes[1], runs, lambda r: percent_value(r.value("sensitivity")), auroc, colors, labels,
             "sensitivity: AUROC train vs test in-distribution (%)", "average AUROC (%)")
    fig.suptitle(f"Figure 3: AUROC vs kNN accuracy and sensitivity, {name(in_dist)} as in-distribution")
    fig.tight_layout()
    _legend_right(fig, axes)
    return fig
