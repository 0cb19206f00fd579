"""The report on hand-made run directories: cells equal the runs' numbers, missing runs stay missing."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import re
import statistics
import subprocess
import sys
from pathlib import Path

import matplotlib.image
import pytest
import yaml

from ssad.report.cli import main, write_report
from ssad.report.runs import collect_runs, collect_wandb
from tests.conftest import HANG_S

PAPER_TABLE2 = Path(__file__).resolve().parents[2] / "shared" / "paper" / "table2.csv"
IMAGENET_ROT = [{"source": "imagenet", "transform": "rot", "weight": 1.0}]
OODS = ("cifar100", "svhn", "tinyimagenet", "my_ood")
AUROC = {  # (variant, seed) → AUROC per OOD set; my_variant and my_ood are unknown to the paper
    ("rot_imgn", 0): {"cifar100": 0.921, "svhn": 0.9951, "tinyimagenet": 0.950, "my_ood": 0.811},
    ("rot_imgn", 1): {"cifar100": 0.928, "svhn": 0.9973, "tinyimagenet": 0.962, "my_ood": 0.834},
    ("none", 0): {"cifar100": 0.893, "svhn": 0.9912, "tinyimagenet": 0.905, "my_ood": 0.702},
    ("my_variant", 0): {"cifar100": 0.5, "svhn": 0.6, "tinyimagenet": 0.7, "my_ood": 0.8},
}


def paper_svhn_rot_imgn() -> float:
    """The published CIFAR10 vs SVHN AUROC of Rot_ImgN, read from the paper's Table 2 where it is at hand."""
    if not PAPER_TABLE2.is_file():
        return 99.69
    with open(PAPER_TABLE2) as f:
        rows = csv.DictReader(line for line in f if not line.startswith("#"))
        return next(float(r["Rot_ImgN"]) for r in rows if r["ood"] == "SVHN")


