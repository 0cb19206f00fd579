"""The paper's OOD score, Eq. 6: S(x) = −(1/M) Σ_m exp(cos(f_x, f_m)/τ), a soft nearest-neighbour score with
temperature τ over the M training features, published as R = 1 − τ·log(−S) (in [0, 2], the same ranking)."""

from __future__ import annotations

from torch import Tensor

from ssad.cli.errors import ConfigError
from ssad.scoring.metrics import MIN_TEMPERATURE, ood_score, readable_score
from ssad.scoring.scores.base import Scorer


class Eq6Score(Scorer):
    """Eq. 6 at temperature τ (``temperature``; the paper's 0.04), computed by :func:`ssad.scoring.metrics.ood_score`
    (chunked, log-sum-exp in float64); :meth:`readable` is :func:`ssad.scoring.metrics.readable_score`. As τ → 0 its
    ranking tends to the nearest-neighbour score (``nn``), as τ → ∞ to the mean-feature score (``mean``)."""

    name = "eq6"
    published = "1 − τ·log(−S)"

    def __init__(self, temperature: float = 0.04) -> None:
        if not temperature >= MIN_TEMPERATURE:
            raise ConfigError(f"scorer.temperature={temperature} must be >= {MIN_TEMPERATURE:.5f} (exp(cos/τ) "
                              "overflows float64 below it); for the τ → 0 limit use scorer=nn")
        self.temperature = float(temperature)

    def score(self, features: Tensor) -> Tensor:
        return ood_score(features, self.fitted_bank(), self.temperature)

    def leave_one_out(self) -> Tensor:
        bank = self.fitted_bank()
        return ood_score(bank, bank, self.temperature, exclude_self=True)

    def readable(self, scores: Tensor) -> Tensor:
        return readable_score(scores, self.temperature)
