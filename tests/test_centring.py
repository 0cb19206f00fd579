"""The teacher's centre and output normalisation (ssad/method/centring.py): the paper's EMA centring and
Sinkhorn-Knopp, chosen in config (the group centring=ema|sinkhorn, which also holds the centre's momentum), under
gradient accumulation and (simulated) several processes, and in a training run."""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch
from hydra.utils import instantiate

from ssad.config.keys import check_keys
from ssad.deploy.checkpoints import load_checkpoint
from ssad.method.centring import (
    CENTRINGS,
    EMACentring,
    SinkhornKnoppCentring,
    build_centring,
    local,
    update_center,
)
from ssad.training.run import train
from tests.conftest import compose_cfg

K = 8


def _views(seed: int = 0, batch: int = 32) -> list[torch.Tensor]:
    """Two global views' teacher logits with a few soft-classes favoured by every image."""
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, K, generator=g) + torch.linspace(0, 2, K) for _ in range(2)]


def _column_error(probs: torch.Tensor) -> float:
    """Largest relative distance of a soft-class's total mass from R/K over the R rows (views × images)."""
    rows = probs.flatten(0, 1)
    share = len(rows) / rows.shape[1]
    return ((rows.sum(0) - share).abs().max() / share).item()


def _sinkhorn_reference(logits: torch.Tensor, temperature: float, iterations: int) -> torch.Tensor:
    """SwAV's Algorithm 1 written out in probability space (Q = exp(g/τ)ᵀ, K × R): normalise the total, then
    rows (soft-classes) to 1/K and columns (rows of the batch) to 1/R in turn; R·Qᵀ."""
    q = torch.exp(logits.double() / temperature).T
    n_classes, n_rows = q.shape
    q /= q.sum()
    for _ in range(iterations):
        q /= q.sum(dim=1, keepdim=True) * n_classes
        q /= q.sum(dim=0, keepdim=True) * n_rows
    return (q * n_rows).T


# ----------------------------------------------------------------- EMA centring (the paper's)
def test_ema_targets_are_the_centred_sharpened_softmax():
    views = _views()
    centring = EMACentring(K, momentum=0.9)
    centring.center.copy_(torch.randn(1, K))
    got = centring.targets(views, 0.04)
    # the formula of L_pos before centring was a component, bit for bit
    assert torch.equal(got, torch.softmax((torch.stack(views).float() - centring.center) / 0.04, dim=-1))
    # by hand: the centre removes what every image shares
    centring.center.copy_(torch.tensor([[3.0, 1.0] + [0.0] * (K - 2)]))
    hand = centring.targets([torch.tensor([[3.0, 1.0] + [0.0] * (K - 2)])], 0.5)
    torch.testing.assert_close(hand, torch.full((1, 1, K), 1 / K))


def test_ema_centre_moves_once_per_step_by_the_mean_of_its_micro_batches():
    centring = EMACentring(K, momentum=0.8)
    start = torch.randn(1, K)
    centring.center.copy_(start)
    first, second = _views(1, batch=4), _views(2, batch=6)
    centring.accumulate(first)
    centring.accumulate(second)
    torch.testing.assert_close(centring.center, start)  # no move before the optimiser step
    centring.update()
    mean = torch.cat(first + second).mean(0, keepdim=True)
    torch.testing.assert_close(centring.center, 0.8 * start + 0.2 * mean)
    torch.testing.assert_close(update_center(start, mean, 0.8), 0.8 * start + 0.2 * mean)
    assert centring.step_rows == 0 and not centring.step_sum.any()
    centring.update()  # a step without micro-batches leaves the centre where it is
    torch.testing.assert_close(centring.center, 0.8 * start + 0.2 * mean)


def test_ema_centre_averages_over_processes():
    """Two processes with 4 rows each: the all-reduced sum over 2 × 4 rows gives the mean of all 8."""
    mine, theirs = torch.randn(4, K), torch.randn(4, K)
    centring = EMACentring(K, momentum=0.5)
    centring.accumulate([mine])
    centring.update(lambda tensor, op: tensor + theirs.sum(0, keepdim=True), world_size=2)
    torch.testing.assert_close(centring.center, 0.5 * torch.cat([mine, theirs]).mean(0, keepdim=True))


# ----------------------------------------------------------------- Sinkhorn-Knopp
def test_sinkhorn_targets_are_doubly_stochastic():
    views = _views()
    probs = SinkhornKnoppCentring(K, 0.9, iterations=3).targets(views, 1.0)
    assert probs.shape == (2, 32, K)
    torch.testing.assert_close(probs.sum(-1), torch.ones(2, 32))  # each row a distribution
    softmax = torch.softmax(torch.stack(views), dim=-1)
    assert _column_error(softmax) > 0.5  # without the normalisation the favoured classes take twice their share
    assert _column_error(probs) < 0.02  # after DINOv2's 3 iterations each class holds ≈ R/K
    # sharper targets need more iterations; the error shrinks with them down to rounding
    errors = [_column_error(SinkhornKnoppCentring(K, 0.9, n).targets(views, 0.2)) for n in (1, 3, 10, 100)]
    assert errors == sorted(errors, reverse=True) and errors[-1] < 1e-4


