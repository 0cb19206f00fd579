"""``python -m ssad.report SWEEP_DIR_OR_WANDB_PROJECT``: collect the runs, write the tables and figures, print
the Markdown tables."""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Sequence
from pathlib import Path

from ssad.cli.errors import InputError, MissingFileError, user_errors
from ssad.cli.outcome import report_notes
from ssad.report.figures import figure2, figure3
from ssad.report.leaderboard import build_group_tables, write_group_tables
from ssad.report.oneclass import build_oneclass_tables, write_oneclass_tables
from ssad.report.runs import Run, collect_runs, collect_wandb
from ssad.report.tables import build_tables, write_tables
from ssad.scoring.results import BASELINES, METRICS
from ssad.utils.files import check_writable


def empty_tables_reason(runs: Sequence[Run]) -> str | None:
    """Why the tables hold no measured OOD metric (every cell ``—`` or ``missing``), and how to get one; None when
    some run has one."""
    finished = [r for r in runs if r.results is not None]
    if any((r.results or {}).get("ood") for r in finished):
        return None
    if not finished:
        return (f"the tables are empty: none of the {len(runs)} runs has a results.json yet (unfinished or failed; "
                "a run writes it after its last epoch)")
    add = ("train with OOD sets: +data.ood.NAME='{format: image_folder, path: /data/other_images}' (or a data "
           "preset that has them, e.g. data=cifar10)")
    if not any(r.planned_ood for r in finished):
        return (f"the tables are empty: none of the {len(finished)} finished runs was given an OOD set (data.ood is "
                f"empty in their .hydra/config.yaml), so there is no AUROC to put in them; {add}")
    return (f"the tables are empty: the {len(finished)} finished runs have OOD sets but no OOD metrics, which needs an "
            "in-distribution test set as well (data.test, or data.holdout=0.1 to hold out 10% of the training "
            "images)")


def variant_runs(runs: Sequence[Run]) -> list[Run]:
    """The runs that Tables 1 and 2, the OOD-group tables and the figures are made of: all but the one-class runs
    (``data.normal_class``, reported in ``oneclass.*`` only) and their baselines."""
    return [r for r in runs if r.normal_class is None]


def print_tables(paths: Sequence[Path]) -> None:
    """Print the Markdown tables among the report's ``paths``."""
    for path in paths:
        if path.suffix == ".md":
            print(path.read_text(), flush=True)


def write_report(runs: Sequence[Run], out: str | os.PathLike, metric: str = "auroc") -> list[Path]:
    """Write the tables (Markdown, LaTeX, CSV) and figures (PNG) of ``runs`` to ``out``; returns the paths. Empty
    tables say why in their notes (:func:`empty_tables_reason`). Runs that group their OOD sets
    (``data.ood_groups``, e.g. ``data=openood_cifar10``) add ``ood_groups.*``: each group's mean AUROC beside the
    OpenOOD v1.5 leaderboard. One-class runs (``data.normal_class``) go to ``oneclass.*`` only: a sweep of them
    alone writes no Table 1 or 2 and no figures, whose rows and points would mix the normal classes."""
    out = Path(out)
    paths = write_oneclass_tables(build_oneclass_tables(list(runs)), out)  # runs of data.normal_class: oneclass.*
    variants = variant_runs(runs)
    if all(r.variant in BASELINES for r in variants):
        if paths:
            return paths
        variants = list(runs)  # one-class runs without a folder to read (W&B): the tables as they come
    table2, table1 = build_tables(variants, metric)
    reason = empty_tables_reason(variants)
    if reason:
        table2.notes.append(f"Note: {reason}.")
    table2.notes += report_notes(variants)  # a trained teacher below its untrained network, in plain words
    paths = (write_tables([table2], out, "table2") + (write_tables(table1, out, "table1") if table1 else [])
             + write_group_tables(build_group_tables(variants), out) + paths)
    return paths + [figure2(variants, table2.in_dist, out / "figure2.png"),
                    figure3(variants, table2.in_dist, out / "figure3.png")]


def looks_like_wandb_project(source: str) -> bool:
    """Whether ``source`` (not a path that exists) reads as a W&B ``entity/project`` rather than a folder: one
    slash between two names, and no folder of that first name here."""
    entity, slash, project = source.partition("/")
    return (bool(slash) and bool(re.fullmatch(r"[\w.-]+", entity)) and bool(re.fullmatch(r"[\w.-]+", project))
            and entity not in (".", "..") and not Path(entity).is_dir())


@user_errors
def main(argv: Sequence[str] | None = None) -> None:
    """``ssad-report SWEEP_DIR_OR_WANDB_PROJECT [--out DIR] [--metric auroc]``: write the report, print the
    Markdown tables; exits with a message when there is nothing to report."""
    parser = argparse.ArgumentParser(prog="ssad-report", description="Write the paper's Tables 1 and 2 "
                                     "(Markdown, LaTeX, CSV), near-/far-OOD averages beside OpenOOD v1.5 for runs "
                                     "that group their OOD sets, and Figures 2 and 3 (PNG) from a sweep's runs.")
    parser.add_argument("source", metavar="SWEEP_DIR_OR_WANDB_PROJECT",
                        help="a sweep (or run) directory, or a W&B project entity/project")
    parser.add_argument("--out", help="output directory (default: SWEEP_DIR/report, or "
                                      "report/<entity>_<project> for W&B)")
    parser.add_argument("--metric", choices=list(METRICS), default="auroc", help="metric of the tables")
    args = parser.parse_args(argv)
    local = Path(args.source).exists()
    if not local and not looks_like_wandb_project(args.source):
        raise MissingFileError(f"{args.source}: no such folder; give a sweep or run folder (e.g. "
                               "multirun/demo/<date>) or a W&B project as entity/project")
    if local and not Path(args.source).is_dir():
        raise InputError(f"{args.source} is a file; give the sweep or run folder that holds the runs")
    default_out = Path(args.source) / "report" if local else Path("report") / args.source.replace("/", "_")
    out = Path(args.out) if args.out else default_out
    check_writable(out / "table2.md", "--out")  # before the runs are read
    try:
        runs = collect_runs(args.source) if local else collect_wandb(args.source)
    except FileNotFoundError as err:
        raise InputError(str(err)) from err
    except (OSError, ValueError) as err:
        raise InputError(f"{args.source}: {err}") from err
    paths = write_report(runs, out, args.metric)
    print_tables(paths)
    missing = sum(r.results is None for r in runs)
    baselines = len({r.variant for r in runs if r.variant in BASELINES})  # per seed too: counted once
    trained = sum(r.variant not in BASELINES for r in runs)
    counted = (f"{trained} run{'s' * (trained != 1)}"
               + (f" + {baselines} baseline{'s' * (baselines != 1)}" if baselines else ""))
    print(f"{counted} ({missing} missing); wrote", *map(str, paths), sep="\n  ")
    reason = empty_tables_reason(variant_runs(runs) or runs) if any(p.stem == "table2" for p in paths) else None
    if reason:
        print(f"note: {reason}")
