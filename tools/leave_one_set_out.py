"""Leave-one-set-out choice of the CPU recipe (docs/results/cpu-recipe.md): train one recipe on five labelled sets ×
three seeds through the documented commands, score every run's teacher in several feature views and OOD scores, and
for each set in turn pick the option that does best on the other four, then report it on the held-out one beside raw
pixels and the untrained network scored the same way.

    python tools/leave_one_set_out.py train  --sets SETS --out OUT [--recipe quickstart] [--seeds 0 1 2] [--jobs 2]
    python tools/leave_one_set_out.py score  --sets SETS --out OUT [--recipe quickstart]
    python tools/leave_one_set_out.py select --out OUT [--recipe quickstart ...]
    python tools/leave_one_set_out.py detail --out OUT --option "1.5f+grid2/u/nn" [--recipe quickstart]

SETS holds the class-split arrays of MNIST (``SETS/mnist``, tools/make_mnist_arrays.py) and of the animal silhouettes
(``SETS/animals``, tools/make_animal_arrays.py); the digits, the letters and the clothes are embedded. ``train``
skips runs that finished (their ``results.json`` exists), so it resumes.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

RECIPES: dict[str, list[str]] = {
    "quickstart": ["experiment=demo", "negatives=rot_indist"],
    "frozen2": ["experiment=demo", "negatives=rot_indist", "model.backbone.frozen_blocks=2"],
}
SETS = ("digits", "letters", "clothes", "mnist", "silhouettes")


def class_split(folder: Path, far: Path) -> list[str]:
    """The class-split command line (docs/reference/datasets.md): classes 0–4 in-distribution, 5–9 near-OOD."""
    x, y = folder / "tr_x.npy", folder / "tr_y.npy"
    tx, ty = folder / "te_x.npy", folder / "te_y.npy"
    return ["data=folder", f"data.train={{format: npy, path: {x}, labels: {y}, classes: [0,1,2,3,4]}}",
            f"data.test={{format: npy, path: {tx}, labels: {ty}, classes: [0,1,2,3,4]}}", "data.holdout=0",
            f"+data.ood.near={{format: npy, path: {tx}, labels: {ty}, classes: [5,6,7,8,9]}}",
            f"+data.ood.far={{format: npy, path: {far}}}"]


def set_overrides(name: str, sets: Path) -> list[str]:
    """The data overrides of one of the five sets."""
    embedded = {"digits": "data=digits", "letters": "data=glyphs", "clothes": "data=fashion_mnist_subset"}
    if name in embedded:
        return [embedded[name]]
    if name == "mnist":
        return class_split(sets / "mnist", sets / "animals" / "te_x.npy")
    return class_split(sets / "animals", sets / "mnist" / "te_x.npy")


def run_dir(out: Path, recipe: str, name: str, seed: int) -> Path:
    return out / recipe / name / f"seed{seed}"


def train(args: argparse.Namespace) -> None:
    """Every (set, seed) of one recipe, ``--jobs`` runs at a time, each with its share of the threads."""
    env = {**os.environ, "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 2) // args.jobs))}
    jobs = [(name, seed) for seed in args.seeds for name in SETS
            if not (run_dir(args.out, args.recipe, name, seed) / "results.json").is_file()]

    def one(job: tuple[str, int]) -> int:
        name, seed = job
        folder = run_dir(args.out, args.recipe, name, seed)
        folder.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "ssad.train", *RECIPES[args.recipe], *set_overrides(name, args.sets),
               f"seed={seed}", "eval.baselines=auto", "logger=none", f"hydra.run.dir={folder}"]
        with open(folder / "train.log", "w") as log:
            code = subprocess.call(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        print(f"{args.recipe} {name} seed {seed}: exit {code}", flush=True)
        return code

    with ThreadPoolExecutor(args.jobs) as pool:
        codes = list(pool.map(one, jobs))
    if any(codes):
        sys.exit(1)


def score(args: argparse.Namespace) -> None:
    """``OUT/RECIPE/scores.json``: near and far AUROC of every run for every option, trained, untrained, pixels."""
    from leave_one_set_out_views import score_run  # noqa: PLC0415  (torch and ssad only for this step)

    path = args.out / args.recipe / "scores.json"
    table = json.loads(path.read_text()) if path.is_file() else {}
    for name, seed in itertools.product(SETS, args.seeds):
        key = f"{name}/{seed}"
        folder = run_dir(args.out, args.recipe, name, seed)
        if key in table or not (folder / "results.json").is_file():
            continue
        table[key] = score_run(folder)
        path.write_text(json.dumps(table, indent=1))
        print(f"scored {args.recipe} {key}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("step", choices=["train", "score", "select", "detail"])
    parser.add_argument("--option", default="1.5f+grid2/u/nn", help="view/centring/score, for detail")
    parser.add_argument("--sets", type=Path, default=Path("sets"))
    parser.add_argument("--out", type=Path, default=Path("runs/loso"))
    parser.add_argument("--recipe", nargs="+", default=["quickstart"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    if args.step == "select":
        from leave_one_set_out_views import select  # noqa: PLC0415

        select(args.out, args.recipe)
        return
    if args.step == "detail":
        from leave_one_set_out_views import detail  # noqa: PLC0415

        for recipe in args.recipe:
            detail(args.out, recipe, args.option)
        return
    for recipe in args.recipe:
        if recipe not in RECIPES:
            sys.exit(f"error: unknown recipe {recipe!r}; one of {', '.join(RECIPES)}")
        args_one = argparse.Namespace(**{**vars(args), "recipe": recipe})
        train(args_one) if args.step == "train" else score(args_one)


if __name__ == "__main__":
    main()
