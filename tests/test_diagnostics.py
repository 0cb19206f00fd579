"""Collapse signals on hand-made matrices and outputs, and the warnings they raise (issue 15)."""

import math

import pytest
import torch

from ssad.scoring.collapse import CollapseMonitor
from ssad.scoring.diagnostics import (
    CollapseThresholds,
    collapse_warnings,
    effective_rank,
    entropy,
    mean_pairwise_cosine,
    output_entropies,
    relative_drift,
)
from ssad.scoring.plots import plot_curves
from ssad.training.callbacks import flatten_metrics

THRESHOLDS = CollapseThresholds(min_teacher_drift=1e-3, max_entropy_share=0.95, min_entropy_of_mean_share=0.05,
                                min_rank_share=0.01, max_cosine=0.99)


def _rank_r(n: int, d: int, r: int, seed: int = 0) -> torch.Tensor:
    """An (n, d) matrix of rank r with r equal singular values: orthonormal n×r times orthonormal r×d."""
    g = torch.Generator().manual_seed(seed)
    u, _ = torch.linalg.qr(torch.randn(n, r, generator=g, dtype=torch.float64))
    v, _ = torch.linalg.qr(torch.randn(d, r, generator=g, dtype=torch.float64))
    return (u @ v.T).float()


@pytest.mark.parametrize("r", [1, 3, 10, 32])
def test_effective_rank_of_a_rank_r_matrix_is_r(r):
    assert effective_rank(_rank_r(200, 32, r)) == pytest.approx(r, rel=1e-3)


def test_effective_rank_counts_unequal_directions_as_less():
    x = torch.cat([_rank_r(100, 8, 4), 0.01 * _rank_r(100, 8, 4, seed=1)], dim=0)
    assert 4.0 < effective_rank(x) < 4.5  # four strong directions and four weak ones, not eight
    assert effective_rank(torch.ones(50, 16)) == pytest.approx(1.0, abs=1e-3)  # one direction: constant features
    assert effective_rank(torch.zeros(5, 3)) == 0.0


def test_entropies_of_uniform_and_one_hot_outputs():
    k, n = 16, 40
    assert entropy(torch.full((1, k), 1 / k)).item() == pytest.approx(math.log(k))
    assert entropy(torch.eye(k)).tolist() == [0.0] * k
    zero = torch.zeros(1, k)
    # uniform: every output has the maximal entropy, and so has their mean
    h, h_mean = output_entropies(torch.zeros(n, k), zero, 0.04)
    assert h == pytest.approx(math.log(k)) and h_mean == pytest.approx(math.log(k))
    # the same one-hot for every image: nothing anywhere
    same = torch.zeros(n, k)
    same[:, 3] = 10.0
    assert output_entropies(same, zero, 0.04) == pytest.approx((0.0, 0.0), abs=1e-6)
    # one-hot but spread evenly over all K: sharp outputs, every soft-class used
    spread = 10.0 * torch.eye(k).repeat(2, 1)
    h, h_mean = output_entropies(spread, zero, 0.04)
    assert h == pytest.approx(0.0, abs=1e-6) and h_mean == pytest.approx(math.log(k), rel=1e-6)
    # the centre is subtracted before sharpening: centring a constant output makes it uniform
    assert output_entropies(same, same[:1], 0.04)[0] == pytest.approx(math.log(k))
    with pytest.raises(ValueError, match="temperature"):
        output_entropies(same, zero, 0.0)


def test_mean_pairwise_cosine():
    assert mean_pairwise_cosine(torch.ones(6, 4) * torch.arange(1, 7).view(6, 1)) == pytest.approx(1.0)
    assert mean_pairwise_cosine(torch.eye(5)) == pytest.approx(0.0, abs=1e-12)
    x = torch.randn(30, 8, generator=torch.Generator().manual_seed(0))
    u = torch.nn.functional.normalize(x, dim=1)
    brute = (u @ u.T)[~torch.eye(30, dtype=torch.bool)].mean()
    assert mean_pairwise_cosine(x) == pytest.approx(brute.item(), abs=1e-6)


