"""Training and evaluation benchmark of ssad beside a DINO-style reference pipeline (issue 5).

``python -m ssad.bench [--preset paper|tiny] [options] [hydra overrides ...]`` composes the real config
(``ssad/conf/train.yaml`` + ``experiment=cifar10``: ViT-S/16, K=4096, 2×256² + 8×128² positive and 1×256² +
8×128² negative views per image, batch 64), builds the real objects (``SSADModule``, ``MultiCropAugment``,
the variant's negative transform, ``rot``) on synthetic uint8 images of CIFAR's shape, and times a manual
loop that reproduces one Lightning training step: uint8 batch → device, negative transform and multi-crop
on the device (as ``SSADDataModule.on_after_batch_transfer``), ``module.training_step`` under the trainer's
precision, backward, ``on_before_optimizer_step``, ``configure_gradient_clipping`` (per parameter) and
``module.optimizer_step`` (schedules, AdamW, EMA). A stub trainer stands at epoch 1 of 500 (past the frozen
last layer); ``self.log`` is skipped.

The reference is built the way facebookresearch/dino does it: PIL multi-crop (torchvision.transforms v1) in
DataLoader workers on all CPU cores, fp32 eager model, unfused attention, plain AdamW, one backbone call per
view.

The same configuration then runs through the real ``trainer.fit`` (``ssad.train.build``: datamodule with the
synthetic images as a ``.npy`` training set, DataLoaders, ``CombinedLoader``, Lightning's loop and logging, no
checkpoints or evaluation), so the figure users get is printed beside the step loop's (``--no-fit`` skips it).

Any backbone of ``ssad.backbones`` runs (``model=vit_small|resnet18|cnn_small|vit_tiny_demo``): a preset's
backbone overrides (:data:`BACKBONE_PRESETS`) and the ``fused_attn`` lever apply to the backbones that have
them. FLOPs are counted by the analytic formula for a ViT and by ``torch.utils.flop_counter`` for the others;
the report says which.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import lightning as L
import numpy as np
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from PIL import Image, ImageFilter, ImageOps
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from torch.utils.flop_counter import FlopCounterMode
from torchvision import transforms as T

from ssad.augment import IMAGENET_MEAN, IMAGENET_STD, MultiCropAugment
from ssad.backbones import builder_name
from ssad.features import extract
from ssad.metrics import ood_score
from ssad.models import MultiCropNetwork
from ssad.module import SSADModule
from ssad.negatives import get_transform, parse_variant
from ssad.train import CONFIG_DIR, build
from ssad.views import TrainingViews

Batch = dict[str, list[Tensor]]

# Overrides of ssad/conf/train.yaml per preset; `tiny` runs in seconds on a CPU.
PRESETS: dict[str, list[str]] = {
    "paper": ["experiment=cifar10"],
    "tiny": ["experiment=cifar10", "data.batch_size=8", "augment.global_size=32", "augment.local_size=16",
             "model.head.out_dim=64", "model.head.hidden_dim=64", "model.head.bottleneck_dim=32",
             "eval.settings.batch_size=64"],
}
# The preset's overrides of the backbone, per ssad.backbones builder (none for a builder not listed)
BACKBONE_PRESETS: dict[str, dict[str, list[str]]] = {
    "tiny": {"vit_backbone": ["model.backbone.patch_size=8", "++model.backbone.embed_dim=48",
                              "++model.backbone.depth=2", "++model.backbone.num_heads=3"],
             "small_cnn": ["model.backbone.width=8"]},
}
VIT = "vit_backbone"  # the builder whose FLOPs are counted analytically and which has fused attention
SCORING = {"paper": (10_000, 50_000, 384), "tiny": (1_000, 5_000, 384)}  # queries × bank × dim
DEFAULT_STEPS = {"paper": (20, 5), "tiny": (5, 2)}  # timed steps, warm-up steps
SYNTHETIC_IMAGES = {"paper": 50_000, "tiny": 1_024}
EVAL_BATCHES = 8
CROP_IMAGES = 64  # images per pipeline in the single-thread CPU augmentation comparison
TRAIN_IMAGES = 50_000  # CIFAR10 train: one epoch, and the Eq. 6 bank
# images a whole CIFAR10 evaluation extracts and scores: train (bank, scored leave-one-out), test, then the
# OOD sets CIFAR100, SVHN, ImageNet30, TinyImageNet, LSUN, STL10, Places365 (10k subset), Texture
EVAL_IMAGES = TRAIN_IMAGES + 10_000 + 10_000 + 26_032 + 3_000 + 10_000 + 10_000 + 8_000 + 10_000 + 5_640
# dense peak TFLOP/s (bf16, fp32 without TF32); the first name found in the device's name wins
PEAK_TFLOPS = {"H100 PCIe": (756.0, 51.0), "H100": (989.0, 67.0), "H200": (989.0, 67.0),
               "A100": (312.0, 19.5)}
PHASES = ("augmentation", "forward+backward", "optimiser", "EMA")


# ------------------------------------------------------------------------------------------------ FLOPs
@dataclass(frozen=True)
class ViTDims:
    """The shapes that set a ViT's FLOPs: width, depth, patch side, MLP width, prefix (CLS) tokens, and the
    head's layer widths (input → … → K; empty for the backbone alone)."""

    dim: int
    depth: int
    patch: int
    mlp_hidden: int
    prefix_tokens: int = 1
    head: tuple[int, ...] = ()


