"""Every ``experiment=`` preset, found by listing conf/experiment/ (a new preset is covered by being there),
composes, passes the start-up checks and is built as training builds it (``ssad.training.run.build``: datamodule with
its augmentation and negative variant, network, callbacks, loggers, trainer) without reading its data; its views
of two images go through the network, one view per resolution. A multirun preset's sweep over a config group
(e.g. its negative variants) is checked choice by choice: composed, validated and its datamodule's views made."""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from ssad.config.keys import CONFIG_DIR
from ssad.config.validation import validate
from ssad.data.datamodule import SSADDataModule
from ssad.method.module import SSADModule
from ssad.training.run import build, train
from ssad.views.augment import MultiCropAugment
from tests.conftest import compose_cfg, compose_command

EXPERIMENTS = sorted(path.stem for path in (Path(CONFIG_DIR) / "experiment").glob("*.yaml"))


def compose_preset(name: str, tmp_path: Path, *overrides: str) -> DictConfig:
    return compose_command("train", f"experiment={name}", *overrides, f"paths.data_dir={tmp_path}/data",
                           f"paths.output_dir={tmp_path}/run")


def swept_group_choices(name: str) -> list[str]:
    """The overrides a preset's sweep makes of config groups (``negatives=none``, ...; a swept value such as the
    seed left out); none for a single run."""
    params = compose_command("train", f"experiment={name}", hydra=True).hydra.sweeper.get("params") or {}
    return [f"{key}={choice}" for key, choices in params.items() if (Path(CONFIG_DIR) / key).is_dir()
            for choice in str(choices).split(",")]


def training_views(datamodule: SSADDataModule, cfg: DictConfig) -> dict[str, list[torch.Tensor]]:
    """The datamodule's views of two random images (also the negatives, one per part in turn), checked against
    the config's view counts and negative parts."""
    assert [p.transform for p in datamodule.parts] == [p["transform"] for p in
                                                         OmegaConf.to_container(cfg.negatives.parts)]
    images = torch.randint(0, 256, (2, 3, datamodule.size, datamodule.size), dtype=torch.uint8)
    part = torch.arange(2) % max(len(datamodule.parts), 1)
    views = datamodule.views(images, images if datamodule.parts else None, part)
    assert len(views["pos_global"]) == cfg.augment.n_global and len(views["pos_local"]) == cfg.augment.n_local
    assert ("neg_global" in views) == bool(datamodule.parts)
    return views


def test_every_preset_is_found() -> None:
    assert {"cifar10", "cifar100", "demo", "table2", "table2_cpu", "bench_tiny"} <= set(EXPERIMENTS)


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_experiment_preset_builds_and_runs_a_batch(name: str, tmp_path: Path, monkeypatch) -> None:
    # the sources' files are not here: building must not need them (reading them is prepare_data's job)
    monkeypatch.setattr(SSADDataModule, "check_sources", lambda self: None)
    cfg = compose_preset(name, tmp_path)
    datamodule, module, trainer = build(cfg)  # validates the config first
    assert isinstance(datamodule, SSADDataModule) and isinstance(module, SSADModule)
    assert isinstance(datamodule.augment, MultiCropAugment) and trainer.max_epochs == cfg.trainer.max_epochs
    views = training_views(datamodule, cfg)
    one_per_resolution = [views["pos_global"][0], *views["pos_local"][:1]]
    module.eval()
    with torch.no_grad():
        logits = module.student(one_per_resolution)
    assert all(out.shape == (2, cfg.model.head.out_dim) and torch.isfinite(out).all() for out in logits)
    for choice in swept_group_choices(name):
        swept = compose_preset(name, tmp_path, choice)
        validate(swept)
        training_views(instantiate(swept.data), swept)


