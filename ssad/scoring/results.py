"""The results vocabulary: the keys of an evaluation record (a line of ``metrics.jsonl``, ``results.json``,
``baselines.json``'s columns, ``ssad.evaluate``'s JSON) and of its flat form ``eval/...`` that loggers carry
(Lightning's ``log_dict``, W&B summaries), with the conversions between the two.

A record::

    {"variant": ..., "dataset": ..., "seed": ...,           # the run (callbacks' ``meta``)
     "ood": {SET: {"auroc": .., "aupr_in": .., "aupr_out": .., "fpr95": ..,     # fractions in [0, 1]
                   "auroc_1nn": .., "auroc_mean": ..}},  # Eq. 6's two limits, τ → 0 and τ → ∞ (diagnostics)
     "average": {METRIC: mean over the OOD sets} or None,
     "knn_accuracy": .., "sensitivity": .., "occupied_soft_classes": ..,       # None where not measured
     "auroc_by_label": {SET: {LABEL: ..}},     # only for OOD sets with labels: which OOD classes are missed
     SIGNAL: ..., "warnings": [{"code": CODE, "message": ..., ...}], ...}     # collapse monitor

flattened as ``eval/<SET>/<METRIC>``, ``eval/average/<METRIC>``, ``eval/<SCALAR or SIGNAL>`` and
``eval/warning/<CODE>`` (1 while the warning holds, else 0).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

OOD = "ood"
BY_LABEL = "auroc_by_label"
NN_AUROC = "auroc_1nn"  # per OOD set, beside the Eq. 6 metrics: AUROC of the nearest-neighbour score (τ → 0)
MEAN_AUROC = "auroc_mean"  # and of the cosine to the mean training feature (τ → ∞)
LIMITS = (NN_AUROC, MEAN_AUROC)  # Eq. 6's limits, in the order tables print them
AVERAGE = "average"
PREFIX = "eval"
WARNING = "warning"
# the metrics of each OOD set (and of their average), with the names the tables print
METRICS = {"auroc": "AUROC", "aupr_in": "AUPR-In", "aupr_out": "AUPR-Out", "fpr95": "FPR@95%TPR"}
# run-level numbers of the paper's evaluation
SCALARS = ("knn_accuracy", "occupied_soft_classes", "sensitivity")
# the collapse signals an evaluation record carries (ssad.scoring.diagnostics, ssad.scoring.collapse)
SIGNALS = ("teacher_drift", "student_drift", "teacher_entropy", "teacher_entropy_of_mean", "log_k",
           "effective_rank", "feature_dim", "mean_cosine")
# the baselines of ``baselines.json`` (ssad.scoring.baselines; untrained_as_built only for a network with
# BatchNorm), with the labels tables, plots and the quick-start print
BASELINES = {"raw_pixels": "Raw pixels", "untrained_as_built": "Untrained as built", "untrained": "Untrained"}
BASELINES_FILE = "baselines.json"  # where ssad.scoring.baselines writes them (and ssad.train, with eval.baselines=auto)
# the collapse warnings' codes (ssad.scoring.diagnostics.collapse_warnings)
CODES = ("teacher_not_moving", "collapse_uniform", "collapse_constant", "features_constant")


def baselines_path(value: str | None, run_dir: str | os.PathLike) -> Path | None:
    """The ``baselines.json`` that ``eval.baselines`` names: ``run_dir``'s for ``auto`` (ssad.train writes it
    there), none for null, else the path given."""
    if value is None:
        return None
    return Path(run_dir) / BASELINES_FILE if value == "auto" else Path(value)


def label_title(label: str, names: Sequence[str] | None) -> str:
    """How a label of ``auroc_by_label`` is printed: its name when the data spec gives ``label_names``, else the
    label itself."""
    index = int(label)
    return names[index] if names and 0 <= index < len(names) else label


def empty_results() -> dict[str, Any]:
    """The metrics of an evaluation before any is measured: no OOD set, no average, no kNN, no sensitivity."""
    return {OOD: {}, AVERAGE: None, "knn_accuracy": None, "sensitivity": None}


def average_metrics(ood: Mapping[str, Mapping[str, float]]) -> dict[str, float] | None:
    """Each metric's mean over the OOD sets ``ood`` (set → metrics); None when there is no set."""
    if not ood:
        return None
    keys = [*METRICS, *(key for key in LIMITS if all(key in metrics for metrics in ood.values()))]
    return {m: sum(metrics[m] for metrics in ood.values()) / len(ood) for m in keys}


def metric_value(results: Mapping[str, Any] | None, key: str, metric: str | None = None) -> float | None:
    """``metric`` of OOD set ``key`` (or of ``"average"``) in ``results``; with no metric, the run-level number
    ``key`` (e.g. ``knn_accuracy``). None when there is no such number."""
    if results is None:
        return None
    if metric is None:
        return results.get(key)
    section = results.get(AVERAGE) if key == AVERAGE else (results.get(OOD) or {}).get(key)
    return (section or {}).get(metric)


def flatten_metrics(results: Mapping[str, Any], prefix: str = PREFIX) -> dict[str, float]:
    """``{"ood": {"svhn": {"auroc": x}}, "knn_accuracy": y}`` → ``{"eval/svhn/auroc": x, "eval/knn_accuracy": y}``
    (numbers that are None are left out); with ``warnings``, ``eval/warning/<code>`` for every code."""
    flat: dict[str, float] = {}
    for name, metrics in (results.get(OOD) or {}).items():
        flat.update({f"{prefix}/{name}/{k}": v for k, v in metrics.items()})
    for k, v in (results.get(AVERAGE) or {}).items():
        flat[f"{prefix}/{AVERAGE}/{k}"] = v
    for key in (*SCALARS, *SIGNALS):
        if results.get(key) is not None:
            flat[f"{prefix}/{key}"] = float(results[key])
    if results.get("warnings") is not None:  # 1 while a collapse warning holds (W&B charts)
        held = {w["code"] for w in results["warnings"]}
        flat.update({f"{prefix}/{WARNING}/{code}": float(code in held) for code in CODES})
    return flat


def unflatten_metrics(flat: Mapping[str, Any], prefix: str = PREFIX) -> dict[str, Any] | None:
    """The record's metrics (per OOD set, average, scalars, signals) from flat ``eval/...`` keys such as a W&B
    summary's; other keys are ignored. None when there is no OOD metric (a failed or unfinished run)."""
    results: dict[str, Any] = {OOD: {}, AVERAGE: None}
    for key, value in flat.items():
        parts = key.split("/")
        if parts[0] != prefix:
            continue
        if len(parts) == 3 and parts[2] in METRICS and parts[1] == AVERAGE:
            results[AVERAGE] = {**(results[AVERAGE] or {}), parts[2]: value}
        elif len(parts) == 3 and parts[2] in METRICS and parts[1] != WARNING:
            results[OOD].setdefault(parts[1], {})[parts[2]] = value
        elif len(parts) == 2 and parts[1] in (*SCALARS, *SIGNALS):
            results[parts[1]] = value
    return results if results[OOD] or results[AVERAGE] else None
