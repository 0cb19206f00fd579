import json
import multiprocessing as mp
import os
import signal
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from lightning.pytorch.utilities.exceptions import SIGTERMException

from ssad.config.validation import validate
from ssad.data.readers.cache import cached_arrays
from ssad.deploy.checkpoints import load_checkpoint
from ssad.training.run import build, train
from ssad.utils.files import atomic_path, write_json_atomic
from tests.conftest import compose_cfg


class _Raise(L.Callback):
    """Raises ``exception`` at global step ``step``, as a SIGTERM (pre-emption) would."""

    def __init__(self, step, exception):
        self.step, self.exception = step, exception

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.step:
            raise self.exception


class _SendSigterm(L.Callback):
    """Sends this process a real SIGTERM after ``step`` optimiser steps; Lightning stops after that batch."""

    def __init__(self, step):
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGTERM)


class _Poison(L.Callback):
    """Turns the head's weights into NaN in the second epoch."""

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.current_epoch == 1:
            with torch.no_grad():
                pl_module.student.head.last_layer.parametrizations.weight.original1.fill_(float("nan"))


def test_sigterm_writes_a_checkpoint_and_the_run_resumes(tmp_path):
    cfg = compose_cfg(tmp_path, "negatives=rot_indist")
    datamodule, model, trainer = build(cfg)
    trainer.callbacks.append(_Raise(4, SIGTERMException()))
    with pytest.raises(SIGTERMException):
        trainer.fit(model, datamodule=datamodule)
    saved = torch.load(tmp_path / "run/checkpoints/last.ckpt", weights_only=False)
    assert saved["global_step"] == 4  # mid-epoch, not only the end-of-epoch checkpoint (step 3)
    train(compose_cfg(tmp_path, "negatives=rot_indist"))
    final = torch.load(tmp_path / "run/checkpoints/last.ckpt", weights_only=False)
    assert final["global_step"] == 6 and (tmp_path / "run/results.json").is_file()


@pytest.mark.parametrize("several_passes", [False, True], ids=["one_pass", "epoch_size_of_1.8_passes"])
def test_a_run_interrupted_mid_epoch_ends_with_the_same_weights(tmp_path, several_passes):
    """SIGTERM in the middle of an epoch, then a rerun: the same batches in the same order, the same crops,
    so the same final student, teacher and centre as a run that was never interrupted. Also with an epoch of
    more images than the set (data.epoch_size), cut in the batch that crosses from one pass to the next."""
    extra = []
    if several_passes:  # 27 training images (30 less 3 held out), 48 an epoch: 3 batches of 16
        np.save(tmp_path / "few.npy", np.random.default_rng(0).integers(0, 256, (30, 16, 16), dtype=np.uint8))
        extra = ["data=folder", f"data.path={tmp_path}/few.npy", "data.size=16", "data.batch_size=16",
                 "data.epoch_size=48", "++trainer.limit_train_batches=1.0"]
    train(compose_cfg(tmp_path, "negatives=rot_indist", *extra, run_dir="straight"))
    cfg = compose_cfg(tmp_path, "negatives=rot_indist", *extra, run_dir="cut")
    L.seed_everything(cfg.seed, workers=True)
    datamodule, model, trainer = build(cfg)
    trainer.callbacks.append(_SendSigterm(4))  # epoch 1 (of 2), after 1 of its 3 batches
    with pytest.raises(SIGTERMException):
        trainer.fit(model, datamodule=datamodule)
    assert torch.load(tmp_path / "cut/checkpoints/last.ckpt", weights_only=False)["global_step"] == 4
    train(compose_cfg(tmp_path, "negatives=rot_indist", *extra, run_dir="cut"))
    straight = torch.load(tmp_path / "straight/checkpoints/last.ckpt", weights_only=False)
    resumed = torch.load(tmp_path / "cut/checkpoints/last.ckpt", weights_only=False)
    assert straight["global_step"] == resumed["global_step"] == 6
    assert straight["state_dict"].keys() == resumed["state_dict"].keys()
    for key in straight["state_dict"]:
        torch.testing.assert_close(resumed["state_dict"][key], straight["state_dict"][key], rtol=0, atol=0, msg=key)


def test_non_finite_loss_stops_with_a_message_and_keeps_good_weights(tmp_path):
    cfg = compose_cfg(tmp_path, "negatives=rot_indist")
    datamodule, model, trainer = build(cfg)
    trainer.callbacks.append(_Poison())
    with pytest.raises(FloatingPointError, match="last good weights"):
        trainer.fit(model, datamodule=datamodule)
    saved = torch.load(tmp_path / "run/checkpoints/last.ckpt", weights_only=False)
    assert saved["epoch"] == 0
    assert all(torch.isfinite(v).all() for v in saved["state_dict"].values() if v.is_floating_point())


