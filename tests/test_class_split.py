"""The class-split protocol from the command line, the baselines command, the glyphs set and the report's
baseline columns."""

import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from ssad.data.readers.glyphs import glyphs
from ssad.data.sources import ArraySet, check_source, label_names
from ssad.report import main as report
from ssad.scoring.baselines import calibrate_batchnorm, compute_baselines
from tests.conftest import HANG_S, QUIET, compose_cfg

ROOT = Path(__file__).parent.parent
# small enough for seconds on a CPU; everything else is experiment=demo as a user would run it
SMALL = ["data.batch_size=8", "augment.global_size=16", "augment.local_size=8", "model.backbone.width=8",
         "model.backbone.depth=2", "trainer.max_epochs=1", "++trainer.limit_train_batches=2", *QUIET]


def write_labelled_arrays(folder: Path) -> None:
    """A labelled gray 28×28 set in the real .npy format (images N×H×W uint8, labels N integers), plus an
    unlabelled far-OOD array."""
    rng = np.random.default_rng(0)
    for split, n in (("tr", 60), ("te", 40)):
        labels = np.arange(n) % 10
        images = (rng.random((n, 28, 28)) * 40).astype(np.uint8)
        for image, label in zip(images, labels):
            image[2 * label:2 * label + 8] += 200  # class c: a bright band from row 2c
        np.save(folder / f"{split}_x.npy", images)
        np.save(folder / f"{split}_y.npy", labels)
    np.save(folder / "other_x.npy", rng.integers(0, 256, (12, 20, 20, 3), dtype=np.uint8))


def class_split_overrides(folder: Path) -> list[str]:
    """The exact command-line form of the issue: mappings only, data.path not given."""
    tr = f"path: {folder}/tr_x.npy, labels: {folder}/tr_y.npy"
    te = f"path: {folder}/te_x.npy, labels: {folder}/te_y.npy"
    return ["experiment=demo", "data=folder",
            f"data.train={{format: npy, {tr}, classes: [0,1,2,3,4]}}",
            f"data.test={{format: npy, {te}, classes: [0,1,2,3,4]}}", "data.holdout=0",
            f"+data.ood.near={{format: npy, {te}, classes: [5,6,7,8,9]}}",
            f"+data.ood.far={{format: npy, path: {folder}/other_x.npy}}", f"paths.data_dir={folder}"]


def test_train_and_baselines_on_a_labelled_array_set_from_the_command_line(tmp_path):
    write_labelled_arrays(tmp_path)
    run, scored = tmp_path / "RUN", tmp_path / "BASELINES"
    printed = {}
    for module, folder in (("ssad.train", run), ("ssad.scoring.baselines", scored)):
        proc = subprocess.run([sys.executable, "-m", module, *class_split_overrides(tmp_path), *SMALL,
                               f"hydra.run.dir={folder}"], cwd=ROOT, capture_output=True, text=True, timeout=HANG_S)
        assert proc.returncode == 0, proc.stderr[-3000:]
        printed[module] = proc.stdout + proc.stderr
    results = json.loads((run / "results.json").read_text())
    # the training run ends by printing its final evaluation as ssad.evaluate does, with the below-50 note if due
    assert f"final evaluation (epoch {results['epoch']}), {run / 'results.json'}:" in printed["ssad.train"]
    assert re.search(rf"^near +{100 * results['ood']['near']['auroc']:.2f} ", printed["ssad.train"], re.M)
    assert ("AUROC below 50 on near" in printed["ssad.train"]) == (results["ood"]["near"]["auroc"] < 0.5)
    baselines = json.loads((scored / "baselines.json").read_text())
    assert set(baselines) == {"raw_pixels", "untrained_as_built", "untrained"}  # the small CNN has BatchNorm
    # experiment=demo scores the same baselines into the run folder first, and ends with the gains over them
    assert json.loads((run / "baselines.json").read_text()) == baselines
    gains = [100 * (results["ood"]["near"]["auroc"] - baselines[key]["ood"]["near"]["auroc"])
             for key in ("raw_pixels", "untrained_as_built", "untrained")]
    assert (f"rot_indist   near: {gains[0]:+.1f} vs Raw pixels, {gains[1]:+.1f} vs Untrained as built, "
            f"{gains[2]:+.1f} vs Untrained") in printed["ssad.train"]
    for res in (results, *baselines.values()):
        assert set(res["ood"]) == {"near", "far"}
        assert 0 <= res["ood"]["near"]["auroc"] <= 1 and 0 <= res["average"]["auroc"] <= 1
        assert res["knn_accuracy"] is not None  # train and test both have labels
    # the held-out classes' bands lie lower than the trained ones': raw pixels see it
    assert baselines["raw_pixels"]["ood"]["near"]["auroc"] > 0.9
    for res in (results, *baselines.values()):  # the labelled OOD set by label; the unlabelled one not
        assert list(res["auroc_by_label"]) == ["near"] and list(res["auroc_by_label"]["near"]) == list("56789")


