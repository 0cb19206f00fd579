"""Per-sample photometric operations of DINO's augmentations on a float32 batch (N, 3, H, W) in [0, 1]: colour
jitter (brightness, contrast, saturation, hue), grayscale, Gaussian blur, solarisation. Each takes one parameter
per sample (those ending in ``_`` modify the batch in place); a neutral parameter (factor 1, shift 0, σ → 0, ...)
leaves a sample as it is, so that :class:`ssad.views.augment.MultiCropAugment` draws every coin with ``torch.where`` and
no Python loop runs over samples."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

LUMA_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R BT.601, as PIL's convert("L")


def _per_sample(values: Tensor) -> Tensor:
    """(N,) → (N, 1, 1, 1), to broadcast one value per sample over channels and pixels."""
    return values.view(-1, 1, 1, 1)


def luma(x: Tensor) -> Tensor:
    """(N, 1, H, W) gray level with ITU-R 601 weights 0.299 R + 0.587 G + 0.114 B."""
    (wr, wg, wb), (r, g, b) = LUMA_WEIGHTS, x.split(1, dim=1)
    return (r * wr).add_(g, alpha=wg).add_(b, alpha=wb)


def grayscale_(x: Tensor, amount: Tensor) -> Tensor:
    """RandomGrayscale: replace each sample (amount 1) by its ITU-R 601 gray level on all three channels."""
    return x.lerp_(luma(x), _per_sample(amount))


def adjust_brightness_(x: Tensor, factor: Tensor) -> Tensor:
    """ColorJitter brightness: multiply each sample by its factor, clamp to [0, 1]."""
    return x.mul_(_per_sample(factor)).clamp_(0.0, 1.0)


def adjust_contrast_(x: Tensor, factor: Tensor) -> Tensor:
    """ColorJitter contrast: factor·x + (1 − factor)·(mean of the sample's gray image), clamp to [0, 1]."""
    return x.lerp_(luma(x).mean((1, 2, 3), keepdim=True), 1 - _per_sample(factor)).clamp_(0.0, 1.0)


def adjust_saturation_(x: Tensor, factor: Tensor) -> Tensor:
    """ColorJitter saturation: factor·x + (1 − factor)·(the sample's gray image), clamp to [0, 1]."""
    return x.lerp_(luma(x), 1 - _per_sample(factor)).clamp_(0.0, 1.0)


def _hexcone(x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Hue in sextants (6·H ∈ [-1, 5)), chroma (max − min) and min of RGB images (N, 3, H, W)."""
    r, g, b = x.split(1, dim=1)
    value, low = x.amax(1, keepdim=True), x.amin(1, keepdim=True)
    chroma = value - low
    # sextant·chroma = g − b (red is max), b − r + 2C (green), r − g + 4C (blue); lerp by 0/1 masks selects
    sextant = torch.lerp(r - g + 4 * chroma, b - r + 2 * chroma, (g == value).float())
    sextant.lerp_(g - b, (r == value).float())
    return sextant.div_(chroma.clamp(min=1e-12)), chroma, low  # chroma 0 (gray): hue 0


def _from_hexcone(hue6: Tensor, chroma: Tensor, low: Tensor) -> Tensor:
    """Inverse of :func:`_hexcone` for 6·H ∈ [-2, 6]: channel c ∈ (R, G, B) is min + C·clamp(d − 1, 0, 1),
    d the circular distance (period 6) of 6·H + (5, 3, 1)_c from 2, written d = ||6·H + (0, −2, −4)_c| − 3|.
    """
    offsets = torch.arange(0.0, -5.0, -2.0, device=hue6.device).view(1, 3, 1, 1)
    return (offsets + hue6).abs_().sub_(3).abs_().sub_(1).clamp_(0.0, 1.0).mul_(chroma).add_(low)


def rgb_to_hsv(x: Tensor) -> Tensor:
    """RGB → HSV on (N, 3, H, W) in [0, 1]; hue in [0, 1) (fraction of a turn), 0 for grays."""
    hue6, chroma, low = _hexcone(x)
    value = chroma + low
    return torch.cat([hue6.remainder_(6).div_(6), chroma.div_(value.clamp(min=1e-12)), value], 1)


def hsv_to_rgb(x: Tensor) -> Tensor:
    """HSV → RGB, inverse of :func:`rgb_to_hsv`."""
    hue, saturation, value = x.split(1, dim=1)
    chroma = saturation * value
    return _from_hexcone(6 * hue, chroma, value - chroma)


def adjust_hue(x: Tensor, shift: Tensor) -> Tensor:
    """ColorJitter hue: rotate each sample's hue by its shift (fraction of a turn), keep chroma and value."""
    hue6, chroma, low = _hexcone(x)
    return _from_hexcone(hue6.add_(6 * _per_sample(shift)).remainder_(6), chroma, low)


def gaussian_blur(x: Tensor, sigma: Tensor, radius: int | None = None) -> Tensor:
    """GaussianBlur with one σ per sample: separable, one kernel per (sample, channel) by grouped conv2d.

    The kernel spans ±``radius`` pixels (default ⌈3·max σ⌉, which needs a host sync: pass it when known);
    borders are replicated, as PIL's ``GaussianBlur`` that DINO uses. A σ ≤ 1e-3 leaves the sample as is.
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


def solarize(x: Tensor, threshold: Tensor | float = 0.5) -> Tensor:
    """Solarization: invert the pixels at or above the sample's threshold (x ≥ 0.5 → 1 − x)."""
    threshold = _per_sample(threshold) if isinstance(threshold, Tensor) else threshold
    return torch.lerp(x, 1 - x, (x >= threshold).float())  # weights 0 / 1 select exactly
