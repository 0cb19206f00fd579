"""Tests of the batched DINO multi-crop augmentation (ssad/views/augment.py, crops.py, colour.py)."""

import colorsys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from ssad.views.augment import IMAGENET_MEAN, IMAGENET_STD, MultiCropAugment
from ssad.views.colour import (
    adjust_brightness_,
    adjust_contrast_,
    adjust_hue,
    adjust_saturation_,
    gaussian_blur,
    grayscale_,
    hsv_to_rgb,
    rgb_to_hsv,
    solarize,
)
from ssad.views.crops import crop_matrices, resized_crops

OFF = dict(  # every random operation switched off
    global_scale=(1.0, 1.0),
    local_scale=(1.0, 1.0),
    ratio=(1.0, 1.0),
    flip_p=0.0,
    jitter_p=0.0,
    grayscale_p=0.0,
    blur_p=(0.0, 0.0, 0.0),
    solarize_p=0.0,
)


def _uint8(b: int = 6, size: int = 16) -> torch.Tensor:
    torch.manual_seed(0)
    return torch.randint(0, 256, (b, 3, size, size), dtype=torch.uint8)


def _denormalise(view: torch.Tensor) -> torch.Tensor:
    return view * torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) + torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)


def test_views_shapes_dtype_range():
    images = _uint8(6)
    aug = MultiCropAugment(global_size=24, local_size=12)
    views = aug(images)
    assert len(views) == 10
    assert [v.shape for v in views] == [(6, 3, 24, 24)] * 2 + [(6, 3, 12, 12)] * 8
    for v in views:
        assert v.dtype == torch.float32 and v.device == images.device
        x = _denormalise(v)
        assert x.min() >= -1e-5 and x.max() <= 1 + 1e-5
    negatives = aug(images, n_global=1, n_local=8)
    assert len(negatives) == 9 and negatives[0].shape == (6, 3, 24, 24)
    assert len(aug(images, n_global=3, n_local=0)) == 3


@pytest.mark.parametrize("interpolation", ["bicubic", "bilinear"])
def test_randomness_off_gives_exact_crop(interpolation):
    images = _uint8(6)
    views = MultiCropAugment(16, 16, interpolation=interpolation, **OFF)(images)
    for v in views:
        torch.testing.assert_close(_denormalise(v), images / 255, atol=1e-5, rtol=0)


def test_flip_only():
    images = _uint8(32)
    x = images / 255
    for flip_p in (1.0, 0.5):
        (view,) = MultiCropAugment(16, 16, n_global=1, n_local=0, **{**OFF, "flip_p": flip_p})(images)
        view = _denormalise(view)
        flipped = (view - x.flip(-1)).flatten(1).abs().amax(1) < 1e-5
        same = (view - x).flatten(1).abs().amax(1) < 1e-5
        assert (flipped | same).all()
        assert flipped.all() if flip_p == 1.0 else (flipped.any() and same.any())


def test_pipelines_per_view():
    """View 0 follows global-1 (blur p=1), view 1 global-2 (solarize), locals their own blur probability."""
    images = _uint8(4)
    settings = {**OFF, "blur_p": (1.0, 0.0, 0.0), "solarize_p": 1.0}
    g1, g2, local = MultiCropAugment(16, 16, n_local=1, **settings)(images)
    x = images / 255
    assert not torch.allclose(_denormalise(g1), x, atol=1e-3)
    torch.testing.assert_close(_denormalise(g1).mean((2, 3)), x.mean((2, 3)), atol=5e-3, rtol=0)
    torch.testing.assert_close(_denormalise(g2), solarize(x), atol=1e-5, rtol=0)
    torch.testing.assert_close(_denormalise(local), x, atol=1e-5, rtol=0)


def test_randomness_is_per_sample():
    images = _uint8(1).expand(8, -1, -1, -1)
    for view in MultiCropAugment(16, 8, n_local=1)(images):
        assert len({v.numpy().tobytes() for v in view}) == 8


def test_crop_matrices_boxes_inside_image():
    torch.manual_seed(0)
    theta = crop_matrices(2000, 1.0, (0.15, 0.4), (3 / 4, 4 / 3), 0.5, torch.device("cpu"))
    width, height = theta[:, 0, 0].abs(), theta[:, 1, 1]
    assert (width + theta[:, 0, 2].abs() <= 1 + 1e-6).all() and (
        height + theta[:, 1, 2].abs() <= 1 + 1e-6
    ).all()
    area = width * height
    assert area.min() >= 0.15 - 1e-5 and area.max() <= 0.4 + 1e-5
    assert 0.4 < (theta[:, 0, 0] < 0).float().mean() < 0.6
    assert theta[:, 0, 1].eq(0).all() and theta[:, 1, 0].eq(0).all()


def test_resized_crops_equal_affine_grid_sample_bilinear():
    """When upscaling (no antialiasing), the crops are exactly what affine_grid + grid_sample sample."""
    torch.manual_seed(0)
    x = torch.rand(4, 3, 20, 12)
    theta = crop_matrices(12, 20 / 12, (0.1, 1.0), (3 / 4, 4 / 3), 0.5, torch.device("cpu"))
    grid = F.affine_grid(theta, [12, 3, 24, 24], align_corners=False)
    ref = F.grid_sample(
        x.repeat(3, 1, 1, 1), grid, mode="bilinear", padding_mode="border", align_corners=False
    )
    torch.testing.assert_close(resized_crops(x, theta, 24, "bilinear"), ref, atol=1e-5, rtol=0)


