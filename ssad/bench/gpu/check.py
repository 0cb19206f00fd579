"""Every GPU figure in one call (issue 38): ``python -m ssad.bench.gpu.check [--preset gpu|tiny] [--out FILE]``.

Sections, in order, each with a time budget (:mod:`ssad.bench.gpu.presets`): the training step loop at the
paper's setting beside the DINO-style reference with MFU and the ablation of each fast path; peak memory by batch;
bf16 against fp32 (L_pos, L_neg); ``trainer.fit`` of ``experiment=cifar10`` on synthetic CIFAR-shaped images; the
evaluation's share of an epoch; then the same with ``model=resnet18``. A section whose budget is spent stops and
keeps what it measured; one that does not fit in what is left of the check's deadline is skipped with a line saying
so. The JSON (``--out``) is written after every section, so a call always leaves it; then the printed table.
Exit status: 0 when no section failed (skipped and stopped sections included), 1 when one raised an error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from ssad.bench.gpu import sections as check_sections
from ssad.bench.gpu.budget import BudgetSpent, NotApplicable, hard_stop
from ssad.bench.gpu.presets import PRESETS, SECTIONS
from ssad.bench.gpu.sections import CheckContext, release
from ssad.bench.gpu.table import section_block, summary
from ssad.bench.run import bench_device
from ssad.cli.errors import ConfigError, MissingFileError, user_errors

RUNNERS = {"bench": check_sections.bench, "memory": check_sections.memory,
           "bf16_vs_fp32": check_sections.bf16_vs_fp32, "fit": check_sections.fit, "eval": check_sections.evaluation}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line; ``--preset`` defaults to ``gpu`` on a GPU and ``tiny`` on a CPU."""
    parser = argparse.ArgumentParser(prog="python -m ssad.bench.gpu.check", description=__doc__.split("\n")[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), help="gpu (default on a GPU) or tiny (default on a CPU)")
    parser.add_argument("--out", default="gpu_check.json", help="the JSON file (default: gpu_check.json)")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--threads", type=int, help="CPU threads of this process (default: the preset's)")
    parser.add_argument("--budget", action="append", default=[], metavar="SECTION=SECONDS",
                        help=f"a section's budget instead of the preset's (repeatable): {', '.join(SECTIONS)}")
    parser.add_argument("--deadline", type=float, help="seconds for the whole check (default: the preset's)")
    args = parser.parse_args(argv)
    if args.preset is None:
        args.preset = "gpu" if bench_device(args.device).type == "cuda" else "tiny"
    return args


def budgets(args: argparse.Namespace) -> dict[str, float]:
    """The preset's budgets with ``--budget`` applied."""
    out = dict(PRESETS[args.preset].budgets)
    for item in args.budget:
        name, _, value = item.partition("=")
        if name not in out:
            raise ConfigError(f"--budget {item}: no section {name!r}; sections: {', '.join(SECTIONS)}")
        try:
            out[name] = float(value)
        except ValueError:
            raise ConfigError(f"--budget {item}: {value!r} is not a number of seconds, e.g. --budget {name}=30"
                              ) from None
    return out


def run_section(ctx: CheckContext, name: str, budget: float, left: float) -> dict[str, Any]:
    """Run the section ``name`` within ``min(budget, left)`` seconds; its entry: status (ok, skipped, stopped,
    error), the reason for any but ok, seconds taken, the budget and the figures."""
    entry: dict[str, Any] = {"status": "ok", "reason": None, "budget_s": budget, "seconds": 0.0, "figures": {}}
    allowed = min(budget, left)
    if allowed <= 0:
        entry.update(status="skipped", reason=f"budget {budget:.0f} s" if budget <= 0 else
                     "the check's deadline was reached before it")
        return entry
    variant, _, kind = name.rpartition(".")
    start = time.monotonic()
    try:
        with hard_stop(allowed):
            RUNNERS[kind](ctx, variant + "." if variant else "", entry["figures"], start + allowed)
    except BudgetSpent as err:
        entry.update(status="stopped", reason=f"{err} ({allowed:.0f} s allowed); the figures measured before are kept")
    except NotApplicable as err:
        entry.update(status="skipped", reason=str(err))
    except Exception as err:
        text = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
        if time.monotonic() >= start + allowed:  # the stop broke off a call that then failed in its own way
            entry.update(status="stopped", reason=f"budget of {allowed:.0f} s spent, the call it stopped then "
                                                  f"raised {text}; the figures measured before are kept")
        else:
            traceback.print_exc()
            entry.update(status="error", reason=text)
    release()
    entry["seconds"] = time.monotonic() - start
    return entry


def write_json(path: Path, check: dict[str, Any]) -> None:
    """Write ``check`` to ``path`` whole (a temporary file renamed over it: never half a file)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(check, indent=2, default=str))
    os.replace(tmp, path)


def run_check(args: argparse.Namespace) -> dict[str, Any]:
    """Every section in order, the JSON rewritten after each and each section's block printed as it ends."""
    start = time.monotonic()
    preset, section_budgets = PRESETS[args.preset], budgets(args)
    deadline = preset.deadline if args.deadline is None else args.deadline
    out = Path(args.out)
    if not out.parent.is_dir():
        raise MissingFileError(f"--out {out}: the folder {out.parent} does not exist; create it or name another")
    if args.threads or preset.threads:
        torch.set_num_threads(args.threads or preset.threads)
    device = bench_device(args.device)
    torch.manual_seed(0)
    size = 32  # CIFAR's images, the size of every preset's data
    images = torch.randint(0, 256, (preset.synthetic_images, 3, size, size), dtype=torch.uint8)
    ctx = CheckContext(preset, device, images)
    check: dict[str, Any] = {
        "check": {"preset": preset.name, "device": torch.cuda.get_device_name(device) if ctx.cuda else "cpu",
                  "torch": torch.__version__, "deadline_s": deadline, "seconds": 0.0},
        "sections": {name: {"status": "pending", "reason": "not run yet", "budget_s": section_budgets[name],
                            "seconds": 0.0, "figures": {}} for name in SECTIONS},
    }
    write_json(out, check)
    for name in SECTIONS:
        entry = run_section(ctx, name, section_budgets[name], deadline - (time.monotonic() - start))
        check["sections"][name] = ctx.sections[name] = entry
        check["check"]["seconds"] = time.monotonic() - start
        write_json(out, check)
        print(section_block(name, entry), flush=True)
    print(summary(check), flush=True)
    print(f"written: {out}", flush=True)
    return check


@user_errors
def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the check; exit status 1 when a section raised an error (its traceback on stderr)."""
    check = run_check(parse_args(argv))
    failed = [name for name, e in check["sections"].items() if e["status"] == "error"]
    if failed and argv is None:
        print(f"error: section(s) {', '.join(failed)} failed; see their tracebacks above", file=sys.stderr)
        raise SystemExit(1)
    return check


if __name__ == "__main__":
    main()
