"""Evaluate a checkpoint: ``python -m ssad.evaluate ckpt=PATH [ood=...] [+add_ood.NAME=...] [out=...]``
(:func:`ssad.scoring.checkpoint.evaluate_checkpoint`)."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from ssad.cli.checks import check_config_dirs
from ssad.cli.errors import user_errors
from ssad.cli.help import command_help
from ssad.config.keys import CONFIG_DIR
from ssad.scoring.checkpoint import evaluate_checkpoint


@command_help("evaluate", "python -m ssad.evaluate ckpt=runs/mine/checkpoints/last.ckpt "
              "+add_ood.mine='{format: image_folder, path: /data/odd}'")
@check_config_dirs
@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="evaluate")
@user_errors
def main(cfg: DictConfig) -> None:
    evaluate_checkpoint(cfg)


if __name__ == "__main__":
    main()