def vit_dims(network: MultiCropNetwork) -> ViTDims:
    """The :class:`ViTDims` of a timm ViT backbone + DINO head."""
    backbone, head = network.backbone, network.head
    widths = [m.in_features for m in head.mlp if isinstance(m, torch.nn.Linear)]
    return ViTDims(backbone.embed_dim, len(backbone.blocks), backbone.patch_embed.patch_size[0],
                   backbone.blocks[0].mlp.fc1.out_features, backbone.num_prefix_tokens,
                   (*widths, head.last_layer.in_features, head.last_layer.out_features))


def forward_flops(dims: ViTDims, size: int) -> int:
    """FLOPs of one image's forward pass at size×size, with P = (size/patch)² patches, N = P + prefix tokens.

    Counted as 2 × multiply-adds of every matmul: patch embedding 2·P·3p²·d, per layer 2·N·(4d² + 2·d·d_mlp)
    (qkv, projection, MLP) plus attention 4·N²·d (QKᵀ and A·V), and the head's linear layers. Norms,
    activations, softmax and biases are left out (under 1%).
    """
    patches = (size // dims.patch) ** 2
    tokens = patches + dims.prefix_tokens
    embed = 2 * patches * 3 * dims.patch**2 * dims.dim
    layer = 2 * tokens * (4 * dims.dim**2 + 2 * dims.dim * dims.mlp_hidden) + 4 * tokens**2 * dims.dim
    head = 2 * sum(a * b for a, b in zip(dims.head[:-1], dims.head[1:]))
    return embed + dims.depth * layer + head


def train_flops_per_image(
    dims: ViTDims, global_size: int, local_size: int, views: tuple[int, int, int, int]
) -> int:
    """FLOPs per training image (one in-distribution sample with its negative): the student's forward and
    backward (3× forward) on every view, plus the teacher's forward on the positive global views.
    ``views`` = (positive globals, positive locals, negative globals, negative locals)."""
    n_global, n_local, neg_global, neg_local = views
    g, loc = forward_flops(dims, global_size), forward_flops(dims, local_size)
    return 3 * ((n_global + neg_global) * g + (n_local + neg_local) * loc) + n_global * g


@contextmanager
def eval_mode(*modules: torch.nn.Module) -> Iterator[None]:
    """``modules`` in eval mode (BatchNorm on one image, no drop-path), each submodule's mode restored after."""
    modes = [(m, m.training) for module in modules for m in module.modules()]
    for module in modules:
        module.eval()
    try:
        yield
    finally:
        for m, training in modes:
            m.training = training


def counted_train_flops_per_image(
    student: MultiCropNetwork, teacher: MultiCropNetwork, global_size: int, local_size: int,
    views: tuple[int, int, int, int],
) -> int:
    """FLOPs per training image as :func:`train_flops_per_image` defines them, counted by
    ``torch.utils.flop_counter.FlopCounterMode`` on the real networks (any backbone): one student forward and
    backward on every view of one image, plus the teacher's forward on its positive globals. The counter sees
    matmuls, convolutions and attention kernels (norms, activations and pooling are left out, as in the
    formula). The student's gradients are cleared afterwards."""
    n_global, n_local, neg_global, neg_local = views
    device = next(student.parameters()).device

    def blank(n: int, size: int) -> list[Tensor]:
        return [torch.zeros(1, 3, size, size, device=device) for _ in range(n)]

    with eval_mode(student, teacher), FlopCounterMode(display=False) as counter:
        out = student(blank(n_global + neg_global, global_size) + blank(n_local + neg_local, local_size))
        torch.stack([o.float().sum() for o in out]).sum().backward()
        with torch.no_grad():
            teacher(blank(n_global, global_size))
    student.zero_grad(set_to_none=True)
    return counter.get_total_flops()


def counted_forward_flops(backbone: torch.nn.Module, size: int) -> int:
    """FLOPs of ``backbone``'s forward on one size×size image, by ``FlopCounterMode``."""
    device = next(backbone.parameters()).device
    with eval_mode(backbone), FlopCounterMode(display=False) as counter, torch.no_grad():
        backbone(torch.zeros(1, 3, size, size, device=device))
    return counter.get_total_flops()


def peak_tflops(device: torch.device, bf16: bool) -> float | None:
    """The device's dense peak TFLOP/s at this precision; None on a CPU or an unlisted GPU."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((peak[0 if bf16 else 1] for key, peak in PEAK_TFLOPS.items() if key in name), None)


# ------------------------------------------------------------------------------------------------ timing
def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class PhaseTimer:
    """Time per phase summed over steps: ``lap(name)`` ends the phase ``name`` begun at the previous lap.

    CUDA events on a GPU (the GPU's own timeline, idle gaps included, no host sync inside a step),
    ``perf_counter`` on a CPU.
    """

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.marks: list[tuple[str, Any]] = []

    def lap(self, name: str) -> None:
        if self.cuda:
            stamp = torch.cuda.Event(enable_timing=True)
            stamp.record()
        else:
            stamp = time.perf_counter()
        self.marks.append((name, stamp))

    def totals(self) -> dict[str, float]:
        """Seconds per phase (synchronises the GPU)."""
        if self.cuda:
            torch.cuda.synchronize()
        out: dict[str, float] = {}
        for (_, start), (name, end) in zip(self.marks, self.marks[1:]):
            out[name] = out.get(name, 0.0) + (start.elapsed_time(end) / 1000 if self.cuda else end - start)
        return out


def peak_memory_mib(device: torch.device) -> float:
    """Peak allocated device memory since the last reset (CUDA), or the process's peak RSS (CPU)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ------------------------------------------------------------------------------------------------ config
@dataclass(frozen=True)
class FastPaths:
    """The levers of issue 5, each a config key."""

    bf16: bool = True  # trainer.precision=bf16-mixed
    fused_adamw: bool = True  # optim.fused
    fused_attn: bool = True  # model.backbone.fused_attn (PyTorch's scaled-dot-product attention)
    group_views: bool = True  # model.group_views (one backbone call per resolution)
    compile: bool = False  # model.compile (torch.compile of both backbones)

    def overrides(self, vit: bool = True) -> list[str]:
        """The config overrides of these levers; ``fused_attn`` only for a ViT (other backbones lack the key)."""
        keys = {"fused_adamw": "optim.fused", "fused_attn": "model.backbone.fused_attn",
                "group_views": "model.group_views", "compile": "model.compile"}
        if not vit:
            del keys["fused_attn"]
        return [f"trainer.precision={'bf16-mixed' if self.bf16 else '32-true'}",
                *(f"{key}={str(getattr(self, lever)).lower()}" for lever, key in keys.items())]


REFERENCE = FastPaths(bf16=False, fused_adamw=False, fused_attn=False, group_views=True, compile=False)
REFERENCE_TEXT = (" · reference: fp32 eager, {attention}plain AdamW, one backbone call per resolution "
                  "as DINO, PIL multi-crop in DataLoader workers on all cores")


def _compose(overrides: Sequence[str]) -> DictConfig:
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose("train", overrides=list(overrides))


def backbone_builder(preset: str, overrides: Sequence[str] = ()) -> str:
    """The ssad.backbones builder (``vit_backbone``, ``resnet18_cifar``, ``small_cnn``) that ``overrides`` pick
    on top of the preset: read from a composition with only the overrides that can change it (config-group
    choices such as ``model=cnn_small``, and ``..._target_`` keys), since other overrides may need the
    preset's backbone overrides first."""
    choosers = [o for o in overrides if "." not in o.split("=", 1)[0] or o.split("=", 1)[0].endswith("_target_")]
    return builder_name(_compose([*PRESETS[preset], *choosers]).model.backbone._target_)


def compose_config(preset: str, paths: FastPaths, overrides: Sequence[str] = ()) -> DictConfig:
    """conf/train.yaml with the preset's (those of its backbone included), the fast paths' and the user's
    overrides."""
    builder = backbone_builder(preset, overrides)
    backbone = BACKBONE_PRESETS.get(preset, {}).get(builder, [])
    return _compose([*PRESETS[preset], *backbone, *paths.overrides(vit=builder == VIT), *overrides])


def build_module(cfg: DictConfig, device: torch.device) -> tuple[SSADModule, torch.optim.Optimizer]:
    """The SSADModule of ``cfg`` on ``device``, attached to a stub trainer at epoch 1 of the configured run
    on CIFAR10 (last layer past its frozen epoch), its ``configure_model`` hook run, and its optimiser."""
    module = instantiate(cfg.model, _convert_="all").to(device)
    steps_per_epoch = TRAIN_IMAGES // cfg.data.batch_size
    epochs = cfg.trainer.max_epochs
    module.trainer = SimpleNamespace(
        current_epoch=1, max_epochs=epochs, global_step=steps_per_epoch, world_size=1,
        accumulate_grad_batches=1, estimated_stepping_batches=epochs * steps_per_epoch,
        strategy=SimpleNamespace(reduce=lambda tensor, **_: tensor))
    module.log = module.log_dict = _no_log
    module.configure_model()
    return module, module.configure_optimizers()


def _no_log(*args: Any, **kwargs: Any) -> None:
    """``self.log`` without a trainer's result collection: nothing to record in a benchmark."""


# ------------------------------------------------------------------------------------------------ training
def time_training(
    module: SSADModule,
    optimizer: torch.optim.Optimizer,
    next_batch: Callable[[], Batch],
    bf16: bool,
    steps: int,
    warmup: int,
) -> dict[str, Any]:
    """Images/s, ms per step and per phase, and peak memory over ``steps`` steps after ``warmup`` more.

    A step is what Lightning runs: the batch (→ augmentation), ``training_step`` under autocast and backward
    (→ forward+backward), last-layer freezing, clipping and ``optimizer_step`` up to the EMA (→ optimiser),
    the EMA update (→ EMA).
    """
    device = module.device
    timer = PhaseTimer(device)
    ema_update = module._ema_update

    def timed_ema(momentum: float) -> None:
        timer.lap("optimiser")
        ema_update(momentum)
        timer.lap("EMA")

    module._ema_update = timed_ema
    for step in range(warmup + steps):
        if step == warmup:
            synchronize(device)
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            timer.marks.clear()
            timer.lap("start")
            start = time.perf_counter()
        batch = next_batch()
        timer.lap("augmentation")
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = module.training_step(batch, step)
        loss.backward()
        timer.lap("forward+backward")
        module.on_before_optimizer_step(optimizer)
        module.configure_gradient_clipping(optimizer)
        module.optimizer_step(module.current_epoch, step, optimizer)
        module.trainer.global_step += 1
    synchronize(device)
    wall = time.perf_counter() - start
    del module._ema_update
    images = steps * len(batch["pos_global"][0])
    return {"images_per_s": images / wall, "step_ms": 1000 * wall / steps,
            "phase_ms": {k: 1000 * v / steps for k, v in timer.totals().items()},
            "peak_memory_mib": peak_memory_mib(device), "loss": loss.item()}


def ssad_batches(
    images: Tensor, augment: MultiCropAugment, cfg: DictConfig, device: torch.device
) -> Callable[[], Batch]:
    """Batches as in training: random uint8 positives and negatives (part drawn ∝ its weight), pinned and
    moved to the device, then the views as ``SSADDataModule.on_after_batch_transfer`` makes them
    (:class:`ssad.views.TrainingViews`: negative transforms at the source, multi-crop, transforms on the views)."""
    parts = parse_variant(OmegaConf.to_container(cfg.negatives.parts))
    views = TrainingViews(augment, parts)
    weights = torch.tensor([p.weight for p in parts] or [1.0])
    batch_size, pin = cfg.data.batch_size, device.type == "cuda"
    augment.to(device)

    def to_device(x: Tensor) -> Tensor:
        return (x.pin_memory() if pin else x).to(device, non_blocking=True)

    def next_batch() -> Batch:
        pos = to_device(images[torch.randint(len(images), (batch_size,))])
        if not parts:
            return views(pos)
        neg = to_device(images[torch.randint(len(images), (batch_size,))])
        return views(pos, neg, to_device(torch.multinomial(weights, batch_size, replacement=True)))

    return next_batch


# ------------------------------------------------------------------------------------------------ reference
class PILBlur:
    """DINO's GaussianBlur: with probability p, PIL's Gaussian blur with radius (σ) uniform in ``sigma``."""

    def __init__(self, p: float, sigma: Sequence[float]) -> None:
        self.p, self.sigma = p, tuple(sigma)

    def __call__(self, img: Image.Image) -> Image.Image:
        if random.random() >= self.p:
            return img
        return img.filter(ImageFilter.GaussianBlur(radius=random.uniform(*self.sigma)))


class PILSolarize:
    """DINO's Solarization: with probability p, invert the pixels ≥ 128."""

    def __init__(self, p: float) -> None:
        self.p = p

    def __call__(self, img: Image.Image) -> Image.Image:
        return ImageOps.solarize(img) if random.random() < self.p else img


class PILMultiCrop:
    """DINO's ``DataAugmentationDINO`` in torchvision.transforms v1 and PIL, set like ``augment``:
    RandomResizedCrop (bicubic), flip, ColorJitter (p), RandomGrayscale, PIL blur, solarize (global-2),
    ToTensor, Normalize."""

    def __init__(self, augment: MultiCropAugment) -> None:
        a = augment
        # ColorJitter ranges by name, e.g. brightness: (0.6, 1.4), from the device pipeline's own ops
        jitter = {op.__name__.removeprefix("adjust_").rstrip("_"): r for r, _, op in a.jitter_ops}
        colour = T.Compose([T.RandomHorizontalFlip(a.flip_p),
                            T.RandomApply([T.ColorJitter(**jitter)], p=a.jitter_p),
                            T.RandomGrayscale(a.grayscale_p)])
        finish = T.Compose([T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])

        def crop(size: int, scale: tuple[float, float]) -> T.RandomResizedCrop:
            return T.RandomResizedCrop(size, scale, a.ratio, interpolation=T.InterpolationMode.BICUBIC)

        blur1, blur2, blur_local = (PILBlur(p, a.blur_sigma) for p in a.blur_p)
        global_crop = crop(a.global_size, a.global_scale)
        self.globals = [T.Compose([global_crop, colour, blur1, finish]),
                        T.Compose([global_crop, colour, blur2, PILSolarize(a.solarize_p), finish])]
        self.local = T.Compose([crop(a.local_size, a.local_scale), colour, blur_local, finish])
        self.n_global, self.n_local = a.n_global, a.n_local

    def __call__(self, img: Image.Image, n_global: int | None = None) -> list[Tensor]:
        n_global = self.n_global if n_global is None else n_global
        views = [self.globals[v % 2](img) for v in range(n_global)]
        return views + [self.local(img) for _ in range(self.n_local)]


class PILPairs(Dataset):
    """Item i: the views of image i (positive) and of a random image rotated by 90°, 180° or 270° (the
    negative, one global view); ``images`` are N×H×W×3 uint8."""

    ROTATIONS = (Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_180, Image.Transpose.ROTATE_270)

    def __init__(self, images: np.ndarray, crops: PILMultiCrop, length: int) -> None:
        self.images, self.crops, self.length = images, crops, length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> tuple[list[Tensor], list[Tensor]]:
        pos = Image.fromarray(self.images[i % len(self.images)])
        neg = Image.fromarray(self.images[random.randrange(len(self.images))]).transpose(
            random.choice(self.ROTATIONS))
        return self.crops(pos), self.crops(neg, n_global=1)


def reference_batches(
    images: np.ndarray, crops: PILMultiCrop, batch_size: int, n_batches: int, device: torch.device
) -> Callable[[], Batch]:
    """Batches from a DataLoader with one worker per CPU core, pinned on CUDA, moved to the device."""
    loader = DataLoader(PILPairs(images, crops, batch_size * n_batches), batch_size=batch_size, shuffle=True,
                        num_workers=len(os.sched_getaffinity(0)), pin_memory=device.type == "cuda",
                        drop_last=True)
    iterator = iter(loader)

    def next_batch() -> Batch:
        pos, neg = ([v.to(device, non_blocking=True) for v in views] for views in next(iterator))
        n = crops.n_global
        return {"pos_global": pos[:n], "pos_local": pos[n:], "neg_global": neg[:1], "neg_local": neg[1:]}

    return next_batch


def crops_per_second(augment: MultiCropAugment, images: Tensor) -> dict[str, float]:
    """CPU crops/s in this process with one thread, same images and views (positive views and ``rot``
    negatives): ssad's MultiCropAugment vs the PIL pipeline (the reference workers' ``__getitem__``)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        augment = augment.to("cpu")
        start = time.perf_counter()
        views = augment(images) + augment.negative_views(get_transform("rot")(images))
        ssad = sum(len(v) for v in views) / (time.perf_counter() - start)
        pairs = PILPairs(images.permute(0, 2, 3, 1).numpy(), PILMultiCrop(augment), len(images))
        start = time.perf_counter()
        n_pil = sum(len(pos) + len(neg) for pos, neg in (pairs[i] for i in range(len(pairs))))
        pil = n_pil / (time.perf_counter() - start)
    finally:
        torch.set_num_threads(threads)
    return {"ssad": ssad, "pil": pil, "ratio": ssad / pil}


# ------------------------------------------------------------------------------------------------ evaluation
def eval_throughput(backbone: torch.nn.Module, images: Tensor, size: int, batch_size: int) -> float:
    """Images/s of :func:`ssad.features.extract` (bf16 on CUDA) over ``EVAL_BATCHES`` batches, after one."""
    device = next(backbone.parameters()).device
    chunks = images[: batch_size * EVAL_BATCHES].split(batch_size)
    batches = [{"image": c.pin_memory() if device.type == "cuda" else c} for c in chunks]
    extract(backbone, batches[:1], size, progress=False)
    synchronize(device)
    start = time.perf_counter()
    extract(backbone, batches, size, progress=False)
    return sum(len(c) for c in chunks) / (time.perf_counter() - start)


def scoring_seconds(queries: int, bank: int, dim: int, device: torch.device) -> float:
    """Seconds of Eq. 6 (:func:`ssad.metrics.ood_score`) for ``queries`` × ``bank`` random features."""
    q, b = torch.randn(queries, dim, device=device), torch.randn(bank, dim, device=device)
    ood_score(q[:64], b)
    synchronize(device)
    start = time.perf_counter()
    ood_score(q, b)
    synchronize(device)
    return time.perf_counter() - start


# ------------------------------------------------------------------------------------------------ trainer.fit
class FitTimer(L.Callback):
    """Wall time of the training batches after ``warmup`` (device synchronised at both ends)."""

    def __init__(self, warmup: int) -> None:
        self.warmup, self.start, self.seconds, self.batches = warmup, 0.0, 0.0, 0

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, idx: int) -> None:
        if idx == self.warmup:
            synchronize(pl_module.device)
            self.start = time.perf_counter()

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        self.batches += 1

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        synchronize(pl_module.device)
        self.seconds = time.perf_counter() - self.start


def fit_throughput(cfg: DictConfig, images: Tensor, steps: int, warmup: int) -> dict[str, Any]:
    """Training images/s of the real ``trainer.fit`` on ``images`` (saved as a ``.npy`` training set, also
    standing in for every auxiliary source), over ``steps`` batches after ``warmup``; one epoch, the
    configured logger, no checkpoints and no evaluation."""
    with tempfile.TemporaryDirectory() as tmp:
        spec = {"format": "npy", "path": str(Path(tmp) / "synthetic.npy")}
        np.save(spec["path"], images.permute(0, 2, 3, 1).numpy())
        cfg = cfg.copy()
        OmegaConf.set_struct(cfg, False)
        cfg.data.train, cfg.data.test, cfg.data.ood = spec, None, {}
        cfg.sources = {name: spec for name in cfg.sources}
        cfg.paths = {"data_dir": tmp, "cache_dir": f"{tmp}/cache", "output_dir": f"{tmp}/run"}
        cfg.callbacks = None
        cfg.trainer.update(max_epochs=1, limit_train_batches=warmup + steps, enable_progress_bar=False,
                           enable_model_summary=False)
        datamodule, module, trainer = build(cfg)
        timer = FitTimer(warmup)
        trainer.callbacks.append(timer)
        trainer.fit(module, datamodule=datamodule)
    timed = timer.batches - warmup
    return {"images_per_s": timed * cfg.data.batch_size / timer.seconds, "step_ms": 1000 * timer.seconds / timed}


# ------------------------------------------------------------------------------------------------ main
def run_training(
    cfg: DictConfig, images: Tensor, device: torch.device, steps: int, warmup: int, reference: bool = False
) -> tuple[dict[str, Any], SSADModule]:
    """Build the module of ``cfg`` and time its training on ssad's batches or on the reference's."""
    torch.backends.cudnn.benchmark = bool(cfg.trainer.benchmark)  # as Trainer(benchmark=...) does
    module, optimizer = build_module(cfg, device)
    augment, batch_size = instantiate(cfg.augment), cfg.data.batch_size
    if reference:
        hwc = images[: 8 * batch_size].permute(0, 2, 3, 1).numpy()
        next_batch = reference_batches(hwc, PILMultiCrop(augment), batch_size, steps + warmup, device)
    else:
        next_batch = ssad_batches(images, augment, cfg, device)
    bf16 = cfg.trainer.precision.startswith("bf16")
    return time_training(module, optimizer, next_batch, bf16, steps, warmup), module


FLOP_METHODS = {
    "analytic": "analytic ViT formula: fwd = 2·MACs of every matmul + attention 4·N²·d per layer",
    "flop_counter": "torch.utils.flop_counter.FlopCounterMode on the real networks (matmuls, convolutions)",
}


def flops_per_image(
    module: SSADModule, augment: MultiCropAugment, negatives: bool, builder: str
) -> tuple[int, int, str]:
    """(training FLOPs per image, evaluation FLOPs per image, method): the analytic formula for a ViT
    (:func:`train_flops_per_image`, :func:`forward_flops`), ``FlopCounterMode`` for any other backbone
    (:func:`counted_train_flops_per_image`, :func:`counted_forward_flops`); method is a key of
    :data:`FLOP_METHODS`."""
    views = (augment.n_global, augment.n_local, int(negatives), augment.n_local * negatives)
    if builder == VIT:
        dims = vit_dims(module.student)
        return (train_flops_per_image(dims, augment.global_size, augment.local_size, views),
                forward_flops(replace(dims, head=()), augment.global_size), "analytic")
    train = counted_train_flops_per_image(module.student, module.teacher, augment.global_size,
                                          augment.local_size, views)
    return train, counted_forward_flops(module.teacher.backbone, augment.global_size), "flop_counter"


def mfu(flops: float, images_per_s: float, device: torch.device, bf16: bool) -> float | None:
    """Model FLOP utilisation: achieved FLOP/s over the device's dense peak (None where unknown)."""
    peak = peak_tflops(device, bf16)
    return None if peak is None else flops * images_per_s / (peak * 1e12)


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
    steps, warmup = DEFAULT_STEPS[args.preset]
    steps, warmup = args.steps or steps, warmup if args.warmup is None else args.warmup
    extra = [*args.overrides, *([f"data.batch_size={args.batch_size}"] if args.batch_size else [])]
    builder = backbone_builder(args.preset, extra)
    if builder != VIT:  # no attention to fuse: the lever is off and not ablated
        paths = replace(paths, fused_attn=False)
    cfg = compose_config(args.preset, paths, extra)
    torch.manual_seed(0)
    random.seed(0)
    images = torch.randint(0, 256, (SYNTHETIC_IMAGES[args.preset], 3, cfg.data.size, cfg.data.size),
                           dtype=torch.uint8)
    augment = instantiate(cfg.augment)
    negatives = bool(cfg.negatives.parts)
    ssad, module = run_training(cfg, images, device, steps, warmup)
    flops, eval_flops, flops_method = flops_per_image(module, augment, negatives, builder)
    ssad["mfu"] = mfu(flops, ssad["images_per_s"], device, bf16)
    eval_batch = cfg.eval.settings.batch_size
    eval_ips = eval_throughput(module.teacher.backbone, images, augment.global_size, eval_batch)
    del module
    queries, bank, dim = SCORING[args.preset]
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


def format_table(r: dict[str, Any]) -> str:
    """The printed report of :func:`benchmark`'s figures."""
    runs = [r["ssad"], *([r["reference"]] if "reference" in r else [])]

    def row(label: str, cell: Callable[[dict[str, Any]], str]) -> str:
        return f"{label:<40}" + "".join(f"{cell(run):>18}" for run in runs)

    def share(ms: float, total: float) -> str:
        return f"{ms:.1f} ({100 * ms / total:.0f}%)"

    def percent(value: float | None) -> str:
        return "n/a" if value is None else f"{100 * value:.1f}%"

    on = [lever for lever, value in r["fast_paths"].items() if value]
    reference_text = REFERENCE_TEXT.format(attention="unfused attention, " if r["backbone"] == VIT else "")
    memory = "peak device memory MiB" if r["device"] != "cpu" else "peak memory MiB (process RSS)"
    lines = [
        f"ssad bench · preset {r['preset']} · {r['backbone']} · {r['device']} · batch {r['batch_size']} · "
        f"{r['steps']} timed steps after {r['warmup']} warm-up · overrides: {' '.join(r['overrides']) or 'none'}",
        f"ssad: {', '.join(on) or 'no fast path'}" + (reference_text if len(runs) > 1 else ""),
        f"FLOPs per image: {r['flops_per_image'] / 1e9:.4g} GFLOP = student fwd+bwd on all views + teacher fwd "
        f"on the positive globals; counted by the {FLOP_METHODS[r['flops_method']]}",
        "",
        row("", lambda run: "ssad" if run is r["ssad"] else "reference"),
        row("training images/s", lambda run: f"{run['images_per_s']:.1f}"),
        row("step ms", lambda run: f"{run['step_ms']:.1f}"),
        *(row(f"  {phase} ms (share)", lambda run, p=phase: share(run["phase_ms"][p], run["step_ms"]))
          for phase in PHASES),
        row(memory, lambda run: f"{run['peak_memory_mib']:.0f}"),
        row("MFU (of the device's dense peak)", lambda run: percent(run["mfu"])),
        "",
    ]
    if "fit" in r:
        f = r["fit"]
        lines += [f"trainer.fit (DataLoaders, Lightning loop, logging): {f['images_per_s']:.1f} images/s, "
                  f"{f['step_ms']:.1f} ms per step ({100 * f['of_step_loop']:.0f}% of the step loop's images/s)"]
    if "reference" in r:
        c = r["cpu_crops_per_s"]
        lines += [f"speed-up ssad / reference: {r['speedup']:.2f}×",
                  f"CPU augmentation, 1 thread, same views: ssad {c['ssad']:.0f} crops/s, PIL {c['pil']:.0f} "
                  f"crops/s (ratio {c['ratio']:.2f})"]
    e, s = r["eval"], r["scoring"]
    lines += [
        f"evaluation: {e['images_per_s']:.1f} images/s (features.extract, batch {e['batch_size']}, "
        f"MFU {percent(e['mfu'])})",
        f"Eq. 6 scoring {s['queries']} queries × {s['bank']} bank × {s['dim']}: {s['seconds']:.3f} s",
        f"whole CIFAR10 evaluation ({EVAL_IMAGES} images extracted and scored) / training epoch "
        f"({'trainer.fit' if 'fit' in r else 'step loop'}): {percent(r['evaluation_over_epoch'])}",
    ]
    lines += [f"ablation {lever:<18}{ips:10.1f} images/s ({ips / r['ssad']['images_per_s']:.2f}× the above)"
              for lever, ips in r.get("ablation", {}).items()]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print its table, write the JSON if asked; returns the figures."""
    parser = argparse.ArgumentParser(prog="python -m ssad.bench", description=__doc__.split("\n")[0])
    parser.add_argument("--preset", choices=sorted(PRESETS),
                        help="paper (default on a GPU) or tiny (default on a CPU, where paper takes hours)")
    parser.add_argument("--batch-size", type=int, help="in-distribution images per step (default: config's)")
    parser.add_argument("--steps", type=int, help="timed steps (paper 20, tiny 5)")
    parser.add_argument("--warmup", type=int, help="untimed steps before (paper 5, tiny 2)")
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
    parser.add_argument("overrides", nargs="*", help="Hydra overrides of ssad/conf/train.yaml")
    args = parser.parse_args(argv)
    if args.preset is None:
        args.preset = "paper" if bench_device(args.device).type == "cuda" else "tiny"
        if args.preset == "tiny":
            print("no GPU: the tiny preset (--preset paper runs the paper's settings on this CPU, for hours)")
    if args.threads:
        torch.set_num_threads(args.threads)
    result = benchmark(args)
    print(format_table(result))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return result


if __name__ == "__main__":
    main()
