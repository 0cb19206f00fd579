"""Evaluate a checkpoint: ``python -m ssad.evaluate ckpt=PATH [ood=...] [+add_ood.NAME=...] [out=...]``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig

from ssad.cli.checks import check_config_dirs, disk_full_reported, readable_checkpoint
from ssad.cli.errors import user_errors
from ssad.cli.help import command_help
from ssad.config.keys import CONFIG_DIR
from ssad.config.validation import validate
from ssad.data.sources import label_names
from ssad.deploy.checkpoints import load_checkpoint, rebuild_datamodule
from ssad.scoring.evaluation import EvalSettings, below_chance_note, evaluate_network, ood_skipped_reason
from ssad.scoring.features import resolve_device
from ssad.scoring.plots import plot_scores
from ssad.scoring.results import BASELINES, BY_LABEL, LIMITS, MEAN_AUROC, METRICS, NN_AUROC, label_title
from ssad.utils.files import check_writable, write_json_atomic

METRIC_NAMES = {**METRICS, "fpr95": "FPR95", NN_AUROC: "AUROC-1NN", MEAN_AUROC: "AUROC-mean"}  # console headers
LIMIT_LEGENDS = {  # what each limit column means, printed under the table
    NN_AUROC: "the same features scored by their nearest training feature, 1 − max cos, which Eq. 6 tends to as "
              "τ → 0",
    MEAN_AUROC: "scored by their cosine to the mean training feature, 1 − cos(f, f̄), which Eq. 6 tends to as "
                "τ → ∞: how far an image lies from the middle of the feature cloud"}
MAX_LABELS_SHOWN = 12  # an OOD set with more labels (CIFAR100) prints its lowest AUROCs by label


def results_table(results: Mapping[str, Any], names: Mapping[str, Sequence[str]] | None = None,
                  temperature: float | None = None) -> str:
    """The console summary of an evaluation: one row per OOD set and the average (metrics in percent), then kNN
    accuracy, sensitivity and occupied soft-classes, then each labelled OOD set's AUROC by label (named by
    ``names``: set → label names, where the data spec gives them; the lowest ``MAX_LABELS_SHOWN`` of a set with more);
    or why the OOD metrics are missing. Given Eq. 6's ``temperature``, ends with the note on any OOD set below 50
    (:func:`ssad.scoring.evaluation.below_chance_note`)."""
    def pct(value: float | None) -> str:
        return "n/a" if value is None else f"{100 * value:.2f}"

    rows = {**(results.get("ood") or {}), **({"average": results["average"]} if results.get("average") else {})}
    lines = []
    if rows:
        columns = [*METRICS, *(key for key in LIMITS if all(key in m for m in rows.values()))]
        width = max(len("OOD set"), *map(len, rows))
        widths = {m: max(8, len(METRIC_NAMES[m])) for m in columns}
        header = [f"{'OOD set':<{width}}", *(f"{METRIC_NAMES[m]:>{widths[m]}}" for m in columns)]
        lines += ["  ".join(header), "  ".join("-" * len(h) for h in header)]
        lines += ["  ".join([f"{name:<{width}}", *(f"{pct(metrics.get(m)):>{widths[m]}}" for m in columns)])
                  for name, metrics in rows.items()]
        lines += [f"({METRIC_NAMES[key]}: {LIMIT_LEGENDS[key]})" for key in LIMITS if key in columns]
    elif results.get("ood_skipped"):
        lines.append(f"OOD metrics skipped: {results['ood_skipped']}")
    scalars = [f"kNN accuracy {pct(results.get('knn_accuracy'))}%" if results.get("knn_accuracy") is not None
               else "kNN accuracy n/a (no labels)",
               f"sensitivity {pct(results.get('sensitivity'))}%",
               f"occupied soft-classes {results.get('occupied_soft_classes', 'n/a')}"]
    lines.append(", ".join(scalars))
    for name, by_label in (results.get(BY_LABEL) or {}).items():
        shown = list(by_label.items())
        if len(shown) > MAX_LABELS_SHOWN:  # the labels the detector misses most
            shown = sorted(shown, key=lambda item: item[1])[:MAX_LABELS_SHOWN]
        lowest = f" ({len(shown)} lowest of {len(by_label)})" if len(shown) < len(by_label) else ""
        lines.append(f"AUROC by label, {name}{lowest}: " + ", ".join(
            f"{label_title(label, (names or {}).get(name))} {pct(auroc)}" for label, auroc in shown))
    note = below_chance_note(results, temperature) if temperature is not None else None
    return "\n".join([*lines, *([note] if note else [])])


def baseline_gains(results: Mapping[str, Mapping[str, Any]], baselines: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Per trained teacher (``results``: name → results.json) and OOD set: its AUROC points over each baseline of
    a ``baselines.json`` (raw pixels, the untrained network as built and with its BatchNorm statistics measured)
    that scored that set; then the same for the nearest-neighbour score (AUROC-1NN) where both have it."""
    present = [(label, baselines[key]["ood"]) for key, label in BASELINES.items() if key in baselines]
    lines = []
    for variant, res in results.items():
        for name, metrics in (res.get("ood") or {}).items():
            for metric, title in (("auroc", name), (NN_AUROC, f"{name} ({METRIC_NAMES[NN_AUROC]})")):
                gains = [f"{100 * (metrics[metric] - ood[name][metric]):+.1f} vs {label}"
                         for label, ood in present if metric in ood.get(name, {}) and metric in metrics]
                if metric == "auroc" or gains:
                    lines.append(f"  {variant:<12} {title}: {', '.join(gains) or 'no baseline scored this set'}")
    return lines


