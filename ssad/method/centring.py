"""The teacher's centre and output normalisation, chosen in config (``centring=ema|sinkhorn``), as DINOv2 does.

A centring turns the teacher's logits g_t of the positive global views into the targets p_t of L_pos (Eq. 3) and
keeps the running centre c, an EMA of the teacher's mean output over the positive global views of each optimiser
step. The EMA centring (the paper's, the default) targets softmax((g_t − c)/τ_t); Sinkhorn-Knopp (SwAV, DINOv2)
targets the batch's exp(g_t/τ_t) made doubly stochastic by alternating normalisations and keeps c only for the
evaluation, which reads the teacher's soft classes centred by it (Fig. 2) under either centring.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# all-reduce over the training processes, (tensor, "sum" | "max") -> tensor; the identity on one process
Reduce = Callable[[Tensor, str], Tensor]


def local(tensor: Tensor, op: str) -> Tensor:
    """The all-reduce of a single process: the tensor itself."""
    return tensor


@torch.no_grad()
def update_center(center: Tensor, teacher_batch_mean: Tensor, momentum: float) -> Tensor:
    """Centre c ← m·c + (1 − m)·mean of the teacher's logits over all positive global views (DINO)."""
    return center * momentum + teacher_batch_mean * (1.0 - momentum)


class Centring(nn.Module):
    """Teacher targets from teacher logits (:meth:`targets`) and the running centre c (``center``, kept in
    checkpoints). Each micro-batch adds its teacher logits to the step's sum (:meth:`accumulate`); after the
    optimiser step :meth:`update` moves c once by the mean over the step's micro-batches and processes, so that
    k micro-batches of b images move it as one batch of k·b does. ``momentum``: the centre's
    (``model.centring.momentum``; the paper's 0.9 when built without a config)."""

    def __init__(self, out_dim: int, momentum: float = 0.9) -> None:
        super().__init__()
        self.momentum = momentum
        self.register_buffer("center", torch.zeros(1, out_dim))
        # teacher logits summed over the current step's micro-batches, and their number of rows (not in
        # checkpoints: a run resumes at a step boundary)
        self.register_buffer("step_sum", torch.zeros(1, out_dim), persistent=False)
        self.step_rows = 0

    def targets(self, teacher_out: Sequence[Tensor], temperature: float, reduce: Reduce = local) -> Tensor:
        """(V, B, K) teacher probabilities of the V global views' (B, K) logits ``teacher_out`` at τ_t."""
        raise NotImplementedError

    @torch.no_grad()
    def accumulate(self, teacher_out: Sequence[Tensor]) -> None:
        """Add one micro-batch's teacher logits (every positive global view) to the step's sum."""
        logits = torch.cat(list(teacher_out)).float()
        self.step_sum.add_(logits.sum(dim=0, keepdim=True))
        self.step_rows += len(logits)

    @torch.no_grad()
    def update(self, reduce: Reduce = local, world_size: int = 1) -> None:
        """c ← m·c + (1 − m)·(mean teacher logit of the step on all ``world_size`` processes, which hold equal
        batches), one all-reduce."""
        if not self.step_rows:
            return
        total = reduce(self.step_sum, "sum")
        self.center.copy_(update_center(self.center, total / (self.step_rows * world_size), self.momentum))
        self.step_sum.zero_()
        self.step_rows = 0


class EMACentring(Centring):
    """The paper's centring (DINO): p_t = softmax((g_t − c)/τ_t) with c the running centre."""

    def targets(self, teacher_out: Sequence[Tensor], temperature: float, reduce: Reduce = local) -> Tensor:
        """p_t = softmax((g_t − c)/τ_t) of Eq. 3, per row (no communication)."""
        return F.softmax((torch.stack(list(teacher_out)).float() - self.center) / temperature, dim=-1)


class SinkhornKnoppCentring(Centring):
    """Sinkhorn-Knopp targets (SwAV; DINOv2's ``sinkhorn_knopp`` centring) over the positive global views of the
    batch on all processes; ``iterations`` alternating normalisations (DINOv2: 3)."""

    def __init__(self, out_dim: int, momentum: float = 0.9, iterations: int = 3) -> None:
        super().__init__(out_dim, momentum)
        if not (isinstance(iterations, int) and iterations >= 1):
            raise ValueError(f"model.centring.iterations={iterations!r} must be an integer >= 1")
        self.iterations = iterations

    def targets(self, teacher_out: Sequence[Tensor], temperature: float, reduce: Reduce = local) -> Tensor:
        """Q = exp(g_t/τ_t) over the R rows (views × images, all processes) and K soft-classes, then
        ``iterations`` times: scale each column to sum 1/K, each row to sum 1/R (SwAV, Alg. 1); returned as R·Q,
        whose rows sum to 1 and whose columns sum to ≈ R/K. Computed in the log domain: τ_t = 0.01 overflows
        exp(g_t/τ_t) in float32. Under gradient accumulation the batch is the micro-batch on all processes."""
        logits = torch.stack(list(teacher_out)).float()
        log_q = (logits / temperature).flatten(0, 1)  # (R_local, K); the constant scalings cancel in log space
        for _ in range(self.iterations):
            log_q = log_q - _logsumexp_rows(log_q, reduce)  # every soft-class gets the same mass
            log_q = F.log_softmax(log_q, dim=-1)  # every row sums to 1
        return log_q.exp().view_as(logits)


def _logsumexp_rows(log_q: Tensor, reduce: Reduce) -> Tensor:
    """(1, K) log Σ_rows exp(log_q) over the rows of every process, shifted by the per-column maximum."""
    peak = reduce(log_q.amax(dim=0, keepdim=True), "max")
    return peak + reduce((log_q - peak).exp().sum(dim=0, keepdim=True), "sum").log()


CENTRINGS: dict[str, type[Centring]] = {"ema": EMACentring, "sinkhorn": SinkhornKnoppCentring}


def build_centring(config: Mapping[str, Any] | None, out_dim: int) -> Centring:
    """The centring named by ``config["name"]`` (``model.centring``) with its other keys (``momentum``, and the
    centring's own) as arguments; None gives the paper's EMA centring."""
    options = dict(config or {"name": "ema"})
    name = options.pop("name", None)
    if name not in CENTRINGS:
        raise ValueError(f"model.centring.name={name!r}: choose one of {', '.join(CENTRINGS)}")
    known = centring_keys(CENTRINGS[name])
    unknown = sorted(set(options) - known)
    if unknown:
        raise ValueError(f"model.centring.{unknown[0]}: the {name} centring has no such key; its keys: name"
                         + "".join(f", {key}" for key in sorted(known)))
    return CENTRINGS[name](out_dim, **options)


def centring_keys(cls: type[Centring]) -> set[str]:
    """The config keys of a centring besides ``name``: its constructor's arguments but ``out_dim``."""
    return set(inspect.signature(cls).parameters) - {"out_dim"}
