"""Evaluation metrics of the paper as pure functions on tensors (CPU or GPU, no Lightning).

- ``ood_score``: the OOD score S of Eq. 6, chunked and in log-sum-exp form.
- ``readable_score``: the score a detector publishes, 1 − τ·log(−S), monotone in S and bounded in [0, 2].
- ``nearest_neighbour_score``: 1 − the cosine to the nearest training feature, the τ → 0 limit of Eq. 6's ranking.
- ``ood_metrics``: AUROC, AUPR-In, AUPR-Out and FPR@95%TPR of in-distribution vs OOD scores.
- ``knn_accuracy``: DINO's weighted kNN classifier (top-1 accuracy).
- ``occupied_soft_classes``: the number of soft classes used by the teacher (Fig. 2).
- ``sensitivity``: AUROC of train (leave-one-out) vs test scores of the in-distribution (Fig. 3 bottom), by an OOD
  score of :mod:`ssad.scoring.scores`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor

from ssad.scoring.limits import MIN_TEMPERATURE

if TYPE_CHECKING:  # the scores build on these functions
    from ssad.scoring.scores.base import Scorer



def _check_matrix(name: str, x: Tensor, min_rows: int = 1) -> None:
    if x.ndim != 2 or x.shape[0] < min_rows or x.shape[1] == 0:
        raise ValueError(f"{name} must be a 2-D tensor with at least {min_rows} row(s) and 1 column, "
                         f"got shape {tuple(x.shape)}")


def _check_pair(a_name: str, a: Tensor, b_name: str, b: Tensor, min_rows_b: int = 1) -> None:
    _check_matrix(a_name, a)
    _check_matrix(b_name, b, min_rows_b)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feature dims differ: {a_name} has {a.shape[1]}, {b_name} has {b.shape[1]}")


def _check_positive(**values: float) -> None:
    for name, value in values.items():
        if not value > 0:
            raise ValueError(f"{name} must be > 0, got {value}")


def _normalized_pair(queries: Tensor, keys: Tensor) -> tuple[Tensor, Tensor]:
    """L2-normalised copies on the queries' device, in their common dtype (at least float32)."""
    dtype = torch.promote_types(torch.promote_types(queries.dtype, keys.dtype), torch.float32)
    keys = keys.to(device=queries.device, dtype=dtype)
    return F.normalize(queries.to(dtype), dim=1), F.normalize(keys, dim=1)


def _chunks(n: int, chunk_size: int) -> Iterator[slice]:
    return (slice(start, min(start + chunk_size, n)) for start in range(0, n, chunk_size))


def ood_score(
    features: Tensor,
    bank: Tensor,
    temperature: float = 0.04,
    chunk_size: int = 1024,
    exclude_self: bool = False,
) -> Tensor:
    """OOD score of Eq. 6, S(x) = −(1/M) Σ_m exp(cos(f_x, f_m)/τ); higher = more anomalous.

    ``features`` (N, d) are scored against the ``bank`` (M, d) of in-distribution training features; neither
    needs to be L2-normalised. Queries are processed ``chunk_size`` rows at a time, so only chunk×M
    similarities exist at once, and S is formed as −exp(logsumexp(cos/τ) − log M) in float64.

    ``exclude_self=True`` means ``features`` IS the bank (same rows, same order): row i is scored
    leave-one-out against the other M−1 rows (its own similarity is dropped, the mean is over M−1).
    Returns a float64 tensor (N,) on the device of ``features``.
    """
    _check_pair("features", features, "bank", bank, min_rows_b=2 if exclude_self else 1)
    _check_positive(temperature=temperature, chunk_size=chunk_size)
    if temperature < MIN_TEMPERATURE:
        raise ValueError(f"temperature {temperature} < {MIN_TEMPERATURE:.5f}: exp(cos/τ) overflows float64; for "
                         "the τ → 0 limit use nearest_neighbour_score (AUROC-1NN)")
    if exclude_self and features.shape != bank.shape:
        raise ValueError(f"exclude_self=True needs features to be the bank itself, got shapes "
                         f"{tuple(features.shape)} and {tuple(bank.shape)}")
    queries, keys = _normalized_pair(features, bank)
    log_m = math.log(keys.shape[0] - exclude_self)
    scores = []
    for rows in _chunks(queries.shape[0], chunk_size):
        logits = queries[rows] @ keys.T / temperature
        if exclude_self:
            own = torch.arange(logits.shape[0], device=logits.device)
            logits[own, own + rows.start] = -math.inf
        scores.append(-torch.exp(torch.logsumexp(logits, dim=1).double() - log_m))
    return torch.cat(scores)