def test_relative_drift():
    ref = [torch.tensor([3.0, 0.0]), torch.tensor([[4.0]])]
    assert relative_drift(ref, ref) == 0.0
    assert relative_drift([torch.tensor([3.0, 1.0]), torch.tensor([[4.0]])], ref) == pytest.approx(0.2)
    with pytest.raises(ValueError, match="shape"):
        relative_drift([torch.zeros(3)], [torch.zeros(2)])


HEALTHY = {"teacher_drift": 0.05, "student_drift": 0.08, "teacher_entropy": 2.0, "teacher_entropy_of_mean": 4.0,
           "log_k": math.log(256), "effective_rank": 30.0, "feature_dim": 256, "mean_cosine": 0.8}


@pytest.mark.parametrize("change,code,key", [
    ({"teacher_drift": 1e-7, "student_drift": 1e-6}, "teacher_not_moving", "optim.base_lr"),
    ({"teacher_drift": 1e-5, "student_drift": 0.05}, "teacher_not_moving", "model.momentum_teacher"),
    ({"teacher_entropy": 0.99 * math.log(256)}, "collapse_uniform", "model.teacher_temp"),
    ({"teacher_entropy": 0.0, "teacher_entropy_of_mean": 0.01}, "collapse_constant", "model.centring.momentum"),
    ({"effective_rank": 1.2}, "features_constant", "callbacks.collapse.min_rank_share"),
    ({"mean_cosine": 0.999}, "features_constant", "callbacks.collapse.max_cosine"),
])
def test_each_warning_names_its_signal_and_cure(change, code, key):
    assert collapse_warnings(HEALTHY, THRESHOLDS) == {}
    found = collapse_warnings({**HEALTHY, **change}, THRESHOLDS,
                              context={"effective_lr": 1.25e-10, "base_lr": 1e-9, "batch": 32})
    assert list(found) == [code]
    assert key in found[code]


def test_drift_is_not_judged_during_warmup_and_missing_signals_are_not_judged():
    slow = {**HEALTHY, "teacher_drift": 1e-7}
    assert "teacher_not_moving" in collapse_warnings(slow, THRESHOLDS)
    assert collapse_warnings(slow, THRESHOLDS, check_drift=False) == {}
    assert collapse_warnings({}, THRESHOLDS) == {}


def test_thresholds_and_patience_are_checked_with_their_key():
    with pytest.raises(ValueError, match="callbacks.collapse.max_cosine"):
        CollapseMonitor(warmup_epochs=0, **{**vars(THRESHOLDS), "max_cosine": 1.5}, stop=False, patience=2)
    with pytest.raises(ValueError, match="callbacks.collapse.patience"):
        CollapseMonitor(warmup_epochs=0, **vars(THRESHOLDS), stop=False, patience=0)


def test_warnings_reach_the_logged_keys_and_the_plot(tmp_path):
    warning = {"code": "collapse_uniform", "message": "...", "since_epoch": 2, "evaluations": 1}
    flat = flatten_metrics({**HEALTHY, "warnings": [warning]})
    assert flat["eval/teacher_drift"] == 0.05 and flat["eval/effective_rank"] == 30.0
    assert flat["eval/warning/collapse_uniform"] == 1.0 and flat["eval/warning/teacher_not_moving"] == 0.0
    records = [{"epoch": e, **HEALTHY, "warnings": [warning] if e == 4 else []} for e in (2, 4)]
    drift = [{"epoch": e, "teacher_drift": 0.01 * e, "student_drift": 0.02 * e} for e in (1, 2, 3, 4)]
    [path] = plot_curves(records, [], tmp_path, "t", drift_curve=drift, thresholds=vars(THRESHOLDS))
    assert path.stat().st_size > 0
