"""DINO multi-crop augmentation, batched on the device with per-sample random parameters.

Follows DINO's ``DataAugmentationDINO`` (Caron et al. 2021, Sec. 3.1 multi-crop; the BYOL augmentations of
Grill et al. 2020, App. B), which Rafiee et al. 2022 use unchanged: random resized crop, horizontal flip,
colour jitter (p=0.8), grayscale (p=0.2), Gaussian blur (p=1.0 / 0.1 / 0.5 for global-1 / global-2 / local
views), solarize (p=0.2, global-2 only), ImageNet normalisation. Every function below works on a float32
batch (N, 3, H, W) in [0, 1] with one parameter per sample (those ending in ``_`` modify the batch in
place); the randomness is drawn in :class:`MultiCropAugment`, where a sample whose coin fails gets the
neutral parameter (factor 1, shift 0, σ → 0, ...) chosen by ``torch.where``. No Python loop runs over
samples.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
LUMA_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R BT.601, as PIL's convert("L")
GLOBAL1, GLOBAL2, LOCAL = 0, 1, 2  # the three DINO pipelines (blur p = blur_p[pipeline]; solarize on GLOBAL2)
NEGATIVE_GLOBAL = ("random", "global1")


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


def _kernel(t: Tensor, mode: str) -> Tensor:
    """Interpolation kernel: triangle (bilinear) or Keys cubic with a = −0.5 (PIL's bicubic, as in DINO)."""
    t = t.abs()
    if mode == "bilinear":
        return (1 - t).clamp_(min=0.0)
    a = -0.5
    near = ((a + 2) * t - (a + 3)) * t * t + 1
    far = ((a * t - 5 * a) * t + 8 * a) * t - 4 * a
    return torch.where(t < 1, near, torch.where(t < 2, far, 0.0))


def resize_weights(scale: Tensor, shift: Tensor, size: int, length: int, mode: str = "bicubic") -> Tensor:
    """(N, size, length) resampling matrices of one axis for the crops x_in = scale·x_out + shift.

    Coordinates are those of ``affine_grid`` / ``grid_sample`` with ``align_corners=False``: output sample i
    sits at x_out = (2i + 1)/size − 1 and reads input pixel position ((x_in + 1)·length − 1)/2. As PIL's
    resize (DINO's pipeline): the kernel is widened by the shrink factor when a crop is downscaled
    (antialiasing) and each row is normalised over the taps inside the image (border handling).
    """
    out = torch.arange(size, device=scale.device).mul(2).add(1).div(size).sub(1)
    position = ((scale[:, None] * out + shift[:, None] + 1) * length - 1) / 2  # (N, size)
    widen = (scale.abs() * length / size).clamp(min=1.0)[:, None, None]
    taps = torch.arange(length, device=scale.device, dtype=position.dtype)
    weights = _kernel((taps - position[..., None]) / widen, mode)
    return weights / weights.sum(-1, keepdim=True).clamp(min=1e-12)


def resized_crops(images: Tensor, theta: Tensor, size: int, mode: str = "bicubic") -> Tensor:
    """Crop-and-resize every view of every image at once: (V·B, 3, size, size), view-major, in [0, 1].

    ``images`` (B, 3, H, W) float; ``theta`` (V·B, 2, 3) axis-aligned matrices from :func:`crop_matrices`.
    The crop is what ``grid_sample(images, affine_grid(theta))`` samples (identical for bilinear upscaling,
    up to rounding), computed separably as Wy · image · Wxᵀ with :func:`resize_weights`: two batched matmuls,
    5× faster than ``grid_sample`` on a CPU, with PIL's bicubic kernel and antialiasing.
    """
    n, (_, _, h, w) = len(theta), images.shape
    wx = resize_weights(theta[:, 0, 0], theta[:, 0, 2], size, w, mode)
    wy = resize_weights(theta[:, 1, 1], theta[:, 1, 2], size, h, mode)
    rows = images.repeat(n // len(images), 1, 1, 1) @ wx.transpose(1, 2).unsqueeze(1)  # (V·B, 3, H, size)
    return (wy.unsqueeze(1) @ rows).clamp_(0.0, 1.0)


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


class MultiCropAugment(nn.Module):
    """DINO multi-crop: 2 global views (global-1, global-2 pipelines) and 8 local views per image.

    Defaults follow DINO's ``DataAugmentationDINO`` and Rafiee et al. 2022: 256/128 px crops with scale
    (0.4, 1) / (0.15, 0.4). Colour jitter applies brightness, contrast, saturation and hue in that fixed
    order (torchvision shuffles it per call). ``forward`` takes uint8 (B, 3, H, W) on any device and returns
    float32 normalised views on the same device. ``negative_global`` is the pipeline of a negative's single
    global view (:meth:`negative_views`): ``random`` draws global-1 or global-2 with probability 1/2 per sample,
    as the authors' code; ``global1`` always takes global-1. On the CPU it works through ``cpu_chunk`` images at a time
    (the temporaries then stay in cache: about 1.5× faster per core than DINO's PIL pipeline on 32 px images).
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
        negative_global: str = "random",
        cpu_chunk: int = 4,
    ) -> None:
        super().__init__()
        if interpolation not in ("bicubic", "bilinear"):
            raise ValueError(f"interpolation must be 'bicubic' or 'bilinear', got {interpolation!r}")
        if negative_global not in NEGATIVE_GLOBAL:
            raise ValueError(f"negative_global must be one of {NEGATIVE_GLOBAL}, got {negative_global!r}")
        if len(blur_p) != 3 or len(jitter) != 4:
            raise ValueError("blur_p needs 3 probabilities (global-1, global-2, local), jitter 4 strengths")
        self.global_size, self.local_size = global_size, local_size
        self.n_global, self.n_local = n_global, n_local
        self.global_scale, self.local_scale = tuple(global_scale), tuple(local_scale)
        self.ratio, self.flip_p = tuple(ratio), flip_p
        brightness, contrast, saturation, hue = jitter
        # (factor range, neutral factor, operation) in ColorJitter's order; strength 0 skips the operation
        self.jitter_ops = [
            (r, neutral, op)
            for strength, r, neutral, op in (
                (brightness, (max(0.0, 1 - brightness), 1 + brightness), 1.0, adjust_brightness_),
                (contrast, (max(0.0, 1 - contrast), 1 + contrast), 1.0, adjust_contrast_),
                (saturation, (max(0.0, 1 - saturation), 1 + saturation), 1.0, adjust_saturation_),
                (hue, (-hue, hue), 0.0, adjust_hue),
            )
            if strength > 0
        ]
        self.jitter_p, self.grayscale_p = jitter_p, grayscale_p
        self.blur_sigma, self.blur_p, self.solarize_p = tuple(blur_sigma), tuple(blur_p), solarize_p
        self.blur_radius = math.ceil(3 * self.blur_sigma[1])
        self.interpolation, self.cpu_chunk = interpolation, cpu_chunk
        self.negative_global = negative_global
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("blur_probs", torch.tensor(self.blur_p), persistent=False)  # by pipeline

    def _views(
        self, x: Tensor, n_views: int, size: int, scale: tuple, pipeline: Tensor, used: set[int]
    ) -> list[Tensor]:
        """``n_views`` views of every image at one resolution, all processed as one batch.

        ``pipeline`` ((n_views·B,), view-major) is each sample's pipeline (GLOBAL1, GLOBAL2 or LOCAL): its blur
        probability, and solarisation for GLOBAL2; ``used`` are the pipelines it may contain (known without
        looking at the tensor, so that a step needs no host synchronisation).
        """
        b, _, h, w = x.shape
        n, dev = n_views * b, x.device
        v = resized_crops(
            x, crop_matrices(n, h / w, scale, self.ratio, self.flip_p, dev), size, self.interpolation
        )
        if self.jitter_p > 0 and self.jitter_ops:
            on = torch.rand(n, device=dev) < self.jitter_p
            for (low, high), neutral, op in self.jitter_ops:
                v = op(v, torch.where(on, torch.empty(n, device=dev).uniform_(low, high), neutral))
            v.clamp_(0.0, 1.0)
        if self.grayscale_p > 0:
            grayscale_(v, (torch.rand(n, device=dev) < self.grayscale_p).float())
        if max(self.blur_p[p] for p in used) > 0:
            sigma = torch.empty(n, device=dev).uniform_(*self.blur_sigma)
            coins = torch.rand(n, device=dev) < self.blur_probs.to(dev)[pipeline]
            v = gaussian_blur(v, torch.where(coins, sigma, 1e-3), self.blur_radius)
        if self.solarize_p > 0 and GLOBAL2 in used:
            coins = (torch.rand(n, device=dev) < self.solarize_p) & (pipeline == GLOBAL2)
            v = solarize(v, torch.where(coins, 0.5, math.inf))
        v.sub_(self.mean.to(dev)).div_(self.std.to(dev))
        return list(v.view(n_views, b, 3, size, size).unbind(0))

    def forward(
        self,
        images: Tensor,
        n_global: int | None = None,
        n_local: int | None = None,
        global_pipeline: str = "alternate",
    ) -> list[Tensor]:
        """Global views (B, 3, G, G) then local views (B, 3, L, L), float32, ImageNet-normalised.

        ``global_pipeline="alternate"``: global view 0 uses the global-1 pipeline, view 1 the global-2 pipeline,
        further globals alternate; ``"random"``: each global view of each sample draws global-1 or global-2 with
        probability 1/2. ``n_global`` / ``n_local`` override the configured counts (negatives use 1 and 8).
        """
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"expected uint8 images (B, 3, H, W), got {images.dtype} {tuple(images.shape)}")
        if images.device.type == "cpu" and len(images) > self.cpu_chunk:  # small chunks stay in cache
            chunks = [self(chunk, n_global, n_local, global_pipeline) for chunk in images.split(self.cpu_chunk)]
            return [torch.cat(views) for views in zip(*chunks, strict=True)]
        n_global = self.n_global if n_global is None else n_global
        n_local = self.n_local if n_local is None else n_local
        b, dev = len(images), images.device
        views = []
        with torch.autocast(images.device.type, enabled=False):  # float32 resampling under mixed precision
            x = images.float().div_(255)
            if n_global:
                if global_pipeline == "random":
                    pipeline = (torch.rand(n_global * b, device=dev) < 0.5).long()  # GLOBAL1 = 0, GLOBAL2 = 1
                    used = {GLOBAL1, GLOBAL2}
                elif global_pipeline == "alternate":
                    pipeline = (torch.arange(n_global, device=dev) % 2).repeat_interleave(b)
                    used = {v % 2 for v in range(n_global)}
                else:
                    raise ValueError(f"global_pipeline must be 'alternate' or 'random', got {global_pipeline!r}")
                views += self._views(x, n_global, self.global_size, self.global_scale, pipeline, used)
            if n_local:
                pipeline = torch.full((n_local * b,), LOCAL, device=dev)
                views += self._views(x, n_local, self.local_size, self.local_scale, pipeline, {LOCAL})
        return views

    def negative_views(self, images: Tensor) -> list[Tensor]:
        """A negative's views (Rafiee et al. 2022, Sec. 3): one global view, its pipeline chosen by
        ``negative_global``, then ``n_local`` local views."""
        return self(images, 1, None, "random" if self.negative_global == "random" else "alternate")
