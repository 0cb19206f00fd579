"""Export a checkpoint's teacher as a detector file: ``python -m ssad.export ckpt=PATH out=detector.pt``."""

from __future__ import annotations

import logging

import hydra
from hydra.utils import instantiate
from omegaconf import DictConfig

from ssad.detector import Detector
from ssad.evaluate import load_checkpoint
from ssad.evaluation import EvalSettings, network_features
from ssad.features import resolve_device
from ssad.metrics import ood_score, threshold_at_tpr
from ssad.train import CONFIG_DIR

log = logging.getLogger(__name__)


def export_detector(cfg: DictConfig) -> Detector:
    """Teacher backbone + fp16 bank of the training features + the threshold at ``tpr`` of the test set
    (of the training set scored leave-one-out when the run has no test set)."""
    model, run_cfg = load_checkpoint(cfg.ckpt)
    model.to(resolve_device(cfg.accelerator))
    datamodule = instantiate(run_cfg.data)
    sets = datamodule.eval_sets()
    settings = EvalSettings(**cfg.eval.settings)
    view_size = datamodule.augment.global_size
    bank, _ = network_features(model.teacher, sets["train"], view_size, settings)
    if "test" in sets:
        test, _ = network_features(model.teacher, sets["test"], view_size, settings)
        calibration, source = ood_score(test, bank, settings.temperature), "test"
    else:
        calibration, source = ood_score(bank, bank, settings.temperature, exclude_self=True), "train (leave-one-out)"
    backbone_args = {k: v for k, v in run_cfg.model.backbone.items() if k != "_target_"}
    meta = {"dataset": run_cfg.data.name, "variant": run_cfg.negatives.name, "seed": run_cfg.seed,
            "checkpoint": str(cfg.ckpt), "threshold_tpr": cfg.tpr, "threshold_from": source}
    detector = Detector(model.teacher.backbone.cpu(), bank.cpu(), backbone_args, datamodule.size, view_size,
                        settings.temperature, threshold_at_tpr(calibration.cpu(), cfg.tpr), meta, calibration)
    detector.save(cfg.out)
    log.info("wrote %s (bank %d×%d, threshold %.4g from %s)", cfg.out, *bank.shape, detector.threshold, source)
    return detector


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="export")
def main(cfg: DictConfig) -> None:
    export_detector(cfg)


if __name__ == "__main__":
    main()
