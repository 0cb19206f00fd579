"""The quick-start trains its variants in one sweep through Hydra's joblib launcher (ssad/demo.py): each job's
progress read from its run folder, the sweep waited for, a failed job's log shown and the exit code passed on."""

import sys
import textwrap
from pathlib import Path

import pytest

from ssad.demo import (
    RunProgress,
    console_tail,
    last_logged_step,
    new_sweep_dir,
    steps_per_epoch,
    sweep_command,
    train_sweep,
)

EPOCH_NOTE = ("[2026-12-07 18:16:30,556][ssad.data.datamodule][INFO] - 630 training images; an epoch draws 2,496 of "
              "them (data.epoch_size: 4.0 passes over them), 78 optimiser steps an epoch\n")
HEADER = "epoch,eval/average/auroc,step,train/L_neg_step,train/loss_step\n"


def _job(sweep: Path, name: str, max_epochs: int | None = 4, note: bool = True, steps: tuple[int, ...] = ()) -> Path:
    """A job folder as the sweep writes it: its config, its train.log, its CSV log with rows at ``steps``."""
    run_dir = sweep / name
    (run_dir / "csv").mkdir(parents=True)
    if max_epochs is not None:
        (run_dir / ".hydra").mkdir()
        (run_dir / ".hydra" / "config.yaml").write_text(f"seed: 0\ntrainer:\n  max_epochs: {max_epochs}\n")
    (run_dir / "train.log").write_text("[2026-12-07 18:16:29,001][ssad.training.run][INFO] - run directory\n"
                                       + (EPOCH_NOTE if note else ""))
    if steps:
        (run_dir / "csv" / "metrics.csv").write_text(HEADER + "".join(f"{s // 78},,{s},,5.9\n" for s in steps))
    return run_dir


def test_progress_is_the_last_logged_step_over_the_steps_of_the_run(tmp_path):
    run_dir = _job(tmp_path, "none", max_epochs=4, steps=(4, 9, 79, 84))
    assert RunProgress(run_dir).fraction() == pytest.approx(85 / (78 * 4))
    with (run_dir / "csv" / "metrics.csv").open("a") as f:  # an epoch's end and an evaluation: a row at its step
        f.write("1,0.91,155,,\n")
    assert RunProgress(run_dir).fraction() == pytest.approx(156 / (78 * 4))


@pytest.mark.parametrize("missing", ["config", "epoch note", "csv log"])
def test_progress_is_zero_until_the_config_the_epoch_note_and_a_logged_step_are_there(tmp_path, missing):
    run_dir = _job(tmp_path, "none", max_epochs=None if missing == "config" else 4, note=missing != "epoch note",
                   steps=() if missing == "csv log" else (4, 9))
    assert RunProgress(run_dir).fraction() == 0.0
    assert RunProgress(tmp_path / "not_started").fraction() == 0.0


def test_the_last_step_is_read_from_the_end_of_a_long_log_and_skips_a_row_being_written(tmp_path):
    metrics = _job(tmp_path, "none", steps=tuple(range(4, 50_000, 5))) / "csv" / "metrics.csv"
    assert metrics.stat().st_size > 100_000  # longer than the part read
    assert last_logged_step(metrics) == 49_999
    with metrics.open("a") as f:
        f.write("641,,50004,,5.")  # the logger is in the middle of this row
    assert last_logged_step(metrics) == 49_999
    metrics.write_text(HEADER[:20])  # being rewritten (a new column): the header itself is not whole yet
    assert last_logged_step(metrics) is None
    metrics.write_text(HEADER + "0,,4,,5.9\n")  # a short file: its first row is whole
    assert last_logged_step(metrics) == 4


def test_steps_per_epoch_come_from_the_epoch_note_in_train_log(tmp_path):
    run_dir = _job(tmp_path, "none")
    assert steps_per_epoch(run_dir / "train.log") == 78
    assert steps_per_epoch(_job(tmp_path, "rot_indist", note=False) / "train.log") is None
    assert steps_per_epoch(tmp_path / "absent.log") is None


@pytest.mark.parametrize("partial", ["", "trainer:\n", "trainer:\n  max_epochs: [4\n", "trainer:\n  max_epochs: 1"])
def test_progress_waits_for_a_config_that_hydra_is_still_writing(tmp_path, partial):
    run_dir = _job(tmp_path, "none", steps=(4, 9, 79, 84))
    (run_dir / ".hydra" / "config.yaml").write_text(partial)
    progress = RunProgress(run_dir)
    assert progress.fraction() == 0.0
    (run_dir / ".hydra" / "config.yaml").write_text("trainer:\n  max_epochs: 12\n")
    assert progress.fraction() == pytest.approx(85 / (78 * 12))


def _fake_sweep(script: str) -> list[str]:
    """A command that stands for the sweep: ``script`` writes the job folders the launcher's jobs would."""
    return [sys.executable, "-c", textwrap.dedent(script)]