def test_report_prints_the_baselines_beside_the_variants(tmp_path, capsys):
    sweep = tmp_path / "sweep"
    run = sweep / "none"
    run.mkdir(parents=True)
    result = {"variant": "none", "dataset": "glyphs", "seed": 0, "ood": {"near": {"auroc": 0.7}},
              "average": {"auroc": 0.7}, "knn_accuracy": 0.9}
    (run / "results.json").write_text(json.dumps(result))
    baselines = {name: {"ood": {"near": {"auroc": value}}, "average": {"auroc": value}, "knn_accuracy": 0.5}
                 for name, value in (("raw_pixels", 0.9), ("untrained", 0.6))}
    (sweep / "baselines.json").write_text(json.dumps(baselines))
    (sweep / ".hydra").mkdir()  # ssad.scoring.baselines with hydra.run.dir=<the sweep folder> leaves its config there
    (sweep / ".hydra" / "config.yaml").write_text("negatives: {name: rot_indist}\ndata: {name: glyphs}\n")
    report([str(sweep), "--out", str(tmp_path / "report")])
    assert "\n1 run + 2 baselines (0 missing); wrote" in capsys.readouterr().out  # baselines are not counted as runs
    rows = {r["method"]: float(r["measured_mean"]) for r in csv.DictReader((tmp_path / "report" / "table2.csv").open())
            if r["ood"] == "near"}
    assert rows == {"Raw pixels": pytest.approx(90.0), "Untrained": pytest.approx(60.0), "DINO": pytest.approx(70.0)}
    header = (tmp_path / "report" / "table2.md").read_text().splitlines()[2]
    assert header.index("Raw pixels") < header.index("Untrained") < header.index("DINO")


def test_report_averages_the_runs_own_baselines_over_seeds(tmp_path, capsys):
    """A seed sweep with eval.baselines=auto: no baselines.json in the sweep folder, one per run (the untrained
    network differs by seed, the variants of one seed share it)."""
    sweep = tmp_path / "sweep"
    for variant, seed, auroc, untrained in (("none", 0, 0.90, 0.80), ("none", 1, 0.88, 0.84),
                                            ("rot_indist", 0, 0.92, 0.80)):
        run = sweep / f"{variant}-{seed}"
        run.mkdir(parents=True)
        result = {"variant": variant, "dataset": "mine", "seed": seed, "ood": {"near": {"auroc": auroc}},
                  "average": {"auroc": auroc}, "knn_accuracy": None}
        (run / "results.json").write_text(json.dumps(result))
        baselines = {"untrained": {"ood": {"near": {"auroc": untrained}}, "average": {"auroc": untrained}}}
        (run / "baselines.json").write_text(json.dumps(baselines))
    report([str(sweep), "--out", str(tmp_path / "report")])
    assert "\n3 runs + 1 baseline (0 missing); wrote" in capsys.readouterr().out
    rows = {r["method"]: r for r in csv.DictReader((tmp_path / "report" / "table2.csv").open()) if r["ood"] == "near"}
    assert float(rows["Untrained"]["measured_mean"]) == pytest.approx(82.0)  # seeds 0 and 1, seed 0 counted once
    untrained = rows["Untrained"]
    assert untrained["n_seeds"] == "2" and float(untrained["measured_std"]) == pytest.approx(2.828, 1e-3)


