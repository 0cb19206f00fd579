"""DINO multi-crop augmentation, batched on the device with per-sample random parameters.

Follows DINO's ``DataAugmentationDINO`` (Caron et al. 2021, Sec. 3 and App. D; the paper's Sec. 4 uses it
unchanged): random resized crop, horizontal flip, colour jitter (p=0.8), grayscale (p=0.2), Gaussian blur
(p=1.0 / 0.1 / 0.5 for global-1 / global-2 / local views), solarize (p=0.2, global-2 only), ImageNet
normalisation. Every function below works on a float32 batch (N, 3, H, W) in [0, 1] and takes one random
parameter per sample; the randomness is drawn in :class:`MultiCropAugment`. No Python loop runs over samples.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
LUMA_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R BT.601, as PIL's convert("L")


def _per_sample(values: Tensor) -> Tensor:
    """(N,) → (N, 1, 1, 1), to broadcast one value per sample over channels and pixels."""
    return values.view(-1, 1, 1, 1)


def crop_matrices(
    n: int,
    aspect: float,
    scale: tuple[float, float],
    ratio: tuple[float, float],
    flip_p: float,
    device: torch.device,
) -> Tensor:
    """(n, 2, 3) affine matrices of random resized crops (RandomResizedCrop + RandomHorizontalFlip).

    Per sample: area fraction uniform in ``scale``, aspect ratio (w/h) log-uniform in ``ratio``; box sides
    clamped to the image (≤ 1) and the centre uniform over the positions that keep the box inside;
    horizontal flip with probability ``flip_p`` as a sign on the x scale. ``aspect`` is the source's H / W.
    Matrices map output coordinates to input coordinates in ``affine_grid``'s normalised [-1, 1] frame.
    """
    area = torch.empty(n, device=device).uniform_(*scale)
    log_ratio = torch.empty(n, device=device).uniform_(math.log(ratio[0]), math.log(ratio[1]))
    width = (area * log_ratio.exp() * aspect).sqrt().clamp(max=1.0)
    height = (area / log_ratio.exp() / aspect).sqrt().clamp(max=1.0)
    centre = (1 - torch.stack([width, height], 1)) * torch.empty(n, 2, device=device).uniform_(-1, 1)
    sign = torch.where(torch.rand(n, device=device) < flip_p, -1.0, 1.0)
    theta = torch.zeros(n, 2, 3, device=device)
    theta[:, 0, 0] = sign * width
    theta[:, 1, 1] = height
    theta[:, :, 2] = centre
    return theta


def resized_crops(images: Tensor, theta: Tensor, size: int, mode: str = "bicubic") -> Tensor:
    """Crop-and-resize ``len(theta) // B`` views of every image in ONE ``grid_sample`` call.

    ``images`` (B, 3, H, W) float; ``theta`` (V·B, 2, 3) from :func:`crop_matrices`. Returns (V·B, 3, size,
    size), view-major (rows v·B … v·B + B − 1 are view v), clamped to [0, 1] (bicubic overshoots).
    """
    views = theta.shape[0] // images.shape[0]
    grid = F.affine_grid(theta, [theta.shape[0], 3, size, size], align_corners=False)
    out = F.grid_sample(
        images.repeat(views, 1, 1, 1), grid, mode=mode, padding_mode="border", align_corners=False
    )
    return out.clamp_(0.0, 1.0)


def luma(x: Tensor) -> Tensor:
    """(N, 1, H, W) gray level with ITU-R 601 weights 0.299 R + 0.587 G + 0.114 B."""
    r, g, b = x[:, 0:1], x[:, 1:2], x[:, 2:3]
    return LUMA_WEIGHTS[0] * r + LUMA_WEIGHTS[1] * g + LUMA_WEIGHTS[2] * b


def grayscale(x: Tensor) -> Tensor:
    """RandomGrayscale's transform: the ITU-R 601 gray level copied to the three channels."""
    return luma(x).expand_as(x)


def _blend(x: Tensor, other: Tensor, factor: Tensor) -> Tensor:
    """factor·x + (1 − factor)·other, clamped to [0, 1] (torchvision's ``_blend``), one factor per sample."""
    factor = _per_sample(factor)
    return (factor * x + (1 - factor) * other).clamp_(0.0, 1.0)


def adjust_brightness(x: Tensor, factor: Tensor) -> Tensor:
    """ColorJitter brightness: multiply each sample by its factor, clamp to [0, 1]."""
    return (x * _per_sample(factor)).clamp_(0.0, 1.0)


def adjust_contrast(x: Tensor, factor: Tensor) -> Tensor:
    """ColorJitter contrast: blend each sample with the mean of its own gray image."""
    return _blend(x, luma(x).mean((1, 2, 3), keepdim=True), factor)


