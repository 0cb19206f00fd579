"""Is it learning? Collapse signals of a DINO teacher as pure functions, and the warnings they raise.

DINO fails in two ways (Caron et al. 2021, Sec. 5.3 and Fig. 7): every teacher output uniform (the
sharpening loses against the centring; the mean per-output entropy reaches log K) or every output the
same one-hot (the centring loses; the entropy of the mean output falls to 0). A third failure is a
network that does not move at all (e.g. an effective learning rate far too low). Signals:

- ``relative_drift``: ‖θ − θ⁰‖ / ‖θ⁰‖ of a set of weights from their values at the start of the run;
- ``output_entropies``: mean entropy of softmax((g − c)/τ) and entropy of its mean, in nats (≤ log K);
- ``effective_rank``: RankMe (Garrido et al. 2023, Eq. 1), exp of the entropy of the normalised
  singular values of the feature matrix;
- ``mean_pairwise_cosine``: mean cosine similarity of distinct feature rows.

``collapse_warnings`` turns a record of these signals into warnings, each with its cure.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor


def _check_matrix(name: str, x: Tensor) -> None:
    if x.ndim != 2 or x.shape[0] < 1 or x.shape[1] < 1:
        raise ValueError(f"{name} must be a 2-D tensor (rows, columns), got shape {tuple(x.shape)}")


@torch.no_grad()
def relative_drift(params: Iterable[Tensor], reference: Iterable[Tensor]) -> float:
    """‖θ − θ⁰‖ / ‖θ⁰‖ over all tensors together (Frobenius norms, float64); 0 for an all-zero θ⁰ equal to θ."""
    params, reference = list(params), list(reference)
    if len(params) != len(reference) or any(p.shape != r.shape for p, r in zip(params, reference)):
        raise ValueError("relative_drift: the weights and their reference differ in number or shape")
    diff = sum(float((p.detach().double() - r.to(p.device).double()).pow(2).sum()) for p, r in zip(params, reference))
    ref = sum(float(r.double().pow(2).sum()) for r in reference)
    if ref == 0.0:
        return 0.0 if diff == 0.0 else math.inf
    return math.sqrt(diff / ref)


def entropy(probs: Tensor) -> Tensor:
    """Shannon entropy in nats of each row of ``probs`` (rows sum to 1); 0·log 0 = 0."""
    probs = probs.double()
    return -(probs * torch.log(probs.clamp_min(1e-300))).sum(dim=-1)


@torch.no_grad()
def output_entropies(logits: Tensor, center: Tensor, temperature: float) -> tuple[float, float]:
    """(mean over rows of H(p_n), H(mean over rows of p_n)) for p_n = softmax((g_n − c)/τ), the teacher's
    centred, sharpened output (DINO's target). Uniform outputs give (log K, log K); one and the same one-hot
    for every row gives (0, 0); a different one-hot per row, spread over all K, gives (0, log K)."""
    _check_matrix("logits", logits)
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    probs = torch.softmax((logits.double() - center.to(logits.device).double()) / temperature, dim=-1)
    return float(entropy(probs).mean()), float(entropy(probs.mean(dim=0)))


@torch.no_grad()
def effective_rank(features: Tensor, eps: float = 1e-7) -> float:
    """RankMe (Garrido et al. 2023): exp(−Σ_k p_k log p_k) with p_k = σ_k / ‖σ‖₁ + ε, σ the singular values
    of the (N, d) feature matrix as given (not centred). Between 1 and min(N, d); a rank-r matrix with equal
    singular values gives r."""
    _check_matrix("features", features)
    sigma = torch.linalg.svdvals(features.double())
    if float(sigma.sum()) == 0.0:
        return 0.0
    p = sigma / sigma.sum() + eps
    return float(torch.exp(-(p * torch.log(p)).sum()))


@torch.no_grad()
def mean_pairwise_cosine(features: Tensor) -> float:
    """Mean of cos(f_i, f_j) over pairs i ≠ j, in O(N·d): with unit rows, Σ_{i,j} cos = ‖Σ_i f_i‖²."""
    _check_matrix("features", features)
    n = features.shape[0]
    if n < 2:
        raise ValueError("mean_pairwise_cosine needs at least 2 rows")
    unit = F.normalize(features.double(), dim=1)
    return float((unit.sum(dim=0).pow(2).sum() - n) / (n * (n - 1)))


@dataclass
class CollapseThresholds:
    """When a warning holds (``callbacks.collapse.*``; defaults in conf/callbacks/default.yaml; their ranges are
    checked by the config schema, :class:`ssad.config.schema.CollapseSchema`, which
    :class:`ssad.scoring.collapse.CollapseMonitor` applies before building this)."""

    min_teacher_drift: float
    max_entropy_share: float
    min_entropy_of_mean_share: float
    min_rank_share: float
    max_cosine: float


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3g}"


def collapse_warnings(record: Mapping[str, Any], thresholds: CollapseThresholds, check_drift: bool = True,
                      context: Mapping[str, Any] | None = None) -> dict[str, str]:
    """The warnings that hold for one evaluation ``record`` (keys of :data:`ssad.scoring.results.SIGNALS`; a missing
    signal is not judged), code → message with the measured values and the cure. ``check_drift``: judge the drift (false
    during the learning-rate warm-up, when the weights barely move by design). ``context`` may give
    ``effective_lr``, ``base_lr`` and ``batch`` for the message."""
    t, ctx, found = thresholds, dict(context or {}), {}
    drift, student = record.get("teacher_drift"), record.get("student_drift")
    if check_drift and drift is not None and drift < t.min_teacher_drift:
        lr = ""
        if ctx.get("effective_lr") is not None:
            lr = (f" The effective learning rate is {ctx['effective_lr']:.3g} (optim.base_lr={ctx.get('base_lr')} × "
                  f"effective batch {ctx.get('batch')} / 256).")
        moved = ("" if student is None else
                 f" (student {student:.2g}: " + ("it moves, the teacher follows too slowly: lower "
                                                 "model.momentum_teacher)" if student >= t.min_teacher_drift
                                                 else "it does not move either)"))
        found["teacher_not_moving"] = (
            f"the teacher's backbone moved by {drift:.2g} of its norm since the start of the run{moved}, below "
            f"callbacks.collapse.min_teacher_drift={t.min_teacher_drift:g}.{lr} Check the effective learning "
            "rate = optim.base_lr × batch/256 and raise optim.base_lr; the loss can fall while nothing learns.")
    log_k, h, h_mean = record.get("log_k"), record.get("teacher_entropy"), record.get("teacher_entropy_of_mean")
    if log_k and h is not None and h >= t.max_entropy_share * log_k:
        found["collapse_uniform"] = (
            f"every teacher output is near uniform: mean entropy {h:.3g} nats of log K = {log_k:.3g} "
            f"(≥ callbacks.collapse.max_entropy_share={t.max_entropy_share:g}). Lower the teacher temperature "
            "(model.teacher_temp, model.warmup_teacher_temp), or raise model.centring.momentum or "
            "model.momentum_teacher.")
    if log_k and h_mean is not None and h_mean <= t.min_entropy_of_mean_share * log_k:
        found["collapse_constant"] = (
            f"the teacher gives every image the same soft-class: entropy of its mean output {h_mean:.3g} nats of "
            f"log K = {log_k:.3g} (≤ callbacks.collapse.min_entropy_of_mean_share={t.min_entropy_of_mean_share:g}). "
            "Raise the teacher temperature (model.teacher_temp, model.warmup_teacher_temp) and check the "
            "centring (model.centring.momentum < 1).")
    rank, dim, cos = record.get("effective_rank"), record.get("feature_dim"), record.get("mean_cosine")
    low_rank = rank is not None and bool(dim) and rank < t.min_rank_share * dim
    same = cos is not None and cos > t.max_cosine
    if low_rank or same:
        found["features_constant"] = (
            f"the teacher's features are nearly the same for every image: effective rank {_num(rank)} of {dim} "
            f"(callbacks.collapse.min_rank_share={t.min_rank_share:g}), mean cosine {_num(cos)} "
            f"(callbacks.collapse.max_cosine={t.max_cosine:g}). If it held from the first evaluation, the "
            "backbone sees no contrast in the data (tiny or upsampled images: try another backbone or patch "
            "size); if it came later, lower optim.base_lr and see collapse_uniform / collapse_constant.")
    return found
