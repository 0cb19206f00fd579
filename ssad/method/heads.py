"""Networks g = backbone + DINO projection head (paper Sec. 3.1; docs/explanation/method.md).

The student g_s and the teacher g_t share this architecture; the teacher is an EMA copy of the student.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.nn.utils.parametrizations import weight_norm


class DINOHead(nn.Module):
    """Projection head: 3-layer MLP (GELU) → L2-normalise → weight-normalised linear to K soft-classes.

    ``norm_last_layer=True`` fixes the weight-norm magnitude g to 1 (DINO's default); the paper's command
    line leaves it free. The last layer and its output run in fp32 even under bf16 autocast: τ_t=0.01
    amplifies rounding errors of the logits. ``use_bn`` puts BatchNorm after each hidden linear layer (DINO's
    ``use_bn_in_head``): it spreads the outputs of a network whose features start alike for every image.
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int = 4096,
        hidden_dim: int = 2048,
        bottleneck_dim: int = 256,
        n_layers: int = 3,
        norm_last_layer: bool = False,
        use_bn: bool = False,
    ) -> None:
        super().__init__()
        dims = [in_dim] + [hidden_dim] * (n_layers - 1) + [bottleneck_dim]
        layers: list[nn.Module] = []
        for i, (d_in, d_out) in enumerate(zip(dims[:-1], dims[1:])):
            layers.append(nn.Linear(d_in, d_out))
            if i < n_layers - 1:
                layers += [nn.BatchNorm1d(d_out), nn.GELU()] if use_bn else [nn.GELU()]
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


def make_deterministic(network: nn.Module) -> nn.Module:
    """The teacher's network: every dropout and drop-path (stochastic depth) probability set to 0, in place, so
    that its targets and the centre carry no sampling noise in any mode (DINO builds its teacher with
    ``drop_path_rate=0``). BatchNorm is left as it is: in training mode it normalises with the batch statistics
    and its running statistics track the teacher's own inputs, which evaluation then uses."""
    for module in network.modules():
        if isinstance(module, nn.modules.dropout._DropoutNd):
            module.p = 0.0
        if hasattr(module, "drop_prob"):  # timm's DropPath / DropBlock
            module.drop_prob = 0.0
    return network


def _group_by_size(views: Sequence[Tensor]) -> list[list[Tensor]]:
    groups: list[list[Tensor]] = []
    for view in views:
        if groups and groups[-1][0].shape[-2:] == view.shape[-2:]:
            groups[-1].append(view)
        else:
            groups.append([view])
    return groups