def adjust_saturation(x: Tensor, factor: Tensor) -> Tensor:
    """ColorJitter saturation: blend each sample with its gray image."""
    return _blend(x, luma(x), factor)


def rgb_to_hsv(x: Tensor) -> Tensor:
    """RGB → HSV on (N, 3, H, W) in [0, 1]; hue in [0, 1) (fraction of a turn), 0 for grays."""
    r, g, b = x.unbind(1)
    value, argmax = x.max(1)
    delta = value - x.amin(1)
    saturation = delta / value.clamp(min=1e-12)
    d = delta.clamp(min=1e-12)  # delta = 0 makes every hue formula 0 (gray)
    hue = torch.where(argmax == 0, (g - b) / d, torch.where(argmax == 1, 2 + (b - r) / d, 4 + (r - g) / d))
    return torch.stack([torch.remainder(hue / 6, 1.0), saturation, value], 1)


def hsv_to_rgb(x: Tensor) -> Tensor:
    """HSV → RGB, inverse of :func:`rgb_to_hsv`: channel n ∈ (5, 3, 1) is V − V·S·clamp(min(k, 4 − k), 0, 1)
    with k = (n + 6H) mod 6."""
    hue, saturation, value = x[:, :1], x[:, 1:2], x[:, 2:]
    k = torch.remainder(torch.arange(5.0, 0.0, -2.0, device=x.device).view(1, 3, 1, 1) + 6 * hue, 6)
    return value - value * saturation * torch.minimum(k, 4 - k).clamp(0.0, 1.0)


def adjust_hue(x: Tensor, shift: Tensor) -> Tensor:
    """ColorJitter hue: rotate each sample's hue by its shift (fraction of a turn) through HSV."""
    hsv = rgb_to_hsv(x)
    hsv[:, 0] = torch.remainder(hsv[:, 0] + shift.view(-1, 1, 1), 1.0)
    return hsv_to_rgb(hsv)


def gaussian_blur(x: Tensor, sigma: Tensor, radius: int | None = None) -> Tensor:
    """GaussianBlur with one σ per sample: separable, one kernel per (sample, channel) by grouped conv2d.

    The kernel spans ±``radius`` pixels (default ⌈3·max σ⌉, which needs a host sync: pass it when known);
    borders are replicated, as PIL's ``GaussianBlur`` that DINO uses.
    """
    n, c, h, w = x.shape
    radius = math.ceil(3 * sigma.max().item()) if radius is None else radius
    offsets = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    kernel = torch.exp(-(offsets**2) / (2 * sigma.view(-1, 1).to(x.dtype) ** 2))
    kernel = (kernel / kernel.sum(1, keepdim=True)).repeat_interleave(c, 0)  # (N·C, 2·radius + 1)
    out = F.pad(x.reshape(1, n * c, h, w), (radius,) * 4, mode="replicate")
    out = F.conv2d(out, kernel.view(n * c, 1, 1, -1), groups=n * c)
    out = F.conv2d(out, kernel.view(n * c, 1, -1, 1), groups=n * c)
    return out.view(n, c, h, w)


def solarize(x: Tensor, threshold: float = 0.5) -> Tensor:
    """Solarization: invert the pixels at or above the threshold (x ≥ 0.5 → 1 − x)."""
    return torch.where(x >= threshold, 1.0 - x, x)


def _random_apply(x: Tensor, transform: Callable[[Tensor], Tensor], p: Sequence[float]) -> Tensor:
    """RandomApply per sample on a view-major batch: ``transform(x)`` where a coin succeeds, else x.

    ``p`` holds one probability per view; the coins are drawn per sample, the blend is one ``torch.where``.
    """
    if max(p) <= 0:
        return x
    if min(p) >= 1:
        return transform(x)
    b = len(x) // len(p)
    threshold = torch.cat([torch.full((b,), float(pv), device=x.device) for pv in p])
    return torch.where(_per_sample(torch.rand(len(x), device=x.device) < threshold), transform(x), x)


