"""Evaluation features: teacher-backbone CLS features of un-augmented images (docs/explanation/method.md "Evaluation").

Images are resized (bicubic) to the global-view size, normalised with ImageNet mean/std, passed through
the teacher backbone, and the features L2-normalised, as in the authors' evaluation code. Under DDP each
process extracts its shard and the features are gathered back in dataset order.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader

from ssad.method.backbones import describe
from ssad.utils.console import progress_bar
from ssad.views.augment import IMAGENET_MEAN, IMAGENET_STD


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` (and ``cuda``) = the GPU when one is present, else the CPU; any other name as given."""
    if name in ("auto", "cuda"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def preprocess(images: Tensor, size: int) -> Tensor:
    """uint8 (B,3,H,W) → float, bicubic resize to size×size, ImageNet normalisation."""
    x = images.float().div_(255.0)
    if x.shape[-2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bicubic", align_corners=False).clamp_(0.0, 1.0)
    mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


def image_features(backbone: nn.Module, images: Tensor, size: int) -> tuple[Tensor, Tensor]:
    """What ``backbone`` makes of uint8 images (N, 3, H, W): :func:`preprocess` to ``size``, then
    :func:`ssad.method.backbones.describe`; returns (f, the features an image is scored by, L2-normalised in fp32).
    bf16 autocast on CUDA. The one path from images to scored features of evaluation (:func:`extract`), the
    ``.pt`` detector and its ONNX graph."""
    x = preprocess(images, size)
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=x.device.type == "cuda"):
        f, scored = describe(backbone, x)
    return f, F.normalize(scored.float(), dim=-1)


@torch.no_grad()
def extract(
    backbone: nn.Module,
    loader: DataLoader,
    size: int,
    head: Callable[[Tensor], Tensor] | None = None,
    desc: str = "features",
    progress: bool = True,
) -> tuple[Tensor, Tensor | None]:
    """Normalised features (N, d) that ``backbone`` scores images by (:func:`ssad.method.backbones.describe`: f,
    or f with a grid of an earlier block) of every batch of ``loader`` and, if ``head`` is given, the
    head's output on them (N, K). bf16 autocast on CUDA; features are returned in fp32 on the CPU. The backbone
    runs in eval mode; the head keeps the caller's mode, so during training the teacher's head normalises with
    batch statistics as when it makes the targets (the soft-class diagnostics' thresholds are measured so).
    ``progress``: a bar on a terminal (:func:`ssad.utils.console.progress_bar`)."""
    device = next(backbone.parameters()).device
    was_training = backbone.training
    backbone.eval()
    feats, outs = [], []
    for batch in progress_bar(loader, desc, progress):
        f, scored = image_features(backbone, batch["image"].to(device, non_blocking=True), size)
        if head is not None:
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                outs.append(head(f).float().cpu())
        feats.append(scored.cpu())
    backbone.train(was_training)
    return torch.cat(feats), (torch.cat(outs) if head is not None else None)


def gather_in_order(local: Tensor, total: int) -> Tensor:
    """Undo a ``DistributedSampler(shuffle=False)`` split: rank r holds rows r, r+W, r+2W, … of the
    (padded) dataset; gather all ranks, interleave them back into dataset order, drop the padding."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return local[:total]
    world = dist.get_world_size()
    device = local.device if dist.get_backend() != "nccl" else torch.device("cuda", torch.cuda.current_device())
    local = local.to(device).contiguous()
    chunks = [torch.empty_like(local) for _ in range(world)]
    dist.all_gather(chunks, local)
    return torch.stack(chunks, dim=1).reshape(-1, *local.shape[1:])[:total].cpu()
