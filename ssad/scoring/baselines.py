"""Baselines a trained teacher must beat, scored exactly like it (the run's OOD score, ``scorer=``, by default Eq. 6
on L2-normalised features; the same kNN):
raw pixels and the untrained network (its BatchNorm statistics, if any, measured on the training images, so
that what training adds is not mistaken for the calibration of those statistics). For a network with BatchNorm
also the untrained network as built (``untrained_as_built``: the teacher at step 0, statistics at their initial 0
and 1), which shows how much measuring those statistics alone is worth.

``python -m ssad.scoring.baselines [the overrides of ssad.train] hydra.run.dir=DIR`` writes ``DIR/baselines.json`` =
``{"raw_pixels": R, "untrained_as_built": R, "untrained": R}``, each R in the ``results.json`` schema
(``ood.<name>.auroc``, ``average.auroc``, ``knn_accuracy``, ...). ``python -m ssad.report`` prints them beside the
variants. In a sweep, the Hydra callback :class:`SweepBaselines` writes the same file into the sweep folder when it
ends. With ``eval.baselines=auto``, ``ssad.train`` writes it into the run folder before training
(:func:`write_baselines`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import hydra
import lightning as L
import numpy as np
import torch
from hydra.experimental.callback import Callback
from hydra.utils import instantiate
from lightning.pytorch.utilities.seed import isolate_rng
from omegaconf import DictConfig

from ssad.cli.checks import check_config_dirs
from ssad.cli.errors import user_errors
from ssad.config.keys import CONFIG_DIR
from ssad.data.sources import ArraySet
from ssad.method.backbones import FeatureShift
from ssad.scoring.evaluation import EvalSettings, evaluate_features, evaluate_network, set_labels
from ssad.scoring.features import preprocess
from ssad.scoring.results import BASELINES_FILE
from ssad.scoring.scores import build_scorer
from ssad.utils.files import write_json_atomic

log = logging.getLogger(__name__)


def pixel_features(array_set: ArraySet, chunk: int = 4096) -> torch.Tensor:
    """Raw pixels at the data size, flattened and L2-normalised (N, 3·H·W), read chunk by chunk."""
    rows = [torch.nn.functional.normalize(torch.from_numpy(np.array(array_set.images[i:i + chunk]))
                                          .flatten(1).float(), dim=-1)
            for i in range(0, len(array_set), chunk)]
    return torch.cat(rows)


@torch.no_grad()
def calibrate_batchnorm(network: torch.nn.Module, array_set: ArraySet, size: int, batch_size: int = 256) -> bool:
    """Set the running statistics of every BatchNorm (and :class:`~ssad.method.backbones.FeatureShift`) to the mean and
    variance of its inputs over ``array_set`` (averaged over batches of ``batch_size``; no weight changes), so an
    untrained BN network is not handicapped by its initial statistics (0 and 1). False when ``network`` has none
    (nothing to measure)."""
    layers = [m for m in network.modules() if isinstance(m, (torch.nn.modules.batchnorm._BatchNorm, FeatureShift))]
    if not layers:
        return False
    momenta = [m.momentum for m in layers]
    for layer in layers:
        layer.reset_running_stats()
        layer.momentum = None  # cumulative average over all batches
    was_training = network.training
    network.train()
    for start in range(0, len(array_set), batch_size):
        network(preprocess(torch.as_tensor(np.asarray(array_set.images[start:start + batch_size])), size))
    network.train(was_training)
    for layer, momentum in zip(layers, momenta):
        layer.momentum = momentum
    return True


def initial_state(cfg: DictConfig) -> tuple[dict[str, ArraySet], Any]:
    """The evaluation sets of a composed training config and its model (``SSADModule``) at initialisation, drawn
    as the baselines draw them: seeded by ``cfg.seed``, the data first."""
    L.seed_everything(cfg.seed)
    datamodule = instantiate(cfg.data)
    datamodule.check_sources()
    sets = datamodule.eval_sets()
    return sets, instantiate(cfg.model, _convert_="all")


def compute_baselines(cfg: DictConfig) -> dict[str, dict[str, Any]]:
    """Raw-pixel and untrained-network results (BatchNorm statistics measured; for a BN network also as built)
    for the data of a composed training config."""
    sets, model = initial_state(cfg)
    settings = EvalSettings(**cfg.eval.settings)
    scorer = build_scorer(cfg.get("scorer"), settings.temperature)  # the run's OOD score (default Eq. 6)
    pixels = {name: pixel_features(array_set) for name, array_set in sets.items()}
    ood = {k: v for k, v in pixels.items() if k not in ("train", "test")}
    raw, _ = evaluate_features(pixels["train"], pixels.get("test"), ood, settings, set_labels(sets["train"]),
                               set_labels(sets.get("test")), {name: set_labels(sets[name]) for name in ood}, scorer)
    results = {"raw_pixels": raw}
    untrained, _ = evaluate_network(model.teacher, model.center, sets, cfg.eval.size, settings, scorer=scorer)
    if calibrate_batchnorm(model.teacher.backbone, sets["train"], cfg.eval.size):
        results["untrained_as_built"] = untrained
        untrained, _ = evaluate_network(model.teacher, model.center, sets, cfg.eval.size, settings, scorer=scorer)
    results["untrained"] = untrained
    return results


def write_baselines(cfg: DictConfig, out_dir: Path) -> Path:
    """``out_dir/baselines.json`` of the composed training config ``cfg``, computed unless it exists (a resumed
    run keeps its own); the global random state is left as it was, so the run trains as it would without."""
    out = Path(out_dir) / BASELINES_FILE
    if not out.is_file():
        with isolate_rng():
            results = compute_baselines(cfg)
        write_json_atomic(out, results)
        log_baselines(results, out)
    return out


def log_baselines(results: dict[str, dict[str, Any]], out: Path) -> None:
    """One line per baseline: AUROC per OOD set and kNN accuracy, then where they were written."""
    for name, res in results.items():
        ood = ", ".join(f"{k} {100 * v['auroc']:.1f}" for k, v in res["ood"].items())
        knn = res.get("knn_accuracy")
        log.info("%-18s AUROC %% %s; kNN %s", name, ood or "-", "-" if knn is None else f"{100 * knn:.1f}%")
    log.info("wrote %s", out)


class SweepBaselines(Callback):
    """Hydra callback: at the end of a multirun, ``baselines.json`` in the sweep folder (the sweep's data)."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        out = Path(config.hydra.sweep.dir) / BASELINES_FILE
        write_json_atomic(out, compute_baselines(config))
        log.info("wrote %s", out)


@check_config_dirs
@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="train")
@user_errors
def main(cfg: DictConfig) -> None:
    out = Path(cfg.paths.output_dir) / BASELINES_FILE
    results = compute_baselines(cfg)
    write_json_atomic(out, results)
    log_baselines(results, out)


if __name__ == "__main__":
    main()