@pytest.mark.parametrize(("box", "size"), [((10, 6, 42, 50), 96), ((3, 5, 60, 57), 24)])
def test_resized_crops_bicubic_match_pil(box, size):
    """Bicubic crops follow PIL's resize (DINO's pipeline), antialiased downscaling included."""
    yy, xx = np.mgrid[0:64, 0:64]
    img = np.stack(
        [128 + 100 * np.sin(xx / 9 + yy / 13), 128 + 100 * np.cos(xx / 7), 128 + 90 * np.sin(yy / 8)], -1
    )
    img = img.astype(np.uint8)
    pil = torch.from_numpy(np.array(Image.fromarray(img).resize((size, size), Image.BICUBIC, box=box)))
    left, top, right, bottom = box
    theta = torch.tensor(
        [
            [
                [(right - left) / 64, 0, (left + right) / 64 - 1],
                [0, (bottom - top) / 64, (top + bottom) / 64 - 1],
            ]
        ]
    )
    ours = resized_crops(torch.from_numpy(img).permute(2, 0, 1)[None] / 255, theta, size)
    assert (ours[0].permute(1, 2, 0) * 255 - pil).abs().max() < 1.5


def test_solarize_and_grayscale_by_hand():
    x = torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0]).view(1, 1, 1, 5).expand(2, 3, 1, 5).contiguous()
    assert torch.equal(solarize(x)[0, 0, 0], torch.tensor([0.0, 0.25, 0.5, 0.25, 0.0]))
    assert torch.equal(solarize(x, torch.tensor([0.5, float("inf")]))[1], x[1])
    rgb = torch.tensor([0.2, 0.6, 1.0]).view(1, 3, 1, 1).repeat(2, 1, 2, 2)
    gray = grayscale_(rgb.clone(), torch.tensor([1.0, 0.0]))
    torch.testing.assert_close(gray[0], torch.full((3, 2, 2), 0.299 * 0.2 + 0.587 * 0.6 + 0.114 * 1.0))
    assert torch.equal(gray[1], rgb[1])


def test_brightness_contrast_saturation():
    torch.manual_seed(0)
    x = torch.rand(3, 3, 8, 8)
    for op in (adjust_brightness_, adjust_contrast_, adjust_saturation_):
        assert torch.equal(op(x.clone(), torch.ones(3)), x)
    assert adjust_brightness_(x.clone(), torch.zeros(3)).eq(0).all()
    gray = 0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]
    torch.testing.assert_close(adjust_saturation_(x.clone(), torch.zeros(3)), gray[:, None].expand_as(x))
    mean = gray.mean((1, 2)).view(3, 1, 1, 1).expand_as(x)
    torch.testing.assert_close(adjust_contrast_(x.clone(), torch.zeros(3)), mean)


def test_hsv():
    torch.manual_seed(0)
    x = torch.rand(4, 3, 8, 8)
    x[0, :, 0, 0] = 0.3  # gray
    x[0, :, 0, 1] = torch.tensor([0.5, 0.5, 0.1])  # tie for the maximum
    hsv = rgb_to_hsv(x)
    pixels = x.permute(0, 2, 3, 1).reshape(-1, 3).tolist()
    ref = torch.tensor([colorsys.rgb_to_hsv(*p) for p in pixels]).view(4, 8, 8, 3).permute(0, 3, 1, 2)
    torch.testing.assert_close(hsv, ref, atol=1e-5, rtol=0)
    torch.testing.assert_close(hsv_to_rgb(hsv), x, atol=1e-5, rtol=0)
    torch.testing.assert_close(adjust_hue(x, torch.zeros(4)), x, atol=1e-5, rtol=0)
    shift = torch.tensor([0.1, -0.1, 0.5, -0.45])
    shifted = hsv.clone()
    shifted[:, 0] = (shifted[:, 0] + shift.view(4, 1, 1)) % 1
    ref = torch.tensor([colorsys.hsv_to_rgb(*p) for p in shifted.permute(0, 2, 3, 1).reshape(-1, 3).tolist()])
    torch.testing.assert_close(
        adjust_hue(x, shift), ref.view(4, 8, 8, 3).permute(0, 3, 1, 2), atol=1e-5, rtol=0
    )


def test_blur():
    torch.manual_seed(0)
    x = torch.rand(2, 3, 16, 16)
    torch.testing.assert_close(gaussian_blur(x, torch.full((2,), 1e-3), radius=6), x, atol=1e-6, rtol=0)
    constant = torch.full((2, 3, 16, 16), 0.37)
    torch.testing.assert_close(gaussian_blur(constant, torch.tensor([0.5, 2.0])), constant, atol=1e-6, rtol=0)
    blurred = gaussian_blur(x, torch.tensor([0.1, 2.0]))
    assert blurred.std() < x.std()
    torch.testing.assert_close(blurred[0], x[0], atol=1e-4, rtol=0)  # σ = 0.1 barely touches a pixel
