"""What a training run or an export ends on: the detector's AUROC per OOD set beside raw pixels and the untrained
network on the same images, plain-word warnings where the detector is not above them, and the next command.

The baselines are the run's ``baselines.json`` (:mod:`ssad.scoring.baselines`, written by ``ssad.train`` with
``eval.baselines=auto``): raw pixels and the untrained network scored with the same Eq. 6 on the same test and OOD
images. Why every result carries them: docs/explanation/baselines.md.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

RAW, UNTRAINED = "raw_pixels", "untrained"
TITLES = {RAW: "raw pixels", UNTRAINED: "untrained network"}
PERFECT = 0.995  # an AUROC no baseline can be meaningfully above
ADVICE = ("more epochs (trainer.max_epochs), another negative variant (negatives=...), or see "
          "docs/howto/is-it-learning.md")


def read_baselines(path: str | Path | None) -> dict[str, Any] | None:
    """The baselines of a ``baselines.json`` (None when there is none or it cannot be read)."""
    if path is None or not Path(path).is_file():
        return None
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def compare(aurocs: Mapping[str, float], baselines: Mapping[str, Any]) -> dict[str, dict[str, float | None]]:
    """Per OOD set of ``aurocs`` (set → the detector's AUROC): the detector's and each baseline's AUROC on it (None
    where the baseline did not score that set)."""
    table = {}
    for name, auroc in aurocs.items():
        row: dict[str, float | None] = {"detector": float(auroc)}
        for key in (RAW, UNTRAINED):
            scored = ((baselines.get(key) or {}).get("ood") or {}).get(name) or {}
            row[key] = float(scored["auroc"]) if "auroc" in scored else None
        table[name] = row
    return table


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def comparison_lines(table: Mapping[str, Mapping[str, float | None]], who: str = "detector") -> list[str]:
    """The table (AUROC % per set: ``who``, raw pixels, untrained network), then one warning in plain words per set
    where ``who`` is not above raw pixels or is below the untrained network, with what to try."""
    if not table:
        return []
    width = max(len("OOD set"), *map(len, table))
    lines = ["AUROC (%) beside the baselines on the same images (docs/explanation/baselines.md):",
             f"  {'OOD set':<{width}}  {who:>10}  {'raw pixels':>10}  {'untrained network':>17}"]
    lines += [f"  {name:<{width}}  {_pct(row['detector']):>10}  {_pct(row[RAW]):>10}  {_pct(row[UNTRAINED]):>17}"
              for name, row in table.items()]
    lines += warnings(table, who)
    return lines


def warnings(table: Mapping[str, Mapping[str, float | None]], who: str = "detector") -> list[str]:
    """Plain-word warnings, one per OOD set where ``who`` ends below its untrained network (training made it worse)
    or is not above raw pixels (comparing the images pixel by pixel separates them as well), then what to try. A set
    that ``who`` separates all but perfectly (AUROC >= :data:`PERFECT`) is not warned about."""
    found = []
    for name, row in table.items():
        mine, raw, untrained = row["detector"], row[RAW], row[UNTRAINED]
        if mine is None or mine >= PERFECT:
            continue
        facts = []
        if untrained is not None and mine < untrained:
            facts.append(f"ends below the untrained network ({_pct(untrained)}): training made it worse")
        if raw is not None and mine <= raw:
            facts.append(f"is not above raw pixels ({_pct(raw)}): comparing the images pixel by pixel separates them "
                         "as well")
        if facts:
            found.append(f"warning: on {name} the {'trained ' if who == 'teacher' else ''}{who} ({_pct(mine)}) "
                         + "; it ".join(facts) + ".")
    return [*found, f"  what to try: {ADVICE}."] if found else []


def below_untrained(results: Mapping[str, Any], baselines: Mapping[str, Any] | None) -> list[str]:
    """The OOD sets on which a run's trained teacher (``results``: its results.json) ends below its untrained
    network (``baselines``: its baselines.json)."""
    untrained = ((baselines or {}).get(UNTRAINED) or {}).get("ood") or {}
    return [name for name, metrics in (results.get("ood") or {}).items()
            if name in untrained and metrics.get("auroc") is not None
            and metrics["auroc"] < untrained[name].get("auroc", float("-inf"))]


def below_untrained_note(variant: str, sets: list[str]) -> str | None:
    """One sentence saying that a run's trained teacher ends below its untrained network on ``sets``."""
    if not sets:
        return None
    return (f"{variant}: the trained teacher ends below its untrained network on {', '.join(sets)} (training made it "
            f"worse there; {ADVICE}).")


