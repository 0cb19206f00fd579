import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from ssad.report import main as report
from tests.conftest import HANG_S, TINY, TINY_VIT


def test_multirun_of_two_variants_then_report(tmp_path):
    sweep = tmp_path / "sweep"
    cmd = [sys.executable, "-m", "ssad.train", "-m", *TINY, *TINY_VIT, "negatives=none,rot_indist",
           "trainer.max_epochs=1",
           f"paths.data_dir={tmp_path}/data", f"hydra.sweep.dir={sweep}", "hydra.sweep.subdir=${negatives.name}"]
    subprocess.run(cmd, check=True, cwd=Path(__file__).parent.parent, capture_output=True, timeout=HANG_S)
    results = {v: json.loads((sweep / v / "results.json").read_text()) for v in ("none", "rot_indist")}
    report([str(sweep), "--out", str(tmp_path / "report")])
    rows = list(csv.DictReader((tmp_path / "report" / "table2.csv").open()))
    checked = 0
    for row in rows:
        if row["variant"] in results and row["ood"] in results[row["variant"]]["ood"]:
            expected = 100 * results[row["variant"]]["ood"][row["ood"]]["auroc"]
            assert float(row["measured_mean"]) == pytest.approx(expected, abs=1e-6)
            checked += 1
    assert checked == 4  # two variants × two OOD sets (digits 5-9, photos)
    assert (tmp_path / "report" / "figure2.png").is_file() and (tmp_path / "report" / "figure3.png").is_file()
