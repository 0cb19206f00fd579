"""``python -m ssad.report`` on one-class runs (``data.normal_class``): they go to ``oneclass.*`` only, never into
Table 2 or the figures, whose rows and points would mix the normal classes."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import yaml

from ssad.report.cli import main


def write_run(run_dir: Path, variant: str, auroc: dict[str, float], normal_class: int | None = None,
              baselines: dict[str, float] | None = None) -> Path:
    """A finished run directory as training writes it: ``.hydra/config.yaml``, ``results.json`` and (with
    ``baselines``, as ``eval.baselines=auto`` does) ``baselines.json`` scoring the same OOD sets."""
    data = {"name": "digits", "ood": {k: {"format": "digits"} for k in auroc}}
    if normal_class is not None:
        data["normal_class"] = normal_class
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / ".hydra" / "config.yaml").write_text(yaml.safe_dump({"seed": 0, "data": data,
                                                                     "negatives": {"name": variant}}))
    ood = {k: {"auroc": v} for k, v in auroc.items()}
    (run_dir / "results.json").write_text(json.dumps({"variant": variant, "dataset": "digits", "seed": 0, "ood": ood,
                                                      "average": {"auroc": sum(auroc.values()) / len(auroc)}}))
    if baselines:
        (run_dir / "baselines.json").write_text(json.dumps(
            {key: {"ood": {k: {"auroc": value} for k in auroc}} for key, value in baselines.items()}))
    return run_dir


def test_a_one_class_sweep_writes_the_one_class_table_only(tmp_path: Path, capsys) -> None:
    sweep = tmp_path / "sweep"
    for k, value in ((0, 0.91), (1, 0.83)):
        write_run(sweep / f"digits-class{k}-rot_indist-seed0", "rot_indist", {"others": value}, k,
                  {"raw_pixels": 0.5 + k / 10, "untrained": 0.7})
    main([str(sweep), "--out", str(tmp_path / "report")])
    assert sorted(p.name for p in (tmp_path / "report").iterdir()) == ["oneclass.csv", "oneclass.md", "oneclass.tex"]
    printed = capsys.readouterr().out
    assert "Table 2" not in printed and "One-class AUROC (%) on digits" in printed
    rows = {(r["normal_class"], r["method"]): r for r in csv.DictReader((tmp_path / "report" / "oneclass.csv").open())}
    assert float(rows["1", "Rot_InDist"]["auroc_mean"]) == 83.0 and float(rows["1", "Raw pixels"]["auroc_mean"]) == 60


def test_a_mixed_sweep_keeps_the_one_class_runs_out_of_table2(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    write_run(sweep / "digits-rot_indist-seed0", "rot_indist", {"svhn": 0.7}, baselines={"untrained": 0.6})
    write_run(sweep / "digits-class3-rot_indist-seed0", "rot_indist", {"others": 0.95}, 3, {"untrained": 0.2})
    main([str(sweep), "--out", str(tmp_path / "report")])
    names = {p.name for p in (tmp_path / "report").iterdir()}
    assert {"table2.csv", "oneclass.csv", "figure2.png", "figure3.png"} <= names
    table2 = list(csv.DictReader((tmp_path / "report" / "table2.csv").open()))
    assert {r["ood"] for r in table2} == {"SVHN", "Average"}  # no row of the one-class OOD set `others`
    untrained = [r for r in table2 if r["ood"] == "SVHN" and r["variant"] == "untrained"]
    assert [float(r["measured_mean"]) for r in untrained] == [60.0]  # the variant run's own baselines
    oneclass = list(csv.DictReader((tmp_path / "report" / "oneclass.csv").open()))
    assert {r["normal_class"] for r in oneclass} == {"3", "mean"}
