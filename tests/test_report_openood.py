"""OpenOOD-protocol runs (``data.ood_groups``: near, far) in the report: each group's mean AUROC per variant,
computed by hand here from tiny run folders, beside the OpenOOD v1.5 leaderboard's published rows."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import statistics
from pathlib import Path

import pytest
import yaml

from ssad.report.cli import main
from ssad.report.published import load_openood
from tests.test_report import md_table

GROUPS = {"near": ["cifar100", "tin"], "far": ["mnist", "svhn", "texture", "places365"]}
AUROC = {  # (variant, seed) → AUROC per OOD set
    ("none", 0): {"cifar100": 0.61, "tin": 0.65, "mnist": 0.99, "svhn": 0.80, "texture": 0.70, "places365": 0.66},
    ("none", 1): {"cifar100": 0.63, "tin": 0.70, "mnist": 0.97, "svhn": 0.84, "texture": 0.75, "places365": 0.61},
    ("rot_imgn", 0): {"cifar100": 0.90, "tin": 0.93, "mnist": 0.995, "svhn": 0.97, "texture": 0.91},  # no places365
}


def write_openood_run(run_dir: Path, variant: str, seed: int, auroc: dict[str, float] | None,
                      dataset: str = "openood_cifar10") -> None:
    """A run folder as training with ``data=openood_cifar10`` writes it: saved config (the preset's OOD sets and
    groups, the variant's label) and, unless ``auroc`` is None, ``results.json``."""
    ood = [s for sets in GROUPS.values() for s in sets]
    config = {"seed": seed, "data": {"name": dataset, "ood": {k: {"format": "x"} for k in ood}, "ood_groups": GROUPS},
              "negatives": {"name": variant, "label": {"none": "DINO", "rot_imgn": "Rot_ImgN"}[variant],
                            "parts": [{"source": "imagenet", "transform": "rot"}] if variant == "rot_imgn" else []}}
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    if auroc is not None:
        results = {"variant": variant, "dataset": dataset, "seed": seed,
                   "ood": {k: {"auroc": v} for k, v in auroc.items()},
                   "average": {"auroc": statistics.fmean(auroc.values())}}
        (run_dir / "results.json").write_text(json.dumps(results))


def group_mean(auroc: dict[str, float], group: str) -> float:
    return 100 * statistics.fmean(auroc[s] for s in GROUPS[group])


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    root = tmp_path_factory.mktemp("openood")
    for (variant, seed), auroc in AUROC.items():
        write_openood_run(root / "sweep" / f"{variant}-{seed}", variant, seed, auroc)
    write_openood_run(root / "sweep" / "rot_imgn-1", "rot_imgn", 1, None)  # planned, never finished
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        main([str(root / "sweep"), "--out", str(root / "report")])
    return root / "report", stdout.getvalue()


def test_near_and_far_means_per_variant_are_the_runs_group_means(report: tuple[Path, str]) -> None:
    out, stdout = report
    text = (out / "ood_groups.md").read_text()
    assert text in stdout  # printed with the other tables
    header, rows = md_table(text, "Near- and far-OOD")
    assert header == ["method", "from", "near-OOD", "far-OOD", "outlier data"]
    for group, col in (("near", 2), ("far", 3)):
        seeds = [group_mean(AUROC["none", s], group) for s in (0, 1)]
        assert rows["DINO"][col] == f"{statistics.mean(seeds):.2f} ± {statistics.stdev(seeds):.2f}"
    assert rows["DINO"][1] == "ours, 2 seeds" and rows["DINO"][4] == "no"
    # rot_imgn: one finished seed without places365 (no far-OOD mean), one planned run without results
    assert rows["Rot_ImgN"][1:] == ["ours, 1 seed", f"{group_mean(AUROC['rot_imgn', 0], 'near'):.2f} (1 missing)",
                                    "missing", "imagenet"]
    assert "incomplete: Rot_ImgN seed 0" in text and "no AUROC for places365" in text
    with open(out / "ood_groups.csv") as f:
        cells = {(r["method"], r["group"]): r for r in csv.DictReader(f)}
    near = [group_mean(AUROC["none", s], "near") for s in (0, 1)]
    assert float(cells["DINO", "near"]["auroc_mean"]) == pytest.approx(statistics.mean(near))
    assert float(cells["DINO", "near"]["auroc_std"]) == pytest.approx(statistics.stdev(near))
    assert cells["DINO", "far"]["ood_sets"] == "mnist svhn texture places365"


def test_published_openood_rows_beside_ours_cited(report: tuple[Path, str]) -> None:
    out, _ = report
    text = (out / "ood_groups.md").read_text()
    _, rows = md_table(text, "Near- and far-OOD")
    assert rows["RotPred+PixMix (RotPred)"][1:4] == ["OpenOOD v1.5", "94.86", "98.18"]
    assert rows["OE (MSP)"][2:5] == ["94.82", "96.00", "yes"]
    assert rows["CSI (MSP)"][2:4] == ["89.51", "92.00"]
    assert list(rows).index("Rot_ImgN") < list(rows).index("RotPred+PixMix (RotPred)")  # ours first
    assert "CIFAR10 as in-distribution (openood_cifar10)" in text
    assert "OpenOOD v1.5 (Zhang et al. 2023, arXiv:2306.09301)" in text and "without labels" in text
    with open(out / "ood_groups.csv") as f:
        published = {(r["method"], r["group"]): r["published"] for r in csv.DictReader(f) if r["from"] != "ours"}
    assert float(published["CSI (MSP)", "far"]) == 92.0 and float(published["OE (MSP)", "near"]) == 94.82
    assert r"\midrule" in (out / "ood_groups.tex").read_text()


def test_cifar100_protocol_gets_its_own_leaderboard_rows(tmp_path: Path) -> None:
    write_openood_run(tmp_path / "sweep" / "a", "none", 0, AUROC["none", 0], dataset="openood_cifar100")
    with contextlib.redirect_stdout(io.StringIO()):
        main([str(tmp_path / "sweep"), "--out", str(tmp_path / "report")])
    _, rows = md_table((tmp_path / "report" / "ood_groups.md").read_text(), "Near- and far-OOD")
    assert rows["OE (MSP)"][2:4] == ["88.30", "81.41"] and "RotPred+PixMix (RotPred)" not in rows
    assert rows["DINO"][2] == f"{group_mean(AUROC['none', 0], 'near'):.2f}"


def test_runs_without_groups_write_no_group_table(tmp_path: Path) -> None:
    write_openood_run(tmp_path / "sweep" / "a", "none", 0, AUROC["none", 0])
    config = tmp_path / "sweep" / "a" / ".hydra" / "config.yaml"
    cfg = yaml.safe_load(config.read_text())
    del cfg["data"]["ood_groups"]
    config.write_text(yaml.safe_dump(cfg))
    with contextlib.redirect_stdout(io.StringIO()):
        main([str(tmp_path / "sweep"), "--out", str(tmp_path / "report")])
    assert not (tmp_path / "report" / "ood_groups.md").exists() and (tmp_path / "report" / "table2.md").exists()


def test_the_published_file_holds_the_known_figures() -> None:
    entries = {(e.dataset, e.method): e for e in load_openood()}
    assert entries["openood_cifar10", "RotPred+PixMix"].auroc == {"near": 94.86, "far": 98.18}
    assert entries["openood_cifar10", "CSI"].auroc == {"near": 89.51, "far": 92.00}
    assert entries["openood_cifar10", "OE"].auroc == {"near": 94.82, "far": 96.00}
    assert entries["openood_cifar10", "OE"].outlier_data and not entries["openood_cifar10", "CSI"].outlier_data
    assert all(0 < x <= 100 for e in entries.values() for x in e.auroc.values())
