"""The one-class protocol's printouts (``data.normal_class``): the AUROC of each other class of the set ``others`` is
shown by the class's name where the data config names the classes (``label_names``), at the end of training and by
``python -m ssad.evaluate``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from hydra.utils import instantiate

from ssad.data.oneclass import OTHERS
from ssad.scoring.checkpoint import evaluate_checkpoint
from ssad.scoring.summary import evaluated_label_names, results_table
from tests.conftest import HANG_S, QUIET, TINY_VIT, compose_cfg, compose_command

ROOT = Path(__file__).parent.parent
FASHION = ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot"]


def test_training_and_evaluation_print_the_other_classes_by_name(tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "ssad.train", "experiment=oneclass_fashion", "hydra.mode=RUN", "data.normal_class=0",
           "data.size=16", "data.batch_size=16", "augment.global_size=16", "augment.local_size=8", "augment.n_local=2",
           *TINY_VIT, "trainer.max_epochs=1", "++trainer.limit_train_batches=1", "data.epoch_size=16",
           "eval.baselines=null", *QUIET, f"paths.data_dir={tmp_path}/data", f"hydra.run.dir={run}"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=HANG_S)
    assert proc.returncode == 0, proc.stderr[-3000:]
    printed = proc.stdout + proc.stderr
    line = next(x for x in printed.splitlines() if x.startswith(f"AUROC by label, {OTHERS}:"))
    assert [item.rsplit(" ", 1)[0] for item in line.split(": ", 1)[1].split(", ")] == FASHION[1:], line
    evaluate_checkpoint(compose_command("evaluate", f"ckpt={run}/checkpoints/last.ckpt", f"out={tmp_path}/e.json",
                                        "eval.plots=false"))
    assert f"AUROC by label, {OTHERS}: trouser " in capsys.readouterr().out


def test_glyphs_letters_are_named_from_the_presets_ood_set_of_the_same_source(tmp_path: Path) -> None:
    cfg = compose_cfg(tmp_path, "data=glyphs", "data.normal_class=2")
    labels = sorted(set(instantiate(cfg.data).eval_sets()[OTHERS].labels.tolist()))
    assert labels == [0, 1, 3, 4, 5, 6, 7, 8, 9]
    names = evaluated_label_names(cfg.data)
    results = {"ood": {OTHERS: {"auroc": 0.5}}, "auroc_by_label": {OTHERS: {str(k): 0.5 for k in labels}}}
    assert f"AUROC by label, {OTHERS}: A 50.00, B 50.00, D 50.00" in results_table(results, names)
    # a source without names (the digits) keeps its numbers, and a run of no one-class protocol its OOD sets' names
    assert evaluated_label_names(compose_cfg(tmp_path, "data=digits", "data.normal_class=2").data) == {}
    assert evaluated_label_names(compose_cfg(tmp_path, "data=glyphs").data) == {"letters_F_to_J": list("ABCDEFGHIJ")}
