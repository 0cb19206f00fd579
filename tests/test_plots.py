"""Every PNG the project writes, checked on its drawn geometry: no tick label over another, no legend over a
panel, one-epoch runs on an axis of epoch 1, every series of a panel with a marker of its own."""

from __future__ import annotations

import itertools
import json

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from ssad.report.figures import figure2_figure, figure3_figure
from ssad.report.runs import make_run
from ssad.score import histogram_figure
from ssad.scoring.plots import curves_figure, histograms_figure, roc_figure


def _renderer(fig):
    fig.canvas.draw()
    return fig.canvas.get_renderer()


def shown_tick_labels(axis) -> list:
    """The tick labels that are drawn: non-empty, at a tick inside the axis's view."""
    low, high = sorted(axis.get_view_interval())
    return [label for loc, label in zip(axis.get_majorticklocs(), axis.get_majorticklabels())
            if label.get_visible() and label.get_text() and low <= loc <= high]


def overlapping_tick_labels(fig) -> list[str]:
    """The tick labels of one axis that overlap a neighbour, over every visible axes of ``fig``."""
    renderer, found = _renderer(fig), []
    for ax in (a for a in fig.axes if a.get_visible()):
        for axis in (ax.xaxis, ax.yaxis):
            labels = shown_tick_labels(axis)
            boxes = [t.get_window_extent(renderer) for t in labels]
            for (a, la), (b, lb) in itertools.combinations(zip(boxes, labels), 2):
                if a.overlaps(b):
                    found.append(f"{la.get_text()!r} / {lb.get_text()!r}")
    return found


def legends_over_panels(fig) -> list[str]:
    """Legends (of the axes and of the figure) and figure texts drawn over a visible panel or over each other."""
    renderer = _renderer(fig)
    legends = [a.get_legend() for a in fig.axes if a.get_legend() is not None] + list(fig.legends)
    panels = [a.get_window_extent(renderer) for a in fig.axes if a.get_visible()]
    boxes = [(legend.get_window_extent(renderer), "legend") for legend in legends]
    boxes += [(t.get_window_extent(renderer), repr(t.get_text()[:30])) for t in fig.texts if t.get_text()]
    found = [what for box, what in boxes if any(box.overlaps(panel) for panel in panels)]
    found += [f"{a} / {b}" for (x, a), (y, b) in itertools.combinations(boxes, 2) if x.overlaps(y)]
    return found


def shared_markers(fig) -> list[str]:
    """Panels where two series with markers share the same marker shape."""
    found = []
    for ax in fig.axes:
        shapes = [line.get_marker() for line in ax.get_lines() if line.get_marker() not in ("None", "", None)]
        if len(shapes) != len(set(shapes)):
            found.append(ax.get_ylabel())
    return found


def _record(epoch: int) -> dict:
    auroc = {"digits_5to9": 0.55, "photos": 0.996}
    return {"epoch": epoch, "ood": {k: {"auroc": v} for k, v in auroc.items()}, "average": {"auroc": 0.77},
            "knn_accuracy": 0.37, "sensitivity": 0.50, "occupied_soft_classes": 1, "teacher_drift": 5.8e-7,
            "student_drift": 2.9e-4, "teacher_entropy": 2.7e-7, "teacher_entropy_of_mean": 2.9e-7, "log_k": 3.47,
            "effective_rank": 1.6, "feature_dim": 24, "mean_cosine": 0.997,
            "warnings": [{"code": "teacher_not_moving"}, {"code": "collapse_constant"}]}


THRESHOLDS = {"min_teacher_drift": 1e-3, "max_entropy_share": 0.95, "min_entropy_of_mean_share": 0.05,
              "min_rank_share": 0.01, "max_cosine": 0.99}


@pytest.mark.parametrize("epochs", [1, 3, 40])
def test_training_curves_span_the_run_with_readable_axes(epochs):
    records = [_record(e) for e in range(1, epochs + 1)]
    fig = curves_figure(records, [7.2 - 0.01 * e for e in range(epochs)], "digits / rot_indist",
                        thresholds=THRESHOLDS)
    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert len(panels) == 6  # five panels and the twin axis of occupied soft-classes
    _renderer(fig)
    for ax in panels:
        assert ax.get_xlim() == (0.5, epochs + 0.5)
        ticks = [float(t.get_text().replace("−", "-")) for t in shown_tick_labels(ax.xaxis)]
        assert ticks and all(t == int(t) and 1 <= t <= epochs for t in ticks)
    if epochs == 1:
        assert all([t.get_text() for t in shown_tick_labels(ax.xaxis)] == ["1"] for ax in panels)
    assert overlapping_tick_labels(fig) == []
    assert legends_over_panels(fig) == []
    assert shared_markers(fig) == []
    plt.close(fig)


