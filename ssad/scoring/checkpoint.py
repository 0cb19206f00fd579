"""The evaluation of a training checkpoint (``python -m ssad.evaluate``): its teacher scored on the run's test set and
OOD sets (or others given), the results written as JSON and printed as a table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from ssad.cli.checks import disk_full_reported, readable_checkpoint
from ssad.config.validation import validate
from ssad.deploy.checkpoints import load_checkpoint, rebuild_datamodule
from ssad.scoring.evaluation import EvalSettings, evaluate_network, ood_skipped_reason
from ssad.scoring.features import resolve_device
from ssad.scoring.plots import plot_scores
from ssad.scoring.scores import build_scorer
from ssad.scoring.summary import evaluated_label_names, results_table
from ssad.utils.files import check_writable, write_json_atomic


def evaluate_checkpoint(cfg: DictConfig) -> dict[str, Any]:
    """Evaluate ``cfg.ckpt`` on the run's test set and OOD sets (or ``cfg.ood`` / ``cfg.add_ood``); prints a
    table of the results (:func:`results_table`) and writes them as JSON."""
    validate(cfg, "evaluate")
    checkpoint = Path(cfg.ckpt)
    out = Path(cfg.out) if cfg.get("out") else checkpoint.parent.parent / "eval" / checkpoint.stem / "results.json"
    readable_checkpoint(checkpoint, "ssad.evaluate")
    check_writable(out, "out")  # before any work: an evaluation does not fail at its end
    settings = EvalSettings(**cfg.eval.settings)
    scorer = build_scorer(cfg.get("scorer"), settings.temperature)  # the OOD score (scorer=), before any work
    model, run_cfg = load_checkpoint(cfg.ckpt, bool(cfg.get("trust_file", False)))
    if cfg.get("ood") is not None:
        run_cfg.data.ood = cfg.ood
    for name, spec in (cfg.get("add_ood") or {}).items():
        run_cfg.data.ood[name] = spec
    datamodule = rebuild_datamodule(run_cfg.data, cfg.ckpt, bool(cfg.get("trust_file", False)))
    datamodule.check_sources()
    model.to(resolve_device(cfg.accelerator))
    sets = datamodule.eval_sets()
    size = run_cfg.eval.size if cfg.eval.size is None else cfg.eval.size
    results, scores = evaluate_network(model.teacher, model.center, sets, size, settings, scorer=scorer)
    results = {"variant": run_cfg.negatives.name, "dataset": run_cfg.data.name, "seed": run_cfg.seed,
               "checkpoint": str(checkpoint), **results}
    if not results["ood"]:
        results["ood_skipped"] = ood_skipped_reason(sets, "+add_ood")
    with disk_full_reported(out, "out"):
        write_json_atomic(out, results)
    if cfg.eval.plots:
        plot_scores(scores, results, out.parent / "plots", f"{run_cfg.data.name} / {run_cfg.negatives.name}",
                    settings.temperature, scorer)
    print(f"{checkpoint} ({run_cfg.data.name} / {run_cfg.negatives.name}, seed {run_cfg.seed}):\n"
          f"{results_table(results, evaluated_label_names(run_cfg.data), settings.temperature)}\nwrote {out}")
    return results
