import json
import subprocess
import sys
import warnings
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from ssad.config.keys import CONFIG_DIR
from ssad.config.validation import validate
from ssad.data.datamodule import holdout_split
from ssad.data.sources import ArraySet
from ssad.scoring.checkpoint import evaluate_checkpoint
from ssad.training.run import build, train
from tests.conftest import HANG_S, TINY, TINY_VIT, compose_cfg

PRESETS = sorted(p.stem for p in (Path(CONFIG_DIR) / "negatives").glob("*.yaml"))


def test_all_eleven_paper_presets_exist():
    assert {"none", "imgn", "rot_imgn", "rot360_imgn", "dti", "rot_dti", "perm16_imgn", "perm4_imgn",
            "pixperm_imgn", "rot_indist", "combined"} <= set(PRESETS)


@pytest.mark.parametrize("variant", PRESETS)
def test_fast_dev_run_of_every_preset(aux_data, variant):
    cfg = compose_cfg(aux_data, f"negatives={variant}", "++trainer.fast_dev_run=1", "callbacks=none")
    datamodule, model, trainer = build(cfg)
    trainer.fit(model, datamodule=datamodule)
    assert trainer.global_step == 1
    assert all(torch.isfinite(p).all() for p in model.student.parameters())


def test_bf16_mixed_precision_step_keeps_fp32_weights_and_loss(tmp_path):
    """The GPU default (bf16-mixed) runs the same Lightning path on a CPU: weights, centre and loss stay fp32."""
    cfg = compose_cfg(tmp_path, "trainer.precision=bf16-mixed", "++trainer.fast_dev_run=2", "callbacks=none")
    datamodule, model, trainer = build(cfg)
    trainer.fit(model, datamodule=datamodule)
    assert trainer.global_step == 2 and trainer.precision == "bf16-mixed"
    assert all(p.dtype == torch.float32 and torch.isfinite(p).all() for p in model.teacher.parameters())
    assert model.center.dtype == torch.float32 and model.center.abs().sum() > 0
    loss = trainer.callback_metrics["train/loss"]
    assert loss.dtype == torch.float32 and torch.isfinite(loss)


def test_views_and_loss_terms(aux_data):
    cfg = compose_cfg(aux_data, "negatives=combined")
    datamodule, model, trainer = build(cfg)
    datamodule.prepare_data()
    datamodule.setup("fit")
    batch = next(iter(datamodule.train_dataloader()))
    batch = batch[0] if isinstance(batch, tuple) else batch
    assert batch["pos"]["image"].dtype == torch.uint8 and batch["neg"]["image"].dtype == torch.uint8
    assert set(batch["neg"]["part"].tolist()) <= {0, 1}
    datamodule.trainer = trainer
    trainer.state.fn, trainer.training = "fit", True
    views = datamodule.on_after_batch_transfer(batch, 0)
    assert [v.shape[-1] for v in views["pos_global"]] == [16, 16]
    assert [v.shape[-1] for v in views["pos_local"]] == [8, 8]
    assert len(views["neg_global"]) == 1 and len(views["neg_local"]) == 2
    assert views["neg_global"][0].dtype == torch.float32


def test_training_writes_checkpoint_metrics_and_results(tmp_path):
    cfg = compose_cfg(tmp_path, "negatives=rot_indist", "eval.every_n_epochs=1", "eval.plots=true")
    summary = train(cfg)
    run = Path(summary["run_dir"])
    assert (run / "checkpoints" / "last.ckpt").is_file()
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2 and json.loads(lines[0])["epoch"] == 1
    results = json.loads((run / "results.json").read_text())
    assert results["variant"] == "rot_indist" and results["dataset"] == "digits" and results["seed"] == 0
    assert set(results["ood"]) == {"digits_5to9", "photos"}
    assert 0.0 <= results["average"]["auroc"] <= 1.0
    assert len(results["loss_curve"]) == 2
    plots = {p.name for p in (run / "plots").glob("*.png")}
    assert plots == {"score_histograms.png", "roc_curves.png", "training_curves.png"}