def evaluate_checkpoint(cfg: DictConfig) -> dict[str, Any]:
    """Evaluate ``cfg.ckpt`` on the run's test set and OOD sets (or ``cfg.ood`` / ``cfg.add_ood``); prints a
    table of the results (:func:`results_table`) and writes them as JSON."""
    validate(cfg, "evaluate")
    checkpoint = Path(cfg.ckpt)
    out = Path(cfg.out) if cfg.get("out") else checkpoint.parent.parent / "eval" / checkpoint.stem / "results.json"
    readable_checkpoint(checkpoint, "ssad.evaluate")
    check_writable(out, "out")  # before any work: an evaluation does not fail at its end
    model, run_cfg = load_checkpoint(cfg.ckpt, bool(cfg.get("trust_file", False)))
    if cfg.get("ood") is not None:
        run_cfg.data.ood = cfg.ood
    for name, spec in (cfg.get("add_ood") or {}).items():
        run_cfg.data.ood[name] = spec
    datamodule = rebuild_datamodule(run_cfg.data, cfg.ckpt, bool(cfg.get("trust_file", False)))
    datamodule.check_sources()
    model.to(resolve_device(cfg.accelerator))
    settings = EvalSettings(**cfg.eval.settings)
    sets = datamodule.eval_sets()
    size = run_cfg.eval.size if cfg.eval.size is None else cfg.eval.size
    results, scores = evaluate_network(model.teacher, model.center, sets, size, settings)
    results = {"variant": run_cfg.negatives.name, "dataset": run_cfg.data.name, "seed": run_cfg.seed,
               "checkpoint": str(checkpoint), **results}
    if not results["ood"]:
        results["ood_skipped"] = ood_skipped_reason(sets, "+add_ood")
    with disk_full_reported(out, "out"):
        write_json_atomic(out, results)
    if cfg.eval.plots:
        plot_scores(scores, results, out.parent / "plots", f"{run_cfg.data.name} / {run_cfg.negatives.name}",
                    settings.temperature)
    print(f"{checkpoint} ({run_cfg.data.name} / {run_cfg.negatives.name}, seed {run_cfg.seed}):\n"
          f"{results_table(results, label_names(run_cfg.data.ood), settings.temperature)}\nwrote {out}")
    return results


@command_help("evaluate", "python -m ssad.evaluate ckpt=runs/mine/checkpoints/last.ckpt "
              "+add_ood.mine='{format: image_folder, path: /data/odd}'")
@check_config_dirs
@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="evaluate")
@user_errors
def main(cfg: DictConfig) -> None:
    evaluate_checkpoint(cfg)


if __name__ == "__main__":
    main()
