"""The one-class protocol (``data.normal_class``): the sets it derives from a labelled source, CIFAR100's
superclasses, its multirun through Hydra's joblib launcher (two jobs side by side, each with its share of the CPU
threads) and the report's one-class table with the published numbers beside it."""

from __future__ import annotations

import csv
import json
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import instantiate
from omegaconf import OmegaConf

from ssad.cli.errors import ConfigError, exit_with
from ssad.cli.sweep_errors import SweepJobError
from ssad.data.loaders import available_cpus, machine_cpus, resolve_num_workers, set_job_cpus
from ssad.data.oneclass import OTHERS, one_class_specs
from ssad.data.sources import load_source
from ssad.report import main as report
from ssad.report.oneclass import MEAN, OneClassRun, build_oneclass_table, to_latex, to_markdown
from ssad.report.published import _rows
from ssad.training.threads import JOBLIB, JobThreads, threads_per_job
from tests.conftest import HANG_S, QUIET, compose_cfg
from tests.test_formats import random_images, write_pickle

ROOT = Path(__file__).parent.parent
DIGITS = {"format": "digits", "split": "train", "classes": [0, 1, 2, 3, 4]}


def no_labels(spec):
    raise AssertionError(f"the classes of {spec['format']} are known: no labels to read")


def test_one_class_specs_from_a_labelled_source():
    train, test, ood = one_class_specs(DIGITS, None, 7, 0.0, no_labels)
    assert train == {"format": "digits", "split": "train", "classes": [7]}
    assert test == {"format": "digits", "split": "test", "classes": [7]}
    assert list(ood) == [OTHERS] and ood[OTHERS]["classes"] == [0, 1, 2, 3, 4, 5, 6, 8, 9]
    # mnist reads its test split by default: the protocol trains on its training split
    train, _, ood = one_class_specs({"format": "mnist", "root": "x", "label_names": list("abcdefghij")}, None, 0, 0,
                                    no_labels)
    assert train["split"] == "train" and ood[OTHERS]["split"] == "test" and ood[OTHERS]["label_names"][9] == "j"


def test_a_source_of_unknown_classes_has_its_labels_read(tmp_path):
    np.save(tmp_path / "x.npy", random_images(6, 8))
    np.save(tmp_path / "y.npy", np.array([3, 5, 8, 3, 5, 8]))
    spec = {"format": "npy", "path": str(tmp_path / "x.npy"), "labels": str(tmp_path / "y.npy")}
    train, test, ood = one_class_specs(spec, spec, 5, 0, lambda s: load_source(s, 8).labels)
    assert train["classes"] == test["classes"] == [5] and ood[OTHERS]["classes"] == [3, 8]
    assert sorted(load_source(ood[OTHERS], 8).labels.tolist()) == [3, 3, 8, 8]


@pytest.mark.parametrize(("train", "test", "normal", "holdout", "message"), [
    (DIGITS, None, 10, 0, r"data.normal_class=10: digits has the classes 0..9"),
    (DIGITS, None, True, 0, r"data.normal_class=True: give the label of the normal class"),
    (DIGITS, None, "cat", 0, r"data.normal_class='cat'"),
    (DIGITS, None, 1, 0.1, r"data.normal_class and data.holdout=0.1 are both set"),
    (None, None, 1, 0, r"data.normal_class needs a labelled data.train"),
    ({"format": "npy", "path": "x.npy"}, None, 1, 0, r"has no test split.*give data.test"),
])
def test_a_protocol_that_cannot_apply_names_the_key_and_the_fix(train, test, normal, holdout, message):
    with pytest.raises(ConfigError, match=message):
        one_class_specs(train, test, normal, holdout, no_labels)


def test_the_datamodule_trains_on_one_digit_and_scores_the_nine_others(tmp_path):
    datamodule = instantiate(compose_cfg(tmp_path, "data.normal_class=3").data)
    sets = datamodule.eval_sets()
    assert set(sets) == {"train", "test", OTHERS}  # data=digits' own OOD sets are replaced
    assert set(sets["train"].labels) == set(sets["test"].labels) == {3}
    assert set(sets[OTHERS].labels) == set(range(10)) - {3} and len(sets[OTHERS]) + len(sets["test"]) == 540


