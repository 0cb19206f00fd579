"""The training views (ssad/views/training.py): negative transforms at the source or on every view, and the negative
global view's pipeline (global-1 or global-2, 1/2 each)."""

import pytest
import torch

from ssad.views.augment import IMAGENET_MEAN, IMAGENET_STD, MultiCropAugment
from ssad.views.colour import solarize
from ssad.views.negatives import parse_variant
from ssad.views.training import TrainingViews

B, N_LOCAL = 16, 4


def _images(b: int = B, size: int = 16) -> torch.Tensor:
    return torch.randint(0, 256, (b, 3, size, size), generator=torch.Generator().manual_seed(1), dtype=torch.uint8)


def _negative_views(transform: str, at: str, seed: int = 0) -> list[torch.Tensor]:
    augment = MultiCropAugment(global_size=16, local_size=8, n_local=N_LOCAL)
    views = TrainingViews(augment, parse_variant([{"source": "imgn", "transform": transform, "at": at}]))
    torch.manual_seed(seed)
    return views.negatives(_images(), torch.zeros(B, dtype=torch.long))


def _patches(view: torch.Tensor, g: int) -> torch.Tensor:
    """(B, g·g, C·ph·pw) patches of each view, row-major."""
    b, c, h, w = view.shape
    return view.reshape(b, c, g, h // g, g, w // g).permute(0, 2, 4, 1, 3, 5).reshape(b, g * g, -1)


def _permutation(permuted: torch.Tensor, plain: torch.Tensor) -> tuple[int, ...]:
    """The patch order with permuted[i] == plain[order[i]]; fails unless every patch is found exactly once."""
    order = []
    for patch in permuted:
        hits = [j for j, q in enumerate(plain) if torch.equal(patch, q)]
        assert len(hits) == 1, "a view's patch is not one of its own unpermuted crop's patches"
        order.append(hits[0])
    assert sorted(order) == list(range(len(plain)))
    return tuple(order)


def test_perm_at_view_permutes_each_views_own_crop_with_its_own_permutation():
    plain = _negative_views("identity", "source")
    permuted = _negative_views("perm-16", "view")
    assert [v.shape for v in permuted] == [(B, 3, 16, 16)] + [(B, 3, 8, 8)] * N_LOCAL
    orders = [[_permutation(p, q) for p, q in zip(_patches(v, 4), _patches(u, 4), strict=True)]
              for v, u in zip(permuted, plain, strict=True)]
    for image in range(B):
        per_view = [orders[view][image] for view in range(1 + N_LOCAL)]
        assert len(set(per_view)) == len(per_view), "two views of one image got the same permutation"
    assert len({orders[0][image] for image in range(B)}) == B, "the permutation is drawn per image"


def test_pixperm_at_view_keeps_each_views_own_pixels():
    plain = _negative_views("identity", "source")
    permuted = _negative_views("pixperm", "view")
    for v, u in zip(permuted, plain, strict=True):
        assert not torch.equal(v, u)
        for p, q in zip(v.flatten(2).transpose(1, 2), u.flatten(2).transpose(1, 2), strict=True):  # (H·W, 3)
            assert torch.equal(torch.unique(p, dim=0), torch.unique(q, dim=0))


def test_perm_at_source_is_not_a_permutation_of_the_views():
    """The other placement, for contrast: a crop of the shuffled 16² image is not made of its view's patches."""
    plain, at_source = _negative_views("identity", "source"), _negative_views("perm-16", "source")
    with pytest.raises(AssertionError, match="not one of its own"):
        for p, q in zip(_patches(at_source[1], 4), _patches(plain[1], 4), strict=True):
            _permutation(p, q)


def test_view_transforms_only_for_their_part():
    augment = MultiCropAugment(global_size=16, local_size=8, n_local=2)
    parts = parse_variant([{"source": "a"}, {"source": "b", "transform": "pixperm", "at": "view"}])
    part = torch.arange(B) % 2
    torch.manual_seed(0)
    mixed = TrainingViews(augment, parts).negatives(_images(), part)
    torch.manual_seed(0)
    plain = TrainingViews(augment, parse_variant([{"source": "a"}, {"source": "b"}])).negatives(_images(), part)
    for v, u in zip(mixed, plain, strict=True):
        assert torch.equal(v[part == 0], u[part == 0]) and not torch.equal(v[part == 1], u[part == 1])


def test_a_transform_that_does_not_fit_the_view_size_is_refused():
    with pytest.raises(ValueError, match=r"negatives.parts\[0\] \(perm-16, at: view\) on augment.local_size=6"):
        TrainingViews(MultiCropAugment(global_size=16, local_size=6),
                      parse_variant([{"source": "imgn", "transform": "perm-16", "at": "view"}]))


def test_rot_any_is_source_only():
    with pytest.raises(ValueError, match="part 0, key 'at'.*at the source only"):
        parse_variant([{"source": "imgn", "transform": "rot-any", "at": "view"}])
    with pytest.raises(ValueError, match="part 0, key 'at'"):
        parse_variant([{"source": "imgn", "at": "crop"}])


def _denormalise(view: torch.Tensor) -> torch.Tensor:
    return view * torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) + torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)


@pytest.mark.parametrize(("negative_global", "share"), [("random", 0.5), ("global1", 0.0)])
def test_negative_global_view_draws_either_positive_global_pipeline(negative_global, share):
    """global-1 blurs (p=1) and global-2 solarises (p=1) here, nothing else random: each negative global view
    is exactly one of the two (solarised exactly, or blurred: changed, with its channel means kept), global-2 in
    half of 4000 samples (±4σ = ±0.032)."""
    off = dict(global_scale=(1.0, 1.0), local_scale=(1.0, 1.0), ratio=(1.0, 1.0), flip_p=0.0, jitter_p=0.0,
               grayscale_p=0.0, blur_p=(1.0, 0.0, 0.0), blur_sigma=(1.0, 2.0), solarize_p=1.0)
    augment = MultiCropAugment(8, 8, n_local=0, negative_global=negative_global, **off)
    images = torch.randint(0, 256, (4000, 3, 8, 8), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    torch.manual_seed(0)
    (view,) = augment.negative_views(images)
    view, x = _denormalise(view), images / 255
    solarised = (view - solarize(x)).flatten(1).abs().amax(1) < 1e-5
    blurred = ((view - x).flatten(1).abs().amax(1) > 1e-3) & ((view - x).mean((2, 3)).abs().amax(1) < 0.08)
    assert (solarised ^ blurred).all(), "every view follows exactly one of the two pipelines"
    assert abs(solarised.float().mean().item() - share) < 0.032
    (g1, g2) = augment(images[:64])  # the positives keep global-1 then global-2
    assert ((_denormalise(g2) - solarize(x[:64])).flatten(1).abs().amax(1) < 1e-5).all()
    assert ((_denormalise(g1) - x[:64]).flatten(1).abs().amax(1) > 1e-3).all()
