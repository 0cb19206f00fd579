"""Evaluate a checkpoint: ``python -m ssad.evaluate ckpt=PATH [ood=...] [+add_ood.NAME=...] [out=...]``."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import hydra
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from ssad.backbones import BACKBONES, build_backbone
from ssad.config_keys import check_keys
from ssad.evaluation import EvalSettings, evaluate_network, ood_skipped_reason
from ssad.features import resolve_device
from ssad.io import check_checkpoint, write_json_atomic
from ssad.module import SSADModule
from ssad.plots import plot_scores
from ssad.results import METRICS
from ssad.safe_load import TRUST_HINT, UnsafeFileError, check_targets, find_targets, load_torch_file, refuse_target
from ssad.train import CONFIG_DIR

MODEL_TARGET = "ssad.module.SSADModule"
CHECKPOINT_REMEDY = "use a checkpoint written by `python -m ssad.train` (<run dir>/checkpoints/last.ckpt)"


def rebuild_model(model_cfg: dict[str, Any], path: str | Path, trust_file: bool = False) -> SSADModule:
    """The untrained :class:`SSADModule` of a model config read from the file ``path``: its backbone built
    through :data:`ssad.backbones.BACKBONES` and the rest from plain arguments, so no callable named by the file
    runs. With ``trust_file`` the config is instantiated by Hydra instead (any ``_target_``: runs code)."""
    if trust_file:
        return instantiate(model_cfg, _convert_="all")
    args = dict(model_cfg)
    target = args.pop("_target_", None)
    if target != MODEL_TARGET:
        raise refuse_target(path, "model", target, f"not ssad's model ({MODEL_TARGET})")
    backbone_args = dict(args.pop("backbone", None) or {})
    backbone = backbone_args.pop("_target_", None)
    builder = str(backbone).rsplit(".", 1)[-1]
    if not (isinstance(backbone, str) and backbone.startswith("ssad.") and builder in BACKBONES):
        raise refuse_target(path, "model.backbone", backbone, f"not one of ssad's backbones ({', '.join(BACKBONES)})")
    nested = find_targets(args, "model") + find_targets(backbone_args, "model.backbone")
    if nested:
        raise refuse_target(path, *nested[0], "not a part that ssad's model takes from a file")
    hydra_keys = [str(key) for key in [*args, *backbone_args] if str(key).startswith("_")]
    if hydra_keys:
        raise UnsafeFileError(f"{path}: refused: its stored model config has the Hydra key {hydra_keys[0]!r}, but "
                              f"ssad rebuilds a model from plain arguments only. To build it anyway: {TRUST_HINT}.")
    return SSADModule(build_backbone(builder, **backbone_args), **args)


def load_checkpoint(path: str | Path, trust_file: bool = False) -> tuple[SSADModule, DictConfig]:
    """The module of a training checkpoint and the resolved config it was trained with.

    The file is read with ``weights_only=True`` and the model rebuilt through ssad's registry
    (:func:`rebuild_model`); the stored data config may name only trusted classes
    (:func:`ssad.safe_load.check_targets`). ``trust_file=True`` lifts both (it runs code from the file)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist (a run keeps it in <run dir>/checkpoints/)")
    check_checkpoint(path)
    checkpoint = load_torch_file(path, "checkpoint", CHECKPOINT_REMEDY, trust_file)
    stored = checkpoint.get("ssad_config") if isinstance(checkpoint, dict) else None
    if not stored:
        raise ValueError(f"{path} is not an ssad training checkpoint (no 'ssad_config' entry); {CHECKPOINT_REMEDY}")
    if not all(isinstance(stored.get(key), dict) for key in ("model", "data")):
        raise ValueError(f"{path}: its stored config has no 'model' and 'data' sections; {CHECKPOINT_REMEDY}")
    check_targets(stored["data"], "data", path, trust_file)
    model = rebuild_model(stored["model"], path, trust_file)
    model.load_state_dict(checkpoint["state_dict"])
    model.run_config = stored
    return model, OmegaConf.create(stored)


METRIC_NAMES = {**METRICS, "fpr95": "FPR95"}  # the console table's column headers


def results_table(results: Mapping[str, Any]) -> str:
    """The console summary of an evaluation: one row per OOD set and the average (metrics in percent), then kNN
    accuracy, sensitivity and occupied soft-classes; or why the OOD metrics are missing."""
    def pct(value: float | None) -> str:
        return "n/a" if value is None else f"{100 * value:.2f}"

    rows = {**(results.get("ood") or {}), **({"average": results["average"]} if results.get("average") else {})}
    lines = []
    if rows:
        width = max(len("OOD set"), *map(len, rows))
        header = [f"{'OOD set':<{width}}", *(f"{METRIC_NAMES[m]:>8}" for m in METRICS)]
        lines += ["  ".join(header), "  ".join("-" * len(h) for h in header)]
        lines += ["  ".join([f"{name:<{width}}", *(f"{pct(metrics.get(m)):>8}" for m in METRICS)])
                  for name, metrics in rows.items()]
    elif results.get("ood_skipped"):
        lines.append(f"OOD metrics skipped: {results['ood_skipped']}")
    scalars = [f"kNN accuracy {pct(results.get('knn_accuracy'))}%" if results.get("knn_accuracy") is not None
               else "kNN accuracy n/a (no labels)",
               f"sensitivity {pct(results.get('sensitivity'))}%",
               f"occupied soft-classes {results.get('occupied_soft_classes', 'n/a')}"]
    lines.append(", ".join(scalars))
    return "\n".join(lines)


def evaluate_checkpoint(cfg: DictConfig) -> dict[str, Any]:
    """Evaluate ``cfg.ckpt`` on the run's test set and OOD sets (or ``cfg.ood`` / ``cfg.add_ood``); prints a
    table of the results (:func:`results_table`) and writes them as JSON."""
    check_keys(cfg, "evaluate")
    model, run_cfg = load_checkpoint(cfg.ckpt, bool(cfg.get("trust_file", False)))
    if cfg.get("ood") is not None:
        run_cfg.data.ood = cfg.ood
    for name, spec in (cfg.get("add_ood") or {}).items():
        run_cfg.data.ood[name] = spec
    datamodule = instantiate(run_cfg.data)
    datamodule.check_sources()
    model.to(resolve_device(cfg.accelerator))
    settings = EvalSettings(**cfg.eval.settings)
    sets = datamodule.eval_sets()
    results, scores = evaluate_network(model.teacher, model.center, sets, datamodule.augment.global_size, settings)
    checkpoint = Path(cfg.ckpt)
    out = Path(cfg.out) if cfg.get("out") else checkpoint.parent.parent / "eval" / checkpoint.stem / "results.json"
    results = {"variant": run_cfg.negatives.name, "dataset": run_cfg.data.name, "seed": run_cfg.seed,
               "checkpoint": str(checkpoint), **results}
    if not results["ood"]:
        results["ood_skipped"] = ood_skipped_reason(sets, "+add_ood")
    write_json_atomic(out, results)
    if cfg.eval.plots:
        plot_scores(scores, results, out.parent / "plots", f"{run_cfg.data.name} / {run_cfg.negatives.name}",
                    settings.temperature)
    print(f"{checkpoint} ({run_cfg.data.name} / {run_cfg.negatives.name}, seed {run_cfg.seed}):\n"
          f"{results_table(results)}\nwrote {out}")
    return results


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="evaluate")
def main(cfg: DictConfig) -> None:
    evaluate_checkpoint(cfg)


if __name__ == "__main__":
    main()
