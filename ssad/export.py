"""Export a checkpoint's teacher as a detector file: ``python -m ssad.export ckpt=PATH out=detector.pt``."""

from __future__ import annotations

import logging
import math

import hydra
import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from ssad.backbones import builder_name
from ssad.detector import Detector
from ssad.evaluate import load_checkpoint
from ssad.evaluation import EvalSettings, network_features
from ssad.features import resolve_device
from ssad.metrics import ood_score, threshold_at_tpr
from ssad.train import CONFIG_DIR

log = logging.getLogger(__name__)


def export_detector(cfg: DictConfig) -> Detector:
    """Teacher backbone + fp16 bank of the training features + the threshold at ``tpr`` of the test set
    (of the training set scored leave-one-out when the run has no test set). The calibration scores come
    from the detector itself (its fp16 bank, its preprocessing), so it accepts exactly ``tpr`` of them."""
    model, run_cfg = load_checkpoint(cfg.ckpt, bool(cfg.get("trust_file", False)))
    device = resolve_device(cfg.accelerator)
    model.to(device)
    datamodule = instantiate(run_cfg.data)
    sets = datamodule.eval_sets()
    settings = EvalSettings(**cfg.eval.settings)
    view_size = datamodule.augment.global_size
    bank, _ = network_features(model.teacher, sets["train"], view_size, settings)
    backbone_args = OmegaConf.to_container(run_cfg.model.backbone, resolve=True)  # plain values only
    del backbone_args["_target_"]
    backbone_args["builder"] = builder_name(run_cfg.model.backbone._target_)
    source = "test" if "test" in sets else "train (leave-one-out)"
    meta = {"dataset": run_cfg.data.name, "variant": run_cfg.negatives.name, "seed": run_cfg.seed,
            "checkpoint": str(cfg.ckpt), "threshold_tpr": cfg.tpr, "threshold_from": source}
    detector = Detector(model.teacher.backbone, bank, backbone_args, datamodule.size, view_size,
                        settings.temperature, threshold=math.nan, meta=meta).to(device)
    if "test" in sets:
        test = torch.from_numpy(np.ascontiguousarray(sets["test"].images))
        calibration = detector.score(test, settings.batch_size, progress=settings.progress)
    else:
        stored = detector.bank.float()
        calibration = ood_score(stored, stored, settings.temperature, exclude_self=True).cpu()
    detector.calibration = calibration
    detector.threshold = threshold_at_tpr(calibration, cfg.tpr)
    detector.cpu().save(cfg.out)
    log.info("wrote %s (bank %d×%d, threshold %.4g from %s)", cfg.out, *bank.shape, detector.threshold, source)
    return detector


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="export")
def main(cfg: DictConfig) -> None:
    export_detector(cfg)


if __name__ == "__main__":
    main()
