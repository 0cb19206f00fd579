"""Negative samples: the shifting transforms and the variant spec (Rafiee et al. 2022, Eq. 4 and Table 2).

A negative-sampling variant is a list of parts (source, transform, weight, at). Every transform works on a
whole batch (B, C, H, W) with independent randomness per sample: it only moves pixels (exact rotations and
permutations via one ``gather``), never interpolates. ``at`` says where it applies: ``source`` (the image at
the in-distribution size, before multi-crop; every view is a crop of one transformed image) or ``view`` (each
view after multi-crop, each with its own draw, as the authors' code does for Perm-N and pixel permutation).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor

VALID_NAMES = ("identity", "rot", "rot360", "rot-any", "perm-N", "pixperm")
PLACES = ("source", "view")


class NegativeTransform(Protocol):
    """A batched negative transform: (B, C, H, W) → same shape, dtype and device."""

    def __call__(self, images: Tensor, generator: torch.Generator | None = None) -> Tensor: ...


def _rand(shape: tuple[int, ...], like: Tensor, generator: torch.Generator | None) -> Tensor:
    """Uniform [0, 1) numbers drawn on the generator's device (or ``like``'s), returned on ``like``'s."""
    device = generator.device if generator is not None else like.device
    return torch.rand(shape, generator=generator, device=device).to(like.device)


def _gather_pixels(images: Tensor, source: Tensor) -> Tensor:
    """Output pixel i of sample b is input pixel ``source[b, i]`` (flat H·W index), all channels together."""
    b, c, h, w = images.shape
    index = source.unsqueeze(1).expand(b, c, h * w)
    return images.flatten(2).gather(2, index).view(b, c, h, w)


def _rotate(images: Tensor, generator: torch.Generator | None, k_min: int) -> Tensor:
    """Rotate each sample by k·90°, k uniform in {k_min, …, 3}: torch.rot90 of the index grid, gathered."""
    b, _, h, w = images.shape
    if h != w:
        raise ValueError(f"rotation negatives need square images, got H×W = {h}×{w}")
    grid = torch.arange(h * w, device=images.device).view(h, w)
    maps = torch.stack([torch.rot90(grid, k, dims=(0, 1)).flatten() for k in range(4)])
    k = k_min + (_rand((b,), images, generator) * (4 - k_min)).long()
    return _gather_pixels(images, maps[k])


