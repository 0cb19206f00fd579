"""Tests of the negative transforms, the variant spec and apply_parts (ssad/views/negatives.py)."""

import math

import pytest
import torch

from ssad.views.negatives import NegativePart, apply_parts, get_transform, parse_variant


def _images(b: int = 64, size: int = 8, dtype: torch.dtype = torch.uint8) -> torch.Tensor:
    torch.manual_seed(0)
    return torch.randint(0, 256, (b, 3, size, size), dtype=torch.uint8).to(dtype)


def _rotation_of(out: torch.Tensor, images: torch.Tensor) -> list[int]:
    """For every sample, the k with out == rot90(image, k); fails if there is none."""
    ks = []
    for o, x in zip(out, images, strict=True):
        matches = [k for k in range(4) if torch.equal(o, torch.rot90(x, k, dims=(1, 2)))]
        assert len(matches) == 1, "output is not an exact rotation of its input"
        ks.append(matches[0])
    return ks


def _patches(x: torch.Tensor, g: int) -> torch.Tensor:
    """(B, g·g, C·ph·pw) patches of each image, sorted lexicographically (a multiset)."""
    b, c, h, w = x.shape
    p = x.reshape(b, c, g, h // g, g, w // g).permute(0, 2, 4, 1, 3, 5).reshape(b, g * g, -1)
    return torch.stack([torch.stack(sorted(row, key=lambda t: t.tolist())) for row in p])


def test_rot_is_exact_and_never_zero():
    images = _images()
    ks = _rotation_of(get_transform("rot")(images), images)
    assert set(ks) == {1, 2, 3}


def test_rot360_sees_all_four():
    images = _images()
    assert set(_rotation_of(get_transform("rot360")(images), images)) == {0, 1, 2, 3}


@pytest.mark.parametrize("n", [4, 16])
def test_perm_keeps_patches_and_permutes(n):
    images = _images(32, 8)
    out = get_transform(f"perm-{n}")(images)
    g = math.isqrt(n)
    assert torch.equal(_patches(out, g), _patches(images, g))
    assert (out != images).flatten(1).any(1).sum() > 16


def test_pixperm_keeps_each_images_pixels():
    images = _images(8, 8).long()
    out = get_transform("pixperm")(images)

    def triples(x: torch.Tensor) -> torch.Tensor:  # sorted RGB triples of each image, one code per pixel
        return (x[:, 0] * 65536 + x[:, 1] * 256 + x[:, 2]).flatten(1).sort(1).values

    assert torch.equal(triples(out), triples(images))
    assert not torch.equal(out, images)


@pytest.mark.parametrize("name", ["identity", "rot", "rot360", "rot-any", "perm-4", "perm-16", "pixperm"])
@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_shape_dtype_device_kept(name, dtype):
    images = _images(4, 8, dtype)
    out = get_transform(name)(images)
    assert out.shape == images.shape and out.dtype == dtype and out.device == images.device
    if torch.cuda.is_available():
        out = get_transform(name)(images.cuda())
        assert out.device.type == "cuda" and out.dtype == dtype


@pytest.mark.parametrize("name", ["rot", "rot360", "rot-any", "perm-4", "perm-16", "pixperm"])
def test_randomness_is_per_sample(name):
    images = _images(1, 8).expand(16, -1, -1, -1)  # 16 copies of one image
    out = get_transform(name)(images)
    assert len({o.numpy().tobytes() for o in out}) > 1


def test_generator_reproducible():
    images = _images(8, 8)
    a = get_transform("pixperm")(images, generator=torch.Generator().manual_seed(3))
    b = get_transform("pixperm")(images, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def test_bad_names_and_sizes():
    with pytest.raises(ValueError, match="perm-N needs a square N") as err:
        get_transform("perm-5")
    assert "rot360" in str(err.value) and "pixperm" in str(err.value)
    with pytest.raises(ValueError, match="unknown negative transform 'blur'"):
        get_transform("blur")
    with pytest.raises(ValueError, match=r"6×6.*divisible by 4"):
        get_transform("perm-16")(_images(2, 6))
    with pytest.raises(ValueError, match="square images"):
        get_transform("rot")(torch.zeros(2, 3, 4, 6, dtype=torch.uint8))


def test_parse_variant():
    inline = {"kind": "npy", "path": "x.npy"}
    parts = parse_variant(
        [{"source": "indist", "transform": "rot", "weight": 0.5}, {"source": inline}, {"source": "imgn"}]
    )
    assert parts[0] == NegativePart("indist", "rot", 0.5, "source")
    assert parts[1] == NegativePart(inline, "identity", 1.0)
    assert parse_variant([{"source": "imgn", "transform": "pixperm", "at": "view"}])[0].at == "view"
    assert parse_variant([]) == []


@pytest.mark.parametrize(
    ("parts", "message"),
    [
        ([{"source": "imgn"}, {"transform": "rot"}], "part 1, key 'source'"),
        ([{"source": "imgn", "transform": "perm-8"}], "part 0, key 'transform'.*square"),
        ([{"source": "imgn", "transform": 3}], "part 0, key 'transform'"),
        ([{"source": "imgn", "weight": 0}], "part 0, key 'weight'"),
        ([{"source": "imgn", "weight": -1.0}], "part 0, key 'weight'"),
        ([{"source": "imgn", "weight": math.inf}], "part 0, key 'weight'"),
        ([{"source": "imgn", "weight": math.nan}], "part 0, key 'weight'"),
        ([{"source": "imgn", "weight": "1"}], "part 0, key 'weight'"),
        ([{"source": "imgn", "wieght": 1}], r"part 0: unknown key\(s\) \['wieght'\]"),
        (["imgn"], "part 0: expected a mapping"),
        ({"source": "imgn"}, "list of parts"),
    ],
)
def test_parse_variant_errors(parts, message):
    with pytest.raises(ValueError, match=message):
        parse_variant(parts)


def test_apply_parts():
    images = _images(48, 8)
    part_index = torch.arange(48) % 3
    out = apply_parts(images, part_index, [get_transform("identity"), get_transform("rot"), lambda x: x + 1])
    assert out is not images and torch.equal(images, _images(48, 8))
    assert torch.equal(out[part_index == 0], images[part_index == 0])
    assert 0 not in _rotation_of(out[part_index == 1], images[part_index == 1])
    assert torch.equal(out[part_index == 2], images[part_index == 2] + 1)


def test_apply_parts_traces_without_data_dependent_shapes():
    """No host synchronisation: the whole call traces as one graph (``.nonzero()`` or ``if rows.numel()``
    would break it), and the traced call gives the eager result."""
    images, part_index = _images(16, 8), torch.arange(16) % 3
    transforms = [get_transform("identity"), get_transform("rot"), get_transform("perm-4")]
    traced = torch.compile(lambda x, i: apply_parts(x, i, transforms), backend="eager", fullgraph=True)
    torch.manual_seed(0)
    want = apply_parts(images, part_index, transforms)
    torch.manual_seed(0)
    torch.testing.assert_close(traced(images, part_index), want, rtol=0, atol=0)


def test_rot_any_is_torchvisions_random_rotation_with_black_corners():
    """``rot-any`` = RandomRotation((0, 360)) of the authors' code: nearest pixel, corners filled with 0 — equal to
    torchvision's rotate by the drawn angle (clockwise, which is as uniform over a turn) at every pixel."""
    import torchvision.transforms.functional as TF
    from torchvision.transforms import InterpolationMode

    images = _images(32, 16).clamp(min=1)  # 0 only where a corner was filled
    out = get_transform("rot-any")(images, torch.Generator().manual_seed(3))
    angles = torch.rand((32, 1), generator=torch.Generator().manual_seed(3)) * 360
    for o, x, angle in zip(out, images, angles, strict=True):
        torch.testing.assert_close(o, TF.rotate(x, -angle.item(), InterpolationMode.NEAREST, fill=0), rtol=0, atol=0)
    black = (out == 0).all(1).float().mean((1, 2))
    assert black.max() > 0.1 and len(set(angles.flatten().tolist())) == 32
