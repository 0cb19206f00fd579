"""The k-th-nearest-neighbour score of Sun et al. 2022 ("Out-of-distribution detection with deep nearest
neighbors", ICML): with z the L2-normalised features, their in-distribution score is S(x) = −‖z_x − z_(k)‖₂, the
negative distance to the k-th nearest training feature z_(k) (k = 50 on CIFAR10). Here it is published with the
sign turned, higher = more anomalous: ‖z_x − z_(k)‖₂ = √(2 − 2·cos_(k)), in [0, 2]."""

from __future__ import annotations

import torch
from torch import Tensor

from ssad.cli.errors import ConfigError
from ssad.scoring.scores.base import Scorer, cosine_blocks


class KthNeighbourScore(Scorer):
    """Distance to the ``k``-th nearest normalised training feature (k is clamped to the bank size: to M − 1 when
    the bank is scored leave-one-out)."""

    name = "knn"
    published = "distance to the k-th nearest training feature"

    def __init__(self, k: int = 50) -> None:
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ConfigError(f"scorer.k={k!r} must be an integer >= 1 (Sun et al. use 50 on CIFAR10)")
        self.k = k

    def _distances(self, features: Tensor, exclude_self: bool) -> Tensor:
        bank = self.fitted_bank()
        k = min(self.k, len(bank) - exclude_self)
        if k < 1:
            raise ValueError("a leave-one-out score needs at least 2 training features")
        kth = [cos.topk(k, dim=1).values[:, -1] for cos in cosine_blocks(features, bank, exclude_self=exclude_self)]
        return torch.sqrt((2.0 - 2.0 * torch.cat(kth).double()).clamp_min(0.0))

    def score(self, features: Tensor) -> Tensor:
        return self._distances(features, exclude_self=False)

    def leave_one_out(self) -> Tensor:
        return self._distances(self.fitted_bank(), exclude_self=True)
