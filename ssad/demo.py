"""Quick-start: train a small detector on embedded data (CPU) for a few negative variants.

Runs ``python -m ssad.scoring.baselines experiment=demo`` (raw pixels and the untrained network, as built and with its
BatchNorm statistics measured, scored with the same Eq. 6), then one sweep ``python -m ssad.train --multirun
experiment=demo negatives=V1,V2,...`` through Hydra's joblib launcher, the variants in parallel, each with its share
of the CPU threads (:func:`train_sweep`; their training curves draw the baselines as reference lines), prints per
variant its losses and final metrics beside the baselines, says how far training moved each OOD set against them,
then runs ``python -m ssad.report`` on the sweep folder (tables with the baselines as columns, figures).
Usage: ``python -m ssad.demo [variants...] [overrides...]``, e.g. ``python -m ssad.demo
none rot_indist data=fashion_mnist`` (every ``KEY=VALUE`` goes to both commands; ``experiment=NAME`` replaces the
quick-start preset, e.g. ``experiment=demo_shapes``).
"""

from __future__ import annotations

import csv
import json
import os
import re
import shlex
import signal
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
DEMO_ARGUMENTS = [("VARIANT", f"a negatives preset to train (conf/negatives/; default: {' '.join(VARIANTS)}), in "
                   "parallel"),
                  ("KEY=VALUE", "an override for both ssad.scoring.baselines and ssad.train, e.g. data=fashion_mnist"),
                  ("experiment=NAME", "replaces the quick-start preset experiment=demo, e.g. experiment=demo_shapes")]


STEPS_LINE = re.compile(r"(\d+) optimiser steps an epoch")  # said in train.log when training starts
CSV_TAIL_BYTES = 8192  # of a job's csv/metrics.csv, read for its last logged step (several rows)
TAIL_LINES = 30  # of a failed job's train.log and of the sweep's console output, printed
NOTE_EVERY_S = 30  # where the output is no terminal (a log, CI), a line of progress this often instead of bars


def run(cmd: list[str]) -> None:
    """Run ``cmd`` in the foreground; where it fails, exit with its exit code."""
    print("$", shlex.join(cmd), flush=True)
    code = subprocess.run(cmd).returncode
    if code:
        sys.exit(code)


def configured_epochs(config: Path) -> int | None:
    """``trainer.max_epochs`` of a run's ``.hydra/config.yaml``, or None while Hydra is still writing the file (one
    that does not end its last line yet may end in the middle of a number)."""
    try:
        text = config.read_text()
        return OmegaConf.select(OmegaConf.create(text), "trainer.max_epochs") if text.endswith("\n") else None
    except (OSError, yaml.YAMLError):
        return None


def steps_per_epoch(train_log: Path) -> int | None:
    """Optimiser steps an epoch, as the run's ``train.log`` says when training starts (None before)."""
    try:
        found = STEPS_LINE.findall(train_log.read_text(errors="replace"))
    except OSError:
        return None
    return int(found[-1]) if found else None


def last_logged_step(metrics_csv: Path) -> int | None:
    """The last optimiser step in a run's CSV log (Lightning's CSVLogger, written at every logged step), read from
    the header and the file's last :data:`CSV_TAIL_BYTES`; rows the logger is still writing are skipped."""
    try:
        with metrics_csv.open("rb") as f:
            header = f.readline().decode("utf-8", "replace")
            body = f.tell()
            start = max(body, f.seek(0, os.SEEK_END) - CSV_TAIL_BYTES)
            f.seek(start)
            lines = f.read().decode("utf-8", "replace").split("\n")[:-1]  # the last piece is no whole line yet
    except OSError:
        return None
    columns = header.rstrip("\n").split(",")
    if not header.endswith("\n") or "step" not in columns:
        return None
    rows = [row for row in csv.reader(lines[1:] if start > body else lines) if len(row) == len(columns)]
    steps = [int(row[columns.index("step")]) for row in rows if row[columns.index("step")].isdigit()]
    return max(steps, default=None)