def test_a_sweep_that_scores_its_baselines_once_does_not_score_them_before_each_run() -> None:
    sweeps = []
    for name in EXPERIMENTS:
        cfg = compose_command("train", f"experiment={name}", hydra=True)
        targets = [c.get("_target_") for c in (cfg.hydra.get("callbacks") or {}).values()]
        if "ssad.scoring.baselines.SweepBaselines" in targets:
            sweeps.append(name)
            assert cfg.eval.baselines != "auto", name  # e.g. table2_cpu, built on the demo preset (auto)
    assert "table2_cpu" in sweeps


def test_the_shape_data_quick_start_is_the_quick_start_with_layer_normed_features_on_the_letters(tmp_path) -> None:
    demo = OmegaConf.to_container(compose_preset("demo", tmp_path, "data=glyphs"), resolve=True)
    shapes = OmegaConf.to_container(compose_preset("demo_shapes", tmp_path), resolve=True)
    assert shapes["data"]["name"] == "glyphs" and shapes["model"]["backbone"]["layer_norm"] is True
    assert demo["model"]["backbone"]["layer_norm"] is False
    # the quick-start centres f by half the mean training feature; the shape preset's LayerNorm centres it per image
    assert demo["model"]["backbone"]["feature_shift"] == 0.5 and shapes["model"]["backbone"]["feature_shift"] == 0
    shapes["model"]["backbone"].update(layer_norm=False, feature_shift=0.5)
    shapes["task_name"] = "demo"
    assert shapes == demo  # nothing else differs: same network, views, schedule and evaluation


def _epoch_draws(cfg: DictConfig, epochs: int = 2) -> list[list[int]]:
    """The training images each of the first ``epochs`` epochs draws, as the run's data module serves them."""
    datamodule, _, trainer = build(cfg)
    datamodule.prepare_data()
    datamodule.setup("fit")
    datamodule.trainer = trainer
    sampler = datamodule.train_dataloader().iterables["pos"].sampler
    draws = []
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        draws.append(list(sampler))
    return draws


def test_the_quick_start_trains_the_same_steps_on_data_of_any_size(tmp_path, caplog) -> None:
    """experiment=demo fixes the images an epoch (data.epoch_size), so data smaller and larger than the embedded set
    get the same steps: a larger set a new draw of its images each epoch, a smaller one several passes."""
    epoch_size = compose_preset("demo", tmp_path).data.epoch_size
    assert isinstance(epoch_size, int) and epoch_size > 0
    size = ["data.epoch_size=12", "data.batch_size=2", "++trainer.limit_train_batches=1.0", "trainer.max_epochs=1",
            "model=cnn_small", "model.backbone.width=4", "model.backbone.depth=1"]
    larger = _epoch_draws(compose_cfg(tmp_path, *size))
    assert all(len(d) == 12 == len(set(d)) for d in larger) and larger[0] != larger[1]
    np.save(tmp_path / "small.npy", np.random.default_rng(0).integers(0, 256, (10, 16, 16), dtype=np.uint8))
    small = compose_cfg(tmp_path, *size, "data=folder", f"data.path={tmp_path}/small.npy", "data.holdout=0.2",
                        "data.size=16", run_dir="small")
    for draw in _epoch_draws(small):  # 8 training images, 12 draws: every image once, 4 of them twice
        assert len(draw) == 12 and sorted(Counter(draw).values()) == [1] * 4 + [2] * 4
    with caplog.at_level(logging.INFO, logger="ssad.data.datamodule"):
        results = json.loads((Path(train(small)["run_dir"]) / "results.json").read_text())
    assert results["step"] == 12 // 2
    assert "8 training images; an epoch draws 12 of them (data.epoch_size: 1.5 passes over them), 6 optimiser " \
           "steps an epoch" in caplog.text


def test_an_epoch_smaller_than_a_batch_is_refused_naming_data_epoch_size(tmp_path) -> None:
    cfg = compose_cfg(tmp_path, "data.epoch_size=8", "data.batch_size=16", "++trainer.limit_train_batches=1.0",
                      "model=cnn_small", "model.backbone.width=4", "model.backbone.depth=1")
    with pytest.raises(ValueError, match=r"8 images an epoch \(data.epoch_size=8\).*or raise data.epoch_size"):
        _epoch_draws(cfg)
