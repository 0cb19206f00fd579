"""Export a checkpoint's teacher as a detector file: ``python -m ssad.export ckpt=PATH out=detector.pt``."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import hydra
import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from ssad.cli.checks import check_config_dirs, disk_full_reported, readable_checkpoint
from ssad.cli.errors import ConfigError, user_errors
from ssad.cli.help import command_help
from ssad.cli.outcome import compare, export_lines, read_baselines, run_baselines_file
from ssad.config.keys import CONFIG_DIR
from ssad.config.validation import validate
from ssad.deploy.checkpoints import load_checkpoint, rebuild_datamodule
from ssad.deploy.coreset import k_center_greedy
from ssad.deploy.detector import Detector
from ssad.deploy.inputs import thumbnails
from ssad.deploy.onnx_export import export_format, export_onnx
from ssad.method.backbones import builder_name
from ssad.scoring.evaluation import EvalSettings, network_features
from ssad.scoring.features import resolve_device
from ssad.scoring.metrics import ood_metrics, threshold_at_tpr
from ssad.scoring.scores import Eq6Score, build_scorer
from ssad.utils.files import check_writable


def _images(dataset) -> torch.Tensor:
    return torch.from_numpy(np.array(dataset.images))  # a copy: a cached set is a read-only memory map


def bank_rows(features: torch.Tensor, bank_size: int | None, seed: int) -> torch.Tensor | None:
    """The rows of the training ``features`` that make the detector's bank: None (all of them) without ``bank_size``
    or when it is not below their count, else ``bank_size`` rows chosen by k-center greedy coreset selection
    (:func:`ssad.deploy.coreset.k_center_greedy`, seeded by the run's seed)."""
    if bank_size is None or bank_size >= len(features):
        return None
    return k_center_greedy(features, bank_size, seed)


def leave_one_out_calibration(detector: Detector, features: torch.Tensor,
                              kept: torch.Tensor | None) -> torch.Tensor | None:
    """The published scores of every training image against the detector's bank without itself (a threshold without
    a test set): the bank's rows leave-one-out and, for a coreset, the rows it left out against the whole bank, as
    the bank's fp16 features; None when the OOD score has no leave-one-out form."""
    scores = detector.leave_one_out_scores()
    if scores is None or kept is None:
        return scores
    left = torch.ones(len(features), dtype=torch.bool)
    left[kept] = False
    scorer = detector.fitted_scorer()
    rest = scorer.score(features[left].half().float().to(detector.bank.device))
    return torch.cat([scores, scorer.readable(rest.cpu())])


def held_out_quality(detector: Detector, sets: Mapping[str, Any], batch_size: int = 256,
                     progress: bool = False) -> dict[str, dict[str, float]]:
    """Per OOD set of the run: AUROC and FPR95 of the detector's calibration scores (in-distribution images it
    was not built from) against the set's scores, and the share of the set flagged at its threshold."""
    quality = {}
    for name, dataset in sets.items():
        if name in ("train", "test"):
            continue
        scores = detector.score(_images(dataset), batch_size, progress=progress)
        metrics = ood_metrics(detector.calibration, scores)
        quality[name] = {"auroc": metrics["auroc"], "fpr95": metrics["fpr95"],
                         "flagged": (scores > detector.threshold).double().mean().item()}
    return quality


def export_report(detector: Detector, out: str) -> str:
    """What the export prints: the threshold and how many images calibrated it (with a warning when they are
    too few), and the held-out quality per OOD set, or how to measure it."""
    meta, n = detector.meta, detector.calibration_size
    lines = [f"wrote {out}: threshold {detector.threshold:.4g} on the anomaly score {detector.scorer.published} "
             f"accepts {100 * meta['threshold_tpr']:g}% of the {n} in-distribution images of {meta['threshold_from']}"]
    bank = meta.get("bank") or {}
    if bank.get("selection", "all") != "all":
        lines.append(f"bank: {bank['rows']} of the {bank['training_images']} training features, chosen by "
                     f"{bank['selection']}")
    note = detector.calibration_note()
    if note:
        lines.append(f"warning: {note}")
    quality = meta.get("held_out_quality") or {}
    if quality:
        lines.append(f"held-out quality (in-distribution: {meta['threshold_from']}):")
        lines += [f"  {name}: AUROC {100 * q['auroc']:.1f}%, FPR95 {100 * q['fpr95']:.1f}%, "
                  f"{100 * q['flagged']:.1f}% flagged at the threshold" for name, q in quality.items()]
        lines += export_lines(meta)
    else:
        lines.append("held-out quality not measured: the run has no OOD sets. Measure it with `python -m "
                     "ssad.evaluate ckpt=... +add_ood.NAME='{format: image_folder, path: ...}'`")
    return "\n".join(lines)


def export_detector(cfg: DictConfig) -> Detector:
    """Teacher backbone + fp16 bank of the training features (all, or ``cfg.bank_size`` of them chosen by k-center
    greedy coreset selection: :func:`bank_rows`) + the threshold at ``tpr`` of the test set
    (of the training set scored leave-one-out when the run has no test set), on the anomaly score that the OOD
    score ``cfg.scorer`` publishes (Eq. 6: R = 1 − τ·log(−S)). The calibration scores come from the detector itself
    (its fp16 bank, its preprocessing), so it accepts exactly ``tpr`` of them. Prints the threshold, how many
    images calibrated it and the detector's held-out quality on the run's OOD sets (:func:`export_report`)."""
    validate(cfg, "export")
    readable_checkpoint(cfg.ckpt, "ssad.export")
    check_writable(cfg.out, "out")  # before any work: an export does not fail at its end
    file_format = export_format(cfg.out, cfg.get("format"))  # .pt or .onnx; checks that onnx is installed
    settings = EvalSettings(**cfg.eval.settings)
    scorer = build_scorer(cfg.get("scorer"), settings.temperature)
    if file_format == "onnx" and type(scorer) is not Eq6Score:
        raise ConfigError(f"format=onnx holds Eq. 6 only (scorer=eq6), not {scorer!r}; export this score as a .pt "
                          "detector (out=detector.pt)")
    model, run_cfg = load_checkpoint(cfg.ckpt, bool(cfg.get("trust_file", False)))
    device = resolve_device(cfg.accelerator)
    model.to(device)
    datamodule = rebuild_datamodule(run_cfg.data, cfg.ckpt, bool(cfg.get("trust_file", False)))
    sets = datamodule.eval_sets()
    view_size = run_cfg.eval.size if cfg.eval.size is None else cfg.eval.size
    features, _ = network_features(model.teacher, sets["train"], view_size, settings)
    kept = bank_rows(features, cfg.get("bank_size"), int(run_cfg.seed))
    bank = features if kept is None else features[kept]
    backbone_args = OmegaConf.to_container(run_cfg.model.backbone, resolve=True)  # plain values only
    del backbone_args["_target_"]
    backbone_args["builder"] = builder_name(run_cfg.model.backbone._target_)
    source = "test" if "test" in sets else "train (leave-one-out)"
    meta = {"dataset": run_cfg.data.name, "variant": run_cfg.negatives.name, "seed": run_cfg.seed,
            "checkpoint": str(cfg.ckpt), "threshold_tpr": cfg.tpr, "threshold_from": source,
            "bank": {"rows": len(bank), "training_images": len(features),
                     "selection": "all" if kept is None else "k-center greedy coreset (cosine)"}}
    detector = Detector(model.teacher.backbone, bank, backbone_args, datamodule.size, view_size,
                        settings.temperature, threshold=math.nan, meta=meta, scorer=scorer).to(device)
    if "test" in sets:
        calibration = detector.score(_images(sets["test"]), settings.batch_size, progress=settings.progress)
    else:
        calibration = leave_one_out_calibration(detector, features, kept)
        if calibration is None:
            raise ConfigError(f"the run has no test set to calibrate the threshold on, and {scorer!r} has no "
                              "leave-one-out form for the training images; hold out a test set (data.holdout=0.1 "
                              "in training) or export with scorer=eq6")
    detector.calibration = calibration
    detector.threshold = threshold_at_tpr(calibration, cfg.tpr)
    detector.meta["calibration_images"] = detector.calibration_size
    detector.meta["held_out_quality"] = held_out_quality(detector, sets, settings.batch_size, settings.progress)
    baselines = read_baselines(run_baselines_file(cfg.ckpt, run_cfg.eval.get("baselines")))
    if baselines and detector.meta["held_out_quality"]:  # raw pixels and the untrained network on the same sets
        detector.meta["baselines"] = compare({k: q["auroc"] for k, q in detector.meta["held_out_quality"].items()},
                                             baselines)
    if file_format == "pt":  # the HTML report's nearest training images
        train = _images(sets["train"]).numpy()
        found = thumbnails(train if kept is None else train[kept.numpy()], int(cfg.get("thumbnails_max", 20000)))
        detector.thumbnails = None if found is None else torch.from_numpy(found)
    with disk_full_reported(cfg.out, "out"):
        if file_format == "onnx":
            export_onnx(detector.cpu(), cfg.out)
        else:
            detector.cpu().save(cfg.out)
    print(export_report(detector, str(cfg.out)))
    return detector


@command_help("export", "python -m ssad.export ckpt=runs/mine/checkpoints/last.ckpt out=detector.pt")
@check_config_dirs
@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="export")
@user_errors
def main(cfg: DictConfig) -> None:
    export_detector(cfg)


if __name__ == "__main__":
    main()
