"""Metrics against independent straightforward computations (float64 loops, numpy, scikit-learn)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import average_precision_score, roc_auc_score

from ssad.scoring.metrics import (
    fpr_at_95_tpr,
    knn_accuracy,
    mean_feature_score,
    nearest_neighbour_score,
    occupied_soft_classes,
    ood_metrics,
    ood_score,
    readable_score,
    sensitivity,
)
from ssad.scoring.scores import Eq6Score


def loop_score(x: np.ndarray, bank: np.ndarray, tau: float, skip: int | None = None) -> float:
    """Eq. 6 for one query by a plain float64 loop over the bank, optionally skipping bank row ``skip``."""
    total, count = 0.0, 0
    for m, f in enumerate(bank):
        if m == skip:
            continue
        cos = float(x @ f) / (np.linalg.norm(x) * np.linalg.norm(f))
        total += math.exp(cos / tau)
        count += 1
    return -total / count


@pytest.fixture
def gen() -> torch.Generator:
    return torch.Generator().manual_seed(0)


def test_ood_score_matches_double_loop(gen):
    x, bank = torch.randn(7, 5, generator=gen) * 3, torch.randn(11, 5, generator=gen)
    got = ood_score(x, bank, temperature=0.1, chunk_size=3)
    want = [loop_score(q, bank.double().numpy(), 0.1) for q in x.double().numpy()]
    assert got.dtype == torch.float64 and got.shape == (7,)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-5)


def test_ood_score_chunked_equals_unchunked_with_large_bank(gen):
    x, bank = torch.randn(10, 8, generator=gen), torch.randn(5000, 8, generator=gen)
    chunked = ood_score(x, bank, chunk_size=3)
    cos = F.normalize(x.double(), dim=1) @ F.normalize(bank.double(), dim=1).T
    whole = -torch.exp(cos / 0.04).mean(dim=1)
    torch.testing.assert_close(chunked, whole, rtol=1e-5, atol=0)
    # fp32 similarities from different matmul shapes round differently; exp(cos/0.04) turns that into ~1e-6 relative
    torch.testing.assert_close(chunked, ood_score(x, bank, chunk_size=1024), rtol=1e-5, atol=0)


def test_nearest_neighbour_score_is_one_minus_the_largest_cosine_and_eq6_as_tau_goes_to_zero(gen):
    x, bank = torch.randn(9, 5, generator=gen) * 2, torch.randn(40, 5, generator=gen)
    got = nearest_neighbour_score(x, bank, chunk_size=4)
    want = [1 - max(float(q @ f) / (np.linalg.norm(q) * np.linalg.norm(f)) for f in bank.double().numpy())
            for q in x.double().numpy()]
    assert got.dtype == torch.float64 and got.shape == (9,)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-5, atol=1e-6)
    # Eq. 6's published form R = 1 − τ·log((1/M) Σ exp(cos/τ)) lies within [nn, nn + τ·log M] and tends to it
    for tau in (0.04, 0.002):
        readable = readable_score(ood_score(x, bank, tau), tau)
        assert (readable >= got - 1e-6).all() and (readable <= got + tau * math.log(40) + 1e-6).all()
    with pytest.raises(ValueError, match="feature dims differ"):
        nearest_neighbour_score(x, bank[:, :3])
    with pytest.raises(ValueError, match="overflows float64"):  # exp(1/0.001) = e^1000 is no float64
        ood_score(x, bank, 0.001)


def test_mean_feature_score_is_one_minus_the_cosine_to_the_mean_and_eq6_as_tau_grows(gen):
    x, bank = torch.randn(9, 5, generator=gen) * 3, torch.rand(40, 5, generator=gen)  # a one-sided (ReLU-like) bank
    got = mean_feature_score(x, bank)
    rows = bank.double().numpy()
    mean = (rows / np.linalg.norm(rows, axis=1, keepdims=True)).mean(axis=0)
    want = [1 - float(q @ mean) / (np.linalg.norm(q) * np.linalg.norm(mean)) for q in x.double().numpy()]
    assert got.dtype == torch.float64 and got.shape == (9,)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-6, atol=1e-9)
    # Eq. 6 ranks the queries in this order once τ is large, and in another (the nearest neighbour's) when small
    assert torch.equal(ood_score(x, bank, 100.0).argsort(), got.argsort())
    assert not torch.equal(ood_score(x, bank, 0.04).argsort(), got.argsort())
    with pytest.raises(ValueError, match="feature dims differ"):
        mean_feature_score(x, bank[:, :3])


def test_ood_score_is_scale_invariant_and_orders_far_points_higher(gen):
    bank = torch.randn(50, 6, generator=gen)
    near, far = bank[:1] + 0.01, -bank[:1]
    torch.testing.assert_close(ood_score(near * 10, bank), ood_score(near, bank))
    assert ood_score(far, bank) > ood_score(near, bank)


def test_leave_one_out_equals_loop_that_skips_self(gen):
    bank = torch.randn(9, 4, generator=gen)
    got = ood_score(bank, bank, temperature=0.2, chunk_size=4, exclude_self=True)
    b = bank.double().numpy()
    want = [loop_score(b[i], b, 0.2, skip=i) for i in range(len(b))]
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-5)


def test_leave_one_out_counts_an_exact_duplicate_but_not_itself(gen):
    bank = torch.randn(8, 4, generator=gen)
    bank[5] = bank[2]
    got = ood_score(bank, bank, temperature=0.1, chunk_size=3, exclude_self=True)
    b = bank.double().numpy()
    want = [loop_score(b[i], b, 0.1, skip=i) for i in range(len(b))]
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-5)
    # Row 2 sees its duplicate (cos = 1) exactly once among the 7 others: its term is e^10 / 7.
    assert -got[2].item() > math.exp(10) / 7
    assert -got[2].item() < 2 * math.exp(10) / 7


def test_ood_score_rejects_bad_shapes():
    with pytest.raises(ValueError, match="feature dims differ"):
        ood_score(torch.randn(3, 4), torch.randn(5, 6))
    with pytest.raises(ValueError):
        ood_score(torch.randn(0, 4), torch.randn(5, 4))
    with pytest.raises(ValueError, match="exclude_self"):
        ood_score(torch.randn(3, 4), torch.randn(5, 4), exclude_self=True)
    with pytest.raises(ValueError):
        ood_score(torch.randn(1, 4), torch.randn(1, 4), exclude_self=True)


def numpy_fpr95(s_in: np.ndarray, s_out: np.ndarray) -> float:
    """Smallest in-distribution score accepting >= 95% of the in-distribution; share of OOD with S <= it."""
    thr = min(t for t in s_in if np.mean(s_in <= t) >= 0.95)
    return float(np.mean(s_out <= thr))


@pytest.mark.parametrize("n_in,n_out,ties", [(200, 150, False), (60, 37, True), (1, 1, False)])
def test_ood_metrics_match_sklearn_and_numpy(gen, n_in, n_out, ties):
    """torchmetrics returns float32: agreement to ~1e-7."""
    s_in, s_out = torch.randn(n_in, generator=gen), torch.randn(n_out, generator=gen) + 0.7
    if ties:
        s_in, s_out = s_in.round(decimals=1), s_out.round(decimals=1)
    got = ood_metrics(s_in.double(), s_out.double())
    s = np.concatenate([s_in.numpy(), s_out.numpy()]).astype(np.float64)
    is_out = np.r_[np.zeros(n_in), np.ones(n_out)]
    assert got["auroc"] == pytest.approx(roc_auc_score(is_out, s), abs=1e-6)
    assert got["aupr_out"] == pytest.approx(average_precision_score(is_out, s), abs=1e-6)
    assert got["aupr_in"] == pytest.approx(average_precision_score(1 - is_out, -s), abs=1e-6)
    assert got["fpr95"] == pytest.approx(numpy_fpr95(s_in.numpy(), s_out.numpy()), abs=1e-12)


def test_huge_negative_scores_do_not_saturate_into_ties():
    s_in = -1e10 - torch.arange(100, dtype=torch.float64) * 1e3  # all far below zero: sigmoid(s) == 0
    got = ood_metrics(s_in, s_in + 1e6)
    assert got["auroc"] == 1.0 and got["aupr_in"] == 1.0 and got["aupr_out"] == 1.0 and got["fpr95"] == 0.0


def test_fpr95_threshold_is_the_95th_percent_in_score():
    s_in = torch.arange(1, 101, dtype=torch.float64)  # thr = 95: accepts exactly 95 of 100
    assert fpr_at_95_tpr(s_in, torch.tensor([94.0, 95.0, 95.5, 200.0])) == 0.5
    assert ood_metrics(s_in, s_in)["fpr95"] == 0.95


def test_ood_metrics_rejects_bad_input():
    with pytest.raises(ValueError):
        ood_metrics(torch.randn(0), torch.randn(3))
    with pytest.raises(ValueError):
        ood_metrics(torch.randn(3, 1), torch.randn(3))
    with pytest.raises(ValueError, match="NaN"):
        ood_metrics(torch.tensor([0.0, float("nan")]), torch.randn(3))


def loop_knn(train, train_labels, test, test_labels, k, T) -> float:
    """DINO's weighted kNN written as a plain python loop."""
    train = train / np.linalg.norm(train, axis=1, keepdims=True)
    test = test / np.linalg.norm(test, axis=1, keepdims=True)
    correct = 0
    for x, y in zip(test, test_labels, strict=True):
        sims = train @ x
        votes: dict[int, float] = {}
        for j in np.argsort(-sims)[:k]:
            votes[int(train_labels[j])] = votes.get(int(train_labels[j]), 0.0) + math.exp(sims[j] / T)
        correct += max(votes, key=votes.get) == y
    return correct / len(test)


