import math

import pytest
import torch

from ssad.method.centring import update_center
from ssad.method.losses import distillation_loss, negative_loss


def _pair_loss(teacher_probs, student_logits, student_temp):
    """H(p_t, p_s) averaged over the batch, written out by hand."""
    log_p_s = torch.log_softmax(student_logits.double() / student_temp, dim=-1)
    return -(teacher_probs.double() * log_p_s).sum(-1).mean()


def test_distillation_loss_matches_hand_computed_pairs():
    torch.manual_seed(0)
    B, K, tau_s, tau_t = 3, 5, 0.1, 0.04
    teacher = [torch.randn(B, K) for _ in range(2)]
    student = [torch.randn(B, K) for _ in range(4)]
    center = torch.randn(1, K)
    probs = [torch.softmax((t - center) / tau_t, dim=-1) for t in teacher]
    pairs = [(i, j) for i in range(2) for j in range(4) if i != j]
    expected = sum(_pair_loss(probs[i], student[j], tau_s) for i, j in pairs) / len(pairs)
    got = distillation_loss(student, torch.stack(probs), tau_s)
    assert len(pairs) == 6
    assert got.item() == pytest.approx(expected.item(), rel=1e-5)


def test_a_view_is_never_paired_with_itself():
    # teacher view i and student view i identical and confident: if paired, the loss would be near 0;
    # the only other pairing (teacher 0 vs student 1) disagrees, so the loss must stay large.
    a = torch.tensor([[20.0, 0, 0, 0]])
    b = torch.tensor([[0.0, 20, 0, 0]])
    loss = distillation_loss([a, b], torch.softmax(torch.stack([a, b]) / 0.1, dim=-1), student_temp=0.1)
    assert loss.item() > 100.0
    same = distillation_loss([a, a], torch.softmax(torch.stack([a, a]) / 0.1, dim=-1), student_temp=0.1)
    assert same.item() < 1e-3


def test_distillation_loss_rejects_fewer_student_views():
    with pytest.raises(ValueError, match="globals must come first"):
        distillation_loss([torch.zeros(2, 3)], torch.full((2, 2, 3), 1 / 3), 0.1)


def test_uniform_student_gives_negative_loss_log_k():
    K = 4096
    views = [torch.full((5, K), 3.0) for _ in range(9)]
    assert negative_loss(views, 0.1).item() == pytest.approx(math.log(K), rel=1e-6)


def test_negative_loss_is_mean_of_uniform_cross_entropy():
    torch.manual_seed(1)
    views = [torch.randn(2, 6) for _ in range(3)]
    expected = torch.stack([-(torch.log_softmax(v / 0.1, -1)).mean(-1) for v in views]).mean()
    assert negative_loss(views, 0.1).item() == pytest.approx(expected.item(), rel=1e-6)
    # any non-uniform output costs more than log K
    assert negative_loss(views, 0.1).item() > math.log(6)


def test_update_center_is_an_ema():
    c = update_center(torch.ones(1, 3), torch.zeros(1, 3), momentum=0.9)
    assert torch.allclose(c, torch.full((1, 3), 0.9))
