"""The quick-start runs its variants side by side (experiments/demo.py): progress read from each run's console
output, every run waited for, a failed run's output shown and its exit code passed on."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))
from demo import train_side_by_side, trained_fraction  # noqa: E402


def _run_dir(tmp_path: Path, max_epochs: int) -> Path:
    run_dir = tmp_path / "run"
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / ".hydra" / "config.yaml").write_text(f"trainer:\n  max_epochs: {max_epochs}\n")
    return run_dir


def test_trained_fraction_reads_the_last_progress_bar_update(tmp_path):
    console = tmp_path / "none.log"
    console.write_text("Seed set to 0\rEpoch 0: 100%|██████████| 78/78 [00:16<00:00]"
                       "\rEpoch 1:  50%|█████     | 39/78 [00:08<00:08,  4.8it/s, train/loss_step=5.29]")
    assert trained_fraction(console, _run_dir(tmp_path, 4)) == pytest.approx((1 + 39 / 78) / 4)


def test_trained_fraction_is_zero_before_the_run_has_its_config_or_a_bar(tmp_path):
    console = tmp_path / "none.log"
    console.write_text("Epoch 0:  10%|█         | 8/78")
    assert trained_fraction(console, tmp_path / "not_yet") == 0.0
    console.write_text("Seed set to 0\n")
    assert trained_fraction(console, _run_dir(tmp_path, 4)) == 0.0


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
