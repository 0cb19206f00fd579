"""The training battery (issue 32): faults and bad inputs of ``python -m ssad.train`` end with one ``error:`` line,
exit status 2 and no traceback, and lose nothing already written. A failed start removes only what it created; a
second run on a busy folder is refused; a fresh start sets an old ``metrics.jsonl`` aside; a full disk keeps the old
checkpoint whole; Ctrl-C during the end-of-epoch evaluation resumes exactly.

One case runs as a real process (``python -m ssad.train``); the others call the same ``main`` in this process
(Hydra, ``user_errors`` and all), which spares the start-up of a process each."""

from __future__ import annotations

import errno
import io
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra.core.global_hydra import GlobalHydra

import ssad.training.callbacks
from ssad.cli.checks import run_dir_arg
from ssad.cli.errors import ConfigError, InputError
from ssad.method.batching import accumulation_steps
from ssad.train import main
from ssad.training.callbacks import DiskFullError, drop_records_after
from ssad.training.run import checkpoint_to_resume, train
from ssad.training.rundir import RunDirBusyError, RunLock
from ssad.utils.files import append_jsonl, read_jsonl
from tests.conftest import HANG_S, QUIET, TINY, TINY_VIT, compose_cfg
from tests.test_train import assert_same_weights

ROOT = Path(__file__).resolve().parents[1]
# a one-epoch quick-start of 64 images: what a start-up check sees
SMALL = ["experiment=demo", "trainer.max_epochs=1", "data.epoch_size=64", "eval.baselines=null", *QUIET]


def run_train(cwd: Path, *overrides: str) -> subprocess.CompletedProcess:
    """``python -m ssad.train OVERRIDES`` as a process of its own."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "WANDB_MODE": "disabled"}
    env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.run([sys.executable, "-m", "ssad.train", *overrides], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=HANG_S)


def run_main(monkeypatch, capsys, *overrides: str) -> subprocess.CompletedProcess:
    """``python -m ssad.train OVERRIDES`` in this process: its exit status and what it printed."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    monkeypatch.setattr(sys, "argv", ["ssad.train", *overrides])
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    capsys.readouterr()
    try:
        with pytest.raises(SystemExit) as stop:
            main()
    finally:
        GlobalHydra.instance().clear()
        for handler in root.handlers:
            if handler not in handlers:  # Hydra's job log
                handler.close()
        root.handlers[:] = handlers
        root.setLevel(level)
    out = capsys.readouterr()
    return subprocess.CompletedProcess(overrides, stop.value.code, out.out, out.err)


def user_error(proc: subprocess.CompletedProcess) -> str:
    """The run's one ``error:`` line (and the indented lines that follow it), after checking the exit status."""
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr + proc.stdout and "Error executing job" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr[-3000:]
    return proc.stderr[proc.stderr.index("error:"):]


EVERY = ("negatives=none", "eval.every_n_epochs=1")  # a tiny two-epoch run, evaluated after each epoch


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A tiny run's folder (:data:`EVERY`: checkpoints, metrics.jsonl); tests copy it before changing anything."""
    tmp = tmp_path_factory.mktemp("trained")
    train(compose_cfg(tmp, *EVERY, run_dir="straight"))
    return tmp / "straight"


# ------------------------------------------------------------------------------------- a failed start (bug 2)
def test_a_failed_start_in_a_users_folder_names_every_bad_value_and_keeps_every_file(tmp_path):
    user = tmp_path / "U"
    (user / "csv").mkdir(parents=True)
    (user / "notes.log").write_text("notes\n")
    (user / "csv/m.csv").write_text("a,b\n")
    proc = run_train(tmp_path, *SMALL, "optim.base_lr=-0.1", "model.teacher_temp=0", "data.holdout=1",
                     "trainer.max_epochs=0", "data.batch_size=0", f"hydra.run.dir={user}")
    message = user_error(proc)
    for named in ("optim.base_lr=-0.1", "model.teacher_temp=0.0", "data.holdout=1.0", "trainer.max_epochs=0",
                  "data.batch_size=0"):
        assert named in message
    assert (user / "notes.log").read_text() == "notes\n" and (user / "csv/m.csv").read_text() == "a,b\n"