@pytest.mark.parametrize("iterations", [1, 3])
def test_sinkhorn_matches_swav_algorithm(iterations):
    views = _views(3)
    got = SinkhornKnoppCentring(K, 0.9, iterations).targets(views, 0.5)
    expected = _sinkhorn_reference(torch.cat(views), 0.5, iterations).view(2, 32, K)
    torch.testing.assert_close(got.double(), expected, rtol=1e-5, atol=1e-7)


def test_sinkhorn_is_finite_at_low_temperature():
    """τ_t = 0.01 with logits of size 50: exp(g/τ) overflows float32; the log-domain targets do not."""
    views = [50 * torch.randn(16, K) for _ in range(2)]
    assert not torch.isfinite(torch.exp(torch.stack(views) / 0.01)).all()
    probs = SinkhornKnoppCentring(K, 0.9, 3).targets(views, 0.01)
    assert torch.isfinite(probs).all()
    torch.testing.assert_close(probs.sum(-1), torch.ones(2, 16))


def test_sinkhorn_over_processes_equals_one_batch():
    """Two processes (threads exchanging through a simulated all-reduce) holding half the batch each get the
    rows of Sinkhorn-Knopp over the whole batch: the column sums are reduced across processes."""
    views = _views(4)
    barrier, slots = threading.Barrier(2), [None, None]

    def reducer(rank: int):
        def reduce(tensor: torch.Tensor, op: str) -> torch.Tensor:
            slots[rank] = tensor.clone()
            barrier.wait()
            both = torch.stack(slots)
            out = both.sum(0) if op == "sum" else both.amax(0)
            barrier.wait()  # both have read before either writes its next tensor
            return out
        return reduce

    centring = SinkhornKnoppCentring(K, 0.9, 3)
    with ThreadPoolExecutor(2) as pool:
        halves = list(pool.map(lambda r: centring.targets([v.chunk(2)[r] for v in views], 0.3, reducer(r)), [0, 1]))
    whole = centring.targets(views, 0.3, local)
    torch.testing.assert_close(torch.cat(halves, dim=1), whole)
    alone = centring.targets([v.chunk(2)[0] for v in views], 0.3)
    assert not torch.allclose(alone, halves[0], atol=1e-4), "the check above can fail: a half alone differs"


# ----------------------------------------------------------------- choice in config
def test_build_centring_by_name_and_its_errors():
    assert isinstance(build_centring(None, K), EMACentring)  # a module built without a config: the paper's
    sinkhorn = build_centring({"name": "sinkhorn", "momentum": 0.7, "iterations": 5}, K)
    assert isinstance(sinkhorn, SinkhornKnoppCentring) and sinkhorn.iterations == 5 and sinkhorn.momentum == 0.7
    assert set(CENTRINGS) == {"ema", "sinkhorn"}
    with pytest.raises(ValueError, match=r"model.centring.name='dino': choose one of ema, sinkhorn"):
        build_centring({"name": "dino"}, K)
    with pytest.raises(ValueError, match=r"model.centring.iteration: .*its keys: name, iterations, momentum"):
        build_centring({"name": "sinkhorn", "iteration": 3}, K)
    with pytest.raises(ValueError, match=r"model.centring.iterations=0 must be an integer >= 1"):
        build_centring({"name": "sinkhorn", "iterations": 0}, K)


def test_config_group_selects_the_centring(tmp_path):
    default = compose_cfg(tmp_path)
    assert dict(default.model.centring) == {"name": "ema", "momentum": 0.9}
    assert "center_momentum" not in default.model  # the centre's momentum is the centring group's
    assert isinstance(instantiate(default.model, _convert_="all").centring, EMACentring)
    cfg = compose_cfg(tmp_path, "centring=sinkhorn", "model.centring.iterations=4", "model.centring.momentum=0.5")
    model = instantiate(cfg.model, _convert_="all")
    assert isinstance(model.centring, SinkhornKnoppCentring) and model.centring.iterations == 4
    assert model.centring.momentum == 0.5  # sinkhorn takes ema's momentum, overridable
    assert "centring.center" in model.state_dict()


def test_training_with_sinkhorn_centring_runs_and_its_checkpoint_loads(tmp_path):
    summary = train(compose_cfg(tmp_path, "centring=sinkhorn", "trainer.max_epochs=1"))
    model, run_cfg = load_checkpoint(f"{summary['run_dir']}/checkpoints/last.ckpt")
    assert run_cfg.model.centring.name == "sinkhorn" and isinstance(model.centring, SinkhornKnoppCentring)
    assert model.center.abs().sum() > 0  # the running centre is kept for the evaluation


def test_unknown_centring_key_fails_at_start_up(tmp_path):
    cfg = compose_cfg(tmp_path, "centring=sinkhorn", "+model.centring.iteration=3")
    with pytest.raises(ValueError, match=r"model.centring.iteration: .*did you mean 'iterations'"):
        check_keys(cfg)
