"""The OOD score interface (modelled on OpenOOD's postprocessors): a score is fitted on the in-distribution training
features, then gives one number per new feature, higher = more anomalous.

A score is one small class: its constructor takes plain values only (numbers, strings, booleans), kept as attributes
of the same names, so that a detector file can store ``(name, params)`` and rebuild the score through the registry of
built-in scores (:mod:`ssad.scoring.scores.registry`) without running code named by the file. Every built-in score
compares L2-normalised features (cosine similarities), as the paper's Eq. 6 does; features given to :meth:`Scorer.fit`
and :meth:`Scorer.score` need not be normalised.
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor


class Scorer(ABC):
    """An OOD score: :meth:`fit` on the training features (the bank), :meth:`score` new features (float64, higher =
    more anomalous). ``name``: the registry name of a built-in score (empty for a score of the user's own);
    ``published``: what :meth:`readable` returns, in words (a detector prints it beside its threshold)."""

    name: ClassVar[str] = ""
    published: ClassVar[str] = "the score"

    bank: Tensor | None = None

    def fit(self, train: Tensor) -> Scorer:
        """Keep the training features ``train`` (M, d) as the bank; a new fit replaces the earlier one."""
        if train.ndim != 2 or train.shape[0] == 0:
            raise ValueError(f"training features must be a non-empty 2-D tensor, got shape {tuple(train.shape)}")
        self.bank = train.detach()
        return self

    @abstractmethod
    def score(self, features: Tensor) -> Tensor:
        """One score per row of ``features`` (N, d): float64 (N,), on the device of ``features``."""

    def leave_one_out(self) -> Tensor | None:
        """The score of every bank row against the other rows (sensitivity, a threshold without a test set); None
        when the score has no such form."""
        return None

    def readable(self, scores: Tensor) -> Tensor:
        """The score a detector publishes for :meth:`score`'s values (the same ranking); here the values themselves."""
        return scores.double()

    def params(self) -> dict[str, Any]:
        """The constructor's arguments as plain values (read back from the attributes of the same names)."""
        return {p: getattr(self, p) for p in inspect.signature(type(self)).parameters}

    def fitted_bank(self) -> Tensor:
        """The bank of the last :meth:`fit`; a clear error before any."""
        if self.bank is None:
            raise RuntimeError(f"{type(self).__name__}: call fit(train_features) before scoring")
        return self.bank

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({args})"


def cosine_blocks(features: Tensor, bank: Tensor, chunk_size: int = 1024,
                  exclude_self: bool = False) -> Iterator[Tensor]:
    """Cosine similarities of ``features`` (N, d) to ``bank`` (M, d), ``chunk_size`` rows at a time (chunk × M), in
    the features' dtype (at least float32) on their device. ``exclude_self``: ``features`` is the bank, and each
    row's similarity to itself is −∞ (left out of a maximum or a top-k)."""
    if features.shape[1] != bank.shape[1]:
        raise ValueError(f"feature dims differ: features have {features.shape[1]}, the bank {bank.shape[1]}")
    dtype = torch.promote_types(torch.promote_types(features.dtype, bank.dtype), torch.float32)
    queries = F.normalize(features.to(dtype), dim=1)
    keys = F.normalize(bank.to(device=features.device, dtype=dtype), dim=1)
    for start in range(0, queries.shape[0], chunk_size):
        cos = queries[start:start + chunk_size] @ keys.T
        if exclude_self:
            own = torch.arange(cos.shape[0], device=cos.device)
            cos[own, own + start] = -torch.inf
        yield cos