def test_cifar100_superclasses_as_the_one_class_protocol(tmp_path):
    base = tmp_path / "data" / "cifar100" / "cifar-100-python"
    for split, n in (("train", 40), ("test", 20)):
        coarse = list(range(20)) * (n // 20)
        write_pickle(base / split, {b"data": random_images(n, 32).reshape(n, -1), b"coarse_labels": coarse,
                                    b"fine_labels": [5 * c for c in coarse]})
    assert load_source({"format": "cifar100", "root": str(base.parent), "split": "test"}, 32).labels.max() == 95
    with pytest.raises(ConfigError, match="labels='super'.*'coarse'"):
        load_source({"format": "cifar100", "root": str(base.parent), "labels": "super"}, 32)
    cfg = compose_cfg(tmp_path, "data=cifar100_oneclass", "data.size=32", "data.normal_class=14")
    datamodule = instantiate(cfg.data)
    sets = datamodule.eval_sets()
    assert set(sets["train"].labels) == set(sets["test"].labels) == {14} and len(sets["train"]) == 2
    assert set(sets[OTHERS].labels) == set(range(20)) - {14}
    assert datamodule.ood_specs[OTHERS]["label_names"][14] == "people"


def test_threads_per_job_share_the_cpus():
    assert [threads_per_job(n, 16) for n in (1, 2, 3, 16, 32, -1, -2)] == [16, 8, 5, 1, 1, 1, 1]
    assert threads_per_job(2, 2) == 1 and threads_per_job(-8, 16) == 1 and threads_per_job(-15, 16) == 8


def test_a_one_class_run_on_a_source_without_ood_sets_still_scores_the_baselines_on_the_others(tmp_path):
    for split, n in (("tr", 60), ("te", 30)):  # a labelled .npy source, as a user's own split; no data.ood given
        np.save(tmp_path / f"{split}_x.npy", random_images(n, 16, seed=n))
        np.save(tmp_path / f"{split}_y.npy", np.arange(n) % 3)
    run = tmp_path / "run"
    tiny = ["data.size=16", "data.batch_size=16", "augment.global_size=16", "augment.local_size=8",
            "augment.n_local=2", "model.backbone.width=8", "model.backbone.depth=2", "trainer.max_epochs=1",
            "data.epoch_size=32", "eval.baselines=auto", *QUIET]
    cmd = [sys.executable, "-m", "ssad.train", "experiment=oneclass_digits", "hydra.mode=RUN", "data=folder",
           "data.holdout=0", "data.normal_class=2", *tiny, f"hydra.run.dir={run}",
           f"data.train={{format: npy, path: {tmp_path}/tr_x.npy, labels: {tmp_path}/tr_y.npy}}",
           f"data.test={{format: npy, path: {tmp_path}/te_x.npy, labels: {tmp_path}/te_y.npy}}"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=HANG_S)
    assert proc.returncode == 0, proc.stderr[-3000:]
    baselines = json.loads((run / "baselines.json").read_text())
    assert list(baselines["raw_pixels"]["ood"]) == [OTHERS] and list(baselines["untrained"]["ood"]) == [OTHERS]


def test_in_a_multirun_job_a_user_error_becomes_a_sweep_job_error_that_travels_pickled(capsys):
    hydra_config = HydraConfig.instance()
    hydra_config.cfg = OmegaConf.create({"hydra": {"mode": RunMode.MULTIRUN}})  # as Hydra sets it in a job
    try:
        with pytest.raises(SweepJobError) as raised:
            exit_with(ConfigError("data.normal_class=11: digits has the classes 0..9"))
    finally:
        hydra_config.cfg = None
    back = pickle.loads(pickle.dumps(raised.value))  # as joblib's workers send it to the sweep
    assert type(back) is SweepJobError and str(back) == "error: data.normal_class=11: digits has the classes 0..9"
    assert capsys.readouterr().err == "error: data.normal_class=11: digits has the classes 0..9\n"
    with pytest.raises(SystemExit) as stopped:  # outside a multirun: the exit status of a user error
        exit_with(ConfigError("x"))
    assert stopped.value.code == 2


def test_a_user_error_in_one_job_fails_that_job_and_the_sweep_but_the_other_jobs_run(tmp_path):
    sweep = tmp_path / "sweep"
    tiny = ["data.size=16", "data.batch_size=16", "augment.global_size=16", "augment.local_size=8",
            "augment.n_local=2", "model.backbone.width=8", "model.backbone.depth=2", "trainer.max_epochs=1",
            "data.epoch_size=32", "eval.baselines=null", *QUIET]
    cmd = [sys.executable, "-m", "ssad.train", "experiment=oneclass_digits", "data.normal_class=11,1", *tiny,
           f"paths.data_dir={tmp_path}/data", f"hydra.sweep.dir={sweep}"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=HANG_S)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert (sweep / "digits-class1-rot_indist-seed0" / "results.json").is_file()  # the job after the failed one ran
    assert "error: data.normal_class=11" in proc.stderr and "Traceback" not in proc.stderr
    assert "Error executing job with overrides: ['data.normal_class=11'" in proc.stderr


@pytest.mark.parametrize("cpus", [2, 16])
def test_a_joblib_job_counts_its_share_of_the_cpus_for_threads_and_loader_workers(monkeypatch, cpus):
    monkeypatch.setattr("ssad.data.loaders.machine_cpus", lambda: cpus)
    monkeypatch.setattr("ssad.training.threads.machine_cpus", lambda: cpus)
    threads = torch.get_num_threads()
    try:
        assert resolve_num_workers("auto") == min(4, cpus - 1)  # a single run: the whole machine
        for _ in range(2):  # a loky worker runs job after job: the share must not shrink
            JobThreads().on_job_start(OmegaConf.create({"hydra": {"launcher": {"_target_": JOBLIB, "n_jobs": 4}}}))
            assert torch.get_num_threads() == available_cpus() == max(1, cpus // 4)
        assert resolve_num_workers("auto") == max(0, min(4, cpus // 4 - 1))
    finally:
        set_job_cpus(None)
        torch.set_num_threads(threads)
    assert available_cpus() == cpus


def test_another_launcher_leaves_threads_and_cpus_alone():
    threads = torch.get_num_threads()
    JobThreads().on_job_start(OmegaConf.create({"hydra": {"launcher": {"_target_": "hydra._internal.BasicLauncher"}}}))
    assert torch.get_num_threads() == threads and available_cpus() == machine_cpus()


def test_two_classes_side_by_side_through_the_joblib_launcher_then_the_one_class_table(tmp_path):
    sweep = tmp_path / "sweep"
    tiny = ["data.size=16", "data.batch_size=16", "augment.global_size=16", "augment.local_size=8",
            "augment.n_local=2", "model.backbone.width=8", "model.backbone.depth=2", "trainer.max_epochs=1",
            "data.epoch_size=32", "eval.baselines=auto", *QUIET]
    cmd = [sys.executable, "-m", "ssad.train", "experiment=oneclass_digits", "data.normal_class=0,1",
           "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", *tiny, f"paths.data_dir={tmp_path}/data",
           f"hydra.sweep.dir={sweep}"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=HANG_S)
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = {k: sweep / f"digits-class{k}-rot_indist-seed0" for k in (0, 1)}
    threads = threads_per_job(2, machine_cpus())
    workers = max(0, min(4, threads - 1))  # auto within the job's share
    for run in runs.values():  # each job ran in the launcher's worker with its share of the threads and CPUs
        assert (f"n_jobs=2 on {machine_cpus()} CPUs: {threads} torch thread(s) for this run, "
                f"data.num_workers=auto gives {workers}") in (run / "train.log").read_text()
    results = {k: json.loads((run / "results.json").read_text()) for k, run in runs.items()}
    baselines = {k: json.loads((run / "baselines.json").read_text()) for k, run in runs.items()}
    for k in runs:
        assert list(results[k]["ood"]) == [OTHERS]
        assert sorted(map(int, results[k]["auroc_by_label"][OTHERS])) == [c for c in range(10) if c != k]
    # one command trains and reports: the preset's SweepReport wrote and printed the one-class table at the end
    assert "One-class AUROC (%) on digits" in proc.stdout and (sweep / "report" / "oneclass.md").is_file()
    report([str(sweep), "--out", str(tmp_path / "report")])  # and python -m ssad.report writes the same table
    assert (tmp_path / "report" / "oneclass.csv").read_text() == (sweep / "report" / "oneclass.csv").read_text()
    rows = {(r["normal_class"], r["method"]): r for r in csv.DictReader((tmp_path / "report" / "oneclass.csv").open())}
    for k in runs:
        ours = float(rows[str(k), "Rot_InDist"]["auroc_mean"])
        assert ours == pytest.approx(100 * results[k]["ood"][OTHERS]["auroc"], abs=1e-6)
        raw = float(rows[str(k), "Raw pixels"]["auroc_mean"])
        assert raw == pytest.approx(100 * baselines[k]["raw_pixels"]["ood"][OTHERS]["auroc"], abs=1e-6)
    mean = float(rows[MEAN, "Rot_InDist"]["auroc_mean"])
    assert mean == pytest.approx(50 * sum(r["ood"][OTHERS]["auroc"] for r in results.values()), abs=1e-6)
    assert "| normal class | Rot_InDist | Raw pixels |" in (tmp_path / "report" / "oneclass.md").read_text()


def test_the_table_averages_classes_within_a_seed_and_sets_the_literature_beside():
    found = [OneClassRun("cifar10_oneclass", k, seed, ["airplane", "automobile"], {"rot_imgn": v, "raw_pixels": 60.0},
                         True) for k, seed, v in ((0, 0, 90.0), (1, 0, 80.0), (0, 1, 94.0), (1, 1, 86.0), (0, 2, 70.0))]
    table = build_oneclass_table(found, "cifar10_oneclass", {"rot_imgn": "Rot. ImgN"}, _rows("oneclass_published.csv",
                                                                                              None))
    assert table.cells[0, "rot_imgn"].values == [90.0, 94.0, 70.0]
    assert table.cells[MEAN, "rot_imgn"].values == [85.0, 90.0]  # seed 2 lacks class 1: out of the mean, and said
    assert any("seed(s) 2 lack some classes" in note for note in table.notes)
    markdown = to_markdown(table)
    assert "| mean over classes | 87.50 ± 3.54 | 60.00 ± 0.00 |" in markdown and "| 1 automobile |" in markdown
    assert "| CSI | 94.3 | no | none | no | Tack et al. 2020 (NeurIPS), CSI |" in markdown
    assert {p["method"] for p in table.published} == {"CSI", "Rot+Trans", "GOAD", "SimCLR", "GEOM"}
    assert r"\begin{tabular}{lcc}" in to_latex(table) and r"87.50 $\pm$ 3.54" in to_latex(table)