def rotate(images: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """``rot``: rotate each sample by 90°, 180° or 270° (never 0°), chosen uniformly per sample."""
    return _rotate(images, generator, k_min=1)


def rotate360(images: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """``rot360``: rotate each sample by 0°, 90°, 180° or 270°, chosen uniformly per sample."""
    return _rotate(images, generator, k_min=0)


def rotate_any(images: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """``rot-any``: rotate each sample by an angle uniform in [0°, 360°) about its centre, nearest pixel,
    black corners: the authors' code for Rot.360 (torchvision ``RandomRotation((0, 360))``; the paper's text
    says the four angles of ``rot360``). Pixels are moved, never blended."""
    b, _, h, w = images.shape
    angle = _rand((b, 1), images, generator) * (2 * math.pi)
    y, x = torch.meshgrid(torch.arange(h, device=images.device) - (h - 1) / 2,
                          torch.arange(w, device=images.device) - (w - 1) / 2, indexing="ij")
    x, y = x.flatten()[None], y.flatten()[None]
    cos, sin = angle.cos(), angle.sin()  # output pixel (x, y) reads input R(−θ)·(x, y)
    src_x = (cos * x + sin * y + (w - 1) / 2).round().long()
    src_y = (-sin * x + cos * y + (h - 1) / 2).round().long()
    inside = (src_x >= 0) & (src_x < w) & (src_y >= 0) & (src_y < h)
    source = torch.where(inside, src_y * w + src_x, 0)
    out = _gather_pixels(images, source)
    return torch.where(inside.view(b, 1, h, w), out, torch.zeros((), dtype=images.dtype, device=images.device))


def pixel_permute(images: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """``pixperm``: shuffle all pixel positions with an independent permutation per sample."""
    b, _, h, w = images.shape
    return _gather_pixels(images, _rand((b, h * w), images, generator).argsort(dim=1))


def patch_permute(images: Tensor, n: int, generator: torch.Generator | None = None) -> Tensor:
    """``perm-N``: cut each sample into √N×√N equal patches and shuffle their places, per sample."""
    g = math.isqrt(n)
    b, c, h, w = images.shape
    if h % g or w % g:
        raise ValueError(f"perm-{n} cuts images into {g}×{g} patches: H×W = {h}×{w} is not divisible by {g}")
    ph, pw = h // g, w // g
    patches = images.reshape(b, c, g, ph, g, pw).permute(0, 2, 4, 1, 3, 5).reshape(b, n, c * ph * pw)
    perm = _rand((b, n), images, generator).argsort(dim=1)
    shuffled = patches.gather(1, perm.unsqueeze(2).expand_as(patches))
    return shuffled.view(b, g, g, c, ph, pw).permute(0, 3, 1, 4, 2, 5).reshape(b, c, h, w)


def identity(images: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """``identity``: the negative image as it is (an auxiliary dataset used unchanged)."""
    return images.clone()


_FIXED: dict[str, NegativeTransform] = {
    "identity": identity,
    "rot": rotate,
    "rot360": rotate360,
    "rot-any": rotate_any,
    "pixperm": pixel_permute,
}


def get_transform(name: str) -> NegativeTransform:
    """The batched negative transform called ``name`` (Table 2 of the paper).

    Valid names: ``identity``, ``rot``, ``rot360``, ``rot-any``, ``perm-N`` (N a perfect square, e.g. ``perm-4``,
    ``perm-16``) and ``pixperm``. The returned callable takes (B, C, H, W) of any dtype on any device and an
    optional ``generator`` (on the images' device or the CPU) for reproducible draws.
    """
    if not isinstance(name, str):
        raise ValueError(f"a negative transform is given by its name, got {name!r}")
    if name in _FIXED:
        return _FIXED[name]
    match = re.fullmatch(r"perm-(\d+)", name)
    if match and int(match[1]) > 0 and math.isqrt(int(match[1])) ** 2 == int(match[1]):
        n = int(match[1])

        def perm(images: Tensor, generator: torch.Generator | None = None) -> Tensor:
            return patch_permute(images, n, generator)

        return perm
    raise ValueError(
        f"unknown negative transform {name!r}; valid names: {', '.join(VALID_NAMES)} "
        "(perm-N needs a square N: perm-4, perm-9, perm-16, ...)"
    )


@dataclass(frozen=True)
class NegativePart:
    """One part of a negative-sampling variant.

    ``source``: ``"indist"``, the name of a configured auxiliary source, or an inline source mapping;
    ``transform``: a name accepted by :func:`get_transform`; ``weight``: relative share of the negatives;
    ``at``: ``source`` (once, at the in-distribution size, before multi-crop) or ``view`` (on every view after
    multi-crop, each view its own draw).
    """

    source: str | Mapping
    transform: str
    weight: float
    at: str = "source"


_PART_KEYS = ("source", "transform", "weight", "at")
_SOURCE_ONLY = ("rot-any",)  # black corners: at a view they would be the normalised mean colour, not black


def parse_variant(parts: Sequence[Mapping]) -> list[NegativePart]:
    """Validate a variant given as a YAML list of ``{source, transform, weight, at}`` mappings.

    ``transform`` defaults to ``identity``, ``weight`` to 1 and ``at`` to ``source``. An empty list is the variant
    without negatives (vanilla DINO). Errors name the offending part index and key.
    """
    if isinstance(parts, (str, Mapping)) or not isinstance(parts, Sequence):
        raise ValueError(f"a negative variant is a list of parts, got {type(parts).__name__}")
    result = []
    for i, part in enumerate(parts):
        if not isinstance(part, Mapping):
            raise ValueError(f"negative part {i}: expected a mapping with keys {_PART_KEYS}, got {part!r}")
        unknown = sorted(set(part) - set(_PART_KEYS))
        if unknown:
            raise ValueError(f"negative part {i}: unknown key(s) {unknown}; valid keys: {_PART_KEYS}")
        source = part.get("source")
        if not (isinstance(source, Mapping) or (isinstance(source, str) and source)):
            raise ValueError(f"negative part {i}, key 'source': need a name or a mapping, got {source!r}")
        transform = part.get("transform", "identity")
        try:
            get_transform(transform)
        except ValueError as err:
            raise ValueError(f"negative part {i}, key 'transform': {err}") from None
        weight = part.get("weight", 1.0)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0 < weight < math.inf:
            raise ValueError(f"negative part {i}, key 'weight': need a finite number > 0, got {weight!r}")
        at = part.get("at", "source")
        if at not in PLACES:
            raise ValueError(f"negative part {i}, key 'at': need one of {PLACES}, got {at!r}")
        if at == "view" and transform in _SOURCE_ONLY:
            raise ValueError(f"negative part {i}, key 'at': {transform} fills its corners with black and applies "
                             "at the source only; set at: source")
        result.append(NegativePart(source=source, transform=transform, weight=float(weight), at=at))
    return result


def apply_parts(
    images: Tensor, part_index: Tensor, transforms: Sequence[Callable[[Tensor], Tensor] | None]
) -> Tensor:
    """Apply ``transforms[p]`` to the samples with ``part_index == p`` (``None``: leave them unchanged).

    Each transform runs on the whole batch and its rows are picked with ``torch.where``: shapes never depend
    on the data, so the training step needs no device-to-host synchronisation (the transforms are pixel
    gathers, cheap beside the network). Returns a new tensor; samples whose index matches no
    transform are copied unchanged.
    """
    if part_index.shape != images.shape[:1]:
        raise ValueError(f"part_index shape {tuple(part_index.shape)} != batch size ({images.shape[0]},)")
    out = images.clone()
    part_index = part_index.to(images.device).view(-1, *([1] * (images.ndim - 1)))
    for p, transform in enumerate(transforms):
        if transform is not None:
            out = torch.where(part_index == p, transform(images), out)
    return out


def apply_parts_to_views(
    views: Sequence[Tensor], part_index: Tensor, transforms: Sequence[Callable[[Tensor], Tensor] | None]
) -> list[Tensor]:
    """:func:`apply_parts` on every view of a batch: view v of sample b is transformed by the transform of
    ``part_index[b]``, each (view, sample) with its own random draw. Views of one size go through in one call
    (stacked view-major, the part index repeated); the list comes back in its order."""
    out = list(views)
    for size in dict.fromkeys(v.shape for v in views):
        group = [i for i, v in enumerate(views) if v.shape == size]
        stacked = torch.cat([views[i] for i in group])
        done = apply_parts(stacked, part_index.repeat(len(group)), transforms).chunk(len(group))
        for i, view in zip(group, done, strict=True):
            out[i] = view
    return out