def test_a_truncated_checkpoint_is_named_and_left_in_place(tmp_path):
    cfg = compose_cfg(tmp_path, "trainer.max_epochs=1", "callbacks=default")
    train(cfg)
    last = tmp_path / "run/checkpoints/last.ckpt"
    cut = last.read_bytes()[: last.stat().st_size // 2]  # as a crash or a full disk would leave it
    last.write_bytes(cut)
    way_out = r"last.ckpt cannot be read .*\(mv .*last.ckpt .*last.ckpt.bad\).*epoch000.ckpt"
    with pytest.raises(ValueError, match=way_out):
        train(compose_cfg(tmp_path, "trainer.max_epochs=2"))
    assert last.read_bytes() == cut  # nothing changed
    with pytest.raises(ValueError, match="cannot be read"):
        load_checkpoint(last)


def test_same_seed_same_weights_on_cpu(tmp_path):
    runs = []
    for name in ("a", "b"):
        train(compose_cfg(tmp_path, "negatives=rot_indist", "trainer.max_epochs=1", run_dir=name))
        runs.append(torch.load(tmp_path / name / "checkpoints/last.ckpt", weights_only=False)["state_dict"])
    assert all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0])
    assert json.loads((tmp_path / "a/results.json").read_text())["ood"] == \
        json.loads((tmp_path / "b/results.json").read_text())["ood"]


@pytest.mark.parametrize("override,key", [
    ("data.batch_size=0", "data.batch_size"),
    ("model.student_temp=-1", "model.student_temp"),
    ("augment.global_scale=[0.4,1.5]", "augment.global_scale"),
    ("optim.clip_mode=sometimes", "optim.clip_mode"),
    ("augment.n_global=1", "augment.n_global"),
    ("trainer.max_epochs=0", "trainer.max_epochs"),
    ("eval.settings.knn_k=0", "eval.settings.knn_k"),
    ("eval.settings.soft_classes_split=val", "eval.settings.soft_classes_split"),
    ("callbacks.collapse.patience=0", "callbacks.collapse.patience"),
    ("callbacks.collapse.max_cosine=1.5", "callbacks.collapse.max_cosine"),
])
def test_bad_config_values_are_named_at_start_up(tmp_path, override, key):
    cfg = compose_cfg(tmp_path, override)
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        validate(cfg)
    validate(compose_cfg(tmp_path))  # the defaults are valid
    validate(compose_cfg(tmp_path, "callbacks=none"))  # callbacks.collapse is checked only where it is composed


def test_atomic_write_leaves_the_old_file_on_failure(tmp_path):
    target = tmp_path / "results.json"
    write_json_atomic(target, {"auroc": 0.9})
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text('{"auroc": 0.')
        raise RuntimeError("killed mid-write")
    assert json.loads(target.read_text()) == {"auroc": 0.9}
    assert list(tmp_path.iterdir()) == [target]


def _build_in_process(cache_dir: str, out: str) -> None:
    def slow_build():
        return np.full((50, 3, 8, 8), 7, dtype=np.uint8), np.arange(50)

    images, labels = cached_arrays("race", {"k": 1}, slow_build, cache_dir)
    np.save(out, np.asarray(images))


def test_two_processes_building_one_cache_entry(tmp_path):
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_build_in_process, args=(str(tmp_path / "cache"), str(tmp_path / f"{i}.npy")))
             for i in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert all(p.exitcode == 0 for p in procs)
    a, b = np.load(tmp_path / "0.npy"), np.load(tmp_path / "1.npy")
    assert np.array_equal(a, b) and a.shape == (50, 3, 8, 8)
    assert not [p for p in Path(tmp_path / "cache").iterdir() if p.name.endswith(".tmp")]


def test_cache_rebuilds_when_the_source_changes(tmp_path):
    from ssad.data.sources import load_source

    path = tmp_path / "x.npy"
    np.save(path, np.zeros((4, 8, 8, 3), dtype=np.uint8))
    first = load_source({"format": "npy", "path": str(path)}, 8, str(tmp_path / "cache"))
    np.save(path, np.full((5, 8, 8, 3), 9, dtype=np.uint8))
    second = load_source({"format": "npy", "path": str(path)}, 8, str(tmp_path / "cache"))
    assert len(first) == 4 and len(second) == 5 and second.images.max() == 9
