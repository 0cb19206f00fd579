"""Failures that look like failures: a stop by a signal exits 128 + signal after writing last.ckpt, the resumed
run's loss curve equals an uninterrupted one, a non-finite loss says what is true for the run, and a run that
fails before training leaves no folder behind."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import lightning as L
import pytest
import torch

from ssad.training.run import train
from ssad.training.rundir import is_unused, remove_if_unused, snapshot
from tests.conftest import compose_cfg


class SendSignal(L.Callback):
    """Raises the real signal ``signum`` in this process after ``step`` optimiser steps."""

    def __init__(self, step: int, signum: int) -> None:
        self.step, self.signum = step, signum

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == self.step:
            signal.raise_signal(self.signum)  # delivered to this (the main) thread, not to any thread


class Poison(L.Callback):
    """Turns the head's weights into NaN at the start of epoch ``epoch``."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.current_epoch == self.epoch:
            with torch.no_grad():
                pl_module.student.head.last_layer.parametrizations.weight.original1.fill_(float("nan"))


def _with(callback: str, **args) -> str:
    values = ", ".join(f"{k}: {v}" for k, v in args.items())
    return f"+callbacks.test={{_target_: tests.test_stops.{callback}, {values}}}"


def test_sigterm_exits_143_and_the_resumed_loss_curve_equals_an_uninterrupted_one(tmp_path):
    train(compose_cfg(tmp_path, "negatives=rot_indist", run_dir="straight"))
    with pytest.raises(SystemExit) as stop:  # epoch 1 (of 2), after 1 of its 3 batches
        train(compose_cfg(tmp_path, "negatives=rot_indist", _with("SendSignal", step=4, signum=15), run_dir="cut"))
    assert stop.value.code == 128 + signal.SIGTERM
    assert torch.load(tmp_path / "cut/checkpoints/last.ckpt", weights_only=False)["global_step"] == 4
    train(compose_cfg(tmp_path, "negatives=rot_indist", run_dir="cut"))  # resumes
    straight = json.loads((tmp_path / "straight/results.json").read_text())["loss_curve"]
    resumed = json.loads((tmp_path / "cut/results.json").read_text())["loss_curve"]
    assert len(straight) == 2 and resumed == pytest.approx(straight, rel=1e-6)


def test_ctrl_c_exits_130_after_writing_last_ckpt(tmp_path):
    signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a fresh process, whatever ran before
    try:
        with pytest.raises(SystemExit) as stop:
            train(compose_cfg(tmp_path, "negatives=none", _with("SendSignal", step=2, signum=2)))
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)  # Lightning ignores further Ctrl-C while stopping
    assert stop.value.code == 128 + signal.SIGINT
    assert torch.load(tmp_path / "run/checkpoints/last.ckpt", weights_only=False)["global_step"] == 2


def test_non_finite_loss_after_a_checkpoint_in_full_precision(tmp_path):
    with pytest.raises(FloatingPointError) as err:
        train(compose_cfg(tmp_path, "negatives=none", _with("Poison", epoch=1)))
    message = str(err.value)
    assert f"{tmp_path}/run/checkpoints/last.ckpt holds the last good weights" in message
    assert "already computes in full precision (32-true)" in message and "=32-true tells" not in message
    assert message.endswith("What to try: docs/howto/is-it-learning.md#non-finite-loss")  # an anchor the page has
    page = (Path(__file__).resolve().parent.parent / "docs/howto/is-it-learning.md").read_text(encoding="utf-8")
    assert "(non-finite-loss)=" in page


def test_non_finite_loss_before_any_checkpoint_in_bf16(tmp_path):
    with pytest.raises(FloatingPointError) as err:
        train(compose_cfg(tmp_path, "negatives=none", "trainer.precision=bf16-mixed", _with("Poison", epoch=0)))
    message = str(err.value)
    assert "No checkpoint was written yet" in message and "last good weights" not in message
    assert not (tmp_path / "run/checkpoints/last.ckpt").exists()
    assert "trainer.precision=bf16-mixed: trainer.precision=32-true tells whether rounding" in message


def test_a_run_folder_with_only_start_up_files_is_removed(tmp_path):
    run = tmp_path / "outputs/digits/none/seed0/2024-01-01_00-00-00"
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra/config.yaml").write_text("seed: 0\n")
    (run / "train.log").write_text("error\n")
    (run / "csv").mkdir()
    (tmp_path / "outputs/digits/other").mkdir()  # another run's folder: its parent stays
    assert remove_if_unused(run, cwd=tmp_path)
    assert not (tmp_path / "outputs/digits/none").exists() and (tmp_path / "outputs/digits/other").is_dir()


@pytest.mark.parametrize("kept", ["checkpoints/last.ckpt", "metrics.jsonl", "notes.txt"])
def test_a_run_folder_with_anything_else_is_kept(tmp_path, kept):
    run = tmp_path / "outputs/run"
    (run / ".hydra").mkdir(parents=True)
    (run / kept).parent.mkdir(parents=True, exist_ok=True)
    (run / kept).write_text("x")
    assert not is_unused(run) and not remove_if_unused(run, cwd=tmp_path) and (run / kept).is_file()


def test_the_working_directory_is_never_removed(tmp_path):
    (tmp_path / ".hydra").mkdir()
    assert is_unused(tmp_path)
    assert not remove_if_unused(tmp_path, cwd=tmp_path) and not remove_if_unused(tmp_path, cwd=tmp_path / "sub")
    assert (tmp_path / ".hydra").is_dir()
    assert Path.cwd().exists()


def _hydra_start(run: Path) -> None:
    """What Hydra writes before ``main``: its config copy and an (empty) job log."""
    (run / ".hydra").mkdir(parents=True, exist_ok=True)
    for name in ("config.yaml", "hydra.yaml", "overrides.yaml"):
        (run / ".hydra" / name).write_text("seed: 0\n")
    (run / "train.log").touch()


def test_a_failed_start_in_a_folder_that_held_files_removes_only_the_loggers_files_it_created(tmp_path):
    run = tmp_path / "U"
    (run / "csv").mkdir(parents=True)
    (run / "csv/m.csv").write_text("a,b\n")
    (run / "notes.log").write_text("notes\n")
    _hydra_start(run)
    shot = snapshot(run)
    assert not shot.fresh and shot.before == {"csv", "csv/m.csv", "notes.log"}
    (run / "csv/version_0").mkdir()  # the csv logger of the failed run
    (run / "csv/version_0/hparams.yaml").write_text("{}\n")
    assert not remove_if_unused(shot, cwd=tmp_path)
    assert (run / "csv/m.csv").read_text() == "a,b\n" and (run / "notes.log").read_text() == "notes\n"
    assert not (run / "csv/version_0").exists()


def test_a_failed_start_in_a_folder_hydra_created_removes_it(tmp_path):
    run = tmp_path / "outputs/run"
    _hydra_start(run)
    shot = snapshot(run)
    assert shot.fresh
    (run / "train.log").write_text("error\n")
    assert remove_if_unused(shot, cwd=tmp_path) and not (tmp_path / "outputs").exists()