def test_a_failed_job_shows_its_log_and_the_consoles_end_and_its_exit_code_is_passed_on(tmp_path, capsys):
    sweep = tmp_path / "sweep"
    cmd = _fake_sweep(f"""
        import pathlib, sys, time
        sweep = pathlib.Path({str(sweep)!r})
        for name in ("none", "rot_indist"):
            (sweep / name).mkdir(parents=True)
            (sweep / name / "train.log").write_text(f"[INFO] - run directory: {{sweep / name}}\\n")
        time.sleep(1.5)
        (sweep / "none" / "results.json").write_text("{{}}")
        print("\\rEpoch 0:  50%|#####     | 39/78\\rEpoch 0: 100%|##########| 78/78", flush=True)
        print("error: invalid configuration:\\n  data.epoch_size=-5 must be a positive integer", file=sys.stderr)
        sys.exit(2)
    """)
    with pytest.raises(SystemExit) as exit_info:
        train_sweep(cmd, {"none": sweep / "none", "rot_indist": sweep / "rot_indist"}, tmp_path / "console.log")
    assert exit_info.value.code == 2
    out = capsys.readouterr().out
    assert f"rot_indist did not finish; the end of {sweep / 'rot_indist' / 'train.log'}:" in out
    assert f"run directory: {sweep / 'rot_indist'}" in out  # its train.log
    assert "none did not finish" not in out
    assert "the sweep ended with exit code 2" in out
    tail = out.split(f"the end of its console output {tmp_path / 'console.log'}:\n")[1]
    assert "data.epoch_size=-5 must be a positive integer" in tail  # the console's end, where the job's error went
    assert "Epoch 0: 100%|##########| 78/78" in tail and "39/78" not in tail  # a bar as a terminal leaves it
    assert "training " in out and "none 100%" in out  # the progress line, output being no terminal here


def test_a_sweep_that_exits_0_with_a_job_missing_its_results_exits_1(tmp_path, capsys):
    sweep = tmp_path / "sweep"
    cmd = _fake_sweep(f"""
        import pathlib
        (pathlib.Path({str(sweep)!r}) / "none").mkdir(parents=True)
        (pathlib.Path({str(sweep)!r}) / "none" / "results.json").write_text("{{}}")
    """)
    with pytest.raises(SystemExit) as exit_info:
        train_sweep(cmd, {"none": sweep / "none", "rot_indist": sweep / "rot_indist"}, tmp_path / "console.log")
    assert exit_info.value.code == 1
    assert "rot_indist did not finish" in capsys.readouterr().out


def test_a_sweep_whose_jobs_all_finish_returns_and_leaves_its_console_output(tmp_path):
    sweep = tmp_path / "sweep"
    cmd = _fake_sweep(f"""
        import pathlib
        for name in ("none", "rot_indist"):
            (pathlib.Path({str(sweep)!r}) / name).mkdir(parents=True)
            (pathlib.Path({str(sweep)!r}) / name / "results.json").write_text("{{}}")
            print("trained", name)
    """)
    train_sweep(cmd, {name: sweep / name for name in ("none", "rot_indist")}, tmp_path / "console.log")
    assert (tmp_path / "console.log").read_text().split("\n") == ["trained none", "trained rot_indist", ""]


def test_console_tail_keeps_the_last_lines_as_a_terminal_shows_them(tmp_path):
    console = tmp_path / "console.log"
    console.write_text("".join(f"line {i}\n" for i in range(50)) + "\rbar 1\rbar 2\n\n")
    assert console_tail(console, 3) == ["line 48", "line 49", "bar 2"]
    assert console_tail(tmp_path / "absent.log") == []


def test_the_sweep_through_hydras_joblib_launcher_passes_on_a_jobs_user_error(tmp_path, capsys):
    """The real sweep command: its jobs run in the launcher's workers, in folders named by their variant; a job's
    user error fails that job, the sweep after its other jobs (exit 1), and the demo with it, its error line shown."""
    sweep = tmp_path / "sweep"
    cmd = sweep_command(["none", "rot_indist"], ["experiment=demo", "data.epoch_size=-5", "logger=none",
                                                 f"paths.data_dir={tmp_path}/data"], sweep, n_jobs=2)
    with pytest.raises(SystemExit) as exit_info:
        train_sweep(cmd, {name: sweep / name for name in ("none", "rot_indist")}, tmp_path / "console.log")
    assert exit_info.value.code == 1
    assert {path.name for path in sweep.iterdir() if path.is_dir()} <= {"none", "rot_indist"}
    logs = [(sweep / name / "train.log").read_text() for name in ("none", "rot_indist") if (sweep / name).is_dir()]
    assert logs and all("joblib launcher, n_jobs=2 on" in log for log in logs)
    assert "data.epoch_size=-5 must be a positive integer" in capsys.readouterr().out


def test_demos_started_in_the_same_second_get_their_own_folders(tmp_path):
    first = new_sweep_dir(tmp_path / "demo", "2026-12-07_04-02-04")
    second = new_sweep_dir(tmp_path / "demo", "2026-12-07_04-02-04")
    assert first.name == "2026-12-07_04-02-04" and second.name == "2026-12-07_04-02-04_2"
    assert first.is_dir() and second.is_dir()