def write_run(run_dir: Path, variant: str, seed: int, auroc: dict[str, float] | None,
              dataset: str = "cifar10", parts: list | None = None, scalars: bool = True) -> Path:
    """A run directory as training writes it: ``.hydra/config.yaml`` and (unless ``auroc`` is None)
    ``results.json``."""
    ood = auroc or dict.fromkeys(OODS)
    config = {"seed": seed, "data": {"name": dataset, "ood": {k: {"format": "x"} for k in ood}},
              "negatives": {"name": variant, "weight": 1.0, "parts": parts or []}}
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    if auroc is not None:
        ood_metrics = {k: {"auroc": v, "aupr_in": v, "aupr_out": v, "fpr95": 1 - v} for k, v in auroc.items()}
        results = {"variant": variant, "dataset": dataset, "seed": seed, "epoch": 2, "step": 6, "loss": 1.0,
                   "ood": ood_metrics, "average": {"auroc": statistics.fmean(auroc.values())},
                   "knn_accuracy": 0.9 if scalars else None,
                   "sensitivity": 0.55 + seed / 100 if scalars else None,
                   "occupied_soft_classes": 1000 + 100 * seed if scalars else None,
                   "soft_classes_split": "test", "loss_curve": [2.0, 1.0]}
        (run_dir / "results.json").write_text(json.dumps(results))
    return run_dir


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two seeds of rot_imgn (one nested deeper), one of none and of an unknown variant, and a combined run
    that never finished (no results.json)."""
    tmp_path = tmp_path_factory.mktemp("sweep")
    root = tmp_path / "multirun" / "table2" / "2024-01-01_00-00-00"
    for (variant, seed), auroc in AUROC.items():
        parent = root / "resubmitted" / "nested" if seed == 1 else root
        write_run(parent / f"cifar10-{variant}-seed{seed}", variant, seed, auroc,
                  parts=IMAGENET_ROT if "imgn" in variant else [])
    # a checkpoint evaluation inside a run directory is not a run of its own
    bogus = root / "cifar10-rot_imgn-seed0" / "eval" / "last"
    bogus.mkdir(parents=True)
    (bogus / "results.json").write_text(json.dumps({"variant": "rot_imgn", "dataset": "cifar10", "seed": 0,
                                                    "ood": {"svhn": {"auroc": 0.0}}}))
    write_run(root / "cifar10-combined-seed0", "combined", 0, None,
              parts=[{"source": "indist", "transform": "rot"}, {"source": "imagenet", "transform": "rot"}])
    return tmp_path / "multirun"


def md_table(text: str, title: str) -> tuple[list[str], dict[str, list[str]]]:
    """Header and rows (by label) of the Markdown table under the bold ``title`` prefix."""
    lines = text[text.index(f"**{title}"):].splitlines()[2:]
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines if line.startswith("|")]
    return cells[0], {row[0]: row for row in cells[2:]}


def csv_rows(path: Path) -> dict[tuple[str, str, str], dict[str, str]]:
    with open(path) as f:
        return {(r["in_dist"], r["variant"], r["ood"]): r for r in csv.DictReader(f)}


@pytest.fixture(scope="module")
def report(sweep: Path) -> Path:
    """The report of ``sweep`` written by the command line; its stdout in ``stdout.txt``."""
    out = sweep.parent / "report"
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        main([str(sweep), "--out", str(out)])
    (out / "stdout.txt").write_text(stdout.getvalue())
    return out


def test_collect_runs_finds_every_run_once(sweep: Path) -> None:
    runs = collect_runs(sweep)
    assert sorted((r.variant, r.seed, r.results is None) for r in runs) == [
        ("combined", 0, True), ("my_variant", 0, False), ("none", 0, False), ("rot_imgn", 0, False),
        ("rot_imgn", 1, False)]


def test_an_unfinished_training_run_that_scored_its_baselines_is_still_a_run(tmp_path: Path) -> None:
    """eval.baselines=auto writes baselines.json before training: with no results.json yet, the folder is a
    run that has not finished, not a folder of `python -m ssad.scoring.baselines` (told apart by Hydra's job name)."""
    for job in ("train", "baselines"):
        write_run(tmp_path / job, "none", 0, None)
        (tmp_path / job / "baselines.json").write_text(json.dumps({"untrained": {"ood": {}}}))
        (tmp_path / job / ".hydra" / "hydra.yaml").write_text(f"hydra:\n  job:\n    name: {job}\n")
    runs = collect_runs(tmp_path)
    assert [(Path(r.source).name, r.variant, r.results) for r in runs] == [("train", "none", None)] + [
        ("baselines.json", "untrained", {"ood": {}})]  # and its baselines, as baselines of its seed


def test_cells_equal_the_runs_numbers(report: Path) -> None:
    rows = csv_rows(report / "table2.csv")
    for ood, label in [("cifar100", "CIFAR100"), ("svhn", "SVHN"), ("tinyimagenet", "TinyImageNet"),
                       ("my_ood", "my_ood")]:
        values = [100 * AUROC["rot_imgn", seed][ood] for seed in (0, 1)]
        row = rows["CIFAR10", "rot_imgn", label]
        assert float(row["measured_mean"]) == pytest.approx(statistics.mean(values))
        assert float(row["measured_std"]) == pytest.approx(statistics.stdev(values))
        assert row["n_seeds"] == "2" and row["n_missing"] == "0"
        single = rows["CIFAR10", "none", label]
        assert float(single["measured_mean"]) == pytest.approx(100 * AUROC["none", 0][ood])
        assert single["measured_std"] == "" and single["n_seeds"] == "1"
    average = statistics.mean(100 * statistics.fmean(AUROC["rot_imgn", s].values()) for s in (0, 1))
    assert float(rows["CIFAR10", "rot_imgn", "Average"]["measured_mean"]) == pytest.approx(average)

    header, md = md_table((report / "table2.md").read_text(), "Table 2")
    svhn = [100 * AUROC["rot_imgn", seed]["svhn"] for seed in (0, 1)]
    col = header.index("Rot_ImgN")
    assert md["SVHN"][col] == f"{statistics.mean(svhn):.2f} ± {statistics.stdev(svhn):.2f}"
    assert md["SVHN"][header.index("DINO")] == f"{100 * AUROC['none', 0]['svhn']:.2f}"


def test_paper_numbers_beside_matching_cells(report: Path) -> None:
    paper = paper_svhn_rot_imgn()
    assert float(csv_rows(report / "table2.csv")["CIFAR10", "rot_imgn", "SVHN"]["paper"]) == paper
    header, md = md_table((report / "table2.md").read_text(), "Table 2")
    col = header.index("Rot_ImgN")
    assert header[col + 1] == "paper" and md["SVHN"][col + 1] == f"{paper:.2f}"
    assert r"\multicolumn{2}{c}{Rot\_ImgN}" in (report / "table2.tex").read_text()
    table1 = csv_rows(report / "table1.csv")
    assert float(table1["CIFAR10", "rot_imgn", "SVHN"]["paper"]) == paper  # Table 1 prints the same number


def test_missing_run_is_shown_missing(report: Path, sweep: Path) -> None:
    for stem in ("table2", "table1"):
        rows = csv_rows(report / f"{stem}.csv")
        combined = [r for (_, variant, _), r in rows.items() if variant == "combined"]
        assert combined and all(r["measured_mean"] == "" and r["n_missing"] == "1" for r in combined)
        header, md = md_table((report / f"{stem}.md").read_text(), f"Table {stem[-1]}")
        col = header.index("Combined")
        assert all(row[col] == "missing" for row in md.values())
        assert str(next(sweep.rglob("cifar10-combined-seed0"))) in (report / f"{stem}.md").read_text()


def test_unknown_variant_and_ood_set_reported(report: Path) -> None:
    rows = csv_rows(report / "table2.csv")
    cell = rows["CIFAR10", "my_variant", "my_ood"]
    assert float(cell["measured_mean"]) == pytest.approx(80.0) and cell["paper"] == ""
    header, md = md_table((report / "table2.md").read_text(), "Table 2")
    assert header[-1] == "my_variant" and md["my_ood"][-1] == "80.00"
    assert list(md)[-2:] == ["my_ood", "Average"]


def test_imagenet_overlap_footnote(report: Path) -> None:
    text = (report / "table2.md").read_text()
    assert "| TinyImageNet† |" in text
    assert re.search(r"† TinyImageNet shares classes with ImageNet.*Rot_ImgN", text)


def test_files_written_and_images_valid(report: Path) -> None:
    assert (report / "table2.md").read_text() in (report / "stdout.txt").read_text()
    for stem in ("table1", "table2"):
        for suffix in (".md", ".tex", ".csv"):
            assert (report / f"{stem}{suffix}").stat().st_size > 0
    tex = (report / "table2.tex").read_text()
    assert r"\toprule" in tex and r"\bottomrule" in tex and r"$\pm$" in tex
    for figure in ("figure2.png", "figure3.png"):
        image = matplotlib.image.imread(report / figure)
        assert image.ndim == 3 and image.shape[0] > 100 and image.shape[2] in (3, 4)


def test_other_dataset_without_optional_metrics(tmp_path: Path) -> None:
    """The quick-start's digits: no paper numbers, no kNN / soft-classes / sensitivity: still a report."""
    auroc = {"digits_5to9": 0.71, "photos": 0.93}
    write_run(tmp_path / "runs" / "a", "rot_imgn", 0, auroc, dataset="digits", parts=IMAGENET_ROT,
              scalars=False)
    paths = write_report(collect_runs(tmp_path / "runs"), tmp_path / "out")
    assert {p.name for p in paths} >= {"table2.md", "table1.csv", "figure2.png", "figure3.png"}
    header, md = md_table((tmp_path / "out" / "table2.md").read_text(), "Table 2")
    assert "paper" not in header and md["photos"][1] == "93.00"
    assert matplotlib.image.imread(tmp_path / "out" / "figure3.png").ndim == 3


def test_empty_directory_fails_clearly(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    empty = tmp_path / "empty_sweep"
    empty.mkdir()
    with pytest.raises(SystemExit) as stop:
        main([str(empty)])
    assert stop.value.code == 2
    assert re.fullmatch("error: .*" + re.escape(str(empty)) + ".*expected run directories.*results.json.*\n",
                        capsys.readouterr().err)
    assert list(empty.iterdir()) == []  # no report folder left behind


def test_wandb_runs_from_config_and_summary(monkeypatch: pytest.MonkeyPatch) -> None:
    """The W&B path on a stand-in for ``wandb.Api`` (no network): flattened summary keys → results."""
    import wandb

    class FakeRun:
        def __init__(self, seed: int, summary: dict) -> None:
            self.path, self.state, self.summary = ["me", "ssad", f"id{seed}"], "finished", summary
            self.config = {"seed": seed, "data": {"name": "cifar10", "ood": {"svhn": {}}},
                           "negatives": {"name": "rot_imgn", "parts": IMAGENET_ROT}}

    runs = [FakeRun(0, {"eval/svhn/auroc": 0.99, "eval/average/auroc": 0.99, "eval/knn_accuracy": 0.9,
                        "eval/occupied_soft_classes": 900, "eval/plots/roc": {"_type": "image-file"},
                        "trainer/global_step": 6}), FakeRun(1, {})]
    monkeypatch.setattr(wandb, "Api", lambda: type("Api", (), {"runs": lambda self, project: runs})())
    done, failed = collect_wandb("me/ssad")
    assert (done.variant, done.dataset, done.seed, failed.results) == ("rot_imgn", "cifar10", 0, None)
    assert set(done.results["ood"]) == {"svhn"} and done.value("svhn", "auroc") == 0.99
    assert done.value("occupied_soft_classes") == 900
    with pytest.raises(ValueError, match="neither an existing directory nor a W&B project"):
        collect_wandb("no/such/dir")


def test_python_dash_m_ssad_report_runs_the_command(tmp_path):
    """``python -m ssad.report`` (the package's __main__) is the command: on a folder without runs it exits
    non-zero and says what it looked for."""
    proc = subprocess.run([sys.executable, "-m", "ssad.report", str(tmp_path)], capture_output=True, text=True,
                          cwd=Path(__file__).parent.parent, timeout=HANG_S)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"no runs found under {tmp_path}" in proc.stderr