def assert_same_weights(tmp_path, run_a: str, run_b: str) -> tuple[dict, dict]:
    """The two runs' last checkpoints hold bit-identical weights; returns both checkpoints."""
    a = torch.load(tmp_path / run_a / "checkpoints/last.ckpt", weights_only=False)
    b = torch.load(tmp_path / run_b / "checkpoints/last.ckpt", weights_only=False)
    for key, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][key]), key
    return a, b


def test_evaluating_more_often_leaves_training_as_it_was(tmp_path):
    """An evaluation draws random numbers (its data loaders' seeds) from an isolated generator state, so
    eval.every_n_epochs changes the curves, never the trained weights."""
    train(compose_cfg(tmp_path, "negatives=rot_indist", "eval.every_n_epochs=2", run_dir="once"))
    train(compose_cfg(tmp_path, "negatives=rot_indist", "eval.every_n_epochs=1", run_dir="every"))
    assert len((tmp_path / "every" / "metrics.jsonl").read_text().splitlines()) == 2
    assert_same_weights(tmp_path, "once", "every")


def test_auto_baselines_are_written_once_before_training_and_leave_training_as_it_was(tmp_path):
    train(compose_cfg(tmp_path, run_dir="plain"))
    train(compose_cfg(tmp_path, "eval.baselines=auto", run_dir="auto"))
    baselines = tmp_path / "auto" / "baselines.json"
    scored = json.loads(baselines.read_text())
    assert set(scored) == {"raw_pixels", "untrained"}  # the tiny ViT has no BatchNorm: no "as built" column
    assert set(scored["untrained"]["ood"]) == {"digits_5to9", "photos"}
    assert not (tmp_path / "plain" / "baselines.json").exists()
    assert_same_weights(tmp_path, "plain", "auto")  # scoring the baselines drew no random numbers of the run's
    baselines.write_text(json.dumps({"untrained": {"ood": {}}}))  # a rerun of the folder keeps the run's own
    train(compose_cfg(tmp_path, "eval.baselines=auto", "trainer.max_epochs=3", run_dir="auto"))
    assert json.loads(baselines.read_text()) == {"untrained": {"ood": {}}}


class _Interrupt(L.Callback):
    """Stops the run after its first epoch, as a pre-emption would (after the epoch's checkpoint)."""

    def on_train_epoch_end(self, trainer, pl_module):
        trainer.should_stop = True


def test_resumed_run_ends_with_the_same_weights(tmp_path):
    train(compose_cfg(tmp_path, "negatives=rot_indist", run_dir="straight"))
    first = compose_cfg(tmp_path, "negatives=rot_indist", run_dir="resumed")
    L.seed_everything(first.seed, workers=True)
    datamodule, model, trainer = build(first)
    trainer.callbacks.append(_Interrupt())
    trainer.fit(model, datamodule=datamodule)
    assert trainer.current_epoch == 1
    # the same run directory again: resumes from checkpoints/last.ckpt and finishes the schedule
    train(compose_cfg(tmp_path, "negatives=rot_indist", run_dir="resumed"))
    a, b = assert_same_weights(tmp_path, "straight", "resumed")
    assert a["global_step"] == b["global_step"] == 6


def test_unknown_variant_names_the_choices(tmp_path):
    with pytest.raises(Exception, match="rot_imgn"):
        compose_cfg(tmp_path, "negatives=rot_imagenet")


def test_missing_auxiliary_dataset_fails_before_training(tmp_path):
    cfg = compose_cfg(tmp_path, "negatives=rot_imgn")
    with pytest.raises(FileNotFoundError, match="imagenet32"):
        build(cfg)


def test_unknown_negative_source_names_the_choices(tmp_path):
    cfg = compose_cfg(tmp_path, "negatives=rot_indist", "negatives.parts.0.source=imagenet22k")
    with pytest.raises(Exception, match="imagenet22k' is not configured; choose 'indist'"):
        instantiate(cfg.data)


