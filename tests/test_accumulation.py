"""Effective batch and gradient accumulation (ssad/method/batching.py, SSADModule.optimizer_step): k micro-batches of b
images update student, teacher, centre and optimiser as one batch of k·b does."""

import copy
import json
from pathlib import Path
from types import SimpleNamespace

import lightning as L
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from lightning.pytorch.utilities.exceptions import SIGTERMException
from torch.utils.data import DataLoader

from ssad.config.keys import CONFIG_DIR
from ssad.method.batching import accumulation_steps, configure_accumulation, scaled_lr
from ssad.training.run import build, train
from tests.conftest import compose_cfg

N_IMAGES, STEPS = 8, 2  # images per optimiser step, optimiser steps


def _views(n: int, seed: int) -> dict[str, list[torch.Tensor]]:
    """Fixed views of ``n`` images in the TINY shapes: 2 + 2 positive, 1 + 2 negative."""
    g = torch.Generator().manual_seed(seed)

    def views(count: int, size: int) -> list[torch.Tensor]:
        return [torch.randn(n, 3, size, size, generator=g) for _ in range(count)]

    return {"pos_global": views(2, 16), "pos_local": views(2, 8), "neg_global": views(1, 16),
            "neg_local": views(2, 8)}


def _split(batch: dict[str, list[torch.Tensor]], k: int) -> list[dict[str, list[torch.Tensor]]]:
    return [{key: [v.chunk(k)[i] for v in views] for key, views in batch.items()} for i in range(k)]


def _fit(module: L.LightningModule, batches: list, accumulate: int) -> L.Trainer:
    trainer = L.Trainer(accelerator="cpu", devices=1, max_epochs=1, accumulate_grad_batches=accumulate,
                        logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, num_sanity_val_steps=0, precision="32-true")
    trainer.fit(module, DataLoader(batches, batch_size=None, shuffle=False))
    return trainer


@pytest.mark.parametrize("k", [2, 4])
def test_k_micro_batches_update_as_one_batch_of_k_times_b(tmp_path, k):
    # a small lr: the attention's key bias has a zero gradient up to rounding, which AdamW scales up to ±lr
    cfg = compose_cfg(tmp_path, "model.backbone.drop_path_rate=0.0", "optim.warmup_epochs=0", "optim.base_lr=0.0005",
                      "optim.freeze_last_layer=0", "model.momentum_teacher=0.9", "model.centring.momentum=0.5",
                      f"data.batch_size={N_IMAGES // k}")
    torch.manual_seed(0)
    start = instantiate(cfg.model, _convert_="all")
    steps = [_views(N_IMAGES, seed) for seed in range(STEPS)]

    whole = copy.deepcopy(start)
    whole.hparams.batch_size = N_IMAGES
    trainer_whole = _fit(whole, steps, accumulate=1)
    micro = copy.deepcopy(start)
    trainer_micro = _fit(micro, [m for batch in steps for m in _split(batch, k)], accumulate=k)

    assert trainer_whole.global_step == trainer_micro.global_step == STEPS
    assert micro.effective_batch() == whole.effective_batch() == N_IMAGES
    assert micro.effective_lr() == whole.effective_lr() == scaled_lr(cfg.optim.base_lr, N_IMAGES)
    tol = {"rtol": 1e-4, "atol": 1e-6}
    torch.testing.assert_close(micro.center, whole.center, **tol)
    assert micro.center.abs().sum() > 0 and micro.centring.step_rows == 0 and not micro.centring.step_sum.any()
    for name, tensor in whole.state_dict().items():
        torch.testing.assert_close(micro.state_dict()[name], tensor, **tol, msg=name)
    moved = [not torch.equal(a, b) for a, b in zip(start.student.parameters(), micro.student.parameters())]
    assert all(moved), "every student tensor took a step"
    for group_whole, group_micro in zip(trainer_whole.optimizers[0].param_groups,
                                        trainer_micro.optimizers[0].param_groups, strict=True):
        assert group_whole["lr"] == group_micro["lr"] and group_whole.get("weight_decay") == group_micro.get(
            "weight_decay")
    state_whole, state_micro = trainer_whole.optimizers[0].state, trainer_micro.optimizers[0].state
    for p_whole, p_micro in zip(whole.student.parameters(), micro.student.parameters(), strict=True):
        assert state_whole[p_whole]["step"] == state_micro[p_micro]["step"] == STEPS
        torch.testing.assert_close(state_micro[p_micro]["exp_avg"], state_whole[p_whole]["exp_avg"], **tol)


def test_per_micro_batch_centre_would_differ(tmp_path):
    """The check above can fail: moving the centre after every micro-batch gives another centre."""
    cfg = compose_cfg(tmp_path, "model.centring.momentum=0.5")
    module = instantiate(cfg.model, _convert_="all")
    logits = [torch.randn(4, cfg.model.head.out_dim) for _ in range(2)]
    once = 0.5 * torch.cat(logits).mean(0, keepdim=True)
    twice = 0.5 * (0.5 * logits[0].mean(0, keepdim=True)) + 0.5 * logits[1].mean(0, keepdim=True)
    assert not torch.allclose(once, twice, atol=1e-3)
    module.centring.accumulate([logits[0][:2], logits[0][2:]])
    module.centring.accumulate([logits[1]])
    module.centring.update()
    torch.testing.assert_close(module.center, once)


