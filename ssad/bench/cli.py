"""Training and evaluation benchmark of ssad beside a DINO-style reference pipeline (issue 5).

``python -m ssad.bench [--preset paper|tiny] [options] [hydra overrides ...]`` composes the real config (the
preset's experiment of ``conf/bench.yaml``: ``paper`` = ``experiment=cifar10``, ViT-S/16, K=4096, 2×256² +
8×128² positive and 1×256² + 8×128² negative views per image, batch 64), builds the real objects
(``SSADModule``, ``SSADDataModule`` with its ``MultiCropAugment`` and the variant's negative transforms) on
synthetic uint8 images of CIFAR's shape, and times the step loop of :mod:`ssad.bench.step` beside the reference
pipeline of :mod:`ssad.bench.reference` and the real ``trainer.fit`` (:mod:`ssad.bench.fit`; ``--no-fit``
skips it). Any backbone of ``ssad.method.backbones`` runs (``model=vit_small|resnet18|cnn_small|vit_tiny_demo``).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Any

import torch
from hydra.errors import HydraException

from ssad.bench.presets import preset_names
from ssad.bench.run import bench_device, benchmark
from ssad.bench.table import format_table
from ssad.cli.errors import ConfigError, user_errors
from ssad.utils.files import check_writable


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line; ``--preset`` defaults to ``paper`` on a GPU and ``tiny`` on a CPU."""
    parser = argparse.ArgumentParser(prog="python -m ssad.bench", description=__doc__.split("\n")[0])
    parser.add_argument("--preset", choices=preset_names(),
                        help="paper (default on a GPU) or tiny (default on a CPU, where paper takes hours)")
    parser.add_argument("--batch-size", type=int, help="in-distribution images per step (default: config's)")
    parser.add_argument("--steps", type=int, help="timed steps (default: the preset's, conf/bench.yaml)")
    parser.add_argument("--warmup", type=int, help="untimed steps before (default: the preset's)")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--threads", type=int, help="CPU threads of this process (default: PyTorch's)")
    parser.add_argument("--precision", choices=["bf16", "fp32"], help="default: bf16 on CUDA, fp32 on a CPU")
    parser.add_argument("--compile", action="store_true", help="torch.compile the backbones (model.compile)")
    parser.add_argument("--no-fused-attn", action="store_true", help="timm's unfused attention")
    parser.add_argument("--no-fused-adamw", action="store_true", help="AdamW without the fused kernel")
    parser.add_argument("--no-group-views", action="store_true", help="one backbone call per view")
    parser.add_argument("--no-reference", action="store_true", help="skip the DINO-style reference")
    parser.add_argument("--no-fit", action="store_true", help="skip the end-to-end trainer.fit measurement")
    parser.add_argument("--ablation", action="store_true", help="also time ssad with each lever flipped")
    parser.add_argument("--json", help="write the figures to this JSON file")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides of conf/train.yaml")
    args = parser.parse_args(argv)
    if args.preset is None:
        args.preset = "paper" if bench_device(args.device).type == "cuda" else "tiny"
        if args.preset == "tiny":
            print("no GPU: the tiny preset (--preset paper runs the paper's settings on this CPU, for hours)")
    return args


@user_errors
def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print its table, write the JSON if asked; returns the figures. A bad override or value
    is one ``error:`` line and exit status 2 (:func:`ssad.cli.errors.user_errors`)."""
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.json:
        check_writable(args.json, "--json")  # before the benchmark, not after it
    try:
        result = benchmark(args)
    except HydraException as err:  # an override Hydra refuses while composing (unknown key, unknown preset)
        raise ConfigError(f"{err}".strip()) from err
    print(format_table(result))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return result
