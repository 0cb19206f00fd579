"""Train a detector: ``python -m ssad.train [group=option ...] [key=value ...]`` (Hydra; the run itself:
:mod:`ssad.training.run`)."""

from __future__ import annotations

import json
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from lightning.pytorch.utilities import rank_zero_info
from omegaconf import DictConfig

from ssad.cli.checks import check_config_dirs, check_run_dir_free
from ssad.cli.errors import user_errors
from ssad.cli.help import command_help
from ssad.cli.outcome import read_baselines, training_end
from ssad.config.keys import CONFIG_DIR
from ssad.scoring.results import baselines_path
from ssad.scoring.summary import baseline_gains, evaluated_label_names, results_table
from ssad.training.run import train_in_run_dir


@command_help("train", "python -m ssad.train experiment=cpu_detector data=folder data.path=/data/my_images "
              "hydra.run.dir=runs/mine")
@check_config_dirs
@check_run_dir_free
@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="train")
@user_errors
def main(cfg: DictConfig) -> None:
    run_dir = HydraConfig.get().runtime.output_dir
    train_in_run_dir(cfg, run_dir)
    final = Path(run_dir) / "results.json"
    if final.exists():  # the last evaluation, as ssad.evaluate prints it, and what it gained over the baselines
        results = json.loads(final.read_text())
        rank_zero_info(f"final evaluation (epoch {results.get('epoch')}), {final}:\n"
                       f"{results_table(results, evaluated_label_names(cfg.data), cfg.eval.settings.temperature)}")
        baselines = baselines_path(cfg.eval.get("baselines"), run_dir)
        if baselines is not None and baselines.is_file() and results.get("ood"):
            gains = baseline_gains({cfg.negatives.name: results}, json.loads(baselines.read_text()))
            rank_zero_info(f"AUROC points, trained teacher minus baseline ({baselines}):\n" + "\n".join(gains))
    # beside the baselines in plain words, then the next command with the run's real checkpoint
    results = json.loads(final.read_text()) if final.exists() else {}
    rank_zero_info(training_end(results, read_baselines(baselines_path(cfg.eval.get("baselines"), run_dir)), run_dir))


if __name__ == "__main__":
    main()
