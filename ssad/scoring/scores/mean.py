"""Eq. 6's τ → ∞ limit, the mean-feature score: 1 − cos(f_x, f̄), f̄ the mean of the L2-normalised training
features (in [0, 2]). As τ → ∞, exp(cos/τ) ≈ 1 + cos/τ and the sum of Eq. 6 becomes M + (M/τ)·f̂_x·f̄: Eq. 6 then
ranks images by how far they lie from the middle of the feature cloud."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from ssad.scoring.metrics import mean_feature_score
from ssad.scoring.scores.base import Scorer


class MeanFeatureScore(Scorer):
    """1 − cos to the mean training feature (:func:`ssad.scoring.metrics.mean_feature_score`): the AUROC-mean
    column of every evaluation."""

    name = "mean"
    published = "1 − cos to the mean training feature"

    def score(self, features: Tensor) -> Tensor:
        return mean_feature_score(features, self.fitted_bank())

    def leave_one_out(self) -> Tensor:
        """Each row against the mean of the other rows: (Σ_m f̂_m − f̂_i)/(M − 1), normalised."""
        bank = self.fitted_bank()
        if len(bank) < 2:
            raise ValueError("a leave-one-out score needs at least 2 training features")
        rows = F.normalize(bank.double(), dim=1)
        others = F.normalize(rows.sum(dim=0, keepdim=True) - rows, dim=1)
        return 1.0 - (rows * others).sum(dim=1)