@pytest.mark.parametrize("k", [1, 5, 20, 1000])
def test_knn_accuracy_matches_loop(gen, k):
    centres = torch.randn(4, 6, generator=gen)
    train_labels = torch.randint(0, 4, (80,), generator=gen)
    test_labels = torch.randint(0, 4, (30,), generator=gen)
    train = centres[train_labels] + 1.2 * torch.randn(80, 6, generator=gen)
    test = centres[test_labels] + 1.2 * torch.randn(30, 6, generator=gen)
    got = knn_accuracy(train, train_labels, test, test_labels, k=k, temperature=0.07, chunk_size=7)
    want = loop_knn(train.numpy(), train_labels.numpy(), test.numpy(), test_labels.numpy(), min(k, 80), 0.07)
    assert got == pytest.approx(want, abs=1e-12)
    assert 0.25 < got <= 1.0


def test_knn_accuracy_rejects_bad_labels():
    with pytest.raises(ValueError):
        knn_accuracy(torch.randn(5, 3), torch.zeros(4, dtype=torch.long), torch.randn(2, 3), torch.zeros(2))
    with pytest.raises(ValueError, match="feature dims differ"):
        knn_accuracy(torch.randn(5, 3), torch.zeros(5, dtype=torch.long), torch.randn(2, 4),
                     torch.zeros(2, dtype=torch.long))