def test_a_failed_start_in_a_fresh_folder_removes_it_with_its_parents(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    message = user_error(run_main(monkeypatch, capsys, *SMALL, "optim.effective_batch=100",
                                  f"hydra.run.dir={tmp_path}/out/a/run"))
    assert "optim.effective_batch=100 is not a multiple of data.batch_size" in message  # conflicting batch settings
    assert not (tmp_path / "out").exists()


def test_conflicting_batch_settings_are_a_config_error():
    with pytest.raises(ConfigError, match="drop trainer.accumulate_grad_batches"):
        accumulation_steps(256, 32, 1, accumulate=2)
    with pytest.raises(ConfigError, match="does not split over 3 processes"):
        accumulation_steps(256, 32, 3)


# ------------------------------------------------------------------------------------ one run a folder (bug 6)
def test_a_second_run_on_a_busy_folder_is_refused_naming_the_running_process(tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / ".lock").write_text(f"{os.getppid()} {RunLock(run).host}\n")  # a live process of this host
    append_jsonl(run / "metrics.jsonl", {"epoch": 1, "loss": 1.0})
    (run / ".hydra").mkdir()
    (run / ".hydra" / "config.yaml").write_text("seed: 7\n")  # the busy run's own config, which Hydra would rewrite
    written = {name: (run / name).read_bytes() for name in ("metrics.jsonl", ".hydra/config.yaml")}
    message = user_error(run_main(monkeypatch, capsys, *SMALL, f"hydra.run.dir={run}"))
    assert f"is in use by process {os.getppid()}" in message and "hydra.run.dir" in message
    assert {name: (run / name).read_bytes() for name in written} == written and (run / ".lock").is_file()
    assert sorted(p.name for p in (run / ".hydra").iterdir()) == ["config.yaml"]


def test_the_run_folder_of_the_command_line_is_read_as_hydra_would():
    assert run_dir_arg(["seed=1", "hydra.run.dir=runs/a"]) == "runs/a"
    assert run_dir_arg(["++hydra.run.dir='runs/b c'"]) == "runs/b c"
    assert run_dir_arg(["hydra.run.dir=outputs/${now:%H}"]) is None and run_dir_arg(["hydra.sweep.dir=x"]) is None


def test_a_lock_of_a_dead_process_is_taken_over_and_released(tmp_path, caplog):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / ".lock").write_text(f"{dead.pid} {RunLock(tmp_path).host}\n")
    lock = RunLock(tmp_path)
    with caplog.at_level("WARNING", logger="ssad.training.rundir"):
        lock.acquire()
    assert f"its process {dead.pid} no longer runs" in caplog.text  # the takeover names the process it replaced
    assert lock.holder()[0] == os.getpid()
    with pytest.raises(RunDirBusyError, match=f"process {os.getpid()}"):
        RunLock(tmp_path).acquire()
    lock.release()
    assert not (tmp_path / ".lock").exists()


# ------------------------------------------------------------- a full disk (bug 5), starting over (bug 7)
def test_a_full_disk_keeps_the_checkpoints_whole_and_starting_over_sets_the_old_metrics_aside(
        tmp_path, monkeypatch, trained):
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    folder = run / "checkpoints"
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    assert "last.ckpt" in before
    real = ssad.training.callbacks.write_checkpoint

    def half_then_full(checkpoint, f):  # writes part of the archive, then the disk is full
        buffer = io.BytesIO()
        real(checkpoint, buffer)
        f.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(ssad.training.callbacks, "write_checkpoint", half_then_full)
        with pytest.raises(DiskFullError) as err:
            train(compose_cfg(tmp_path, *EVERY, "trainer.max_epochs=3"))  # resumes; epoch 3's save fails
    message = str(err.value)
    assert message.startswith("disk full") and f"left in {folder} " in message and "B free" in message
    assert "unchanged" in message and "\n" not in message
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before  # no torn file, no temporary left

    # "move it aside to start over": the old run's records are set aside, not mixed with the new run's
    old = (run / "metrics.jsonl").read_bytes()
    assert [r["epoch"] for r in read_jsonl(run / "metrics.jsonl")] == [1, 2, 3]  # epoch 3 evaluated, not saved
    (folder / "last.ckpt").rename(folder / "last.ckpt.bad")
    train(compose_cfg(tmp_path, "trainer.max_epochs=1", "negatives=none"))
    aside = list(run.glob("metrics.*.jsonl"))
    assert len(aside) == 1 and aside[0].read_bytes() == old
    assert [r["epoch"] for r in read_jsonl(run / "metrics.jsonl")] == [1]


