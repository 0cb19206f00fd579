"""ssad: self-supervised anomaly detection by self-distillation and negative sampling (Rafiee et al., 2022).

The public API, imported on first use (``import ssad`` stays light; ``from ssad import Detector`` loads the scoring
path only: torch, timm, NumPy and Pillow, no Lightning or Hydra)::

    from ssad import Detector
    detector = Detector.load("detector.pt")
    names, scores, flags = detector.score_files("images/")

- :class:`Detector`: a detector file (teacher backbone, training feature bank, OOD score, threshold) that scores
  images; written by ``python -m ssad.export``.
- :class:`SSADModule`: the LightningModule that trains the student and its EMA teacher (paper Eqs. 3-5).
- :class:`SSADDataModule`: the LightningDataModule of positives, negatives, test and OOD sets.
- :func:`distillation_loss` (L_pos, Eq. 3) and :func:`negative_loss` (L_neg, Eq. 4).
- The OOD scores (:class:`Scorer` and its implementations :class:`Eq6Score`, the paper's Eq. 6;
  :class:`NearestNeighbourScore` and :class:`MeanFeatureScore`, its τ → 0 and τ → ∞ limits;
  :class:`KthNeighbourScore`, Sun et al. 2022) and :func:`build_scorer`.
- :func:`build_backbone`: a backbone from its registry name and plain arguments.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.2.0"

# public name → the module that defines it (imported by __getattr__ on first use, PEP 562)
_EXPORTS = {
    "Detector": "ssad.deploy.detector",
    "SSADModule": "ssad.method.module",
    "SSADDataModule": "ssad.data.datamodule",
    "distillation_loss": "ssad.method.losses",
    "negative_loss": "ssad.method.losses",
    "Scorer": "ssad.scoring.scores",
    "Eq6Score": "ssad.scoring.scores",
    "NearestNeighbourScore": "ssad.scoring.scores",
    "MeanFeatureScore": "ssad.scoring.scores",
    "KthNeighbourScore": "ssad.scoring.scores",
    "build_scorer": "ssad.scoring.scores",
    "build_backbone": "ssad.method.backbones",
}

__all__ = ["Detector", "Eq6Score", "KthNeighbourScore", "MeanFeatureScore", "NearestNeighbourScore", "SSADDataModule",
           "SSADModule", "Scorer", "__version__", "build_backbone", "build_scorer", "distillation_loss",
           "negative_loss"]

if TYPE_CHECKING:  # for type checkers and IDEs; at run time each name is imported on first use
    from ssad.data.datamodule import SSADDataModule
    from ssad.deploy.detector import Detector
    from ssad.method.backbones import build_backbone
    from ssad.method.losses import distillation_loss, negative_loss
    from ssad.method.module import SSADModule
    from ssad.scoring.scores import (
        Eq6Score,
        KthNeighbourScore,
        MeanFeatureScore,
        NearestNeighbourScore,
        Scorer,
        build_scorer,
    )


def __getattr__(name: str) -> Any:
    """The public object ``name``, imported from its module the first time it is asked for."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ssad' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
