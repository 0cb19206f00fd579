"""The printed report of the benchmark's figures (:func:`ssad.bench.run.benchmark`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ssad.bench.flops import FLOP_METHODS
from ssad.bench.presets import EVAL_IMAGES, VIT
from ssad.bench.step import PHASES
from ssad.utils.tables import console_table, share

LABEL_WIDTH, CELL_WIDTH = 40, 18  # the training columns' layout
REFERENCE_TEXT = (" · reference: fp32 eager, {attention}plain AdamW, one backbone call per resolution "
                  "as DINO, PIL multi-crop in DataLoader workers on all cores")


def format_table(r: dict[str, Any]) -> str:
    """The report: a header, ssad's (and the reference's) training columns, then one line per further figure."""
    runs = [r["ssad"], *([r["reference"]] if "reference" in r else [])]

    def row(label: str, cell: Callable[[dict[str, Any]], str]) -> list[str]:
        return [label, *(cell(run) for run in runs)]

    def phase_share(ms: float, total: float) -> str:
        return f"{ms:.1f} ({share(ms / total, 0)})"

    on = [lever for lever, value in r["fast_paths"].items() if value]
    reference_text = REFERENCE_TEXT.format(attention="unfused attention, " if r["backbone"] == VIT else "")
    memory = "peak device memory MiB" if r["device"] != "cpu" else "peak memory MiB (process RSS)"
    training = console_table(None, [
        row("", lambda run: "ssad" if run is r["ssad"] else "reference"),
        row("training images/s", lambda run: f"{run['images_per_s']:.1f}"),
        row("step ms", lambda run: f"{run['step_ms']:.1f}"),
        *(row(f"  {phase} ms (share)", lambda run, p=phase: phase_share(run["phase_ms"][p], run["step_ms"]))
          for phase in PHASES),
        row(memory, lambda run: f"{run['peak_memory_mib']:.0f}"),
        row("MFU (of the device's dense peak)", lambda run: share(run["mfu"])),
    ], align=["<", *">" * len(runs)], min_widths=[LABEL_WIDTH, *[CELL_WIDTH] * len(runs)], gap="", rule=False)
    lines = [
        f"ssad bench · preset {r['preset']} · {r['backbone']} · {r['device']} · batch {r['batch_size']} · "
        f"{r['steps']} timed steps after {r['warmup']} warm-up · overrides: {' '.join(r['overrides']) or 'none'}",
        f"ssad: {', '.join(on) or 'no fast path'}" + (reference_text if len(runs) > 1 else ""),
        f"FLOPs per image: {r['flops_per_image'] / 1e9:.4g} GFLOP = student fwd+bwd on all views + teacher fwd "
        f"on the positive globals; counted by the {FLOP_METHODS[r['flops_method']]}",
        "",
        *training,
        "",
    ]
    if "fit" in r:
        f = r["fit"]
        lines += [f"trainer.fit (DataLoaders, Lightning loop, logging): {f['images_per_s']:.1f} images/s, "
                  f"{f['step_ms']:.1f} ms per step ({share(f['of_step_loop'], 0)} of the step loop's images/s)"]
    if "reference" in r:
        c = r["cpu_crops_per_s"]
        lines += [f"speed-up ssad / reference: {r['speedup']:.2f}×",
                  f"CPU augmentation, 1 thread, same views: ssad {c['ssad']:.0f} crops/s, PIL {c['pil']:.0f} "
                  f"crops/s (ratio {c['ratio']:.2f})"]
    e, s = r["eval"], r["scoring"]
    lines += [
        f"evaluation: {e['images_per_s']:.1f} images/s (features.extract, batch {e['batch_size']}, "
        f"MFU {share(e['mfu'])})",
        f"Eq. 6 scoring {s['queries']} queries × {s['bank']} bank × {s['dim']}: {s['seconds']:.3f} s",
        f"whole CIFAR10 evaluation ({EVAL_IMAGES} images extracted and scored) / training epoch "
        f"({'trainer.fit' if 'fit' in r else 'step loop'}): {share(r['evaluation_over_epoch'])}",
    ]
    lines += [f"ablation {lever:<18}{ips:10.1f} images/s ({ips / r['ssad']['images_per_s']:.2f}× the above)"
              for lever, ips in r.get("ablation", {}).items()]
    return "\n".join(lines)
