"""The results vocabulary: averages, and the flat ``eval/...`` keys back to the record they came from."""

from __future__ import annotations

import pytest

from ssad.scoring.results import (
    CODES,
    METRICS,
    SIGNALS,
    average_metrics,
    empty_results,
    flatten_metrics,
    metric_value,
    unflatten_metrics,
)

RECORD = {
    "ood": {"svhn": {"auroc": 0.9, "aupr_in": 0.8, "aupr_out": 0.7, "fpr95": 0.3},
            "cifar100": {"auroc": 0.7, "aupr_in": 0.6, "aupr_out": 0.5, "fpr95": 0.6}},
    "knn_accuracy": 0.91, "sensitivity": 0.52, "occupied_soft_classes": 812,
    "teacher_drift": 0.04, "effective_rank": 97.5,
}


def test_average_is_the_mean_of_each_metric_over_the_sets() -> None:
    average = average_metrics(RECORD["ood"])
    assert set(average) == set(METRICS)
    assert average["auroc"] == pytest.approx(0.8) and average["fpr95"] == pytest.approx(0.45)
    assert average_metrics({}) is None
    assert empty_results() == {"ood": {}, "average": None, "knn_accuracy": None, "sensitivity": None}


def test_flatten_then_unflatten_gives_the_record_back() -> None:
    record = {**RECORD, "average": average_metrics(RECORD["ood"]), "variant": "none",
              "warnings": [{"code": CODES[1], "message": "..."}]}
    flat = flatten_metrics(record)
    assert flat["eval/svhn/auroc"] == 0.9 and flat["eval/average/auroc"] == pytest.approx(0.8)
    assert flat["eval/occupied_soft_classes"] == 812.0 and "eval/variant" not in flat
    assert {k: v for k, v in flat.items() if "/warning/" in k} == {
        f"eval/warning/{code}": float(code == CODES[1]) for code in CODES}
    back = unflatten_metrics({**flat, "trainer/global_step": 6, "eval/plots": {"_type": "image-file"}})
    assert back["ood"] == record["ood"] and back["average"] == record["average"]
    for key in ("knn_accuracy", "sensitivity", "occupied_soft_classes", "teacher_drift", "effective_rank"):
        assert back[key] == pytest.approx(record[key]), key
    assert "warning" not in back["ood"] and not set(back) & {"warnings", "variant", *(set(SIGNALS) - set(record))}


def test_unflatten_without_ood_metrics_is_no_result() -> None:
    assert unflatten_metrics({"eval/knn_accuracy": 0.9, "trainer/global_step": 6}) is None


def test_metric_value_reads_sets_average_and_scalars() -> None:
    record = {**RECORD, "average": {"auroc": 0.8}}
    assert metric_value(record, "svhn", "auroc") == 0.9
    assert metric_value(record, "average", "auroc") == 0.8
    assert metric_value(record, "knn_accuracy") == 0.91
    assert metric_value(record, "lsun", "auroc") is None and metric_value(None, "svhn", "auroc") is None
