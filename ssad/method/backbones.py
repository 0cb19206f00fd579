"""Backbones f(x): the paper's ViT and the CNNs of the OOD literature, each returning a pooled feature of width
``num_features`` that the DINO head takes (docs/explanation/method.md).

:data:`BACKBONES` is the registry a detector file or a checkpoint is rebuilt through: a builder name and plain
arguments, never code named by a file.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import timm
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ssad.cli.errors import ConfigError
from ssad.method.pretrained import load_pretrained


def vit_backbone(
    name: str = "vit_small_patch16_224",
    img_size: int = 256,
    patch_size: int = 16,
    drop_path_rate: float = 0.1,
    fused_attn: bool = True,
    pretrained: bool | str | None = None,
    **kwargs,
) -> nn.Module:
    """A timm ViT returning the CLS feature f (``num_classes=0``), accepting any view size.

    ``dynamic_img_size`` lets one network take 256×256 global and 128×128 local views (position
    embeddings interpolated). ``fused_attn`` selects PyTorch's scaled-dot-product attention kernel.
    Extra keyword arguments (embed_dim, depth, num_heads, ...) override timm's defaults for ``name``.
    ``pretrained`` (beyond the paper, which trains from scratch): null, true (timm's weights for ``name``), a hub
    name or a local weights file (:mod:`ssad.method.pretrained`); position embeddings are resampled to ``img_size``.
    """
    model = timm.create_model(
        name,
        pretrained=False,
        num_classes=0,
        img_size=img_size,
        patch_size=patch_size,
        drop_path_rate=drop_path_rate,
        dynamic_img_size=True,
        **kwargs,
    )
    for module in model.modules():
        if hasattr(module, "fused_attn"):
            module.fused_attn = fused_attn
    sizes = "".join(f", {key}={value}" for key, value in {"patch_size": patch_size, **kwargs}.items())
    return load_pretrained(model, pretrained, name, f"vit_backbone({name}{sizes})")


def resnet18_cifar(drop_path_rate: float = 0.0, pretrained: bool | str | None = None) -> nn.Module:
    """timm's ResNet-18 with the CIFAR stem (3×3 stride-1 first convolution, no max-pool), as in CSI, SSD and
    OpenOOD's CIFAR baselines; f = the global-average-pooled 512-d output of the last stage. ``pretrained``: as
    :func:`vit_backbone`'s (true: timm's ``resnet18``); ImageNet weights leave the 3×3 first convolution as
    initialised (theirs is 7×7)."""
    model = timm.create_model("resnet18", pretrained=False, num_classes=0, drop_path_rate=drop_path_rate)
    model.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
    model.maxpool = nn.Identity()
    return load_pretrained(model, pretrained, "resnet18", "resnet18_cifar")


class SmallCNN(nn.Module):
    """A CNN sized for CPU runs: ``depth`` blocks of 3×3 convolution, BatchNorm and ReLU, the first ``depth`` − 1
    followed by 2×2 max-pooling, channels doubling from ``width``; f = global average pool (``num_features`` =
    width · 2^(depth−1)). Any input size ≥ 2^(depth−1). The pooled features are all positive, one blob on the
    sphere, whose middle Eq. 6 at τ = 0.04 reads rather than an image's neighbours (docs/results/centring.md "Why MNIST
    scores below 50"). Two ways to spread them: ``feature_shift`` = α subtracts α times the training images' mean
    feature (:class:`FeatureShift`); ``layer_norm``: f = LayerNorm(pooled feature), centred and scaled over its
    channels per image like the paper's ViT feature (its final norm; docs/results/centring.md "Shape data").

    What an image is scored by (:meth:`describe`, beyond the paper): f alone, or with ``grid_block`` = k the
    concatenation of f (L2-normalised, times ``f_weight``) and block k's output average-pooled to ``grid_cells`` ×
    ``grid_cells`` cells (L2-normalised), which keeps where in the image things are, as pixels do, while f keeps what
    training taught (docs/results/cpu-recipe.md). Training sees f only. ``frozen_blocks`` = k keeps the first k
    blocks' weights at initialisation."""

    def __init__(self, width: int = 32, depth: int = 4, layer_norm: bool = False, feature_shift: float = 0.0,
                 grid_block: int | None = None, grid_cells: int = 4, f_weight: float = 1.0,
                 frozen_blocks: int = 0) -> None:
        super().__init__()
        if width < 1 or depth < 1:
            raise ValueError(f"SmallCNN: width={width}, depth={depth}; both must be >= 1")
        if grid_block is not None and not 1 <= grid_block <= depth:
            raise ConfigError(f"model.backbone.grid_block={grid_block}: a block of the small CNN, 1 to depth={depth} "
                              "(or null: score f alone)")
        if not 0 <= frozen_blocks < depth:
            raise ConfigError(f"model.backbone.frozen_blocks={frozen_blocks}: 0 to depth − 1 = {depth - 1} of the "
                              "first blocks keep their initial weights")
        if grid_cells < 1 or not f_weight > 0:
            raise ConfigError(f"model.backbone.grid_cells={grid_cells} must be >= 1 and f_weight={f_weight} > 0")
        if not 0.0 <= feature_shift <= 1.0:
            raise ValueError(f"SmallCNN: feature_shift={feature_shift}; the fraction of the mean feature subtracted "
                             "must lie in [0, 1]")
        if layer_norm and feature_shift:
            raise ValueError("SmallCNN: layer_norm=true and feature_shift > 0 both centre f; choose one "
                             "(model.backbone.feature_shift=0 or model.backbone.layer_norm=false)")
        layers: list[nn.Module] = []
        channels = 3
        for i in range(depth):
            out = width * 2**i
            layers += [nn.Conv2d(channels, out, 3, padding=1, bias=False), nn.BatchNorm2d(out), nn.ReLU(inplace=True)]
            if i < depth - 1:
                layers.append(nn.MaxPool2d(2))
            if i < frozen_blocks:  # kept at initialisation: only their BatchNorm statistics follow the data
                for layer in layers[-4:]:
                    layer.requires_grad_(False)
            channels = out
        self.features = nn.Sequential(*layers)
        self.num_features = channels
        self.norm: nn.Module = nn.Identity()
        if layer_norm:
            self.norm = nn.LayerNorm(channels)
        elif feature_shift:
            self.norm = FeatureShift(channels, feature_shift)

        self.grid_block, self.grid_cells, self.f_weight = grid_block, grid_cells, f_weight

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(self.features(x).mean(dim=(-2, -1)))

    def describe(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(f, what the image is scored by): f twice without ``grid_block``, else f and [f_weight·f̂, ĝ] with ĝ the
        normalised grid-pooled output of block ``grid_block`` (hats: L2-normalised)."""
        if self.grid_block is None:
            f = self.forward(x)
            return f, f
        block, grid = 0, x
        for layer in self.features:
            x = layer(x)
            if isinstance(layer, nn.ReLU):
                block += 1
                if block == self.grid_block:
                    grid = grid_pool(x, self.grid_cells)
        f = self.norm(x.mean(dim=(-2, -1)))
        return f, torch.cat([self.f_weight * F.normalize(f, dim=-1), F.normalize(grid, dim=-1)], dim=-1)


def grid_pool(x: Tensor, cells: int) -> Tensor:
    """(N, C, H, W) average-pooled to ``cells`` × ``cells`` and flattened (N, C·cells²); a plain average pooling where
    ``cells`` divides H and W (the same values), which the ONNX export traces at its fixed view size."""
    height, width = x.shape[-2:]
    if height % cells == 0 and width % cells == 0:
        return F.avg_pool2d(x, (int(height) // cells, int(width) // cells)).flatten(1)
    return F.adaptive_avg_pool2d(x, cells).flatten(1)


def small_cnn(width: int = 32, depth: int = 4, layer_norm: bool = False, feature_shift: float = 0.0,
              grid_block: int | None = None, grid_cells: int = 4, f_weight: float = 1.0, frozen_blocks: int = 0,
              pretrained: bool | str | None = None) -> nn.Module:
    """:class:`SmallCNN` (builder for the registry and the configs). It has no pretrained weights: ``pretrained``
    must stay null."""
    if pretrained not in (None, False):
        raise ConfigError(f"model.backbone.pretrained={pretrained}: the small CNN (small_cnn) has no pretrained "
                          "weights; leave it null, or choose a timm backbone that has them (model=resnet18 or "
                          "model=vit_small)")
    return SmallCNN(width, depth, layer_norm, feature_shift, grid_block, grid_cells, f_weight, frozen_blocks)


class FeatureShift(nn.Module):
    """The small CNN's feature shift f − α·m (not the teacher's centring): subtracts the fraction α (``fraction``) of m,
    the mean feature of the training images. In training m is the batch's mean (gradients flow through it, as through
    BatchNorm's) and a running average of it is kept like BatchNorm's running mean (``momentum``; None: the cumulative
    average, as :func:`ssad.scoring.baselines.calibrate_batchnorm` sets it to measure an untrained network); evaluation
    subtracts that running mean. α = 1 centres the blob of all-positive features on the origin, so that Eq. 6 reads
    neighbours; α = 0.5 keeps part of where an image lies in the blob, which is what tells shoes from clothes on
    Fashion-MNIST (docs/results/centring.md "Feature shift")."""

    def __init__(self, num_features: int, fraction: float, momentum: float | None = 0.1) -> None:
        super().__init__()
        self.fraction, self.momentum = fraction, momentum
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))

    def reset_running_stats(self) -> None:
        self.running_mean.zero_()
        self.num_batches_tracked.zero_()

    def forward(self, x: Tensor) -> Tensor:
        if not self.training:
            return x - self.fraction * self.running_mean
        mean = x.mean(dim=0)
        with torch.no_grad():
            self.num_batches_tracked += 1
            weight = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
            self.running_mean.lerp_(mean.detach().to(self.running_mean.dtype), weight)
        return x - self.fraction * mean

    def extra_repr(self) -> str:
        return f"{self.running_mean.numel()}, fraction={self.fraction}, momentum={self.momentum}"


def describe(backbone: nn.Module, x: Tensor) -> tuple[Tensor, Tensor]:
    """(f, the feature an image is scored by) of any backbone: its :meth:`SmallCNN.describe` where it has one, else
    f twice. Evaluation, the baselines' untrained network, the detector and its ONNX graph all score through this."""
    if hasattr(backbone, "describe"):
        return backbone.describe(x)
    f = backbone(x)
    return f, f


BACKBONES: dict[str, Callable[..., nn.Module]] = {
    "vit_backbone": vit_backbone,
    "resnet18_cifar": resnet18_cifar,
    "small_cnn": small_cnn,
}


def builder_name(target: str) -> str:
    """The registry name of a config's ``_target_`` (``ssad.method.backbones.small_cnn`` → ``small_cnn``)."""
    name = str(target).rsplit(".", 1)[-1]
    if name not in BACKBONES:
        raise ValueError(f"backbone {target!r} is not one of ssad's backbones ({', '.join(BACKBONES)})")
    return name


def build_backbone(builder: str, **kwargs: Any) -> nn.Module:
    """Rebuild a backbone from its registry name and plain arguments. Its weights come from the file being loaded
    (a detector, a checkpoint), so ``pretrained`` is not applied: nothing is downloaded or read."""
    if builder not in BACKBONES:
        raise ValueError(f"unknown backbone {builder!r}; ssad builds {', '.join(BACKBONES)}")
    kwargs.pop("pretrained", None)
    return BACKBONES[builder](**kwargs)