class RunProgress:
    """How much of its training a job of the sweep has done (0 to 1), read from its run folder as it grows: the last
    logged optimiser step of ``csv/metrics.csv`` over the run's steps (the steps an epoch that ``train.log`` states,
    × ``trainer.max_epochs`` of ``.hydra/config.yaml``); 0 until all three are there."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir, self.steps, self.max_epochs = run_dir, None, None

    def fraction(self) -> float:
        if self.max_epochs is None:
            self.max_epochs = configured_epochs(self.run_dir / ".hydra" / "config.yaml")
        if self.steps is None:
            self.steps = steps_per_epoch(self.run_dir / "train.log")
        step = last_logged_step(self.run_dir / "csv" / "metrics.csv")
        if step is None or not self.steps or not self.max_epochs:
            return 0.0
        return min(1.0, (step + 1) / (self.steps * self.max_epochs))


def sweep_command(variants: list[str], overrides: list[str], sweep_dir: Path, n_jobs: int) -> list[str]:
    """``python -m ssad.train --multirun`` over the variants (``negatives=V1,V2,...``) through Hydra's joblib
    launcher, ``n_jobs`` at a time, each job in ``sweep_dir/V`` (the negatives preset's name)."""
    return [sys.executable, "-m", "ssad.train", "--multirun", *overrides, f"negatives={','.join(variants)}",
            "hydra/launcher=joblib", f"hydra.launcher.n_jobs={n_jobs}", f"hydra.sweep.dir={sweep_dir}",
            "hydra.sweep.subdir=${hydra:runtime.choices.negatives}"]


def console_tail(console: Path, lines: int = TAIL_LINES) -> list[str]:
    """The last ``lines`` lines of a console output, each as a terminal shows it (the text after its last ``\\r``:
    a progress bar's final state, not every update)."""
    text = console.read_bytes().decode("utf-8", "replace") if console.is_file() else ""  # its \r kept as they are
    shown = [line.rsplit("\r", 1)[-1] for line in text.split("\n")]
    return [line for line in shown if line.strip()][-lines:]


def train_sweep(cmd: list[str], run_dirs: dict[str, Path], console: Path) -> None:
    """Run the sweep command (:func:`sweep_command`; its console output, every job's, to ``console``) and show each
    job's progress from its run folder (:class:`RunProgress`): a bar per job on a terminal, a line every
    :data:`NOTE_EVERY_S` seconds elsewhere. Returns once the sweep ended and every job wrote its ``results.json``;
    otherwise prints the end of each unfinished job's ``train.log`` and of the console output and exits with the
    sweep's exit code (1 where it was 0)."""
    print("$", shlex.join(cmd), f"> {console}", flush=True)
    progress = {name: RunProgress(run_dir) for name, run_dir in run_dirs.items()}
    done = dict.fromkeys(run_dirs, 0)
    interactive, started, noted = sys.stderr.isatty(), time.time(), time.time()
    bars = {name: tqdm(total=100, desc=f"{name:<12}", position=i, disable=not interactive,
                       bar_format="{desc} {percentage:3.0f}%|{bar}| {elapsed}") for i, name in enumerate(run_dirs)}
    with console.open("wb") as out:  # its own session: an interrupted demo ends the launcher's workers too
        sweep = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        while True:
            time.sleep(1)
            ended = sweep.poll() is not None
            for name, run_dir in run_dirs.items():
                finished = (run_dir / "results.json").is_file()  # never back: a log being rewritten reads as 0
                done[name] = 100 if finished else max(done[name], round(100 * progress[name].fraction()))
                bars[name].update(done[name] - bars[name].n)
            if not interactive and (ended or time.time() - noted >= NOTE_EVERY_S):
                noted = time.time()
                print(f"training {(noted - started) / 60:.1f} min: "
                      + ", ".join(f"{name} {pct}%" for name, pct in done.items()), flush=True)
            if ended:
                break
    finally:
        if sweep.poll() is None:
            os.killpg(sweep.pid, signal.SIGTERM)
            sweep.wait()
        for bar in bars.values():
            bar.close()
    unfinished = [name for name, run_dir in run_dirs.items() if not (run_dir / "results.json").is_file()]
    if sweep.returncode == 0 and not unfinished:
        return
    for name in unfinished:
        log = run_dirs[name] / "train.log"
        print(f"\n{name} did not finish; the end of {log}:", *console_tail(log), sep="\n")
    print(f"\nthe sweep ended with exit code {sweep.returncode}; the end of its console output {console}:",
          *console_tail(console), sep="\n")
    sys.exit(sweep.returncode or 1)


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
    n_jobs = max(1, min(len(variants), available_cpus()))  # each job torch threads = CPUs // n_jobs (JobThreads)
    train_sweep(sweep_command(variants, [*overrides, f"eval.baselines={baselines_file}"], sweep_dir, n_jobs),
                {v: sweep_dir / v for v in variants}, sweep_dir / "console.log")
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
    print(f"\nrun directories (results.json, metrics.jsonl, train.log, plots/, checkpoints/): {sweep_dir}; the "
          f"training sweep's console output: {sweep_dir / 'console.log'}\n")
    report([str(sweep_dir)])
    print(f"\ndemo finished in {(time.time() - started) / 60:.1f} min")


if __name__ == "__main__":
    args = sys.argv[1:]
    if wants_help(args):
        print(script_help(__doc__, "python -m ssad.demo [VARIANT ...] [KEY=VALUE ...]",
                          "python -m ssad.demo none rot_indist data=fashion_mnist", DEMO_ARGUMENTS))
        sys.exit(0)
    main(list(dict.fromkeys(a for a in args if "=" not in a)) or VARIANTS, [a for a in args if "=" in a])