@pytest.mark.parametrize(
    ("effective", "batch", "world", "accumulate", "steps"),
    [(256, 64, 1, 1, 4), (256, 64, 4, 1, 1), (256, 32, 4, 1, 2), (256, 256, 1, 1, 1), (None, 64, 2, 3, 3)],
)
def test_accumulation_steps(effective, batch, world, accumulate, steps):
    assert accumulation_steps(effective, batch, world, accumulate) == steps


@pytest.mark.parametrize(
    ("effective", "batch", "world", "accumulate", "message"),
    [(256, 48, 1, 1, r"optim.effective_batch=256 is not a multiple of data.batch_size.*divisor of 256"),
     (256, 64, 3, 1, r"does not split over 3 processes"),
     (256, 128, 4, 1, r"divisor of 64"),
     (256, 64, 1, 2, r"trainer.accumulate_grad_batches=2 are both set")],
)
def test_accumulation_steps_errors_name_the_keys(effective, batch, world, accumulate, message):
    with pytest.raises(ValueError, match=message):
        accumulation_steps(effective, batch, world, accumulate)


def test_configure_accumulation_sets_the_trainer():
    trainer = SimpleNamespace(world_size=2, accumulate_grad_batches=1)
    figures = configure_accumulation(trainer, 32, 256, 0.004)
    assert trainer.accumulate_grad_batches == 4
    assert figures == {"effective_batch": 256, "batch_size": 32, "world_size": 2, "accumulate_grad_batches": 4,
                       "lr": 0.004}


def test_paper_presets_give_the_papers_effective_batch_on_one_device():
    for experiment in ("cifar10", "cifar100"):
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            cfg = compose("train", overrides=[f"experiment={experiment}"])
        assert cfg.optim.effective_batch == 256 and cfg.data.batch_size == 64
        trainer = SimpleNamespace(world_size=1, accumulate_grad_batches=1)
        figures = configure_accumulation(trainer, cfg.data.batch_size, cfg.optim.effective_batch, cfg.optim.base_lr)
        assert figures["accumulate_grad_batches"] == 4 and figures["lr"] == pytest.approx(0.004)


def test_effective_batch_is_logged_and_stored_in_results(tmp_path):
    cfg = compose_cfg(tmp_path, "optim.effective_batch=32", "++trainer.limit_train_batches=4", "eval.every_n_epochs=2")
    datamodule, model, trainer = build(cfg)
    assert trainer.accumulate_grad_batches == 2 and model.run_config["batching"]["effective_batch"] == 32
    summary = train(cfg)
    results = json.loads((Path(summary["run_dir"]) / "results.json").read_text())
    assert results["effective_batch"] == 32 and results["accumulate_grad_batches"] == 2
    assert results["batch_size"] == 16 and results["world_size"] == 1
    assert results["lr"] == pytest.approx(cfg.optim.base_lr * 32 / 256)
    assert results["step"] == 4  # 2 epochs × 4 micro-batches / 2 per optimiser step


def test_epoch_is_whole_optimiser_steps(tmp_path):
    """An odd number of batches of 16 at 2 micro-batches per step: the last half step is not served."""
    cfg = compose_cfg(tmp_path, "optim.effective_batch=32", "++trainer.limit_train_batches=1.0")
    datamodule, model, trainer = build(cfg)
    datamodule.prepare_data()
    datamodule.setup("fit")
    datamodule.trainer = trainer
    images = len(datamodule.train_set.images)
    loader = datamodule.train_dataloader()
    assert (images // 16) % 2 == 1, "the embedded digits give an odd number of batches"
    assert sum(1 for _ in loader.iterables["pos"]) == len(loader.iterables["neg"]) == images // 16 - 1


def test_a_run_interrupted_between_optimiser_steps_resumes_exactly(tmp_path):
    """3 batches per epoch at 2 micro-batches per step: steps of 2 and 1 batches. SIGTERM after step 3 (epoch 1,
    batch 2 of 3) and a rerun give the weights of a run never stopped (the resume skips 2 batches, not 6)."""
    from tests.test_robustness import _SendSigterm

    args = ("negatives=rot_indist", "optim.effective_batch=32")
    train(compose_cfg(tmp_path, *args, run_dir="straight"))
    cfg = compose_cfg(tmp_path, *args, run_dir="cut")
    L.seed_everything(cfg.seed, workers=True)
    datamodule, model, trainer = build(cfg)
    trainer.callbacks.append(_SendSigterm(3))
    with pytest.raises(SIGTERMException):
        trainer.fit(model, datamodule=datamodule)
    assert torch.load(tmp_path / "cut/checkpoints/last.ckpt", weights_only=False)["global_step"] == 3
    train(compose_cfg(tmp_path, *args, run_dir="cut"))
    straight = torch.load(tmp_path / "straight/checkpoints/last.ckpt", weights_only=False)
    resumed = torch.load(tmp_path / "cut/checkpoints/last.ckpt", weights_only=False)
    assert straight["global_step"] == resumed["global_step"] == 4
    for key, tensor in straight["state_dict"].items():
        torch.testing.assert_close(resumed["state_dict"][key], tensor, rtol=0, atol=0, msg=key)
