"""Eq. 6's τ → 0 limit, the 1-nearest-neighbour score: 1 − max_m cos(f_x, f_m), one minus the cosine similarity to
the nearest training feature (in [0, 2]). As τ → 0 the sum of Eq. 6 is dominated by its largest term, so Eq. 6
ranks images as this score does."""

from __future__ import annotations

import torch
from torch import Tensor

from ssad.scoring.metrics import nearest_neighbour_score
from ssad.scoring.scores.base import Scorer, cosine_blocks


class NearestNeighbourScore(Scorer):
    """1 − max cos to the training features (:func:`ssad.scoring.metrics.nearest_neighbour_score`): the AUROC-1NN
    column of every evaluation."""

    name = "nn"
    published = "1 − max cos"

    def score(self, features: Tensor) -> Tensor:
        return nearest_neighbour_score(features, self.fitted_bank())

    def leave_one_out(self) -> Tensor:
        bank = self.fitted_bank()
        if len(bank) < 2:
            raise ValueError("a leave-one-out score needs at least 2 training features")
        return torch.cat([1.0 - cos.amax(dim=1).double() for cos in cosine_blocks(bank, bank, exclude_self=True)])
