"""What the commands tell a user: why OOD metrics are skipped and how to add a set, the evaluation's results on the
console, why a report's tables are empty."""

from __future__ import annotations

import contextlib
import io
import json
import logging
from pathlib import Path

import numpy as np
import pytest
import yaml
from hydra import compose, initialize_config_dir

from ssad.config.keys import CONFIG_DIR
from ssad.report import main as report_main
from ssad.scoring.checkpoint import evaluate_checkpoint
from ssad.scoring.evaluation import below_chance_note, ood_skipped_reason
from ssad.scoring.results import average_metrics
from ssad.scoring.summary import results_table
from ssad.training.run import train
from ssad.utils.console import progress_bar
from tests.conftest import compose_cfg


def test_skip_reason_names_what_is_missing():
    only_ood_missing = ood_skipped_reason(["train", "test"], "+data.ood")
    assert "no in-distribution test set" not in only_ood_missing
    assert "no OOD set" in only_ood_missing and "+data.ood.NAME='{format: image_folder, path: " in only_ood_missing
    test_missing = ood_skipped_reason(["train", "svhn"])
    assert "no in-distribution test set" in test_missing and "no OOD set" not in test_missing
    assert ood_skipped_reason(["train", "test", "svhn"]) is None


def test_below_chance_note_names_only_the_sets_under_50():
    results = {"ood": {"near": {"auroc": 0.397, "auroc_1nn": 0.948, "auroc_mean": 0.229}, "far": {"auroc": 0.964},
                       "blank": {"auroc": None}}}
    note = below_chance_note(results, 0.04)
    assert note.startswith("AUROC below 50 on near (39.7):") and "far" not in note
    assert "Eq. 6 at τ=0.04 scores these images as more typical" in note
    # what the same features give by their nearest neighbour and by their cosine to the mean training feature
    assert "(Eq. 6 as τ → 0: AUROC-1NN near 94.8; as τ → ∞: AUROC-mean near 22.9)" in note
    # the fact and the link, not the advice: the ways out are on the docs page, under the anchor the link names
    assert note.endswith("docs/howto/is-it-learning.md#below-chance") and "eval.settings.temperature" not in note
    page = (Path(__file__).resolve().parent.parent / "docs/howto/is-it-learning.md").read_text(encoding="utf-8")
    assert "(below-chance)=" in page and "eval.settings.temperature=0.0025" in page
    older = {"ood": {"near": {"auroc": 0.397, "auroc_1nn": 0.948}}}  # a results.json from before that column
    assert "AUROC-mean" not in below_chance_note(older, 0.04)
    assert below_chance_note({"ood": {"far": {"auroc": 0.5}}}, 0.04) is None  # chance itself is not below it
    assert below_chance_note({"ood": {}}, 0.04) is None
    # the console table ends with the note when given Eq. 6's τ (ssad.evaluate, the end of ssad.train)
    assert results_table(results, temperature=0.04).splitlines()[-1] == note
    assert "AUROC below 50" not in results_table(results)


def test_results_table_has_the_limit_columns_where_every_row_has_them():
    ood = {name: {"auroc": auroc, "aupr_in": auroc, "aupr_out": auroc, "fpr95": 0.5, "auroc_1nn": auroc + 0.05,
                  "auroc_mean": auroc - 0.5} for name, auroc in (("near", 0.9), ("far", 0.8))}
    lines = results_table({"ood": ood, "average": average_metrics(ood)}).splitlines()
    assert lines[0].split()[-2:] == ["AUROC-1NN", "AUROC-mean"] and lines[2].split()[-2:] == ["95.00", "40.00"]
    assert len(lines[0]) == len(lines[2])  # the wider header keeps its column aligned
    assert lines[4].split()[0] == "average" and lines[4].split()[-2:] == ["90.00", "35.00"]
    assert lines[5].startswith("(AUROC-1NN: the same features scored by their nearest training feature")
    assert lines[6].startswith("(AUROC-mean: scored by their cosine to the mean training feature")
    for row in ood.values():  # e.g. a results.json from before the columns: no column, no legend
        row.pop("auroc_mean")
    ood["far"].pop("auroc_1nn")
    table = results_table({"ood": ood, "average": average_metrics(ood)})
    assert "AUROC-1NN" not in table and "AUROC-mean" not in table


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture(scope="module")
def folder_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """Two epochs, each evaluated, on a user's .npy images with the default hold-out and no OOD set; what
    Lightning's rank-zero logger printed."""
    tmp_path = tmp_path_factory.mktemp("folder_run")
    np.save(tmp_path / "mine.npy", np.random.default_rng(0).integers(0, 256, (40, 16, 16, 3), dtype=np.uint8))
    records = _Records()
    logger = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    logger.addHandler(records)
    try:
        train(compose_cfg(tmp_path, "data=folder", f"data.path={tmp_path}/mine.npy", "data.batch_size=8",
                          "negatives=none", "trainer.max_epochs=2", "eval.every_n_epochs=1"))
    finally:
        logger.removeHandler(records)
    return tmp_path, records.messages


