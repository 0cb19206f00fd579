"""The scoring half of tools/leave_one_set_out.py: feature views of a small-CNN teacher (its pooled feature f, each
block's pooled output, each block's output on a coarse spatial grid, concatenations), OOD scores over them, and the
leave-one-set-out choice among them."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from torch import Tensor

from ssad.deploy.checkpoints import load_checkpoint
from ssad.method.backbones import grid_pool
from ssad.scoring.baselines import calibrate_batchnorm, initial_state, pixel_features
from ssad.scoring.features import preprocess
from ssad.scoring.metrics import ood_metrics

VIEWS = ("f", "gap3", "grid2", "grid3", "f+grid2", "f+grid3", "f+grid2+grid3", "f+gaps", "1.5f+grid2", "2.0f+grid2",
         "3.0f+grid2")
GRID = 4  # a block's output average-pooled to GRID × GRID cells keeps where things are, as pixels do
SCORES = ("eq6", "nn", "knn5")  # Eq. 6 at the preset's τ = 0.04, its τ → 0 limit (1-NN), the 5th neighbour


@torch.no_grad()
def views(backbone: torch.nn.Module, images: np.ndarray, size: int) -> dict[str, Tensor]:
    """Named feature views (N, d) of a SmallCNN ``backbone`` on uint8 images (N, 3, H, W)."""
    backbone.eval()
    out: dict[str, list[Tensor]] = {}
    for start in range(0, len(images), 256):
        x = preprocess(torch.as_tensor(np.asarray(images[start:start + 256])), size)
        block = 0
        for layer in backbone.features:
            x = layer(x)
            if isinstance(layer, torch.nn.ReLU):
                block += 1
                out.setdefault(f"gap{block}", []).append(x.mean(dim=(-2, -1)))
                out.setdefault(f"grid{block}", []).append(grid_pool(x, GRID))
        out.setdefault("f", []).append(backbone.norm(out[f"gap{block}"][-1]))
    return {k: torch.cat(v) for k, v in out.items()}


def with_concatenations(v: dict[str, Tensor]) -> dict[str, Tensor]:
    """Add the concatenations of L2-normalised views (each part weighs the same)."""
    def cat(*names: str, f_weight: float = 1.0) -> Tensor:
        return torch.cat([F.normalize(v[n], dim=1) * (f_weight if n == "f" else 1.0) for n in names], dim=1)
    last = max(int(k[3:]) for k in v if k.startswith("gap"))
    v = dict(v)
    v["f+grid2"] = cat("f", "grid2")
    v["f+grid3"] = cat("f", "grid3")
    v["f+grid2+grid3"] = cat("f", "grid2", "grid3")
    for w in (1.5, 2.0, 3.0):  # f weighted w: its cosine counts w² times the grid's
        v[f"{w}f+grid2"] = cat("f", "grid2", f_weight=w)
    v["f+gaps"] = cat("f", *[f"gap{i}" for i in range(1, last)])
    return {k: v[k] for k in VIEWS}


def scores(queries: Tensor, bank: Tensor) -> dict[str, Tensor]:
    """Every score of :data:`SCORES` from one cosine matrix (higher = more anomalous; rankings as ssad's Eq6Score,
    NearestNeighbourScore and KthNeighbourScore give them)."""
    out: dict[str, list[Tensor]] = {name: [] for name in SCORES}
    for start in range(0, len(queries), 1024):
        cos = queries[start:start + 1024] @ bank.T
        top = cos.topk(5, dim=1).values
        out["nn"].append(-top[:, 0])
        out["knn5"].append(-top[:, 4])
        out["eq6"].append(-torch.logsumexp(cos.double() / 0.04, dim=1))
    return {name: torch.cat(v) for name, v in out.items()}


def aurocs(feats: dict[str, Tensor], centred: bool) -> dict[str, float]:
    """AUROC (%) of every OOD set for every score, bank = the training features (centred: minus their mean)."""
    train = feats["train"]
    shift = train.mean(dim=0) if centred else torch.zeros(train.shape[1])
    bank = F.normalize(train - shift, dim=1)
    per = {k: scores(F.normalize(feats[k] - shift, dim=1), bank) for k in ("test", "near", "far")}
    return {f"{sname}/{oname}": 100 * ood_metrics(per["test"][sname], per[oname][sname])["auroc"]
            for sname in SCORES for oname in ("near", "far")}


def score_run(folder: Path) -> dict[str, dict[str, float]]:
    """{network: {option: AUROC}} for one training run: trained teacher, untrained network (BatchNorm measured on
    the training images), raw pixels; option = view/centring/score/OOD set."""
    model, _ = load_checkpoint(folder / "checkpoints" / "last.ckpt")
    cfg = OmegaConf.load(folder / ".hydra" / "config.yaml")
    sets, initial = initial_state(cfg)
    names = {"train": "train", "test": "test", **{k: ("near" if i == 0 else "far")
                                                  for i, k in enumerate(k for k in sets if k not in ("train", "test"))}}
    size = int(cfg.eval.size)
    calibrate_batchnorm(initial.teacher.backbone, sets["train"], size)
    result: dict[str, dict[str, float]] = {}
    networks = {"trained": model.teacher.backbone, "untrained": initial.teacher.backbone}
    for net_name, net in networks.items():
        per_set = {names[k]: with_concatenations(views(net, s.images, size)) for k, s in sets.items()}
        row = {}
        for view in per_set["train"]:
            for centred in (False, True):
                feats = {k: per_set[k][view] for k in per_set}
                for key, value in aurocs(feats, centred).items():
                    row[f"{view}/{'c' if centred else 'u'}/{key}"] = value
        result[net_name] = row
    pixels = {names[k]: pixel_features(s) for k, s in sets.items()}
    result["pixels"] = {f"{c}/{key}": value for centred, c in ((False, "u"), (True, "c"))
                        for key, value in aurocs(pixels, centred).items()}
    return result


def per_set(table: dict, option: str) -> dict[str, dict[str, list[float]]]:
    """{set: {network: [per-seed (near+far)/2]}} of one option (view/centring/score), baselines the same way."""
    out: dict[str, dict[str, list[float]]] = {}
    _, centring, sname = option.split("/", 1)[0], *option.split("/")[1:]
    for key, nets in table.items():
        name = key.split("/")[0]
        row = out.setdefault(name, {"trained": [], "untrained": [], "pixels": [], "near": [], "far": [],
                                    "pixels_near": [], "pixels_far": [], "untrained_near": [], "untrained_far": []})
        for net in ("trained", "untrained"):
            near, far = nets[net][f"{option}/near"], nets[net][f"{option}/far"]
            row[net].append((near + far) / 2)
            if net == "trained":
                row["near"].append(near)
                row["far"].append(far)
            else:
                row["untrained_near"].append(near)
                row["untrained_far"].append(far)
        near, far = nets["pixels"][f"{centring}/{sname}/near"], nets["pixels"][f"{centring}/{sname}/far"]
        row["pixels"].append((near + far) / 2)
        row["pixels_near"].append(near)
        row["pixels_far"].append(far)
    return out


def margin(row: dict[str, list[float]]) -> float:
    """How far a set's mean AUROC lies above the better of raw pixels and the untrained network (negative: below)."""
    mean = statistics.fmean
    return mean(row["trained"]) - max(mean(row["pixels"]), mean(row["untrained"]))