def test_a_resume_drops_the_records_of_epochs_its_checkpoint_had_not_completed(tmp_path):
    path = tmp_path / "metrics.jsonl"
    for epoch in (1, 2, 3):
        append_jsonl(path, {"epoch": epoch})
    with open(path, "a") as f:
        f.write('{"epoch": 4, "lo')  # torn
    assert drop_records_after(path, 2) == 1 and [r["epoch"] for r in read_jsonl(path)] == [1, 2]
    assert drop_records_after(path, 2) == 0


# ------------------------------------------------------------------------------ Ctrl-C during evaluation (bug 4)
def test_ctrl_c_during_the_evaluation_resumes_exactly(tmp_path, monkeypatch, trained):
    real = ssad.training.callbacks.evaluate_network
    calls = []

    def interrupted(*args, **kwargs):  # Ctrl-C arrives while epoch 1 is being evaluated
        calls.append(1)
        if len(calls) == 1:
            signal.raise_signal(signal.SIGINT)
        return real(*args, **kwargs)

    monkeypatch.setattr(ssad.training.callbacks, "evaluate_network", interrupted)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(SystemExit) as stop:
            train(compose_cfg(tmp_path, *EVERY, run_dir="cut"))
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    assert stop.value.code == 128 + signal.SIGINT
    assert [r["epoch"] for r in read_jsonl(tmp_path / "cut/metrics.jsonl")] == [1]  # the evaluation was recorded
    train(compose_cfg(tmp_path, *EVERY, run_dir="cut"))  # resumes
    shutil.copytree(trained, tmp_path / "straight")
    assert_same_weights(tmp_path, "straight", "cut")
    straight, cut = (read_jsonl(tmp_path / run / "metrics.jsonl") for run in ("straight", "cut"))
    assert [r["epoch"] for r in cut] == [1, 2]
    assert [r["loss"] for r in cut] == pytest.approx([r["loss"] for r in straight], rel=1e-6)
    assert json.loads((tmp_path / "cut/results.json").read_text())["loss_curve"] == pytest.approx(
        json.loads((tmp_path / "straight/results.json").read_text())["loss_curve"], rel=1e-6)


# ------------------------------------------------------------------------------------------ poor cases
def test_a_non_finite_loss_is_one_error_line_with_its_advice(tmp_path, monkeypatch, capsys):
    proc = run_main(monkeypatch, capsys, *SMALL, "+callbacks.test={_target_: tests.test_stops.Poison, epoch: 0}",
                    f"hydra.run.dir={tmp_path}/run")
    message = user_error(proc)
    assert "non-finite loss" in message and "docs/howto/is-it-learning.md#non-finite-loss" in message


def test_the_torn_checkpoint_advice_gives_a_full_path_that_ckpt_path_accepts(tmp_path):
    cfg = compose_cfg(tmp_path, "negatives=none")
    folder = tmp_path / "run/checkpoints"
    folder.mkdir(parents=True)
    (folder / "last.ckpt").write_bytes(b"PK\x03\x04 torn")
    torch.save({"state_dict": {}}, folder / "epoch003.ckpt")
    with pytest.raises(InputError) as err:
        checkpoint_to_resume(cfg, tmp_path / "run")
    given = str(err.value).split("ckpt_path=")[1].split()[0]
    assert Path(given).is_absolute() and Path(given) == folder / "epoch003.ckpt"


def test_a_checkpoint_of_another_model_shape_fails_before_the_baselines_and_leaves_no_folder(
        tmp_path, monkeypatch, capsys, trained):
    monkeypatch.chdir(tmp_path)
    ckpt = trained / "checkpoints/last.ckpt"
    overrides = [o for o in TINY if not o.startswith("eval.baselines")] + TINY_VIT
    proc = run_main(monkeypatch, capsys, *overrides, "negatives=none", "eval.baselines=auto",
                    "model.head.out_dim=64", f"ckpt_path={ckpt}", f"hydra.run.dir={tmp_path}/other/run")
    message = user_error(proc)
    assert f"checkpoint {ckpt} holds a model of another shape" in message and "(32," in message
    assert not (tmp_path / "other").exists()