def test_training_says_which_set_is_missing_and_how_to_add_one(folder_run):
    _, messages = folder_run
    skipped = [m for m in messages if m.startswith("OOD metrics skipped")]
    assert len(skipped) == 1  # said at the first of the two evaluations only
    assert "no in-distribution test set" not in skipped[0]  # the hold-out is there
    assert "there is no OOD set" in skipped[0] and "+data.ood.NAME=" in skipped[0]


def _evaluate(tmp_path: Path, *overrides: str) -> tuple[dict, str]:
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("evaluate", overrides=[f"ckpt={tmp_path}/run/checkpoints/last.ckpt", f"out={tmp_path}/e.json",
                                             "eval.settings.progress=false", "eval.plots=false", *overrides])
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        results = evaluate_checkpoint(cfg)
    return results, printed.getvalue()


def test_evaluate_prints_a_results_table(folder_run):
    tmp_path, _ = folder_run
    results, printed = _evaluate(tmp_path, "+add_ood.noise={format: synthetic, n: 24}")
    lines = printed.splitlines()
    header = next(line for line in lines if line.startswith("OOD set"))
    assert header.split() == ["OOD", "set", "AUROC", "AUPR-In", "AUPR-Out", "FPR95", "AUROC-1NN", "AUROC-mean"]
    noise = next(line for line in lines if line.startswith("noise"))
    assert noise.split()[1] == f"{100 * results['ood']['noise']['auroc']:.2f}"
    assert noise.split()[-2:] == [f"{100 * results['ood']['noise'][key]:.2f}" for key in ("auroc_1nn", "auroc_mean")]
    assert any(line.startswith("average") for line in lines) and "sensitivity" in printed
    assert printed.rstrip().endswith(f"wrote {tmp_path}/e.json")


def test_results_table_prints_each_labelled_ood_sets_auroc_by_label():
    metrics = {"auroc": 0.9, "aupr_in": 0.8, "aupr_out": 0.7, "fpr95": 0.3}
    results = {"ood": {"near": metrics, "far": metrics}, "average": metrics, "knn_accuracy": None,
               "auroc_by_label": {"near": {"5": 0.999, "6": 0.571}}}
    lines = results_table(results).splitlines()
    assert lines[-1] == "AUROC by label, near: 5 99.90, 6 57.10"  # the far set has no labels: no line
    assert not any("far:" in line for line in lines)
    names = ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt"]  # the data spec's label_names
    assert results_table(results, {"near": names}).splitlines()[-1] == "AUROC by label, near: sandal 99.90, shirt 57.10"
    many = {**results, "auroc_by_label": {"near": {str(k): 1 - k / 1000 for k in range(100)}}}  # CIFAR100-like
    assert results_table(many).splitlines()[-1] == ("AUROC by label, near (12 lowest of 100): " + ", ".join(
        f"{k} {100 * (1 - k / 1000):.2f}" for k in range(99, 87, -1)))


def test_evaluate_without_ood_sets_says_how_to_add_one(folder_run):
    tmp_path, _ = folder_run
    results, printed = _evaluate(tmp_path)
    assert "OOD metrics skipped: there is no OOD set" in printed and "+add_ood.NAME=" in printed
    assert results["ood_skipped"] in printed


def _run_without_ood(run_dir: Path, seed: int) -> None:
    (run_dir / ".hydra").mkdir(parents=True)
    config = {"seed": seed, "data": {"name": "folder", "ood": {}}, "negatives": {"name": "rot_indist", "parts": []}}
    (run_dir / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    results = {"variant": "rot_indist", "dataset": "folder", "seed": seed, "ood": {}, "average": None,
               "knn_accuracy": None, "sensitivity": 0.5, "occupied_soft_classes": 3}
    (run_dir / "results.json").write_text(json.dumps(results))


def test_report_on_a_sweep_without_ood_sets_says_why_its_tables_are_empty(tmp_path):
    for seed in (0, 1):
        _run_without_ood(tmp_path / "sweep" / f"folder-rot_indist-seed{seed}", seed)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        report_main([str(tmp_path / "sweep"), "--out", str(tmp_path / "report")])
    why = "the tables are empty: none of the 2 finished runs was given an OOD set"
    assert f"note: {why}" in printed.getvalue() and "+data.ood.NAME=" in printed.getvalue()
    assert why in (tmp_path / "report" / "table2.md").read_text()


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bars_are_drawn_on_a_terminal_only():
    """In a log (no terminal) a bar's redraws would pile up into long lines, so none is drawn there."""
    log, terminal, hidden = io.StringIO(), _Terminal(), _Terminal()
    for out, show in ((log, True), (terminal, True), (hidden, False)):
        assert list(progress_bar(range(3), "scoring", show, file=out)) == [0, 1, 2]
    assert log.getvalue() == "" and hidden.getvalue() == ""
    assert "scoring" in terminal.getvalue()
