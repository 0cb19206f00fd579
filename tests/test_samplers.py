"""EpochSampler: the order is a function of (seed, epoch), shards are disjoint, a resumed epoch skips exactly."""

from collections import Counter

import pytest
import torch

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
