"""The sections of the GPU check (issue 38), each filling its figures into ``out`` as they come, so that a section
stopped by its budget (:class:`~ssad.bench.gpu.budget.BudgetSpent`) keeps what it measured.

Every section composes the real training config (:func:`ssad.bench.presets.compose_config`: the check preset's
``conf/bench.yaml`` preset, the fast paths, the check's and the section's overrides) and runs the real objects on
the synthetic uint8 images of :class:`CheckContext`.
"""

from __future__ import annotations

import copy
import functools
import gc
import itertools
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import torch
import yaml
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import Tensor

from ssad.bench.fit import fit_throughput
from ssad.bench.flops import flops_per_image, mfu
from ssad.bench.gpu.budget import BudgetSpent, NotApplicable, check_time, until
from ssad.bench.gpu.presets import LEVERS, RESNET18, CheckPreset
from ssad.bench.presets import REFERENCE, VIT, FastPaths, backbone_builder, compose_config
from ssad.bench.reference import crops_per_second
from ssad.bench.run import run_training
from ssad.bench.step import build_module, ssad_batches, time_training
from ssad.scoring.features import extract
from ssad.scoring.scores import Eq6Score

LOSSES = ("train/L_pos", "train/L_neg")
SCORE_CHUNK = 10_000  # Eq. 6 queries per timed call


@dataclass
class CheckContext:
    """What every section shares: the preset, the device, the synthetic training images (N×3×H×W uint8, on the
    CPU) and the figures of the sections run so far (by section name)."""

    preset: CheckPreset
    device: torch.device
    images: Tensor
    sections: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"


def release() -> None:
    """On a GPU, free what a finished run left: Python garbage (cycles holding tensors) and PyTorch's cached
    device memory, so that the next run's peak memory is its own. Nothing on a CPU (a collection of this process's
    heap takes a second there)."""
    if torch.cuda.is_available():
        gc.collect()
        torch.cuda.empty_cache()


def is_out_of_memory(err: BaseException) -> bool:
    """A device allocation that failed: ``torch.cuda.OutOfMemoryError``, or a library's own allocation error."""
    text = str(err)
    return isinstance(err, torch.cuda.OutOfMemoryError) or (
        isinstance(err, RuntimeError) and ("out of memory" in text or "ALLOC_FAILED" in text))


def default_paths(ctx: CheckContext, builder: str) -> FastPaths:
    """ssad's fast paths here: bf16 on a GPU only; fused attention only for a ViT (other backbones have none)."""
    return FastPaths(bf16=ctx.cuda, fused_attn=builder == VIT)


@functools.cache
def _composed(bench: str, overrides: tuple[str, ...]) -> tuple[DictConfig, str]:
    """The composed config of a variant with the default fast paths, and its backbone builder: composed once
    (Hydra's composition takes seconds on a busy CPU, and a section's runs differ only in plain values)."""
    return compose_config(bench, FastPaths(), overrides), backbone_builder(bench, overrides)


def variant_overrides(preset: CheckPreset, variant: str) -> tuple[str, ...]:
    """The overrides of a variant: ``""`` the preset's network, :data:`~ssad.bench.gpu.presets.RESNET18`
    ``model=resnet18`` and the preset's ResNet-18 overrides; both after the preset's overrides."""
    extra = ("model=resnet18", *preset.resnet18_overrides) if variant == RESNET18 else ()
    return (*preset.overrides, *extra)


def builder_of(ctx: CheckContext, variant: str) -> str:
    """The backbone builder of the variant's config."""
    return _composed(ctx.preset.bench, variant_overrides(ctx.preset, variant))[1]


def config(ctx: CheckContext, variant: str, paths: FastPaths | None = None, *extra: str) -> tuple[DictConfig, str]:
    """The training config of ``variant`` (:func:`variant_overrides`) with ``paths`` (default:
    :func:`default_paths`) and the ``KEY=VALUE`` overrides ``extra``, and its backbone builder. The levers and
    ``extra`` are plain values, set on a copy of the variant's composition as Hydra would set them."""
    base, builder = _composed(ctx.preset.bench, variant_overrides(ctx.preset, variant))
    cfg = copy.deepcopy(base)
    for item in [*(paths or default_paths(ctx, builder)).overrides(vit=builder == VIT), *extra]:
        key, _, value = item.partition("=")
        OmegaConf.update(cfg, key, yaml.safe_load(value), merge=False)
    return cfg, builder


