"""Quick-start: train a small detector on embedded data (CPU) for a few negative variants.

Runs ``python -m ssad.scoring.baselines experiment=demo`` (raw pixels and the untrained network, as built and with its
BatchNorm statistics measured, scored with the same Eq. 6), then ``python -m ssad.train experiment=demo
negatives=V`` for each variant V, side by side (:func:`train_side_by_side`; their training curves draw the baselines
as reference lines), prints per variant its losses and final metrics beside the baselines, says how far training
moved each OOD set against them, then runs ``python -m ssad.report`` on the sweep folder (tables with the baselines
as columns, figures).
Usage: ``python -m ssad.demo [variants...] [overrides...]``, e.g. ``python -m ssad.demo
none rot_indist data=fashion_mnist`` (every ``KEY=VALUE`` goes to both commands; ``experiment=NAME`` replaces the
quick-start preset, e.g. ``experiment=demo_shapes``).
"""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import yaml
from omegaconf import OmegaConf
from tqdm import tqdm

from ssad.cli.help import script_help, wants_help
from ssad.cli.outcome import below_untrained, below_untrained_note
from ssad.data.loaders import available_cpus
from ssad.data.sources import label_names
from ssad.report import main as report
from ssad.scoring.results import BASELINES, label_title
from ssad.scoring.summary import baseline_gains
from ssad.utils.tables import console_table, percent

VARIANTS = ["none", "rot_indist"]
DEMO_ARGUMENTS = [("VARIANT", f"a negatives preset to train (conf/negatives/; default: {' '.join(VARIANTS)}), side by "
                   "side"),
                  ("KEY=VALUE", "an override for both ssad.scoring.baselines and ssad.train, e.g. data=fashion_mnist"),
                  ("experiment=NAME", "replaces the quick-start preset experiment=demo, e.g. experiment=demo_shapes")]


BAR = re.compile(r"Epoch (\d+):\s+\d+%\|[^|]*\|\s*(\d+)/(\d+)")  # Lightning's progress bar: epoch, step/steps
BAR_CHARS = 200  # longer than the part of one bar update that BAR reads
TAIL_LINES = 30  # of a failed run's console output, printed
NOTE_EVERY_S = 30  # where the output is no terminal (a log, CI), a line of progress this often instead of bars


