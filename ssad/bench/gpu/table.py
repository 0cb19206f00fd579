"""The printed report of the GPU check: one block per section (its header ``== NAME``, its status and figures),
then a summary line per section."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from ssad.utils.tables import console_table, share

TITLES = {
    "bench": "training step loop: ssad beside the DINO-style reference, MFU, ablation",
    "memory": "peak memory of a training step by batch",
    "bf16_vs_fp32": "bf16 against fp32: L_pos and L_neg over the same steps",
    "fit": "trainer.fit on synthetic CIFAR-shaped uint8 images",
    "eval": "evaluation: features and Eq. 6 scoring against one epoch",
}


def title(name: str) -> str:
    """A section's title: its kind's, with ``(model=resnet18)`` for the ResNet-18 repeats."""
    variant, _, kind = name.rpartition(".")
    return TITLES[kind] + (f" (model={variant})" if variant else "")


def header(name: str, entry: dict[str, Any]) -> str:
    """``== NAME: title [status, seconds of budget]``."""
    return f"== {name}: {title(name)} [{entry['status']}, {entry['seconds']:.1f} s of {entry['budget_s']:.0f} s]"


def _num(value: float | None, spec: str = ".1f") -> str:
    return "n/a" if value is None else format(value, spec)


def _bench(f: dict[str, Any]) -> list[str]:
    runs = [("ssad", f["ssad"]), *([("reference", f["reference"])] if "reference" in f else [])]

    def row(label: str, cell: Callable[[dict[str, Any]], str]) -> list[str]:
        return [label, *(cell(run) for _, run in runs)]

    lines = [f"  {f['backbone']} · batch {f['batch_size']} · {f['steps']} steps after {f['warmup']} · "
             f"{f['flops_per_image'] / 1e9:.4g} GFLOP per image ({f['flops_method']})",
             *console_table(None, [
                 row("", lambda run: next(name for name, r in runs if r is run)),
                 row("training images/s", lambda run: _num(run["images_per_s"])),
                 row("step ms", lambda run: _num(run["step_ms"])),
                 row("augmentation share of a step",
                     lambda run: share(run["phase_ms"]["augmentation"] / run["step_ms"])),
                 row("peak memory MiB", lambda run: _num(run["peak_memory_mib"], ".0f")),
                 row("MFU", lambda run: share(run["mfu"]))],
                 align=["<", *">" * len(runs)], min_widths=[34, *[14] * len(runs)], gap="", rule=False, indent="  ")]
    if "speedup" in f:
        c = f["cpu_crops_per_s"]
        lines += [f"  speed-up ssad / reference: {f['speedup']:.2f}×; CPU augmentation (1 thread): ssad "
                  f"{c['ssad']:.0f} crops/s, PIL {c['pil']:.0f} ({c['ratio']:.2f}×)"]
    for lever, run in f.get("ablation", {}).items():
        lines.append(f"  ablation {lever:<20}" + (f"skipped: {run['skipped']}" if "skipped" in run else
                                                   f"{run['images_per_s']:10.1f} images/s ({run['of_ssad']:.2f}×)"))
    return lines


def _memory(f: dict[str, Any]) -> list[str]:
    lines = [f"  measured: {f['measure']}"]
    lines += [f"  batch {b:>5}: {r['peak_memory_mib']:10.0f} MiB, {r['images_per_s']:.1f} images/s"
              for b, r in f["batches"].items()]
    if "stopped_by" in f:
        lines.append(f"  batch {f['stopped_by']['batch']} does not fit: {f['stopped_by']['error']}")
    if "largest_fitting" in f:
        lines.append(f"  largest batch that fits: {f['largest_fitting']}")
    return lines


def _precision(f: dict[str, Any]) -> list[str]:
    lines = [f"  {f['steps']} steps compared"]
    for name in ("L_pos", "L_neg"):
        if name in f:
            r = f[name]
            lines.append(f"  {name}: first step bf16 {r['bf16'][0]:.5f} fp32 {r['fp32'][0]:.5f}, last step bf16 "
                         f"{r['bf16'][-1]:.5f} fp32 {r['fp32'][-1]:.5f}; largest relative difference "
                         f"{share(r['max_relative_difference'])}")
    return lines


def _fit(f: dict[str, Any]) -> list[str]:
    return [f"  {f['backbone']} · batch {f['batch_size']} · {f['timed_steps']} timed batches after {f['warmup']}",
            f"  {f['images_per_s']:.1f} images/s, {f['step_ms']:.1f} ms per step, outside the model: "
            f"{share(f['outside_model_share'])} of a step"]


def _eval(f: dict[str, Any]) -> list[str]:
    e, s = f["extraction"], f["scoring"]
    return [f"  features of {f['images']} images: {e['images_per_s']:.1f} images/s (timed on {e['images_timed']}) "
            f"= {e['seconds']:.3g} s",
            f"  Eq. 6 of {f['images']} queries over a bank of {f['bank']} × {s['dim']}: {s['queries_per_s']:.0f} "
            f"queries/s (timed on {s['queries_timed']}) = {s['seconds']:.3g} s",
            f"  whole evaluation {f['seconds']:.3g} s; one epoch ({f['epoch_from']}) "
            f"{_num(f['epoch_seconds'], '.4g')} s; evaluation / epoch: {share(f['of_epoch'])}"]


FORMATS = {"bench": _bench, "memory": _memory, "bf16_vs_fp32": _precision, "fit": _fit, "eval": _eval}


def section_block(name: str, entry: dict[str, Any]) -> str:
    """A section's block: header, the reason it was skipped or stopped, its figures (those a stopped section
    measured; as JSON where a stop left them too partial for the layout)."""
    lines = [header(name, entry)]
    if entry["reason"]:
        lines.append(f"  {entry['status']}: {entry['reason']}")
    figures = entry["figures"]
    if figures:
        try:
            lines += FORMATS[name.rpartition(".")[2]](figures)
        except (KeyError, IndexError, TypeError):
            lines.append("  figures so far: " + json.dumps(figures, default=str)[:2000])
    return "\n".join(lines)


def headline(name: str, figures: dict[str, Any]) -> str:
    """The figure a section is for, in a few words (empty where it did not get that far)."""
    kind = name.rpartition(".")[2]
    try:
        if kind == "bench":
            s = figures["ssad"]
            return (f"{s['images_per_s']:.1f} images/s, MFU {share(s['mfu'])}"
                    + (f", {figures['speedup']:.2f}× reference" if "speedup" in figures else ""))
        if kind == "memory":
            return ", ".join(f"{b}: {r['peak_memory_mib']:.0f} MiB" for b, r in figures["batches"].items())
        if kind == "bf16_vs_fp32":
            return ", ".join(f"{n} max rel. diff {share(figures[n]['max_relative_difference'])}"
                             for n in ("L_pos", "L_neg") if n in figures)
        if kind == "fit":
            outside = share(figures["outside_model_share"])
            return f"{figures['images_per_s']:.1f} images/s, outside the model {outside}"
        return f"{figures['seconds']:.3g} s, {share(figures['of_epoch'])} of an epoch"
    except (KeyError, TypeError):
        return ""


def summary(check: dict[str, Any]) -> str:
    """One line per section: name, status, seconds of budget, headline figure."""
    meta = check["check"]
    rows = [[name, e["status"], f"{e['seconds']:.1f} / {e['budget_s']:.0f}",
             headline(name, e["figures"]) if e["status"] in ("ok", "stopped") else e["reason"]]
            for name, e in check["sections"].items()]
    return "\n".join([f"ssad GPU check · preset {meta['preset']} · {meta['device']} · torch {meta['torch']} · "
                      f"{meta['seconds']:.0f} s of {meta['deadline_s']:.0f} s",
                      *console_table(["section", "status", "s / budget", "figures"], rows, align=list("<<><"),
                                     min_widths=[16, 7, 10, 0], rule=False)])
