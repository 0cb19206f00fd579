"""Networks g = backbone + DINO projection head (paper Sec. 3.1, DESIGN.md "The method").

The student g_s and the teacher g_t share this architecture; the teacher is an EMA copy of the student.
"""

from __future__ import annotations

from collections.abc import Sequence

import timm
import torch
from torch import Tensor, nn
from torch.nn.utils.parametrizations import weight_norm


def vit_backbone(
    name: str = "vit_small_patch16_224",
    img_size: int = 256,
    patch_size: int = 16,
    drop_path_rate: float = 0.1,
    fused_attn: bool = True,
    **kwargs,
) -> nn.Module:
    """A timm ViT returning the CLS feature f (``num_classes=0``), accepting any view size.

    ``dynamic_img_size`` lets one network take 256×256 global and 128×128 local views (position
    embeddings interpolated). ``fused_attn`` selects PyTorch's scaled-dot-product attention kernel.
    Extra keyword arguments (embed_dim, depth, num_heads, ...) override timm's defaults for ``name``.
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
    return model


class DINOHead(nn.Module):
    """Projection head: 3-layer MLP (GELU) → L2-normalise → weight-normalised linear to K soft-classes.

    ``norm_last_layer=True`` fixes the weight-norm magnitude g to 1 (DINO's default); the paper's command
    line leaves it free. The last layer and its output run in fp32 even under bf16 autocast: τ_t=0.01
    amplifies rounding errors of the logits.
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int = 4096,
        hidden_dim: int = 2048,
        bottleneck_dim: int = 256,
        n_layers: int = 3,
        norm_last_layer: bool = False,
    ) -> None:
        super().__init__()
        dims = [in_dim] + [hidden_dim] * (n_layers - 1) + [bottleneck_dim]
        layers: list[nn.Module] = []
        for i, (d_in, d_out) in enumerate(zip(dims[:-1], dims[1:])):
            layers.append(nn.Linear(d_in, d_out))
            if i < n_layers - 1:
                layers.append(nn.GELU())
        self.mlp = nn.Sequential(*layers)
        self.apply(_init_linear)
        self.last_layer = weight_norm(nn.Linear(bottleneck_dim, out_dim, bias=False))
        magnitude = self.last_layer.parametrizations.weight.original0
        magnitude.data.fill_(1.0)
        magnitude.requires_grad = not norm_last_layer

    def forward(self, features: Tensor) -> Tensor:
        z = nn.functional.normalize(self.mlp(features), dim=-1, p=2)
        with torch.autocast(device_type=z.device.type, enabled=False):
            return self.last_layer(z.float())


def _init_linear(module: nn.Module) -> None:
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


class MultiCropNetwork(nn.Module):
    """g(x) = head(backbone(x)) over a list of views, one backbone call per resolution.

    Consecutive views of equal size are concatenated along the batch (e.g. positive and negative global
    views together, then all local views), the head runs once on all features, and the output is split
    back into one (B_v, K) tensor per view. ``group_views=False`` makes one backbone call per view instead
    (DINO-style reference; same result up to rounding).
    """

    def __init__(self, backbone: nn.Module, head: DINOHead, group_views: bool = True) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.group_views = group_views

    def forward(self, views: Sequence[Tensor]) -> list[Tensor]:
        groups = _group_by_size(views) if self.group_views else [[view] for view in views]
        features = torch.cat([self.backbone(torch.cat(group)) for group in groups])
        logits = self.head(features)
        return list(logits.split([v.shape[0] for v in views]))


def _group_by_size(views: Sequence[Tensor]) -> list[list[Tensor]]:
    groups: list[list[Tensor]] = []
    for view in views:
        if groups and groups[-1][0].shape[-2:] == view.shape[-2:]:
            groups[-1].append(view)
        else:
            groups.append([view])
    return groups
