"""The quick-start runs its variants side by side (ssad/demo.py): progress read from each run's console
output, every run waited for, a failed run's output shown and its exit code passed on."""

import sys
from pathlib import Path

import pytest

from ssad.demo import RunProgress, new_sweep_dir, train_side_by_side


def _run_dir(tmp_path: Path, max_epochs: int) -> Path:
    run_dir = tmp_path / "run"
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / ".hydra" / "config.yaml").write_text(f"trainer:\n  max_epochs: {max_epochs}\n")
    return run_dir


def test_progress_is_the_last_epoch_bar_update(tmp_path):
    console = tmp_path / "none.log"
    console.write_text("Seed set to 0\rEpoch 0: 100%|██████████| 78/78 [00:16<00:00]"
                       "\rEpoch 1:  50%|█████     | 39/78 [00:08<00:08,  4.8it/s, train/loss_step=5.29]")
    assert RunProgress(console, _run_dir(tmp_path, 4)).fraction() == pytest.approx((1 + 39 / 78) / 4)


def test_progress_is_zero_before_the_run_has_its_config_or_a_bar(tmp_path):
    console = tmp_path / "none.log"
    console.write_text("Epoch 0:  10%|█         | 8/78")
    assert RunProgress(console, tmp_path / "not_yet").fraction() == 0.0
    console.write_text("Seed set to 0\n")
    assert RunProgress(console, _run_dir(tmp_path, 4)).fraction() == 0.0


def test_progress_outlasts_an_evaluations_bars_and_joins_an_update_read_in_two(tmp_path):
    console, run_dir = tmp_path / "rot_indist.log", _run_dir(tmp_path, 12)
    progress = RunProgress(console, run_dir)
    bar = "\rEpoch 5: 100%|██████████| 78/78 [00:30<00:00,  2.5it/s]"
    console.write_bytes(bar.encode()[:30])  # written up to the middle of "█"
    assert progress.fraction() == 0.0
    with console.open("ab") as f:
        f.write(bar.encode()[30:])
    assert progress.fraction() == pytest.approx(6 / 12)
    with console.open("a") as f:  # a large set's evaluation: far more bar output than one read used to look back
        f.write("".join(f"\rtrain: {i}%|█| {i}/59 [00:0{i % 10}<00:00]\n" for i in range(2000)))
    assert progress.fraction() == pytest.approx(6 / 12)
    with console.open("a") as f:
        f.write("\rEpoch 6:  50%|█████     | 39/78 [00:15<00:15]")
    assert progress.fraction() == pytest.approx(6.5 / 12)


def test_every_run_ends_and_a_failure_exits_with_its_code_and_shows_its_output(tmp_path, capsys):
    marker = tmp_path / "slow_run_finished"
    commands = {"fails": [sys.executable, "-c", "import sys; print('bad override: model.x'); sys.exit(3)"],
                "slow": [sys.executable, "-c", f"import time; time.sleep(2); open({str(marker)!r}, 'w').close()"]}
    with pytest.raises(SystemExit) as exit_info:
        train_side_by_side(commands, {name: tmp_path / name for name in commands}, tmp_path / "console")
    assert exit_info.value.code == 3
    assert marker.is_file()  # the other run was not cut short
    out = capsys.readouterr().out
    assert "fails failed (exit code 3)" in out and "bad override: model.x" in out
    assert "slow failed" not in out


def test_runs_that_succeed_return_and_leave_their_console_output(tmp_path):
    commands = {name: [sys.executable, "-c", f"print('trained {name}')"] for name in ("none", "rot_indist")}
    train_side_by_side(commands, {name: tmp_path / name for name in commands}, tmp_path / "console")
    assert [(tmp_path / "console" / f"{n}.log").read_text().strip() for n in commands] == \
        ["trained none", "trained rot_indist"]


def test_demos_started_in_the_same_second_get_their_own_folders(tmp_path):
    first = new_sweep_dir(tmp_path / "demo", "2026-12-07_04-02-04")
    second = new_sweep_dir(tmp_path / "demo", "2026-12-07_04-02-04")
    assert first.name == "2026-12-07_04-02-04" and second.name == "2026-12-07_04-02-04_2"
    assert first.is_dir() and second.is_dir()


@pytest.mark.parametrize("partial", ["", "trainer:\n", "trainer:\n  max_epochs: [4\n", "trainer:\n  max_epochs: 1"])
def test_progress_waits_for_a_config_that_hydra_is_still_writing(tmp_path, partial):
    console, run_dir = tmp_path / "none.log", tmp_path / "run"
    console.write_text("Epoch 1:  50%|█████     | 39/78 [00:08<00:08]")
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / ".hydra" / "config.yaml").write_text(partial)
    progress = RunProgress(console, run_dir)
    assert progress.fraction() == 0.0
    (run_dir / ".hydra" / "config.yaml").write_text("trainer:\n  max_epochs: 12\n")
    assert progress.fraction() == pytest.approx((1 + 39 / 78) / 12)
