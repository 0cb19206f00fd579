"""The training step's views from uint8 batches on the device (Rafiee et al. 2022, Sec. 3).

Positives: DINO multi-crop (2 global + N local views). Negatives: each part's transform at the source
(``at: source``), then one global view (its pipeline drawn per sample, :meth:`MultiCropAugment.negative_views`)
and N local views, then each part's transform on every view (``at: view``), every view with its own draw.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from ssad.views.augment import MultiCropAugment
from ssad.views.negatives import NegativePart, apply_parts, apply_parts_to_views, get_transform


class TrainingViews:
    """Make ``{pos_global, pos_local[, neg_global, neg_local]}`` from uint8 positives and negatives.

    ``parts`` is the parsed variant; a part's transform runs at the source or on the views as its ``at`` says.
    A transform that cannot apply at the configured view sizes (``perm-N`` needs sides divisible by √N) is
    refused here, before any training, with the part and the keys to change.
    """

    def __init__(self, augment: MultiCropAugment, parts: Sequence[NegativePart] = ()) -> None:
        self.augment, self.parts = augment, list(parts)
        self.at_source = [get_transform(p.transform) if p.at == "source" else None for p in self.parts]
        self.at_view = [get_transform(p.transform) if p.at == "view" else None for p in self.parts]
        for i, (part, transform) in enumerate(zip(self.parts, self.at_view, strict=True)):
            for key, size in (("global_size", augment.global_size), ("local_size", augment.local_size)):
                if transform is None or (key == "local_size" and not augment.n_local):
                    continue
                try:
                    transform(torch.zeros(1, 3, size, size), torch.Generator())  # not the global stream
                except ValueError as err:
                    raise ValueError(f"negatives.parts[{i}] ({part.transform}, at: view) on augment.{key}={size} "
                                     f"views: {err}; change augment.{key} or set at: source") from None

    @property
    def any_at_view(self) -> bool:
        return any(t is not None for t in self.at_view)

    def negatives(self, images: Tensor, part_index: Tensor) -> list[Tensor]:
        """The negatives' views (1 global, then the locals), transformed where their part says."""
        views = self.augment.negative_views(apply_parts(images, part_index, self.at_source))
        if self.any_at_view:
            views = apply_parts_to_views(views, part_index, self.at_view)
        return views

    def __call__(
        self, positives: Tensor, negatives: Tensor | None = None, part_index: Tensor | None = None
    ) -> dict[str, list[Tensor]]:
        self.augment.to(positives.device)
        pos = self.augment(positives)
        n_global = self.augment.n_global
        views = {"pos_global": pos[:n_global], "pos_local": pos[n_global:]}
        if negatives is not None:
            neg = self.negatives(negatives, part_index)
            views.update(neg_global=neg[:1], neg_local=neg[1:])
        return views
