"""The training objective L = L_pos + λ·L_neg (paper Eqs. 3 and 4)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor


def distillation_loss(student_out: Sequence[Tensor], teacher_probs: Tensor, student_temp: float) -> Tensor:
    """L_pos, Eq. 3: DINO cross-entropy H(p_t(x''), p_s(x')) averaged over pairs of distinct views.

    ``student_out``: (B, K) logits of every positive view, global views first, in the order of the teacher's
    views; ``teacher_probs``: (V, B, K) targets p_t of the V global views, made by the centring
    (:mod:`ssad.method.centring`; the paper's p_t = softmax((g_t − c)/τ_t)). The student's output is
    p_s = softmax(g_s/τ_s). Teacher view i is never paired with student view i (the same crop). Returns the mean
    over all remaining pairs.
    """
    n_teacher, n_student = len(teacher_probs), len(student_out)
    if n_student < n_teacher:
        raise ValueError(f"{n_student} student views < {n_teacher} teacher views: globals must come first")
    log_p_s = F.log_softmax(torch.stack(list(student_out)).float() / student_temp, dim=-1)
    # cross[i, j] = mean over the batch of H(p_t of teacher view i, p_s of student view j)
    cross = -torch.einsum("ibk,jbk->ij", teacher_probs, log_p_s) / teacher_probs.shape[1]
    same_view = torch.eye(n_teacher, n_student, dtype=torch.bool, device=cross.device)
    return cross[~same_view].mean()


def negative_loss(student_out: Sequence[Tensor], student_temp: float) -> Tensor:
    """L_neg, Eq. 4: cross-entropy to the uniform distribution (τ_t → ∞), −(1/K) Σ_k log p_s^k(x').

    ``student_out``: (B, K) logits of every view of the negative samples. Averaged over views and samples;
    its minimum, log K, is reached by a uniform student output.
    """
    logits = torch.cat(list(student_out)).float()
    return -F.log_softmax(logits / student_temp, dim=-1).mean(dim=-1).mean()