def test_untrained_baseline_as_built_and_with_batchnorm_statistics_measured_on_the_training_images(tmp_path):
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 2, 1), torch.nn.BatchNorm2d(2)).eval()
    images = np.random.default_rng(0).integers(0, 256, (10, 3, 8, 8), dtype=np.uint8)
    calibrate_batchnorm(net, ArraySet(images, None, "train"), size=8, batch_size=5)
    from ssad.scoring.features import preprocess
    with torch.no_grad():
        inputs = net[0](preprocess(torch.from_numpy(images), 8))
    assert torch.allclose(net[1].running_mean, inputs.mean(dim=(0, 2, 3)), atol=1e-5)
    assert torch.allclose(net[1].running_var, inputs.var(dim=(0, 2, 3)), rtol=2e-2)  # mean of batch variances
    assert net[1].momentum == 0.1 and not net.training
    results = compute_baselines(compose_cfg(tmp_path, "model=cnn_small", "model.backbone.width=4",
                                            "model.backbone.depth=2"))
    assert set(results) == {"raw_pixels", "untrained_as_built", "untrained"}
    assert results["raw_pixels"]["ood"] != results["untrained"]["ood"] != results["untrained_as_built"]["ood"]
    assert set(results["untrained"]["ood"]) == set(results["untrained_as_built"]["ood"]) == {"digits_5to9", "photos"}
    # a network without BatchNorm has no statistics to measure: one untrained column
    assert set(compute_baselines(compose_cfg(tmp_path, run_dir="vit"))) == {"raw_pixels", "untrained"}


def test_glyphs_are_deterministic_labelled_and_differ_between_splits():
    train, labels = glyphs(16, "train", per_class=3, characters="AB")
    assert train.shape == (6, 3, 16, 16) and labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert np.array_equal(glyphs(16, "train", per_class=3, characters="AB")[0], train)
    assert not np.array_equal(glyphs(16, "test", per_class=3, characters="AB")[0], train)
    assert (train[:, 0] == train[:, 1]).all() and train.max() > 200 and train.min() == 0
    with pytest.raises(ValueError, match="split"):
        glyphs(16, "val")


def test_cifar10_one_class_preset_keeps_one_class_in_and_the_nine_others_out(tmp_path):
    from hydra.utils import instantiate

    from tests.test_formats import random_images, write_pickle

    base = tmp_path / "data" / "cifar10" / "cifar-10-batches-py"
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:  # every class in every batch
        write_pickle(base / name, {b"data": random_images(10, 32).reshape(10, -1), b"labels": list(range(10))})
    cfg = compose_cfg(tmp_path, "data=cifar10_oneclass", "data.size=32")
    datamodule = instantiate(cfg.data)
    sets = datamodule.eval_sets()
    assert set(sets) == {"train", "test", "others"}  # the protocol's one OOD set, the preset's others replaced
    assert set(sets["train"].labels) == set(sets["test"].labels) == {0} and len(sets["train"]) == 5
    assert set(sets["others"].labels) == set(range(1, 10))
    names = label_names(datamodule.ood_specs)["others"]  # the by-label tables print names, not numbers
    assert len(names) == 10 and names[3] == "cat"
    sets = instantiate(compose_cfg(tmp_path, "data=cifar10_oneclass", "data.size=32", "data.normal_class=3").data)\
        .eval_sets()
    assert set(sets["train"].labels) == {3} and set(sets["others"].labels) == set(range(10)) - {3}


def test_label_names_must_be_a_list_of_names(tmp_path):
    write_labelled_arrays(tmp_path)
    spec = {"format": "npy", "path": str(tmp_path / "te_x.npy"), "labels": str(tmp_path / "te_y.npy")}
    check_source({**spec, "label_names": ["a", "b"]})  # not a reader argument: accepted beside any format
    with pytest.raises(ValueError, match="label_names='cat' must be a list of names"):
        check_source({**spec, "label_names": "cat"})
    assert label_names({"near": {**spec, "label_names": ["a", "b"]}, "far": spec}) == {"near": ["a", "b"]}
