"""EpochSampler: the order is a function of (seed, epoch), shards are disjoint, a resumed epoch skips exactly."""

from collections import Counter

import pytest
import torch

from ssad.data import samplers
from ssad.data.samplers import EpochSampler


def _shard(size, rank, world, weights=None, epoch=0):
    sampler = EpochSampler(size, seed=3, weights=weights)
    sampler.num_replicas, sampler.rank = world, rank  # as DistributedSampler sets them under DDP
    sampler.num_samples = -(-size // world)
    sampler.total_size = sampler.num_samples * world
    sampler.set_epoch(epoch)
    return list(sampler)


def test_a_permutation_per_epoch_fixed_by_seed_and_epoch():
    first, again, second = _shard(10, 0, 1), _shard(10, 0, 1), _shard(10, 0, 1, epoch=1)
    assert sorted(first) == list(range(10)) and first == again and first != second
    assert len(EpochSampler(10)) == 10


def test_shards_are_disjoint_and_cover_the_epoch_with_padding():
    shards = [_shard(10, rank, 3) for rank in range(3)]
    assert [len(s) for s in shards] == [4, 4, 4]
    counts = Counter(i for s in shards for i in s)
    assert set(counts) == set(range(10)) and sum(counts.values()) == 12  # two indices repeated as padding


def test_weighted_draws_follow_the_weights():
    weights = torch.tensor([1.0, 3.0, 0.0], dtype=torch.float64)
    draws = Counter(_shard(40_000, 0, 1, weights=weights))
    assert draws[2] == 0 and draws[1] / draws[0] == pytest.approx(3.0, rel=0.05)


def test_resume_at_skips_what_was_consumed_once():
    sampler = EpochSampler(12, seed=5)
    sampler.set_epoch(2)
    whole = list(sampler)
    sampler.resume_at(2, 8)
    assert list(sampler) == whole[8:]
    assert list(sampler) == whole  # the next iteration is a whole epoch again


def test_an_epoch_of_count_draws_begins_as_the_epoch_of_the_whole_set():
    whole = _shard(10, 0, 1)
    shorter, longer = EpochSampler(10, seed=3, count=4), EpochSampler(10, seed=3, count=25)
    assert len(shorter) == 4 and list(shorter) == whole[:4]
    drawn = list(longer)  # two whole passes over the set, then half of a third
    assert len(longer) == 25 and drawn[:10] == whole and sorted(drawn[10:20]) == list(range(10))
    assert drawn[10:20] != whole and len(set(drawn[20:])) == 5
    weights = torch.tensor([1.0, 3.0, 0.0], dtype=torch.float64)
    assert list(EpochSampler(10, seed=3, weights=weights, count=40))[:10] == _shard(10, 0, 1, weights=weights)


def test_count_is_shared_out_over_the_processes(monkeypatch):
    whole = list(EpochSampler(4, seed=3, count=10))
    shards = []
    for rank in range(3):  # as under DDP with 3 processes
        monkeypatch.setattr(samplers.dist, "is_initialized", lambda: True)
        monkeypatch.setattr(samplers.dist, "get_world_size", lambda: 3)
        monkeypatch.setattr(samplers.dist, "get_rank", lambda rank=rank: rank)
        shards.append(list(EpochSampler(4, seed=3, count=10)))
    assert [len(s) for s in shards] == [4, 4, 4]
    assert sorted(i for s in shards for i in s) == sorted(whole + whole[:2])  # padded as DistributedSampler pads