def bench(ctx: CheckContext, variant: str, out: dict[str, Any], deadline: float) -> None:
    """The step loop of ssad at the preset's setting beside the DINO-style reference (fp32, unfused, PIL workers),
    MFU, the CPU augmentation comparison, and the ablation: each fast path of :data:`LEVERS` flipped alone."""
    p = ctx.preset
    cfg, builder = config(ctx, variant)
    paths = default_paths(ctx, builder)
    out.update(backbone=builder, batch_size=int(cfg.data.batch_size), steps=p.steps, warmup=p.warmup,
               fast_paths=asdict(paths))
    ssad, module = run_training(cfg, ctx.images, ctx.device, p.steps, p.warmup)
    augment = instantiate(cfg.augment)
    flops, _, method = flops_per_image(module, augment, bool(cfg.negatives.parts), analytic=builder == VIT)
    del module
    release()
    ssad["mfu"] = mfu(flops, ssad["images_per_s"], ctx.device, paths.bf16)
    ssad["augmentation_share"] = ssad["phase_ms"]["augmentation"] / ssad["step_ms"]
    out.update(ssad=ssad, flops_per_image=flops, flops_method=method)
    check_time(deadline, "the reference")
    ref_cfg = config(ctx, variant, replace(REFERENCE, fused_attn=False))[0]
    ref = run_training(ref_cfg, ctx.images, ctx.device, p.steps, p.warmup, reference=True)[0]
    release()
    ref["mfu"] = mfu(flops, ref["images_per_s"], ctx.device, bf16=False)
    out.update(reference=ref, speedup=ssad["images_per_s"] / ref["images_per_s"])
    out["cpu_crops_per_s"] = crops_per_second(augment, ctx.images[: p.crop_images])
    ablation = out["ablation"] = {}
    for lever in LEVERS:
        flipped = replace(paths, **{lever: not getattr(paths, lever)})
        key = f"{lever}={getattr(flipped, lever)}"
        if lever == "fused_attn" and builder != VIT:
            ablation[key] = {"skipped": f"no attention to fuse in {builder}"}
        elif lever not in (p.resnet18_levers if variant == RESNET18 else p.levers):
            ablation[key] = {"skipped": p.lever_skip}
        elif time.monotonic() >= deadline:
            ablation[key] = {"skipped": "the section's budget was spent"}
        else:
            run = run_training(config(ctx, variant, flipped)[0], ctx.images, ctx.device, p.steps, p.warmup)[0]
            ablation[key] = {"images_per_s": run["images_per_s"], "of_ssad": run["images_per_s"] / ssad["images_per_s"]}
            if lever == "compile":
                torch._dynamo.reset()
            release()
    if any("budget" in v.get("skipped", "") for v in ablation.values()):
        raise BudgetSpent("budget spent before the last ablation levers")


def memory(ctx: CheckContext, variant: str, out: dict[str, Any], deadline: float) -> None:
    """Peak memory of a training step (the step loop, after one warm-up step) at each batch of the preset, up
    to the largest that fits; the out-of-memory error that stopped the next is kept."""
    out["measure"] = ("peak device memory allocated (torch.cuda.max_memory_allocated)" if ctx.cuda else
                      "the process's peak RSS (grows over the process: not a figure per batch)")
    batches = out["batches"] = {}
    for batch in ctx.preset.memory_batches:
        check_time(deadline, f"batch {batch}")
        cfg, _ = config(ctx, variant, None, f"data.batch_size={batch}")
        error = None
        try:
            run = run_training(cfg, ctx.images, ctx.device, steps=1, warmup=1)[0]
        except (torch.cuda.OutOfMemoryError, RuntimeError) as err:
            if not is_out_of_memory(err):
                raise
            error = f"{type(err).__name__}: {str(err).splitlines()[0]}"
        release()  # after the except block: the error's traceback no longer holds the failed step's tensors
        if error is not None:
            out["largest_fitting"] = max(map(int, batches), default=None)
            out["stopped_by"] = {"batch": batch, "error": error}
            return
        batches[str(batch)] = {"peak_memory_mib": run["peak_memory_mib"], "images_per_s": run["images_per_s"]}
    out["largest_fitting"] = ctx.preset.memory_batches[-1]


def _loss_run(ctx: CheckContext, cfg: DictConfig, bf16: bool, steps: int, deadline: float,
              record: dict[str, list[float]]) -> None:
    """``steps`` training steps from the weights of seed 0, each step's batch, augmentation and drop-path drawn
    after seeding the generators with the step's number (the same data at either precision); each L_pos and L_neg
    appended to ``record`` as it is logged."""
    torch.manual_seed(0)
    module, optimizer = build_module(cfg, ctx.device)
    datamodule = instantiate(cfg.data)
    datamodule.trainer = module.trainer
    draw, count = ssad_batches(ctx.images, datamodule, ctx.device), itertools.count()

    def next_batch() -> Any:
        torch.manual_seed(1000 + next(count))
        return draw()

    def log(name: str, value: Any, *args: Any, **kwargs: Any) -> None:
        if name in LOSSES:
            record[name].append(float(value.detach() if isinstance(value, Tensor) else value))

    module.log = log
    time_training(module, optimizer, until(deadline, "the next step", next_batch), bf16, steps, warmup=0)


