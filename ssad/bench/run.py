"""Every figure of the benchmark: ssad's step loop, ``trainer.fit``, the reference, evaluation, the ablation."""

from __future__ import annotations

import argparse
import random
from dataclasses import asdict, replace
from typing import Any

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig
from torch import Tensor

from ssad.bench.evaluation import eval_throughput, scoring_seconds
from ssad.bench.fit import fit_throughput
from ssad.bench.flops import flops_per_image, mfu
from ssad.bench.presets import (
    EVAL_IMAGES,
    REFERENCE,
    TRAIN_IMAGES,
    VIT,
    FastPaths,
    backbone_builder,
    compose_config,
    load_preset,
)
from ssad.bench.reference import PILMultiCrop, crops_per_second, reference_batches
from ssad.bench.step import build_module, ssad_batches, time_training
from ssad.method.module import SSADModule

CROP_IMAGES = 64  # images per pipeline in the single-thread CPU augmentation comparison


def run_training(
    cfg: DictConfig, images: Tensor, device: torch.device, steps: int, warmup: int, reference: bool = False
) -> tuple[dict[str, Any], SSADModule]:
    """Build the module of ``cfg`` and time its training on ssad's batches (the datamodule of ``cfg``, attached
    to the module's trainer) or on the reference's."""
    torch.backends.cudnn.benchmark = bool(cfg.trainer.benchmark)  # as Trainer(benchmark=...) does
    module, optimizer = build_module(cfg, device)
    batch_size = cfg.data.batch_size
    if reference:
        hwc = images[: 8 * batch_size].permute(0, 2, 3, 1).numpy()
        crops = PILMultiCrop(instantiate(cfg.augment))
        next_batch = reference_batches(hwc, crops, batch_size, steps + warmup, device)
    else:
        datamodule = instantiate(cfg.data)
        datamodule.trainer = module.trainer
        next_batch = ssad_batches(images, datamodule, device)
    bf16 = cfg.trainer.precision.startswith("bf16")
    return time_training(module, optimizer, next_batch, bf16, steps, warmup), module


def bench_device(choice: str) -> torch.device:
    """``auto`` = the GPU when one is present, else the CPU; ``cpu`` and ``cuda`` as given (``cuda`` without a
    GPU fails rather than measuring the CPU under the GPU's name)."""
    return torch.device(("cuda" if torch.cuda.is_available() else "cpu") if choice == "auto" else choice)


def benchmark(args: argparse.Namespace) -> dict[str, Any]:
    """Every figure of the report, as a dict (the JSON of ``--json``)."""
    device = bench_device(args.device)
    bf16 = (args.precision or ("bf16" if device.type == "cuda" else "fp32")) == "bf16"
    paths = FastPaths(bf16, not args.no_fused_adamw, not args.no_fused_attn, not args.no_group_views,
                      args.compile)
    preset = load_preset(args.preset)
    steps = args.steps or preset.steps
    warmup = preset.warmup if args.warmup is None else args.warmup
    extra = [*args.overrides, *([f"data.batch_size={args.batch_size}"] if args.batch_size else [])]
    builder = backbone_builder(args.preset, extra)
    if builder != VIT:  # no attention to fuse: the lever is off and not ablated
        paths = replace(paths, fused_attn=False)
    cfg = compose_config(args.preset, paths, extra)
    torch.manual_seed(0)
    random.seed(0)
    images = torch.randint(0, 256, (preset.synthetic_images, 3, cfg.data.size, cfg.data.size), dtype=torch.uint8)
    augment = instantiate(cfg.augment)
    negatives = bool(cfg.negatives.parts)
    ssad, module = run_training(cfg, images, device, steps, warmup)
    flops, eval_flops, flops_method = flops_per_image(module, augment, negatives, analytic=builder == VIT)
    ssad["mfu"] = mfu(flops, ssad["images_per_s"], device, bf16)
    eval_batch = cfg.eval.settings.batch_size
    eval_ips = eval_throughput(module.teacher.backbone, images, augment.global_size, eval_batch)
    del module
    queries, bank, dim = (preset.scoring[key] for key in ("queries", "bank", "dim"))
    score_s = scoring_seconds(queries, bank, dim, device)
    result: dict[str, Any] = {
        "preset": args.preset,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "backbone": builder, "batch_size": cfg.data.batch_size, "steps": steps, "warmup": warmup,
        "fast_paths": asdict(paths), "overrides": extra, "flops_per_image": flops, "flops_method": flops_method,
        "ssad": ssad,
        "eval": {"images_per_s": eval_ips, "batch_size": eval_batch, "flops_per_image": eval_flops,
                 "mfu": mfu(eval_flops, eval_ips, device, device.type == "cuda")},
        "scoring": {"queries": queries, "bank": bank, "dim": dim, "seconds": score_s},
    }
    if not args.no_fit:
        result["fit"] = fit_throughput(cfg, images, steps, warmup)
        result["fit"]["of_step_loop"] = result["fit"]["images_per_s"] / ssad["images_per_s"]
    # an epoch as users run it (trainer.fit) when measured, else as the step loop runs it
    epoch_s = TRAIN_IMAGES / result.get("fit", ssad)["images_per_s"]
    result["evaluation_over_epoch"] = (EVAL_IMAGES / eval_ips + EVAL_IMAGES / queries * score_s) / epoch_s
    if not args.no_reference:
        ref_cfg = compose_config(args.preset, REFERENCE, extra)
        ref = result["reference"] = run_training(ref_cfg, images, device, steps, warmup, reference=True)[0]
        ref["mfu"] = mfu(flops, ref["images_per_s"], device, bf16=False)
        result["speedup"] = ssad["images_per_s"] / ref["images_per_s"]
        result["cpu_crops_per_s"] = crops_per_second(augment, images[:CROP_IMAGES])
    if args.ablation:
        result["ablation"] = {}
        levers = ("bf16", "fused_adamw", *(["fused_attn"] if builder == VIT else []), "group_views", "compile")
        for lever in levers:
            flipped = replace(paths, **{lever: not getattr(paths, lever)})
            run = run_training(compose_config(args.preset, flipped, extra), images, device, steps, warmup)[0]
            result["ablation"][f"{lever}={getattr(flipped, lever)}"] = run["images_per_s"]
    return result