def test_train_on_a_users_unlabeled_folder(tmp_path):
    from PIL import Image

    folder = tmp_path / "mine"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(20):
        mode = ["RGB", "L", "RGBA"][i % 3]
        size = (20 + i, 30)
        array = rng.integers(0, 256, (size[1], size[0], len(mode) if mode != "L" else 1), dtype=np.uint8)
        Image.fromarray(array.squeeze(-1) if mode == "L" else array, mode).save(folder / f"{i}.png")
    Image.fromarray(rng.integers(0, 65535, (12, 12), dtype=np.uint16)).save(folder / "sixteen_bit.png")
    cfg = compose_cfg(tmp_path, "data=folder", f"data.path={folder}", "data.size=16", "data.batch_size=8",
                      "data.num_workers=0", "negatives=rot_indist", "eval.baselines=auto", "eval.plots=true")
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="eval.baselines")  # nothing to score them on: no file, no warning
        train(cfg)
    assert not (tmp_path / "run" / "baselines.json").exists()
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["knn_accuracy"] is None and results["dataset"] == "folder"
    assert results["occupied_soft_classes"] >= 0
    # the default 10% hold-out (2 of 21 images) is the test set: sensitivity is measured on it
    assert 0 <= results["sensitivity"] <= 1


def test_holdout_split_is_disjoint_complete_and_the_same_every_time():
    images = np.arange(50, dtype=np.uint8).reshape(50, 1, 1, 1)
    data = ArraySet(images, np.arange(50), "mine")
    train_part, test_part = holdout_split(data, 0.1, seed=0)
    again = holdout_split(data, 0.1, seed=0)[1]
    assert len(test_part) == 5 and len(train_part) == 45 and test_part.name == "test"
    assert np.array_equal(test_part.images, again.images)
    train_images, test_images = np.asarray(train_part.images), np.asarray(test_part.images)
    assert sorted(train_images.ravel().tolist() + test_images.ravel().tolist()) == list(range(50))
    assert np.array_equal(train_part.labels, train_images.ravel())  # labels follow their images
    # views, not copies: batches read through them equal the rows they stand for
    assert not isinstance(test_part.images, np.ndarray) and test_part.images.shape == (5, 1, 1, 1)
    assert np.array_equal(test_part.images[[4, 0]], test_images[[4, 0]])
    assert np.array_equal(test_part.images[1:3], test_images[1:3]) and test_part.images[2].shape == (1, 1, 1)
    assert len(holdout_split(data, 0.001, seed=0)[1]) == 1  # at least one held-out image
    with pytest.raises(ValueError, match="no training images"):
        holdout_split(ArraySet(images[:1], None, "one"), 0.5, seed=0)


def test_holdout_and_test_together_or_out_of_range_are_refused(tmp_path):
    cfg = compose_cfg(tmp_path, "data.holdout=0.2")  # data.holdout is in every data config (0.0)
    with pytest.raises(Exception, match="data.holdout and data.test are both set"):
        instantiate(cfg.data)
    with pytest.raises(ValueError, match=r"data.holdout=1.0 must be a share in \[0, 1\)"):
        validate(compose_cfg(tmp_path, "data=folder", "data.path=x.npy", "data.holdout=1.0"))


def test_ddp_on_two_cpu_processes_matches_a_single_process_evaluation(tmp_path):
    """``trainer=ddp`` with two gloo processes: rank 0 alone writes metrics.jsonl, and the final metrics (each
    process extracted a shard; features gathered in dataset order) equal a one-process evaluation of the
    saved checkpoint, so both processes held the same teacher and centre."""
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "ssad.train", *TINY, *TINY_VIT, "trainer=ddp", "trainer.accelerator=cpu",
           "trainer.devices=2",
           "eval.every_n_epochs=1", f"paths.data_dir={tmp_path}/data", f"hydra.run.dir={run}"]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=HANG_S)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 2  # two evaluations, one writer
    distributed = json.loads((run / "results.json").read_text())
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        eval_cfg = compose("evaluate", overrides=[f"ckpt={run}/checkpoints/last.ckpt", f"out={tmp_path}/one.json",
                                                  "accelerator=cpu", "eval.settings.progress=false",
                                                  "eval.plots=false"])
    single = evaluate_checkpoint(eval_cfg)
    assert distributed["ood"].keys() == single["ood"].keys()
    for name, metrics in single["ood"].items():
        assert distributed["ood"][name]["auroc"] == pytest.approx(metrics["auroc"], abs=1e-3)
    for key in ("knn_accuracy", "sensitivity", "occupied_soft_classes"):
        assert distributed[key] == pytest.approx(single[key], abs=1e-3)