def checkpoint_for_export(run_dir: str | Path) -> Path | None:
    """The checkpoint a user exports: ``checkpoints/last.ckpt`` of the run, else its newest checkpoint."""
    folder = Path(run_dir) / "checkpoints"
    last = folder / "last.ckpt"
    if last.is_file():
        return last
    found = sorted(folder.glob("*.ckpt"), key=lambda p: p.stat().st_mtime) if folder.is_dir() else []
    return found[-1] if found else None


def next_step(run_dir: str | Path) -> str | None:
    """The command that turns the run into a detector file, with the run's real checkpoint path."""
    ckpt = checkpoint_for_export(run_dir)
    if ckpt is None:
        return None
    return f"next: make a detector file of it:\n  python -m ssad.export ckpt={ckpt} out=detector.pt"


def training_end(results: Mapping[str, Any], baselines: Mapping[str, Any] | None, run_dir: str | Path) -> str:
    """What ``ssad.train`` ends on: the final AUROCs beside the baselines with the warnings (when the run has OOD
    sets and baselines), then the export command."""
    lines = []
    aurocs = {name: m["auroc"] for name, m in (results.get("ood") or {}).items() if m.get("auroc") is not None}
    if aurocs and baselines:
        lines += comparison_lines(compare(aurocs, baselines), "teacher")
    elif aurocs:
        lines.append("no baselines to compare with (eval.baselines=auto measures raw pixels and the untrained "
                     "network on the same images)")
    step = next_step(run_dir)
    return "\n".join([*lines, *([step] if step else [])])


def run_baselines_file(ckpt: str | Path, value: str | None) -> Path | None:
    """The ``baselines.json`` of the run a checkpoint belongs to: the one its ``eval.baselines`` named, else one in
    its run folder (``<run>/checkpoints/x.ckpt`` → ``<run>/baselines.json``); None when there is none."""
    from ssad.scoring.results import BASELINES_FILE, baselines_path

    run_dir = Path(ckpt).resolve().parent.parent
    for path in (baselines_path(value, run_dir), run_dir / BASELINES_FILE):
        if path is not None and path.is_file():
            return path
    return None


def export_lines(meta: Mapping[str, Any]) -> list[str]:
    """What ``ssad.export`` adds to its report: the detector's AUROC beside the baselines (``meta["baselines"]``)
    with the warnings, or how to measure the baselines when the run has OOD sets but none were found."""
    if meta.get("baselines"):
        return comparison_lines(meta["baselines"])
    if meta.get("held_out_quality"):
        return ["no baselines to compare with: train with eval.baselines=auto (or run python -m "
                "ssad.scoring.baselines with the run's overrides) to see the detector beside raw pixels and the "
                "untrained network"]
    return []


def report_notes(runs: Sequence[Any]) -> list[str]:
    """For ``ssad.report``: a note per trained run (``runs``: :class:`ssad.report.runs.Run`) whose teacher ends below
    the untrained network of its in-distribution set on some OOD set."""
    untrained = {r.dataset: r.results for r in runs if r.variant == UNTRAINED and r.results}
    notes = []
    for run in runs:
        if run.variant in (RAW, UNTRAINED, "untrained_as_built") or not run.results or run.dataset not in untrained:
            continue
        note = below_untrained_note(f"{run.variant} (seed {run.seed})",
                                    below_untrained(run.results, {UNTRAINED: untrained[run.dataset]}))
        notes += [f"Note: {note}"] if note else []
    return notes
