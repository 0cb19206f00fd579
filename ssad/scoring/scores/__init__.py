"""OOD scores as components (:class:`Scorer`: fit on the training features, score new ones), chosen by the config
group ``scorer`` (conf/scorer/): the paper's Eq. 6 (the default), its τ → 0 and τ → ∞ limits and the k-th nearest
neighbour score of Sun et al. 2022. A new score is one file with a :class:`Scorer` subclass and one YAML
(docs/howto/ood-score.md)."""

from ssad.scoring.scores.base import Scorer, cosine_blocks
from ssad.scoring.scores.eq6 import Eq6Score
from ssad.scoring.scores.knn import KthNeighbourScore
from ssad.scoring.scores.mean import MeanFeatureScore
from ssad.scoring.scores.nearest import NearestNeighbourScore
from ssad.scoring.scores.registry import SCORERS, build_scorer, scorer_from_spec, scorer_spec

__all__ = ["SCORERS", "Eq6Score", "KthNeighbourScore", "MeanFeatureScore", "NearestNeighbourScore", "Scorer",
           "build_scorer", "cosine_blocks", "scorer_from_spec", "scorer_spec"]
