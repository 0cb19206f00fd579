"""Quick-start: train a small detector on the embedded digits (CPU) for a few negative variants.

Runs ``python -m ssad.train -m experiment=demo negatives=...`` (a Hydra multirun), then prints per
variant the loss curve's start and end and the final metrics, beside two baselines scored with the same
Eq. 6 score: raw pixels and the untrained network; then ``python -m ssad.report`` turns the sweep into
the paper-style tables and figures. Usage: ``python experiments/demo.py [variants...]``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import lightning as L
import numpy as np
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from ssad.evaluation import EvalSettings, evaluate_features, evaluate_network
from ssad.report import main as report
from ssad.train import CONFIG_DIR

VARIANTS = ["none", "rot_indist"]


def baselines(overrides: list[str]) -> dict[str, dict]:
    """Raw pixels and the untrained network, scored exactly like a trained teacher."""
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose("train", overrides=overrides, return_hydra_config=False)
    L.seed_everything(cfg.seed)
    datamodule = instantiate(cfg.data)
    sets = datamodule.eval_sets()
    settings = EvalSettings(**{**cfg.eval.settings, "progress": False})
    pixels = {k: torch.nn.functional.normalize(torch.as_tensor(np.asarray(v.images)).flatten(1).float(), dim=-1)
              for k, v in sets.items()}
    ood = {k: v for k, v in pixels.items() if k not in ("train", "test")}
    labels = {k: torch.as_tensor(sets[k].labels) for k in ("train", "test")}
    raw, _ = evaluate_features(pixels["train"], pixels["test"], ood, settings, labels["train"], labels["test"])
    model = instantiate(cfg.model, _convert_="all")
    untrained, _ = evaluate_network(model.teacher, model.center, sets, datamodule.augment.global_size, settings)
    return {"raw pixels": raw, "untrained network": untrained}


def row(name: str, results: dict, loss: str = "") -> str:
    ood = "  ".join(f"{100 * m['auroc']:6.1f}" for m in results["ood"].values())
    knn = results.get("knn_accuracy")
    occupied = results.get("occupied_soft_classes")
    return (f"{name:<20} {loss:<15} {ood}  {100 * results['average']['auroc']:7.1f}  "
            f"{'-' if knn is None else f'{100 * knn:5.1f}':>5}  {'-' if occupied is None else occupied:>8}")


def main(variants: list[str]) -> None:
    sweep_dir = Path("outputs/demo") / time.strftime("%Y-%m-%d_%H-%M-%S")
    cmd = [sys.executable, "-m", "ssad.train", "-m", "experiment=demo", f"negatives={','.join(variants)}",
           f"hydra.sweep.dir={sweep_dir}", "hydra.sweep.subdir=${negatives.name}"]
    print("$", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)
    results = {v: json.loads((sweep_dir / v / "results.json").read_text()) for v in variants}
    base = baselines(["experiment=demo"])
    ood_names = list(next(iter(results.values()))["ood"])
    print("\nQuick-start on digits 0-4 (near-OOD: digits 5-9, far-OOD: photo crops); AUROC in %.")
    print(f"{'variant':<20} {'loss start→end':<15} " + "  ".join(f"{n[:6]:>6}" for n in ood_names)
          + f"  {'average':>7}  {'kNN':>5}  {'occupied':>8}")
    for name, res in base.items():
        print(row(name, res))
    for variant, res in results.items():
        curve = res["loss_curve"]
        print(row(variant, res, f"{curve[0]:.3f}→{curve[-1]:.3f}"))
    print(f"\nrun directories (results.json, metrics.jsonl, plots/, checkpoints/): {sweep_dir}\n")
    report([str(sweep_dir)])


if __name__ == "__main__":
    main(sys.argv[1:] or VARIANTS)