def run(cmd: list[str]) -> None:
    print("$", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def configured_epochs(config: Path) -> int | None:
    """``trainer.max_epochs`` of a run's ``.hydra/config.yaml``, or None while Hydra is still writing the file (one
    that does not end its last line yet may end in the middle of a number)."""
    try:
        text = config.read_text()
        return OmegaConf.select(OmegaConf.create(text), "trainer.max_epochs") if text.endswith("\n") else None
    except (OSError, yaml.YAMLError):
        return None


class RunProgress:
    """How much of its training a run has done (0 to 1): the last update of Lightning's epoch bar in the run's
    console output, read as the file grows (so the long bars of an evaluation on a large set do not hide it), over
    ``trainer.max_epochs`` of its ``.hydra/config.yaml`` (0 until both are there)."""

    def __init__(self, console: Path, run_dir: Path) -> None:
        self.console, self.config = console, run_dir / ".hydra" / "config.yaml"
        self.read, self.carry, self.last, self.max_epochs = 0, "", None, None

    def fraction(self) -> float:
        if self.console.is_file():
            with self.console.open("rb") as f:
                f.seek(self.read)
                new = f.read()
            self.read += len(new)
            text = self.carry + new.decode("utf-8", "replace")
            self.last = ([tuple(map(int, m)) for m in BAR.findall(text)] or [self.last])[-1]
            self.carry = text[-BAR_CHARS:]  # an update cut in two by this read is found whole by the next
        if self.max_epochs is None and self.config.is_file():
            self.max_epochs = configured_epochs(self.config)
        if self.last is None or self.max_epochs is None:
            return 0.0
        epoch, step, steps = self.last
        return min(1.0, (epoch + step / max(steps, 1)) / self.max_epochs)


def train_side_by_side(commands: dict[str, list[str]], run_dirs: dict[str, Path], console_dir: Path) -> None:
    """Run the training commands at the same time, as many as there are CPUs, each with its share of them as
    PyTorch threads: on 2 cores the quick-start's two single-threaded runs end 1.2× sooner than one after the
    other on 2 threads each (7.8 vs 9.2 min; a small CNN on batches of 32 gives a second thread little to do, and
    more threads than cores are slower still). Each run's console output goes to ``console_dir/NAME.log``; one bar
    per run shows its progress on a terminal, a line every :data:`NOTE_EVERY_S` seconds elsewhere. Every run ends
    before this returns; if any failed, prints the end of its output and exits with its exit code."""
    jobs = max(1, min(len(commands), available_cpus()))
    threads = str(max(1, available_cpus() // jobs))
    env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
    console_dir.mkdir(parents=True, exist_ok=True)
    for name, cmd in commands.items():
        print("$", " ".join(cmd), f"> {console_dir / name}.log", flush=True)
    waiting, running, failed, done = list(commands), {}, {}, dict.fromkeys(commands, 0)
    progress = {name: RunProgress(console_dir / f"{name}.log", run_dirs[name]) for name in commands}
    interactive, started, noted = sys.stderr.isatty(), time.time(), time.time()
    bars = {name: tqdm(total=100, desc=f"{name:<12}", position=i, disable=not interactive,
                       bar_format="{desc} {percentage:3.0f}%|{bar}| {elapsed}") for i, name in enumerate(commands)}
    try:
        while waiting or running:
            while waiting and len(running) < jobs:
                name = waiting.pop(0)
                with (console_dir / f"{name}.log").open("wb") as out:
                    running[name] = subprocess.Popen(commands[name], stdout=out, stderr=subprocess.STDOUT, env=env)
            time.sleep(1)
            for name in list(running):
                code = running[name].poll()
                done[name] = 100 if code == 0 else round(100 * progress[name].fraction())
                bars[name].update(done[name] - bars[name].n)
                if code is not None:
                    del running[name]
                    failed.update({name: code} if code else {})
            if not interactive and (time.time() - noted >= NOTE_EVERY_S or not running):
                noted = time.time()
                print(f"training {(noted - started) / 60:.1f} min: "
                      + ", ".join(f"{name} {pct}%" for name, pct in done.items()), flush=True)
    finally:
        for process in running.values():
            process.terminate()
        for bar in bars.values():
            bar.close()
    for name, code in failed.items():
        tail = (console_dir / f"{name}.log").read_text(errors="replace").splitlines()[-TAIL_LINES:]
        print(f"\n{name} failed (exit code {code}); the end of {console_dir / name}.log:", *tail, sep="\n")
    if failed:
        sys.exit(next(iter(failed.values())))


def _pct(x: float | None) -> str:
    return percent(x, missing="-")


def _curve(values: list[float] | None) -> str:
    return f"{values[0]:.2f}→{values[-1]:.2f}" if values else "-"


def epoch_losses(run_dir: Path) -> dict[str, list[float]]:
    """L_pos and L_neg epoch means, in epoch order, from the run's CSV log (``logger=csv``)."""
    path = run_dir / "csv" / "metrics.csv"
    rows = list(csv.DictReader(path.open())) if path.is_file() else []
    return {key: [float(r[f"train/{key}_epoch"]) for r in rows if r.get(f"train/{key}_epoch")]
            for key in ("L_pos", "L_neg")}


LABEL_WIDTH = 22  # the first column of the quick-start's tables (baselines and variants)
MIN_WIDTH = 6  # the narrowest AUROC column


def table(results: dict[str, dict], baselines: dict[str, dict], losses: dict[str, dict]) -> list[str]:
    """One row per baseline and variant: L_pos and L_neg (first→last epoch), AUROC per OOD set, average, kNN."""
    ood = list(next(iter(results.values()))["ood"])
    rows = [(label, baselines[k], {}) for k, label in BASELINES.items() if k in baselines]
    rows += [(k, v, losses[k]) for k, v in results.items()]
    cells = [[label, *((_curve(curves.get("L_pos")), _curve(curves.get("L_neg"))) if curves else ("", "")),
              *(_pct(res["ood"][n]["auroc"]) for n in ood), _pct(res["average"]["auroc"]),
              _pct(res.get("knn_accuracy"))] for label, res, curves in rows]
    return console_table(["", "L_pos", "L_neg", *ood, "average", "kNN"], cells, align=["<", *">" * (len(ood) + 4)],
                         min_widths=[LABEL_WIDTH, 11, 11, *[MIN_WIDTH] * len(ood), 7, 5],
                         gap=[" ", " ", *["  "] * (len(ood) + 2)], rule=False)


def by_label_tables(results: dict[str, dict], baselines: dict[str, dict],
                    names: dict[str, list[str]] | None = None) -> list[str]:
    """For each OOD set with labels: one row per baseline and variant, AUROC of each OOD label (which OOD classes
    every detector misses, e.g. a class that looks like an in-distribution one), labels named by ``names``
    (set → label names, the data spec's ``label_names``) where given."""
    rows = [(label, baselines[k]) for k, label in BASELINES.items() if k in baselines] + list(results.items())
    lines = []
    for name, by_label in next(iter(results.values())).get("auroc_by_label", {}).items():
        titles = [label_title(k, (names or {}).get(name)) for k in by_label]
        cells = [[label, *(_pct(res.get("auroc_by_label", {}).get(name, {}).get(k)) for k in by_label)]
                 for label, res in rows]
        lines += [f"\nAUROC (%) of {name} by label:",
                  *console_table(["", *titles], cells, align=["<", *">" * len(titles)],
                                 min_widths=[LABEL_WIDTH, *[MIN_WIDTH] * len(titles)], gap=" ", rule=False)]
    return lines


def new_sweep_dir(parent: Path, stamp: str) -> Path:
    """``parent/stamp``, or ``parent/stamp_2``, ``_3``, … when a demo started in the same second holds it: the folder
    is created here, so two demos started together never write into one folder."""
    parent.mkdir(parents=True, exist_ok=True)
    for n in range(1, 1000):
        candidate = parent / (stamp if n == 1 else f"{stamp}_{n}")
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            continue
    raise FileExistsError(f"{parent / stamp}: 999 demo folders with this time stamp; remove some of them")


def main(variants: list[str], overrides: list[str]) -> None:
    started = time.time()
    preset = next((a for a in overrides if a.startswith("experiment=")), "experiment=demo")
    overrides = [preset, *(a for a in overrides if not a.startswith("experiment="))]
    sweep_dir = new_sweep_dir(Path("outputs") / preset.removeprefix("experiment="), time.strftime("%Y-%m-%d_%H-%M-%S"))
    run([sys.executable, "-m", "ssad.scoring.baselines", *overrides, f"hydra.run.dir={sweep_dir}"])
    baselines_file = sweep_dir.resolve() / "baselines.json"
    train_side_by_side({v: [sys.executable, "-m", "ssad.train", *overrides, f"negatives={v}",
                            f"eval.baselines={baselines_file}", f"hydra.run.dir={sweep_dir / v}"] for v in variants},
                       {v: sweep_dir / v for v in variants}, sweep_dir / "console")
    results = {v: json.loads((sweep_dir / v / "results.json").read_text()) for v in variants}
    baselines = json.loads((sweep_dir / "baselines.json").read_text())
    print(f"\nQuick-start ({results[variants[0]]['dataset']}): AUROC (%) per OOD set, higher is better. "
          "L_pos / L_neg: epoch means, first → last epoch (L_neg: - for `none`, λ=0).")
    losses = {v: epoch_losses(sweep_dir / v) for v in variants}
    print("\n".join(table(results, baselines, losses)))
    print("Untrained: the teacher's initial weights, BatchNorm statistics (and the mean feature the small CNN "
          "subtracts) measured on the training images; "
          "Untrained as built: the teacher at step 0 (statistics at their initial 0 and 1).")
    for variant, res in results.items():  # a teacher that training made worse than its untrained network
        note = below_untrained_note(variant, below_untrained(res, baselines))
        if note:
            print(f"warning: {note}")
    run_config = OmegaConf.load(sweep_dir / variants[0] / ".hydra" / "config.yaml")
    print("\n".join(by_label_tables(results, baselines, label_names(run_config.data.ood))))
    print("\nAUROC points, trained teacher minus baseline:")
    print("\n".join(baseline_gains(results, baselines)))
    for variant, res in results.items():
        for warning in res.get("warnings") or []:
            print(f"\n{variant}: collapse warning {warning['code']}: {warning['message']}")
    untrained = baselines["untrained"]["ood"]
    if not any(m["auroc"] > untrained[name]["auroc"] for r in results.values() for name, m in r["ood"].items()):
        print("\nHere training beat the untrained network on no OOD set: README \"Is it learning?\" says what to "
              "look at (collapse warnings in results.json, plots/training_curves.png).")
    print(f"\nrun directories (results.json, metrics.jsonl, plots/, checkpoints/): {sweep_dir}; each run's console "
          f"output: {sweep_dir / 'console'}\n")
    report([str(sweep_dir)])
    print(f"\ndemo finished in {(time.time() - started) / 60:.1f} min")


if __name__ == "__main__":
    args = sys.argv[1:]
    if wants_help(args):
        print(script_help(__doc__, "python -m ssad.demo [VARIANT ...] [KEY=VALUE ...]",
                          "python -m ssad.demo none rot_indist data=fashion_mnist", DEMO_ARGUMENTS))
        sys.exit(0)
    main([a for a in args if "=" not in a] or VARIANTS, [a for a in args if "=" in a])