def nearest_neighbour_score(features: Tensor, bank: Tensor, chunk_size: int = 1024) -> Tensor:
    """1 − max_m cos(f_x, f_m): one minus the cosine similarity to the nearest of the ``bank`` (M, d) training
    features (higher = more anomalous), the limit of Eq. 6's ranking as τ → 0, where its sum over all M
    features is dominated by the nearest one (at larger τ Eq. 6 also weighs how dense the features are around
    x). Chunked like :func:`ood_score`; float64, on the device of ``features``."""
    _check_pair("features", features, "bank", bank)
    _check_positive(chunk_size=chunk_size)
    queries, keys = _normalized_pair(features, bank)
    return torch.cat([1.0 - (queries[rows] @ keys.T).amax(dim=1).double()
                      for rows in _chunks(queries.shape[0], chunk_size)])


def mean_feature_score(features: Tensor, bank: Tensor) -> Tensor:
    """1 − cos(f_x, f̄), f̄ = the mean of the L2-normalised ``bank`` (M, d) training features (higher = more
    anomalous): the limit of Eq. 6's ranking as τ → ∞, where exp(cos/τ) ≈ 1 + cos/τ and the sum over all M
    features becomes M + (M/τ)·f̂_x·f̄, how far x lies from the middle of the feature cloud. Float64, on the
    device of ``features``."""
    _check_pair("features", features, "bank", bank)
    queries, keys = _normalized_pair(features, bank)
    mean = F.normalize(keys.double().mean(dim=0), dim=0)
    return 1.0 - queries.double() @ mean


def readable_score(scores: Tensor, temperature: float = 0.04) -> Tensor:
    """The anomaly score a detector publishes: R = 1 − τ·log(−S) = 1 − τ·log((1/M) Σ_m exp(cos(f_x, f_m)/τ)),
    one minus a soft nearest-neighbour cosine similarity to the training images (a log-mean-exp of the
    cosines at temperature τ). Strictly increasing in the Eq. 6 score S (same ranking, same AUROC) and bounded
    in [0, 2] whatever the bank (1: orthogonal to every training feature), where S spans many orders of
    magnitude. An exact copy of one of M training images, dissimilar to the others, scores about τ·log M
    (0.43 for M = 50,000 at τ = 0.04). Float64, on the device of ``scores``."""
    _check_positive(temperature=temperature)
    return 1.0 - temperature * torch.log(-scores.double())


def _check_scores(name: str, scores: Tensor) -> None:
    if scores.ndim != 1 or scores.numel() == 0:
        raise ValueError(f"{name} must be a non-empty 1-D tensor, got shape {tuple(scores.shape)}")
    if torch.isnan(scores).any():
        raise ValueError(f"{name} contains NaN")


def _ranks(scores: Tensor) -> Tensor:
    """Order-preserving map into [0, 1]: dense rank / (number of distinct values − 1); ties share a rank.

    torchmetrics treats predictions outside [0, 1] as logits and applies a sigmoid, which would saturate
    Eq. 6 scores (down to about −e^25) into ties; ranks keep the order and the ties exactly.
    """
    distinct, rank = torch.unique(scores, return_inverse=True)
    return rank.double() / max(distinct.numel() - 1, 1)


def threshold_at_tpr(scores_in: Tensor, tpr: float = 0.95) -> float:
    """The smallest in-distribution score thr such that at least ``tpr`` of ``scores_in`` are <= thr,
    i.e. the ⌈tpr·n⌉-th smallest (computed on the rounded product, so 0.95·n has no float noise)."""
    _check_scores("scores_in", scores_in)
    n = scores_in.numel()
    k = min(max(math.ceil(round(tpr * n, 9)), 1), n)
    return torch.kthvalue(scores_in.detach().double().cpu(), k).values.item()


def fpr_at_95_tpr(scores_in: Tensor, scores_out: Tensor) -> float:
    """Share of OOD accepted at the threshold that accepts 95% of the in-distribution.

    A sample is accepted (called in-distribution) when S <= thr, with thr the smallest in-distribution
    score such that at least 95% of the in-distribution scores are <= thr, i.e. the ⌈0.95·n_in⌉-th smallest.
    Returns the fraction of ``scores_out`` with S <= thr.
    """
    _check_scores("scores_out", scores_out)
    threshold = threshold_at_tpr(scores_in, 0.95)
    return (scores_out.detach().double().cpu() <= threshold).double().mean().item()