def test_training_curves_draw_the_baselines_as_reference_lines_in_each_sets_colour():
    records = [_record(e) for e in range(1, 5)]
    untrained = {"ood": {"digits_5to9": {"auroc": 0.5}, "photos": {"auroc": 0.9}}, "average": {"auroc": 0.7}}
    raw = {"ood": {"digits_5to9": {"auroc": 0.6}}, "average": None}  # no photos, no average: no line for them
    fig = curves_figure(records, [7.0, 6.0, 5.0, 4.0], thresholds=THRESHOLDS,
                        references={"Untrained": untrained, "Raw pixels": raw})
    ax = next(a for a in fig.axes if a.get_ylabel() == "AUROC (%)")
    series = {line.get_label(): line.get_color() for line in ax.get_lines() if line.get_marker() not in ("None", "")}
    flat = [line for line in ax.get_lines() if len(set(line.get_ydata())) == 1 and len(line.get_ydata()) == 2]
    drawn = sorted((line.get_linestyle(), float(line.get_ydata()[0]), line.get_color()) for line in flat)
    assert drawn == sorted([(":", 50.0, series["digits_5to9"]), (":", 90.0, series["photos"]),
                            (":", 70.0, series["average"]), ("--", 60.0, series["digits_5to9"])])
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend[-2:] == ["Untrained", "Raw pixels"]
    assert legends_over_panels(fig) == [] and shared_markers(fig) == []
    plt.close(fig)


def _eq6(readable: np.ndarray, temperature: float = 0.04) -> torch.Tensor:
    """Eq. 6 scores S whose published score 1 − τ·log(−S) is ``readable``."""
    return torch.from_numpy(-np.exp((1 - readable) / temperature))


@pytest.mark.parametrize("low,high", [(0.0012, 0.0125), (0.99991, 0.99999), (0.0, 1.4)])
def test_score_plots_keep_labels_apart_and_legends_off_the_bars(low, high):
    rng = np.random.default_rng(0)
    scores = {"test": _eq6(rng.uniform(low, low + (high - low) / 3, 300)),
              "digits_5to9": _eq6(rng.uniform(low, high, 300)), "photos": _eq6(rng.uniform(low, high, 300))}
    results = {"ood": {"digits_5to9": {"auroc": 0.55}, "photos": {"auroc": 0.99}}}
    for fig in (histograms_figure(scores, results, "digits / rot_indist"), roc_figure(scores, results, "x"),
                histogram_figure(torch.from_numpy(rng.uniform(low, high, 60)), (low + high) / 2,
                                 torch.from_numpy(rng.uniform(low, high, 60)))):
        assert overlapping_tick_labels(fig) == []
        assert legends_over_panels(fig) == []
        plt.close(fig)


def _runs(variants: int = 8, seeds: int = 3) -> list:
    rng = np.random.default_rng(0)
    runs = []
    for v, seed in itertools.product(range(variants), range(seeds)):
        auroc = {"digits_5to9": rng.uniform(0.55, 0.7), "photos": 0.99}
        results = {"variant": f"variant_{v}", "dataset": "digits", "seed": seed,
                   "ood": {k: {"auroc": x} for k, x in auroc.items()},
                   "average": {"auroc": float(np.mean([*auroc.values()]))},
                   "knn_accuracy": rng.uniform(0.56, 0.58), "sensitivity": rng.uniform(0.49, 0.51),
                   "occupied_soft_classes": int(rng.integers(1, 4))}
        runs.append(make_run(f"run{v}{seed}", {"seed": seed}, results))
    return runs


@pytest.mark.parametrize("build", [figure2_figure, figure3_figure])
def test_report_figures_name_variants_in_a_legend_not_over_the_points(build):
    fig = build(_runs(), "digits")
    scatter = fig.axes[-1]
    assert not scatter.texts  # no per-point labels to pile up
    shapes = {c.get_label(): c.get_paths()[0].vertices.shape for c in scatter.collections}
    assert len(shapes) == 8 and len(fig.legends) == 1
    assert overlapping_tick_labels(fig) == []
    assert legends_over_panels(fig) == []
    plt.close(fig)


def test_the_evaluation_callback_reads_its_reference_lines_from_a_baselines_file(tmp_path):
    from ssad.training.callbacks import OODEvaluation

    results = {"ood": {"near": {"auroc": 0.84}}, "average": {"auroc": 0.84}}
    path = tmp_path / "baselines.json"
    path.write_text(json.dumps({"raw_pixels": results, "untrained_as_built": results, "untrained": results}))
    callback = OODEvaluation(str(tmp_path), 16, baselines=str(path))
    assert list(callback.references()) == ["Untrained", "Raw pixels"]  # as built: not drawn
    assert OODEvaluation(str(tmp_path), 16).references() == {}
    with pytest.warns(UserWarning, match="not drawn in the training curves.*python -m ssad.scoring.baselines"):
        assert OODEvaluation(str(tmp_path), 16, baselines=str(tmp_path / "missing.json")).references() == {}
