"""Evaluate a checkpoint: ``python -m ssad.evaluate ckpt=PATH [ood=...] [+add_ood.NAME=...] [out=...]``."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import hydra
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from ssad.evaluation import EvalSettings, evaluate_network
from ssad.features import resolve_device
from ssad.io import check_checkpoint, write_json_atomic
from ssad.module import SSADModule
from ssad.plots import plot_scores
from ssad.train import CONFIG_DIR

log = logging.getLogger(__name__)


def load_checkpoint(path: str | Path) -> tuple[SSADModule, DictConfig]:
    """The module of a training checkpoint and the resolved config it was trained with."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist (a run keeps it in <run dir>/checkpoints/)")
    check_checkpoint(path)
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    if not checkpoint.get("ssad_config"):
        raise ValueError(f"{path} is not an ssad training checkpoint (no 'ssad_config' entry)")
    run_cfg = OmegaConf.create(checkpoint["ssad_config"])
    model = instantiate(run_cfg.model, _convert_="all")
    model.load_state_dict(checkpoint["state_dict"])
    model.run_config = checkpoint["ssad_config"]
    return model, run_cfg


def evaluate_checkpoint(cfg: DictConfig) -> dict[str, Any]:
    """Evaluate ``cfg.ckpt`` on the run's test set and OOD sets (or ``cfg.ood`` / ``cfg.add_ood``)."""
    model, run_cfg = load_checkpoint(cfg.ckpt)
    if cfg.get("ood") is not None:
        run_cfg.data.ood = cfg.ood
    for name, spec in (cfg.get("add_ood") or {}).items():
        run_cfg.data.ood[name] = spec
    datamodule = instantiate(run_cfg.data)
    datamodule.check_sources()
    model.to(resolve_device(cfg.accelerator))
    results, scores = evaluate_network(model.teacher, model.center, datamodule.eval_sets(),
                                       datamodule.augment.global_size, EvalSettings(**cfg.eval.settings))
    checkpoint = Path(cfg.ckpt)
    out = Path(cfg.out) if cfg.get("out") else checkpoint.parent.parent / "eval" / checkpoint.stem / "results.json"
    results = {"variant": run_cfg.negatives.name, "dataset": run_cfg.data.name, "seed": run_cfg.seed,
               "checkpoint": str(checkpoint), **results}
    write_json_atomic(out, results)
    if cfg.eval.plots:
        plot_scores(scores, results, out.parent / "plots", title=f"{run_cfg.data.name} / {run_cfg.negatives.name}")
    log.info("wrote %s", out)
    return results


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="evaluate")
def main(cfg: DictConfig) -> None:
    evaluate_checkpoint(cfg)


if __name__ == "__main__":
    main()
