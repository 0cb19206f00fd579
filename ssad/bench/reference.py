"""The reference pipeline, built the way facebookresearch/dino does it: PIL multi-crop (torchvision.transforms v1)
in DataLoader workers on all CPU cores; and the single-thread CPU crops/s of ssad's augmentation against it."""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Sequence

import numpy as np
import torch
from PIL import Image, ImageFilter, ImageOps
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms as T

from ssad.bench.step import Batch
from ssad.views.augment import IMAGENET_MEAN, IMAGENET_STD, MultiCropAugment
from ssad.views.negatives import get_transform


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
