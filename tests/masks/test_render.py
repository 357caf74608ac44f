"""Mask rendering: file written, sheet size, patch colours (overlaps split into stripes)."""

from __future__ import annotations

import torch
from PIL import Image

from cjepa.config import MaskConfig
from cjepa.masks import Masks, MultiBlockMaskGenerator, save_mask_png
from cjepa.masks.render import BACKGROUND_RGB, CONTEXT_RGB, PAD, TARGET_RGB


def _pixel(img: Image.Image, row: int, panel: int, grid, scale: int, y: int, x: int) -> tuple:
    """RGB at pixel (y, x) inside panel ``panel`` of sheet row ``row``."""
    height, width = grid
    return img.getpixel((PAD + panel * (width * scale + PAD) + x, PAD + row * (height * scale + PAD) + y))


def test_sheet_size_and_context_colour(tmp_path):
    grid, scale = (8, 8), 6
    masks = MultiBlockMaskGenerator(grid, MaskConfig(min_keep=4), seed=0)(5, 3)
    path = save_mask_png(masks, grid, tmp_path / "sub" / "masks.png", max_images=3, scale=scale)
    assert path.is_file()
    img = Image.open(path).convert("RGB")
    assert img.size == (8 * scale + 2 * PAD, 3 * (8 * scale + PAD) + PAD)
    for b in range(3):
        p = int(masks.context[b, 0])
        y, x = (p // 8) * scale + scale // 2, (p % 8) * scale + scale // 2
        assert _pixel(img, b, 0, grid, scale, y, x) == CONTEXT_RGB
        t = int(masks.targets[0, b, 0])
        if int((masks.targets[:, b] == t).sum()) == 1:  # covered by block 0 only
            assert _pixel(img, b, 0, grid, scale, (t // 8) * scale + 1, (t % 8) * scale + 1) == TARGET_RGB[0]


def test_overlapping_targets_are_striped_and_background_is_grey(tmp_path):
    grid, scale = (4, 4), 16
    masks = Masks(context=torch.tensor([[0, 1, 2]]), targets=torch.tensor([[[9, 10]], [[10, 11]]]))
    img = Image.open(save_mask_png(masks, grid, tmp_path / "m.png", scale=scale)).convert("RGB")
    y = 2 * scale + scale // 2  # patch row 2
    assert _pixel(img, 0, 0, grid, scale, y, 1 * scale + 8) == TARGET_RGB[0]  # patch 9
    assert _pixel(img, 0, 0, grid, scale, y, 2 * scale + 1) == TARGET_RGB[0]  # patch 10, left stripe
    assert _pixel(img, 0, 0, grid, scale, y, 2 * scale + 14) == TARGET_RGB[1]  # patch 10, right stripe
    assert _pixel(img, 0, 0, grid, scale, y, 3 * scale + 8) == TARGET_RGB[1]  # patch 11
    assert _pixel(img, 0, 0, grid, scale, 8, 8) == CONTEXT_RGB
    assert _pixel(img, 0, 0, grid, scale, 3 * scale + 8, 8) == BACKGROUND_RGB


def test_with_images_adds_a_panel(tmp_path):
    grid, scale = (7, 7), 4
    masks = MultiBlockMaskGenerator(grid, MaskConfig(min_keep=4), seed=0)(2, 0)
    images = torch.randn(2, 1, 28, 28) * 3 + 5  # any range
    img = Image.open(save_mask_png(masks, grid, tmp_path / "m.png", images=images, scale=scale))
    assert img.size == (2 * (7 * scale + PAD) + PAD, 2 * (7 * scale + PAD) + PAD)
