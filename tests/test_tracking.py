from pathlib import Path

import pytest
import wandb
from hydra import compose, initialize_config_dir

from ssad.config.keys import CONFIG_DIR
from ssad.training.loggers import has_wandb_credentials, wandb_logger
from ssad.training.run import train
from tests.conftest import compose_cfg


def test_wandb_offline_run_files_hold_config_and_summary(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    cfg = compose_cfg(tmp_path, "data=digits", "negatives=rot_indist", "logger=wandb", "logger.wandb.mode=offline",
                      "trainer.max_epochs=1")
    train(cfg)  # ends with run.finish()
    # the transaction log is written by W&B's service process, not by this one: teardown() waits until that process
    # has closed the run's files and exited, so what is read next is complete however loaded the machine is
    wandb.teardown()
    runs = list((tmp_path / "run" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    # the offline transaction log (what `wandb sync` uploads) holds the resolved config and the summary
    log = next(runs[0].glob("run-*.wandb")).read_bytes()
    assert b"rot_indist" in log and b"warmup_teacher_temp" in log
    for key in (b"eval/average/auroc", b"eval/photos/auroc", b"eval/knn_accuracy", b"plots",
                b"eval/teacher_drift", b"eval/effective_rank", b"eval/warning/teacher_not_moving"):
        assert key in log, key


def test_wandb_mode_is_checked():
    with pytest.raises(ValueError, match="auto"):
        wandb_logger(mode="sometimes")


def test_no_credentials_means_offline(monkeypatch, tmp_path):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("NETRC", str(tmp_path / ".netrc"))
    assert not has_wandb_credentials()
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert has_wandb_credentials()


def test_slurm_launcher_composes_without_a_cluster():
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("train", overrides=["hydra/launcher=slurm", "experiment=table2", "trainer=ddp"],
                      return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert "submitit" in launcher._target_.lower() and "slurm" in launcher._target_.lower()
    assert launcher.gpus_per_node == 4 and launcher.tasks_per_node == 4
    assert cfg.hydra.sweeper.params.negatives.split(",")[0] == "none"
    assert cfg.trainer.strategy == "ddp"


@pytest.mark.parametrize("preset,variants", [("table2", 10), ("table1_cifar10", 2), ("table1_cifar100", 2)])
def test_table_presets_are_multiruns_over_variants(preset, variants):
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("train", overrides=[f"experiment={preset}"], return_hydra_config=True)
    assert str(cfg.hydra.mode) == "RunMode.MULTIRUN"
    names = cfg.hydra.sweeper.params.negatives.split(",")
    assert len(names) == variants
    for name in names:
        assert (Path(CONFIG_DIR) / "negatives" / f"{name}.yaml").is_file()
    assert len(cfg.data.ood) == 8
