"""FLOPs per image and model FLOP utilisation: an analytic formula for a ViT, ``FlopCounterMode`` for any
backbone, and the devices' dense peaks."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace

import torch
from torch import Tensor
from torch.utils.flop_counter import FlopCounterMode

from ssad.method.heads import MultiCropNetwork
from ssad.method.module import SSADModule
from ssad.views.augment import MultiCropAugment

# dense peak TFLOP/s (bf16, fp32 without TF32); the first name found in the device's name wins
PEAK_TFLOPS = {"H100 PCIe": (756.0, 51.0), "H100": (989.0, 67.0), "H200": (989.0, 67.0),
               "A100": (312.0, 19.5)}
FLOP_METHODS = {
    "analytic": "analytic ViT formula: fwd = 2·MACs of every matmul + attention 4·N²·d per layer",
    "flop_counter": "torch.utils.flop_counter.FlopCounterMode on the real networks (matmuls, convolutions)",
}


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


def flops_per_image(
    module: SSADModule, augment: MultiCropAugment, negatives: bool, analytic: bool
) -> tuple[int, int, str]:
    """(training FLOPs per image, evaluation FLOPs per image, method): the analytic formula when ``analytic``
    (a ViT: :func:`train_flops_per_image`, :func:`forward_flops`), else ``FlopCounterMode``
    (:func:`counted_train_flops_per_image`, :func:`counted_forward_flops`); method is a key of
    :data:`FLOP_METHODS`."""
    views = (augment.n_global, augment.n_local, int(negatives), augment.n_local * negatives)
    if analytic:
        dims = vit_dims(module.student)
        return (train_flops_per_image(dims, augment.global_size, augment.local_size, views),
                forward_flops(replace(dims, head=()), augment.global_size), "analytic")
    train = counted_train_flops_per_image(module.student, module.teacher, augment.global_size,
                                          augment.local_size, views)
    return train, counted_forward_flops(module.teacher.backbone, augment.global_size), "flop_counter"


def peak_tflops(device: torch.device, bf16: bool) -> float | None:
    """The device's dense peak TFLOP/s at this precision; None on a CPU or an unlisted GPU."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((peak[0 if bf16 else 1] for key, peak in PEAK_TFLOPS.items() if key in name), None)


def mfu(flops: float, images_per_s: float, device: torch.device, bf16: bool) -> float | None:
    """Model FLOP utilisation: achieved FLOP/s over the device's dense peak (None where unknown)."""
    peak = peak_tflops(device, bf16)
    return None if peak is None else flops * images_per_s / (peak * 1e12)