def ood_metrics(scores_in: Tensor, scores_out: Tensor) -> dict[str, float]:
    """AUROC, AUPR-In, AUPR-Out and FPR95 of in-distribution vs OOD scores S (Eq. 6, higher = more OOD).

    ``auroc`` and ``aupr_out`` take OOD as the positive class and S as the prediction, ``aupr_in`` takes
    the in-distribution as positive and −S as the prediction; ``fpr95`` is ``fpr_at_95_tpr``. The areas
    are computed exactly (no binning) by torchmetrics on the ranks of the scores. All values are fractions.
    """
    # imported here: scoring images with a detector file needs none of the evaluation's packages (ssad[train])
    from torchmetrics.functional.classification import binary_auroc, binary_average_precision

    _check_scores("scores_in", scores_in)
    _check_scores("scores_out", scores_out)
    scores = torch.cat([scores_in.cpu(), scores_out.cpu()]).double()
    ranks = _ranks(scores)
    is_out = torch.cat([torch.zeros(scores_in.numel()), torch.ones(scores_out.numel())]).long()
    return {
        "auroc": binary_auroc(ranks, is_out).item(),
        "aupr_in": binary_average_precision(1 - ranks, 1 - is_out).item(),
        "aupr_out": binary_average_precision(ranks, is_out).item(),
        "fpr95": fpr_at_95_tpr(scores_in, scores_out),
    }


def _check_labels(name: str, labels: Tensor, n: int) -> None:
    if labels.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},), got {tuple(labels.shape)}")
    if labels.is_floating_point() or labels.is_complex() or (labels < 0).any():
        raise ValueError(f"{name} must hold non-negative integer class indices")


def knn_accuracy(
    train_features: Tensor,
    train_labels: Tensor,
    test_features: Tensor,
    test_labels: Tensor,
    k: int = 20,
    temperature: float = 0.07,
    chunk_size: int = 1024,
) -> float:
    """Top-1 accuracy (fraction) of DINO's weighted kNN classifier (Caron et al. 2021, paper Sec. 4).

    Each test feature takes its k most cosine-similar train features (k clamped to the train size); a
    neighbour with similarity s votes for its label with weight exp(s/T); the class with the largest total
    weight is the prediction. Features need not be L2-normalised; test rows are processed in chunks.
    """
    _check_pair("test_features", test_features, "train_features", train_features)
    _check_labels("train_labels", train_labels, train_features.shape[0])
    _check_labels("test_labels", test_labels, test_features.shape[0])
    _check_positive(k=k, temperature=temperature, chunk_size=chunk_size)
    queries, keys = _normalized_pair(test_features, train_features)
    train_labels = train_labels.to(queries.device).long()
    n_classes = int(train_labels.max()) + 1
    k = min(k, keys.shape[0])
    predictions = []
    for rows in _chunks(queries.shape[0], chunk_size):
        similarity, neighbours = (queries[rows] @ keys.T).topk(k, dim=1)
        votes = torch.zeros(similarity.shape[0], n_classes, dtype=similarity.dtype, device=similarity.device)
        votes.scatter_add_(1, train_labels[neighbours], torch.exp(similarity / temperature))
        predictions.append(votes.argmax(dim=1))
    return (torch.cat(predictions).cpu() == test_labels.cpu().long()).double().mean().item()


def occupied_soft_classes(probs: Tensor) -> int:
    """Number of occupied soft classes (Fig. 2): count of k with p̄_k = mean_n probs[n, k] > 1/K.

    ``probs`` (N, K) are softmax outputs of the teacher head, one row per image.
    """
    _check_matrix("probs", probs)
    mean = probs.double().mean(dim=0)
    return int((mean > 1.0 / probs.shape[1]).sum().item())


def sensitivity(train_features: Tensor, test_features: Tensor, scorer: Scorer) -> float | None:
    """Sensitivity of the score to memorisation (Fig. 3 bottom): AUROC of in-distribution test ("out")
    vs in-distribution train ("in"), both scored by ``scorer`` (Eq. 6 in the paper) fitted on the train features,
    the train rows leave-one-out (never against themselves). 0.5 = train and test indistinguishable; None when the
    score has no leave-one-out form.
    """
    _check_pair("test_features", test_features, "train_features", train_features, min_rows_b=2)
    scorer.fit(train_features)
    scores_train = scorer.leave_one_out()
    if scores_train is None:
        return None
    return ood_metrics(scores_train, scorer.score(test_features))["auroc"]
