"""The console summary of an evaluation record (``results.json``): its table of metrics, as ``python -m ssad.evaluate``
and the end of ``python -m ssad.train`` print it, and a trained teacher's AUROC gains over the baselines."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ssad.data.oneclass import OTHERS
from ssad.data.sources import label_names, plain
from ssad.scoring.evaluation import below_chance_note
from ssad.scoring.results import BASELINES, BY_LABEL, LIMITS, MEAN_AUROC, METRICS, NN_AUROC, label_title
from ssad.utils.tables import console_table, percent

METRIC_NAMES = {**METRICS, "fpr95": "FPR95", NN_AUROC: "AUROC-1NN", MEAN_AUROC: "AUROC-mean"}  # console headers
LIMIT_LEGENDS = {  # what each limit column means, printed under the table
    NN_AUROC: "the same features scored by their nearest training feature, 1 − max cos, which Eq. 6 tends to as "
              "τ → 0",
    MEAN_AUROC: "scored by their cosine to the mean training feature, 1 − cos(f, f̄), which Eq. 6 tends to as "
                "τ → ∞: how far an image lies from the middle of the feature cloud"}
MAX_LABELS_SHOWN = 12  # an OOD set with more labels (CIFAR100) prints its lowest AUROCs by label
METRIC_WIDTH = 8  # the narrowest metric column


SELECTION_KEYS = ("name", "split", "classes", "per_class", "label_names")  # which images of a source, not its labels


def evaluated_label_names(data: Mapping[str, Any] | None) -> dict[str, list[str]]:
    """The label names of each OOD set that a run of the data config ``data`` scores by label (set → names, for
    :func:`results_table`): those its ``data.ood`` specs give. Under the one-class protocol (``data.normal_class``)
    the only OOD set is :data:`ssad.data.oneclass.OTHERS`, the other classes of ``data.train``'s source: named by
    ``data.test``'s or ``data.train``'s ``label_names``, else by those of a ``data.ood`` spec of the same source
    (e.g. ``data=glyphs``, whose letters are named on its OOD set)."""
    data = plain(data) or {}
    if data.get("normal_class") is None:
        return label_names(data.get("ood"))
    train, test = data.get("train") or {}, data.get("test") or {}
    names = test.get("label_names") or train.get("label_names")
    if not names:
        def source(spec: Mapping[str, Any]) -> dict[str, Any]:
            return {k: v for k, v in spec.items() if k not in SELECTION_KEYS}

        same = [spec["label_names"] for spec in (data.get("ood") or {}).values()
                if isinstance(spec, Mapping) and spec.get("label_names") and source(spec) == source(train)]
        names = same[0] if same else None
    return {OTHERS: list(names)} if names else {}


def results_table(results: Mapping[str, Any], names: Mapping[str, Sequence[str]] | None = None,
                  temperature: float | None = None) -> str:
    """The console summary of an evaluation: one row per OOD set and the average (metrics in percent), then kNN
    accuracy, sensitivity and occupied soft-classes, then each labelled OOD set's AUROC by label (named by
    ``names``: set → label names, where the data spec gives them; the lowest ``MAX_LABELS_SHOWN`` of a set with more);
    or why the OOD metrics are missing. Given Eq. 6's ``temperature``, ends with the note on any OOD set below 50
    (:func:`ssad.scoring.evaluation.below_chance_note`)."""
    def pct(value: float | None) -> str:
        return percent(value, digits=2)

    rows = {**(results.get("ood") or {}), **({"average": results["average"]} if results.get("average") else {})}
    lines = []
    if rows:
        columns = [*METRICS, *(key for key in LIMITS if all(key in m for m in rows.values()))]
        lines += console_table(["OOD set", *(METRIC_NAMES[m] for m in columns)],
                               [[name, *(pct(metrics.get(m)) for m in columns)] for name, metrics in rows.items()],
                               align=["<", *">" * len(columns)], min_widths=[0, *[METRIC_WIDTH] * len(columns)])
        lines += [f"({METRIC_NAMES[key]}: {LIMIT_LEGENDS[key]})" for key in LIMITS if key in columns]
    elif results.get("ood_skipped"):
        lines.append(f"OOD metrics skipped: {results['ood_skipped']}")
    scalars = [f"kNN accuracy {pct(results.get('knn_accuracy'))}%" if results.get("knn_accuracy") is not None
               else "kNN accuracy n/a (no labels)",
               f"sensitivity {pct(results.get('sensitivity'))}%",
               f"occupied soft-classes {results.get('occupied_soft_classes', 'n/a')}"]
    lines.append(", ".join(scalars))
    for name, by_label in (results.get(BY_LABEL) or {}).items():
        shown = list(by_label.items())
        if len(shown) > MAX_LABELS_SHOWN:  # the labels the detector misses most
            shown = sorted(shown, key=lambda item: item[1])[:MAX_LABELS_SHOWN]
        lowest = f" ({len(shown)} lowest of {len(by_label)})" if len(shown) < len(by_label) else ""
        lines.append(f"AUROC by label, {name}{lowest}: " + ", ".join(
            f"{label_title(label, (names or {}).get(name))} {pct(auroc)}" for label, auroc in shown))
    note = below_chance_note(results, temperature) if temperature is not None else None
    return "\n".join([*lines, *([note] if note else [])])


def baseline_gains(results: Mapping[str, Mapping[str, Any]], baselines: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Per trained teacher (``results``: name → results.json) and OOD set: its AUROC points over each baseline of
    a ``baselines.json`` (raw pixels, the untrained network as built and with its BatchNorm statistics measured)
    that scored that set; then the same for the nearest-neighbour score (AUROC-1NN) where both have it."""
    present = [(label, baselines[key]["ood"]) for key, label in BASELINES.items() if key in baselines]
    lines = []
    for variant, res in results.items():
        for name, metrics in (res.get("ood") or {}).items():
            for metric, title in (("auroc", name), (NN_AUROC, f"{name} ({METRIC_NAMES[NN_AUROC]})")):
                gains = [f"{percent(metrics[metric] - ood[name][metric], sign=True)} vs {label}"
                         for label, ood in present if metric in ood.get(name, {}) and metric in metrics]
                if metric == "auroc" or gains:
                    lines.append(f"  {variant:<12} {title}: {', '.join(gains) or 'no baseline scored this set'}")
    return lines
