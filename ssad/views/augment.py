"""DINO multi-crop augmentation, batched on the device with per-sample random parameters.

Follows DINO's ``DataAugmentationDINO`` (Caron et al. 2021, Sec. 3.1 multi-crop; the BYOL augmentations of
Grill et al. 2020, App. B), which Rafiee et al. 2022 use unchanged: random resized crop, horizontal flip,
colour jitter (p=0.8), grayscale (p=0.2), Gaussian blur (p=1.0 / 0.1 / 0.5 for global-1 / global-2 / local
views), solarize (p=0.2, global-2 only), ImageNet normalisation. The operations live in :mod:`ssad.views.crops`
(geometry) and :mod:`ssad.views.colour` (per-sample photometric operations); the randomness is drawn here, where a
sample whose coin fails gets the operation's neutral parameter.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ssad.views.colour import (
    adjust_brightness_,
    adjust_contrast_,
    adjust_hue,
    adjust_saturation_,
    gaussian_blur,
    grayscale_,
    solarize,
)
from ssad.views.crops import crop_matrices, resized_crops

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
GLOBAL1, GLOBAL2, LOCAL = 0, 1, 2  # the three DINO pipelines (blur p = blur_p[pipeline]; solarize on GLOBAL2)


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