def bf16_vs_fp32(ctx: CheckContext, variant: str, out: dict[str, Any], deadline: float) -> None:
    """L_pos and L_neg over the same steps from the same weights and data in bf16 autocast and in fp32, and the
    largest relative difference ``|bf16 − fp32| / |fp32|`` over the steps both ran."""
    runs: dict[str, dict[str, list[float]]] = {}
    paths = default_paths(ctx, builder_of(ctx, variant))
    try:
        for precision in ("bf16", "fp32"):
            cfg, _ = config(ctx, variant, replace(paths, bf16=precision == "bf16"))
            runs[precision] = {name: [] for name in LOSSES}
            _loss_run(ctx, cfg, precision == "bf16", ctx.preset.precision_steps, deadline, runs[precision])
            release()
    finally:  # the steps both precisions ran, also when the budget stopped the second
        if len(runs) == 2:
            out["steps"] = len(runs["fp32"][LOSSES[0]])
            for name in LOSSES:
                pairs = list(zip(runs["bf16"][name], runs["fp32"][name]))
                if pairs:
                    key = name.removeprefix("train/")
                    out[key] = {"bf16": [a for a, _ in pairs], "fp32": [b for _, b in pairs],
                                "max_relative_difference": max(abs(a - b) / abs(b) for a, b in pairs)}
    if out.get("steps", 0) == 0:
        raise NotApplicable("no step ran in both precisions")


def fit(ctx: CheckContext, variant: str, out: dict[str, Any], deadline: float) -> None:
    """The real ``trainer.fit`` (DataLoaders on a ``.npy`` of the synthetic images, Lightning's loop, the
    configured logger): images/s, ms per step and the share of a step outside the model; the fit ends early
    at the budget, and its figures are over the batches it timed."""
    cfg, builder = config(ctx, variant)
    out.update(backbone=builder, batch_size=int(cfg.data.batch_size), steps=ctx.preset.fit_steps,
               warmup=ctx.preset.fit_warmup)
    margin = 0.15 * max(deadline - time.monotonic(), 0)  # the fit's teardown after its last batch
    out.update(fit_throughput(cfg, ctx.images, ctx.preset.fit_steps, ctx.preset.fit_warmup, deadline - margin))


def epoch_seconds(ctx: CheckContext, variant: str) -> tuple[float | None, str]:
    """One epoch (the preset's ``epoch_images``) at ``trainer.fit``'s images/s when that section ran, else the
    step loop's; (None, why) when neither did."""
    for name, source in (("fit", "trainer.fit"), ("bench", "the step loop")):
        figures = ctx.sections.get(variant + name, {}).get("figures", {})
        ips = figures.get("images_per_s") or figures.get("ssad", {}).get("images_per_s")
        if ips:
            return ctx.preset.epoch_images / ips, source
    return None, f"neither {variant}fit nor {variant}bench measured training images/s"


def evaluation(ctx: CheckContext, variant: str, out: dict[str, Any], deadline: float) -> None:
    """A whole CIFAR10 evaluation: features (:func:`ssad.scoring.features.extract`) of the preset's ``eval_images`` and
    Eq. 6 (:class:`ssad.scoring.scores.Eq6Score`) of as many queries over a bank of ``bank`` features, each timed on as
    much as its share of the budget allows (extraction 60%) and scaled to the whole; against one epoch."""
    p = ctx.preset
    cfg, builder = config(ctx, variant)
    module, _ = build_module(cfg, ctx.device)
    backbone, size, batch = module.teacher.backbone, int(cfg.augment.global_size), int(cfg.eval.settings.batch_size)
    images = ctx.images.pin_memory() if ctx.cuda else ctx.images
    out.update(backbone=builder, images=p.eval_images, batch_size=batch, bank=p.bank)
    extract(backbone, [{"image": images[:batch]}], size, progress=False)  # warm-up
    starts = itertools.cycle(range(0, len(images) - batch + 1, batch))
    stop, done, dim = time.monotonic() + 0.6 * (deadline - time.monotonic()), 0, 0
    start = time.perf_counter()
    while done < p.eval_images and (done == 0 or time.monotonic() < stop):
        batches = min(8, -(-(p.eval_images - done) // batch))  # up to 8 batches, no more than the images left
        chunk = [{"image": images[i: i + batch]} for i in itertools.islice(starts, batches)]
        feats = extract(backbone, chunk, size, progress=False)[0]
        done, dim = done + len(feats), feats.shape[1]
    ips = done / (time.perf_counter() - start)
    out["extraction"] = {"images_timed": done, "images_per_s": ips, "seconds": p.eval_images / ips}
    del module, backbone
    release()
    scorer = Eq6Score().fit(torch.randn(p.bank, dim, device=ctx.device))
    scorer.score(torch.randn(64, dim, device=ctx.device))  # warm-up
    chunk = min(SCORE_CHUNK, p.eval_images)
    scored, start = 0, time.perf_counter()
    while scored < p.eval_images and (scored == 0 or time.monotonic() < deadline):
        scorer.score(torch.randn(chunk, dim, device=ctx.device)).cpu()
        scored += chunk
    qps = scored / (time.perf_counter() - start)
    out["scoring"] = {"queries_timed": scored, "dim": dim, "queries_per_s": qps, "seconds": p.eval_images / qps}
    epoch, source = epoch_seconds(ctx, variant)
    total = out["extraction"]["seconds"] + out["scoring"]["seconds"]
    out.update(seconds=total, epoch_seconds=epoch, epoch_from=source,
               of_epoch=None if epoch is None else total / epoch)