CRITERIA = {  # how an option is chosen on the four sets it may see
    "mean AUROC": lambda rows: statistics.fmean(statistics.fmean(r["trained"]) for r in rows),
    "worst margin over both baselines": lambda rows: min(margin(r) for r in rows),
}


def ms(xs: list[float]) -> str:
    return f"{statistics.fmean(xs):.1f} ± {statistics.pstdev(xs):.1f}" if len(xs) > 1 else f"{xs[0]:.1f}"


def select(out: Path, recipes: list[str]) -> None:
    """Print Markdown: for each criterion and held-out set, the option chosen on the other four and its figures on
    the held-out set beside raw pixels and the untrained network scored the same way (mean ± std over seeds); then
    the options ranked on all five sets."""
    tables = {r: json.loads((out / r / "scores.json").read_text()) for r in recipes}
    options = [(r, o.rsplit("/", 1)[0]) for r in recipes
               for o in next(iter(tables[r].values()))["trained"] if o.endswith("/near")]
    summary = {(r, o): per_set(tables[r], o) for r, o in options}
    sets = sorted(next(iter(summary.values())))
    seeds = sorted({k.split("/")[1] for k in next(iter(tables.values()))})
    print(f"seeds: {', '.join(seeds)}; AUROC %, (near + far) / 2 per set unless named\n")
    for cname, criterion in CRITERIA.items():
        print(f"### Chosen by {cname}\n")
        print("| held out | chosen on the other four | near | far | mean | raw pixels | untrained | Δ pixels "
              "| Δ untrained |")
        print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
        for held in sets:
            best = max(options, key=lambda ro: criterion([summary[ro][s] for s in sets if s != held]))
            row = summary[best][held]
            mean = statistics.fmean
            print(f"| {held} | `{best[1]}` ({best[0]}) | {ms(row['near'])} | {ms(row['far'])} | {ms(row['trained'])} "
                  f"| {ms(row['pixels'])} | {ms(row['untrained'])} | {mean(row['trained']) - mean(row['pixels']):+.1f} "
                  f"| {mean(row['trained']) - mean(row['untrained']):+.1f} |")
        print()
    ranked = sorted(options, key=lambda ro: -CRITERIA["mean AUROC"]([summary[ro][s] for s in sets]))
    print("### Options on all five sets (trained; mean AUROC, best 15)\n")
    print("| option | " + " | ".join(sets) + " | mean | worst margin |")
    print("|---|" + "---:|" * (len(sets) + 2))
    for ro in ranked[:15]:
        cells = [f"{statistics.fmean(summary[ro][s]['trained']):.1f}" for s in sets]
        rows = [summary[ro][s] for s in sets]
        print(f"| `{ro[1]}` ({ro[0]}) | " + " | ".join(cells) + f" | {CRITERIA['mean AUROC'](rows):.1f} "
              f"| {min(margin(r) for r in rows):+.1f} |")


def detail(out: Path, recipe: str, option: str) -> None:
    """Print Markdown: one option on every set, near and far, beside raw pixels and the untrained network."""
    rows = per_set(json.loads((out / recipe / "scores.json").read_text()), option)
    print(f"### `{option}` ({recipe}) by set\n")
    print("| set | near | far | raw pixels near | far | untrained near | far |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name in sorted(rows):
        r = rows[name]
        print(f"| {name} | {ms(r['near'])} | {ms(r['far'])} | {ms(r['pixels_near'])} | {ms(r['pixels_far'])} "
              f"| {ms(r['untrained_near'])} | {ms(r['untrained_far'])} |")
