"""Batched RandomResizedCrop: determinism, geometry and torchvision's box rules."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from cjepa.data import crop_params, eval_view, resized_crops, train_views

MEAN, STD = (0.25,), (0.5,)


def _images(b: int = 16, size: int = 28, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (b, 1, size, size), generator=g, dtype=torch.uint8)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_shape_dtype_and_channels() -> None:
    x = _images()
    y = train_views(x, 32, (0.3, 1.0), MEAN, STD, _gen(0))
    assert y.shape == (16, 1, 32, 32) and y.dtype == torch.float32
    y3 = train_views(x, 32, (0.3, 1.0), MEAN, STD, _gen(0), in_chans=3)
    assert y3.shape == (16, 3, 32, 32) and y3.is_contiguous()
    for c in range(3):
        assert torch.equal(y3[:, c], y[:, 0])
    assert eval_view(x, 28, MEAN, STD, in_chans=3).shape == (16, 3, 28, 28)


def test_deterministic_per_seed() -> None:
    x = _images()
    a = train_views(x, 28, (0.3, 1.0), MEAN, STD, _gen(1))
    b = train_views(x, 28, (0.3, 1.0), MEAN, STD, _gen(1))
    c = train_views(x, 28, (0.3, 1.0), MEAN, STD, _gen(2))
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


@pytest.mark.parametrize(("src", "dst"), [(28, 28), (28, 32), (28, 16), (8, 32)])
def test_full_crop_equals_eval_view(src: int, dst: int) -> None:
    x = _images(size=src)
    y = train_views(x, dst, (1.0, 1.0), MEAN, STD, _gen(0), ratio=(1.0, 1.0))
    ref = eval_view(x, dst, MEAN, STD)
    assert (y - ref).abs().max().item() < 1e-5
    if src == dst:  # no resampling at all: exactly the normalised input
        assert torch.allclose(ref, (x.float() / 255 - 0.25) / 0.5, atol=1e-6)


def test_forced_box_gives_exact_sub_image() -> None:
    x = _images(4)
    xf = x.float() / 255
    boxes = torch.tensor([[3, 5, 14, 14]] * 4)
    y = resized_crops(xf, boxes, 14)
    assert torch.allclose(y, xf[:, :, 3:17, 5:19], atol=1e-6)
    # a 2x downscale samples half-way between pixels: the 2x2 average
    boxes = torch.tensor([[2, 4, 16, 16], [12, 12, 16, 16], [1, 9, 8, 8], [4, 2, 24, 24]])
    y = resized_crops(xf, boxes, 8)
    for k in range(3):
        t, l, h, w = boxes[k].tolist()
        sub = xf[k: k + 1, :, t: t + h, l: l + w]
        expect = F.avg_pool2d(sub, h // 8) if h > 8 else sub
        assert torch.allclose(y[k: k + 1], expect, atol=1e-6), k
    # a 3x downscale lands exactly on the centre pixel of each 3x3 block
    assert torch.allclose(y[3:], xf[3:, :, 4 + 1: 28: 3, 2 + 1: 26: 3], atol=1e-6)
    # via train_views (boxes given, normalised)
    z = train_views(x, 14, (0.3, 1.0), MEAN, STD, _gen(0), boxes=torch.tensor([[3, 5, 14, 14]] * 4))
    assert torch.allclose(z, (xf[:, :, 3:17, 5:19] - 0.25) / 0.5, atol=1e-5)


def test_matches_grid_sample_reference() -> None:
    """An independent oracle: affine_grid + grid_sample with the align_corners=False mapping."""
    x = _images(64).float() / 255
    boxes = crop_params(64, 28, 28, (0.1, 1.0), (0.5, 2.0), _gen(5))
    t, l, h, w = boxes.float().unbind(1)
    theta = torch.zeros(64, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2] = w / 28, (2 * l + w) / 28 - 1
    theta[:, 1, 1], theta[:, 1, 2] = h / 28, (2 * t + h) / 28 - 1
    grid = F.affine_grid(theta, [64, 1, 20, 20], align_corners=False)
    ref = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    assert (resized_crops(x, boxes, 20) - ref).abs().max().item() < 1e-5


def test_crop_params_follow_torchvision_rules() -> None:
    boxes = crop_params(4000, 28, 28, (0.3, 1.0), (3 / 4, 4 / 3), _gen(3))
    t, l, h, w = boxes.T
    assert (t >= 0).all() and (l >= 0).all() and (t + h <= 28).all() and (l + w <= 28).all()
    frac = (h * w).double() / 784
    assert frac.min() > 0.25 and frac.max() <= 1.0
    ratio = w.double() / h.double()
    assert ratio.min() >= 0.6 and ratio.max() <= 1.5
    assert 0.55 < frac.mean().item() < 0.75  # roughly uniform area in [0.3, 1] (rounding aside)
    assert len(set(map(tuple, boxes.tolist()))) > 500  # positions really vary
    # positions cover both edges
    assert (t == 0).any() and (t + h == 28).any()
    # fallback: ratio 2..3 never fits a square at full area -> centre crop of ratio 2
    fb = crop_params(3, 28, 28, (1.0, 1.0), (2.0, 3.0), _gen(0))
    assert fb.tolist() == [[7, 0, 14, 28]] * 3
    assert math.isclose(fb[0, 3] / fb[0, 2], 2.0)


def test_rgb_images_keep_their_channels() -> None:
    """RGB (Parquet shards of an image folder): channels are resampled alike and normalised per channel."""
    rgb = torch.randint(0, 256, (4, 3, 24, 32), dtype=torch.uint8, generator=_gen(3))
    mean, std = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)
    ev = eval_view(rgb, 16, mean, std, in_chans=3)
    assert ev.shape == (4, 3, 16, 16)
    for c in range(3):  # each channel equals the grey path on that channel alone
        grey = eval_view(rgb[:, c:c + 1].contiguous(), 16, mean[c], std[c])
        assert torch.allclose(ev[:, c:c + 1], grey, atol=1e-6)
    tv = train_views(rgb, 16, (1.0, 1.0), mean, std, _gen(0), in_chans=3, ratio=(1.0, 1.0),
                     boxes=torch.tensor([[0, 0, 24, 32]] * 4))
    assert (tv - ev).abs().max().item() < 1e-5  # a full crop is the evaluation view
    with pytest.raises(ValueError, match="in_chans=1"):
        eval_view(rgb, 16, mean, std, in_chans=1)