def test_occupied_soft_classes_on_hand_made_probs():
    probs = torch.tensor([[0.7, 0.1, 0.1, 0.1],
                          [0.1, 0.6, 0.2, 0.1],
                          [0.4, 0.4, 0.1, 0.1]])  # means 0.4, 0.367, 0.133, 0.1 vs 1/K = 0.25
    assert occupied_soft_classes(probs) == 2
    assert occupied_soft_classes(torch.full((5, 8), 1 / 8)) == 0  # uniform (collapsed): none above 1/K
    assert occupied_soft_classes(torch.eye(6)) == 0  # every mean exactly 1/K
    assert occupied_soft_classes(torch.eye(6)[[0, 0, 1]]) == 2
    with pytest.raises(ValueError):
        occupied_soft_classes(torch.rand(4))


def test_sensitivity_is_auroc_of_leave_one_out_train_vs_test(gen):
    train, test = torch.randn(40, 5, generator=gen), torch.randn(25, 5, generator=gen)
    b = train.double().numpy()
    s_train = [loop_score(b[i], b, 0.04, skip=i) for i in range(len(b))]
    s_test = [loop_score(x, b, 0.04) for x in test.double().numpy()]
    want = roc_auc_score(np.r_[np.zeros(40), np.ones(25)], np.r_[s_train, s_test])
    assert sensitivity(train, test, Eq6Score(0.04)) == pytest.approx(want, abs=1e-6)
    # Test = copies of train rows: without leave-one-out they would look perfectly in-distribution.
    assert sensitivity(train, train[:20].clone(), Eq6Score(0.04)) < 0.05