class MultiCropAugment(nn.Module):
    """DINO multi-crop: 2 global views (global-1, global-2 pipelines) and 8 local views per image.

    Defaults follow DINO's ``DataAugmentationDINO`` and the paper (Sec. 4): 256/128 px crops with scale
    (0.4, 1) / (0.15, 0.4). Colour jitter applies brightness, contrast, saturation and hue in that fixed
    order (torchvision shuffles it per call). ``forward`` takes uint8 (B, 3, H, W) on any device and returns
    float32 normalised views on the same device.
    """

    def __init__(
        self,
        global_size: int = 256,
        local_size: int = 128,
        n_global: int = 2,
        n_local: int = 8,
        global_scale: Sequence[float] = (0.4, 1.0),
        local_scale: Sequence[float] = (0.15, 0.4),
        ratio: Sequence[float] = (3 / 4, 4 / 3),
        flip_p: float = 0.5,
        jitter: Sequence[float] = (0.4, 0.4, 0.2, 0.1),
        jitter_p: float = 0.8,
        grayscale_p: float = 0.2,
        blur_sigma: Sequence[float] = (0.1, 2.0),
        blur_p: Sequence[float] = (1.0, 0.1, 0.5),
        solarize_p: float = 0.2,
        interpolation: str = "bicubic",
    ) -> None:
        super().__init__()
        if interpolation not in ("bicubic", "bilinear"):
            raise ValueError(f"interpolation must be 'bicubic' or 'bilinear', got {interpolation!r}")
        if len(blur_p) != 3 or len(jitter) != 4:
            raise ValueError("blur_p needs 3 probabilities (global-1, global-2, local), jitter 4 strengths")
        self.global_size, self.local_size = global_size, local_size
        self.n_global, self.n_local = n_global, n_local
        self.global_scale, self.local_scale = tuple(global_scale), tuple(local_scale)
        self.ratio, self.flip_p = tuple(ratio), flip_p
        ranges = [(max(0.0, 1 - s), 1 + s) for s in jitter[:3]] + [(-jitter[3], jitter[3])]
        ops = (adjust_brightness, adjust_contrast, adjust_saturation, adjust_hue)
        # (factor range, operation) in ColorJitter's order; a strength of 0 skips the operation
        self.jitter_ranges = [
            (r, op) for r, op, strength in zip(ranges, ops, jitter, strict=True) if strength > 0
        ]
        self.jitter_p, self.grayscale_p = jitter_p, grayscale_p
        self.blur_sigma, self.blur_p, self.solarize_p = tuple(blur_sigma), tuple(blur_p), solarize_p
        self.blur_radius = math.ceil(3 * self.blur_sigma[1])
        self.interpolation = interpolation
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def color_jitter(self, x: Tensor) -> Tensor:
        """ColorJitter with factors drawn per sample: brightness, contrast, saturation, then hue."""
        for (low, high), op in self.jitter_ranges:
            x = op(x, torch.empty(len(x), device=x.device).uniform_(low, high))
        return x

    def blur(self, x: Tensor) -> Tensor:
        """GaussianBlur with σ uniform in ``blur_sigma`` per sample."""
        return gaussian_blur(
            x, torch.empty(len(x), device=x.device).uniform_(*self.blur_sigma), self.blur_radius
        )

    def _views(
        self, x: Tensor, n_views: int, size: int, scale: tuple, blur_p: list[float], solarize_p: list[float]
    ) -> list[Tensor]:
        """``n_views`` views of every image at one resolution, all processed as one batch."""
        b, _, h, w = x.shape
        theta = crop_matrices(n_views * b, h / w, scale, self.ratio, self.flip_p, x.device)
        v = resized_crops(x, theta, size, self.interpolation)
        v = _random_apply(v, self.color_jitter, [self.jitter_p])
        v = _random_apply(v, grayscale, [self.grayscale_p])
        v = _random_apply(v, self.blur, blur_p)
        v = _random_apply(v, solarize, solarize_p)
        v = (v - self.mean.to(v.device)) / self.std.to(v.device)
        return list(v.view(n_views, b, 3, size, size).unbind(0))

    def forward(
        self, images: Tensor, n_global: int | None = None, n_local: int | None = None
    ) -> list[Tensor]:
        """Global views (B, 3, G, G) then local views (B, 3, L, L), float32, ImageNet-normalised.

        Global view 0 uses the global-1 pipeline, view 1 the global-2 pipeline, further globals alternate;
        ``n_global`` / ``n_local`` override the configured counts (negatives use 1 and 8).
        """
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"expected uint8 images (B, 3, H, W), got {images.dtype} {tuple(images.shape)}")
        n_global = self.n_global if n_global is None else n_global
        n_local = self.n_local if n_local is None else n_local
        x = images.float().div_(255)
        views = []
        if n_global:
            blur_p = [self.blur_p[v % 2] for v in range(n_global)]
            solarize_p = [self.solarize_p * (v % 2) for v in range(n_global)]
            views += self._views(x, n_global, self.global_size, self.global_scale, blur_p, solarize_p)
        if n_local:
            blur_p, solarize_p = [self.blur_p[2]] * n_local, [0.0] * n_local
            views += self._views(x, n_local, self.local_size, self.local_scale, blur_p, solarize_p)
        return views
