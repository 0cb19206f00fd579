"""The estimate a training run makes before building its model, and the stop when it cannot fit or finish here
(issue 34, item 7): the paper's ViT-S/16 on a CPU stops with the estimate and the CPU preset, exit status 2, and no
run folder left behind."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import open_dict

from ssad.cli.estimate import BudgetError, Estimate, check_budget, duration, estimate, model_costs
from ssad.config import schema
from ssad.config.keys import CONFIG_DIR
from tests.conftest import HANG_S


def train_config(*overrides: str):
    if hasattr(schema, "register_configs"):
        schema.register_configs()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose("train", overrides=list(overrides))


def test_paper_preset_on_a_cpu_takes_days() -> None:
    found = estimate(train_config(), images_per_epoch=630, device=torch.device("cpu"))
    assert 20e6 < found.parameters < 40e6  # ViT-S/16 and the DINO head
    assert found.hours is not None and found.hours > 48
    assert "days" in found.describe()
    assert any("days" in problem for problem in found.problems())


def test_the_cpu_preset_fits_and_ends_within_the_day() -> None:
    found = estimate(train_config("experiment=demo"), device=torch.device("cpu"))
    assert found.images_per_epoch == 2496  # data.epoch_size
    assert found.problems() == [], found.describe()
    assert found.memory_needed < 4 * 2**30


def test_costs_grow_with_the_batch_and_the_views() -> None:
    small = model_costs(train_config("experiment=demo"))
    more_views = model_costs(train_config("experiment=demo", "augment.n_local=4"))
    assert small[0] == small[1] > 0  # the teacher is a copy of the student
    assert more_views[2] > small[2] and more_views[3] > small[3]  # FLOPs and activations per image
    one = estimate(train_config("experiment=demo", "data.batch_size=8"), device=torch.device("cpu"))
    many = estimate(train_config("experiment=demo", "data.batch_size=256"), device=torch.device("cpu"))
    assert many.memory_needed > one.memory_needed


def test_stop_names_the_estimate_and_the_way_out(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = train_config("experiment=demo")
    monkeypatch.setattr("ssad.cli.estimate.free_memory", lambda device: 1e6)  # 1 MB free
    with pytest.raises(BudgetError) as err:
        check_budget(cfg)
    message = str(err.value)
    assert "0.0 GB free" in message and "budget_check=false" in message
    assert "experiment=demo" in message
    with open_dict(cfg):
        cfg.budget_check = False
    assert check_budget(cfg) is None


def test_duration_words() -> None:
    assert duration(40) == "40 s" and duration(600) == "10 min" and duration(3 * 3600) == "3.0 hours"
    assert duration(9 * 86400) == "9 days"
    found = Estimate("the CPU", 1, 1.0, 1e12, 1e9, 1e9, None, 3)
    assert found.hours is None and "unknown" in found.describe() and found.problems() == []


def test_paper_command_on_a_cpu_stops_with_exit_2(tmp_path) -> None:
    """Plain ``python -m ssad.train`` (the paper's preset) on a CPU: exit 2 within seconds, the estimate in one
    error line, and the run folder removed."""
    run_dir = tmp_path / "run"
    done = subprocess.run([sys.executable, "-m", "ssad.train", f"hydra.run.dir={run_dir}", "trainer.accelerator=cpu",
                           "logger=none"], capture_output=True, text=True, timeout=HANG_S)
    assert done.returncode == 2, done.stderr[-2000:]
    error = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and "days" in error[0] and "experiment=demo" in error[0], done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    assert not run_dir.exists()
