"""The report's names come from the presets: a negatives preset's ``label`` heads its column, a data preset's
``data.ood`` keys are its rows; the published tables give datasets their names and the paper its order."""

from __future__ import annotations

import csv
from pathlib import Path

import yaml

from ssad.config.keys import CONFIG_DIR
from ssad.report.cli import write_report
from ssad.report.names import in_published_order, name, paper_order, preset_labels
from ssad.report.runs import collect_runs
from tests.test_report import md_table, write_run


def test_every_negatives_preset_has_a_label_and_the_paper_names_its_own() -> None:
    presets = [yaml.safe_load(p.read_text()) for p in sorted((CONFIG_DIR / "negatives").glob("*.yaml"))]
    assert presets and all(isinstance(p.get("label"), str) and p["label"] for p in presets)
    labels = preset_labels()
    assert labels["none"] == "DINO" and labels["rot_imgn"] == "Rot_ImgN" and labels["combined"] == "Combined"
    # the paper's column order: Table 2, then Table 1's own variants (Ours_<label>)
    order = paper_order(labels, ("2", "1"))
    assert order[:5] == ["raw_pixels", "untrained_as_built", "untrained", "none", "imgn"]
    assert order[-2:] == ["rot_indist", "combined"]


def test_published_names_and_order_of_datasets() -> None:
    assert [name(k) for k in ("cifar100", "tinyimagenet", "average", "my_set")] == [
        "CIFAR100", "TinyImageNet", "Average", "my_set"]
    assert in_published_order(["zeta", "svhn", "alpha", "cifar100"]) == ["cifar100", "svhn", "zeta", "alpha"]


def test_the_runs_config_names_its_column_and_the_presets_ood_keys_its_rows(tmp_path: Path) -> None:
    own = write_run(tmp_path / "runs" / "mine", "my_variant", 0, {"svhn": 0.9, "zeta": 0.6, "alpha": 0.7})
    config = yaml.safe_load((own / ".hydra" / "config.yaml").read_text())
    config["negatives"]["label"] = "My negatives"
    config["data"]["ood"] = {k: {"format": "x"} for k in ("zeta", "svhn", "alpha")}  # the preset's order
    (own / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    # an older run: no label in its saved config, so the packaged preset's label names it
    write_run(tmp_path / "runs" / "old", "perm4_indist", 0, {"svhn": 0.8, "zeta": 0.5, "alpha": 0.6})
    write_report(collect_runs(tmp_path / "runs"), tmp_path / "out")
    header, md = md_table((tmp_path / "out" / "table2.md").read_text(), "Table 2")
    assert header == ["OOD", "My negatives", "Perm4_InDist"]
    assert list(md) == ["SVHN", "zeta", "alpha", "Average"]  # the paper's sets first, then the preset's order
    assert md["zeta"][1:] == ["60.00", "50.00"]
    with open(tmp_path / "out" / "table2.csv") as f:
        methods = {(r["variant"], r["method"]) for r in csv.DictReader(f)}
    assert methods == {("my_variant", "My negatives"), ("perm4_indist", "Perm4_InDist")}
