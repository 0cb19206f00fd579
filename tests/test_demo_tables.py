"""The quick-start's printed tables (ssad/demo.py): baselines before variants, AUROC by OOD label, gains."""


from ssad.demo import by_label_tables
from ssad.scoring.summary import baseline_gains


def _record(near: float, by_label: dict[str, float] | None) -> dict:
    record = {"ood": {"near": {"auroc": near}}, "average": {"auroc": near}, "knn_accuracy": None}
    return {**record, "auroc_by_label": {"near": by_label}} if by_label is not None else record


def test_by_label_table_has_a_row_per_baseline_and_variant_and_a_column_per_label():
    results = {"none": _record(0.9, {"5": 0.99, "6": 0.59})}
    baselines = {"raw_pixels": _record(0.8, {"5": 1.0, "6": 0.52}), "untrained": _record(0.7, None)}
    lines = by_label_tables(results, baselines)
    assert lines[0] == "\nAUROC (%) of near by label:"
    assert lines[1].split() == ["5", "6"]
    assert [line.split() for line in lines[2:]] == [["Raw", "pixels", "100.0", "52.0"],
                                                   ["Untrained", "-", "-"],  # no labels measured: "-"
                                                   ["none", "99.0", "59.0"]]


def test_by_label_table_names_the_labels_where_the_data_spec_does():
    results = {"none": _record(0.9, {"5": 0.99, "6": 0.59})}
    names = {"near": ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt"]}
    lines = by_label_tables(results, {}, names)
    assert lines[1].split() == ["sandal", "shirt"] and lines[2].split() == ["none", "99.0", "59.0"]


def test_no_by_label_table_without_labelled_ood_sets():
    assert by_label_tables({"none": _record(0.9, None)}, {"raw_pixels": _record(0.8, None)}) == []


def test_gains_are_points_over_each_baseline_that_scored_the_set():
    lines = baseline_gains({"none": _record(0.905, None)}, {"untrained_as_built": _record(0.707, None),
                                                           "untrained": _record(0.839, None)})
    assert lines == ["  none         near: +19.8 vs Untrained as built, +6.6 vs Untrained"]
    far = {"ood": {"far": {"auroc": 0.5}}}
    assert baseline_gains({"none": far}, {"untrained": _record(0.839, None)}) == [
        "  none         far: no baseline scored this set"]
    nearest = {"ood": {"near": {"auroc": 0.45, "auroc_1nn": 0.948}}}  # and the nearest-neighbour score's
    assert baseline_gains({"rot": nearest}, {"raw_pixels": {"ood": {"near": {"auroc": 0.9, "auroc_1nn": 0.933}}}}) == [
        "  rot          near: -45.0 vs Raw pixels", "  rot          near (AUROC-1NN): +1.5 vs Raw pixels"]
