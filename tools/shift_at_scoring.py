"""How much of a run's AUROC gain the spread of its features alone would give: Eq. 6 on the teacher's features
less β times their mean over the training images (β: the scoring-time shift, neither the teacher's centring nor the
small CNN's feature shift), for the run's trained teacher and for its untrained network (BatchNorm statistics and
the small CNN's mean feature measured, as ``python -m ssad.scoring.baselines`` does), for several β. β = 0 is the
run's own evaluation. An analysis, not a setting of ssad: detectors score with β = 0 (docs/results/centring.md
"Shift at scoring time").

Usage: ``python tools/shift_at_scoring.py RUN_DIR [BETA ...]`` with RUN_DIR a training run's folder
(``outputs/demo/<date>/none``: its ``.hydra/config.yaml`` and ``checkpoints/last.ckpt``); β defaults to 0, ¼, ½,
¾, 1.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from omegaconf import OmegaConf

from ssad.deploy.checkpoints import load_checkpoint
from ssad.scoring.baselines import calibrate_batchnorm, initial_state
from ssad.scoring.evaluation import EvalSettings, evaluate_features, network_features

BETAS = [0.0, 0.25, 0.5, 0.75, 1.0]


def shifted_aurocs(run_dir: Path, betas: list[float]) -> dict[str, dict[float, dict[str, float]]]:
    """``{"trained" | "untrained": {β: {OOD set: AUROC}}}`` of the run in ``run_dir``, its features shifted at
    scoring time by β times their mean over the training images."""
    cfg = OmegaConf.load(run_dir / ".hydra" / "config.yaml")
    settings = EvalSettings(**{**OmegaConf.to_container(cfg.eval.settings), "progress": False})
    sets, model = initial_state(cfg)  # the untrained network's weights, as ssad.scoring.baselines draws them
    untrained = model.teacher
    calibrate_batchnorm(untrained.backbone, sets["train"], cfg.eval.size)
    trained = load_checkpoint(run_dir / "checkpoints" / "last.ckpt", trust_file=True)[0].teacher
    out = {}
    for name, network in (("trained", trained), ("untrained", untrained)):
        network.eval()
        feats = {k: network_features(network, s, cfg.eval.size, settings)[0] for k, s in sets.items()}
        mean = feats["train"].mean(dim=0, keepdim=True)
        out[name] = {}
        for beta in betas:
            shifted = {k: v - beta * mean for k, v in feats.items()}
            ood = {k: v for k, v in shifted.items() if k not in ("train", "test")}
            results, _ = evaluate_features(shifted["train"], shifted["test"], ood, settings)
            out[name][beta] = {k: m["auroc"] for k, m in results["ood"].items()}
    return out


def main(run_dir: Path, betas: list[float]) -> None:
    torch.set_num_threads(1)
    table = shifted_aurocs(run_dir, betas)
    sets = list(next(iter(table["trained"].values())))
    print(f"AUROC (%) of Eq. 6 on f − β·mean(f over the training images), {run_dir}")
    print(f"{'β':>5} " + " ".join(f"{f'{who} {s}':>28}" for who in table for s in sets))
    for beta in betas:
        print(f"{beta:>5.2f} " + " ".join(f"{100 * table[who][beta][s]:>28.1f}" for who in table for s in sets))


if __name__ == "__main__":
    if len(sys.argv) < 2 or not (Path(sys.argv[1]) / "checkpoints" / "last.ckpt").is_file():
        sys.exit(__doc__.split("\n\n")[1] if len(sys.argv) < 2 else
                 f"{sys.argv[1]}: no checkpoints/last.ckpt there; give a training run's folder")
    main(Path(sys.argv[1]), [float(b) for b in sys.argv[2:]] or BETAS)
