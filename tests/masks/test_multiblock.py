"""Multi-block masks: sizes, geometry, min_keep, shapes, reproducibility, keep fractions."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from cjepa.config import MaskConfig
from cjepa.errors import ConfigError
from cjepa.masks import Masks, MultiBlockMaskGenerator, block_size, context_keep_fraction

CONFIGS = [
    MaskConfig(),
    MaskConfig(num_targets=4, target_scale=(0.1, 0.15), min_keep=4),
    MaskConfig(num_targets=2, target_scale=(0.2, 0.3), target_aspect=(0.5, 2.0),
               context_scale=(0.5, 0.7), context_aspect=(0.8, 1.25), min_keep=4),
]
GRIDS = [(7, 7), (8, 8), (14, 14), (6, 9)]


def _blocks_hw(idx: torch.Tensor, width: int) -> tuple[int, int, int, int]:
    """(top, left, h, w) of the bounding box of a list of patch indices."""
    rows, cols = idx // width, idx % width
    top, left = int(rows.min()), int(cols.min())
    return top, left, int(rows.max()) - top + 1, int(cols.max()) - left + 1


def _best_keep(grid, covered: set[int], h: int, w: int) -> int:
    """Most free patches an h x w context block can keep, by brute force over positions."""
    height, width = grid
    return max(sum((r * width + c) not in covered for r in range(t, t + h) for c in range(l, l + w))
               for t in range(height - h + 1) for l in range(width - w + 1))


def test_block_size_known_values():
    d = MaskConfig()
    assert block_size((14, 14), d.target_scale, d.target_aspect, 0.0) == (5, 6)  # 29 patches, ar .75
    assert block_size((14, 14), d.target_scale, d.target_aspect, 1.0) == (8, 5)  # 39 patches, ar 1.5
    assert block_size((14, 14), d.context_scale, d.context_aspect, 1.0) == (13, 13)  # clamped < 14
    assert block_size((8, 8), d.context_scale, d.context_aspect, 0.0) == (7, 7)
    assert block_size((2, 2), (0.1, 0.1), (1.0, 1.0), 0.5) == (1, 1)  # max_keep 0 -> at least 1


@pytest.mark.parametrize("grid", GRIDS)
@pytest.mark.parametrize("cfg", CONFIGS, ids=["default", "small_targets", "two_targets"])
def test_target_blocks_sizes_and_rectangles(grid, cfg):
    height, width = grid
    n = height * width
    gen = MultiBlockMaskGenerator(grid, cfg, seed=3)
    areas, touched_last_row, touched_last_col = set(), False, False
    for step in range(30):
        masks = gen(4, step)
        (th, tw), _ = gen.block_sizes(step)
        assert masks.targets.shape == (cfg.num_targets, 4, th * tw)
        for block in masks.targets.reshape(-1, th * tw):
            top, left, h, w = _blocks_hw(block, width)
            assert (h, w) == (th, tw)  # every block of the batch has the batch's size
            expected = (top + torch.arange(h))[:, None] * width + left + torch.arange(w)
            assert torch.equal(block, expected.reshape(-1))  # a full rectangle, row-major
            assert top + h <= height and left + w <= width
            touched_last_row |= top + h == height
            touched_last_col |= left + w == width
        # scale: max_keep = int(n*s) lies in [(h-.5)(w-.5), (h+.5)(w+.5)] unless h or w was clamped
        lo_keep, hi_keep = int(n * cfg.target_scale[0]), int(n * cfg.target_scale[1])
        assert (th - 0.5) * (tw - 0.5) <= hi_keep
        if th < height - 1 and tw < width - 1:
            assert (th + 0.5) * (tw + 0.5) >= lo_keep
        # aspect: ar = a/b with a in [h-.5, h+.5], b in [w-.5, w+.5] must meet the bounds
        lo_ar, hi_ar = cfg.target_aspect
        assert (th - 0.5) / (tw + 0.5) <= hi_ar and (th + 0.5) / max(tw - 0.5, 1e-9) >= lo_ar
        areas.add(th * tw)
    assert touched_last_row and touched_last_col  # positions include the last row/column
    if n >= 64:
        assert len(areas) > 1  # the size is redrawn per batch


@pytest.mark.parametrize("grid", GRIDS)
@pytest.mark.parametrize("cfg", CONFIGS, ids=["default", "small_targets", "two_targets"])
def test_context_is_one_block_minus_targets(grid, cfg):
    height, width = grid
    gen = MultiBlockMaskGenerator(grid, cfg, seed=11)
    for step in range(15):
        masks = gen(1, step)  # batch 1: nothing is truncated, so the context is exact
        _, (ch, cw) = gen.block_sizes(step)
        ctx = set(masks.context[0].tolist())
        covered = set(masks.targets[:, 0].reshape(-1).tolist())
        assert ctx and not ctx & covered
        rects = [{r * width + c for r in range(t, t + ch) for c in range(l, l + cw)}
                 for t in range(height - ch + 1) for l in range(width - cw + 1)]
        assert any(ctx == rect - covered for rect in rects)


@pytest.mark.parametrize("grid", [(8, 8), (14, 14)])
def test_context_disjoint_and_spans_one_block_in_batches(grid):
    gen = MultiBlockMaskGenerator(grid, MaskConfig(min_keep=4), seed=5)
    for step in range(10):
        masks = gen(16, step)
        _, (ch, cw) = gen.block_sizes(step)
        for b in range(16):
            ctx = masks.context[b]
            assert not np.intersect1d(ctx.numpy(), masks.targets[:, b].numpy()).size
            _, _, h, w = _blocks_hw(ctx, grid[1])
            assert h <= ch and w <= cw


def test_shapes_dtypes_and_order():
    gen = MultiBlockMaskGenerator(8, MaskConfig(min_keep=4), seed=0)
    masks = gen(32, 7)
    assert masks.context.dtype == torch.int64 and masks.targets.dtype == torch.int64
    assert masks.context.shape[0] == 32 and masks.targets.shape[:2] == (4, 32)
    assert masks.num_targets == 4 and gen.grid == (8, 8)
    assert bool((masks.context.diff(dim=1) > 0).all())  # strictly ascending
    assert int(masks.context.min()) >= 0 and int(masks.context.max()) < 64
    assert int(masks.targets.min()) >= 0 and int(masks.targets.max()) < 64
    with pytest.raises(ValueError):
        Masks(context=masks.context, targets=masks.targets[:, :3])


def test_min_keep_respected_when_satisfiable():
    grid, cfg = (8, 8), MaskConfig(min_keep=20)
    gen = MultiBlockMaskGenerator(grid, cfg, seed=1)
    relaxed = 0
    for step in range(150):
        masks = gen(1, step)
        _, (ch, cw) = gen.block_sizes(step)
        best = _best_keep(grid, set(masks.targets.reshape(-1).tolist()), ch, cw)
        kept = masks.context.shape[1]
        relaxed += best < cfg.min_keep
        assert kept >= min(cfg.min_keep, best)  # meets min_keep, or the best any position allows
    assert 0 < relaxed < 150  # the config does exercise both branches


def test_unsatisfiable_min_keep_relaxes_instead_of_hanging():
    grid, cfg = (7, 7), MaskConfig(min_keep=36)  # 36 = the whole 6x6 context block
    gen = MultiBlockMaskGenerator(grid, cfg, seed=0)
    for step in range(20):
        masks = gen(1, step)
        _, (ch, cw) = gen.block_sizes(step)
        best = _best_keep(grid, set(masks.targets.reshape(-1).tolist()), ch, cw)
        assert best < cfg.min_keep and masks.context.shape[1] == best  # relaxed to the best position
    assert gen(64, 0).context.shape[1] >= 1


def _digest(masks: Masks) -> list[list[int]]:
    return [masks.context.reshape(-1).tolist(), masks.targets.reshape(-1).tolist()]


def test_same_seed_and_step_give_same_masks_and_leave_global_rng_alone():
    torch_state, np_state = torch.get_rng_state(), np.random.get_state()
    a = MultiBlockMaskGenerator(8, MaskConfig(min_keep=4), seed=42)(16, 5)
    assert torch.equal(torch_state, torch.get_rng_state())
    assert np.array_equal(np_state[1], np.random.get_state()[1])
    torch.manual_seed(123)  # global state must not matter
    b = MultiBlockMaskGenerator(8, MaskConfig(min_keep=4), seed=42)(16, 5)
    assert _digest(a) == _digest(b)
    other_step = MultiBlockMaskGenerator(8, MaskConfig(min_keep=4), seed=42)(16, 6)
    other_seed = MultiBlockMaskGenerator(8, MaskConfig(min_keep=4), seed=43)(16, 5)
    assert _digest(a) != _digest(other_step) and _digest(a) != _digest(other_seed)


class _MaskDataset(torch.utils.data.Dataset):
    def __init__(self) -> None:
        self.gen = MultiBlockMaskGenerator(8, MaskConfig(min_keep=4), seed=9)

    def __len__(self) -> int:
        return 3

    def __getitem__(self, step: int) -> torch.Tensor:
        masks = self.gen(4, step)
        return torch.cat([masks.context.reshape(-1), masks.targets.reshape(-1)])


@pytest.mark.integration
def test_same_masks_in_a_dataloader_worker_and_a_subprocess():
    ds = _MaskDataset()
    local = [ds[i] for i in range(3)]
    loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=1)
    assert all(torch.equal(x, y) for x, y in zip(local, list(loader), strict=True))
    code = ("from cjepa.config import MaskConfig; from cjepa.masks import MultiBlockMaskGenerator;"
            "m = MultiBlockMaskGenerator(8, MaskConfig(min_keep=4), seed=9)(4, 2);"
            "print(m.context.reshape(-1).tolist() + m.targets.reshape(-1).tolist())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == str(local[2].tolist())


@pytest.mark.parametrize(("grid", "lo", "hi"), [(14, 0.20, 0.34), (8, 0.14, 0.26), (7, 0.12, 0.26)])
def test_context_keep_fraction_defaults(grid, lo, hi):
    frac = context_keep_fraction(MultiBlockMaskGenerator(grid, MaskConfig(), seed=0), 256, 20)
    print(f"context keep fraction {grid}x{grid}, defaults: {frac:.3f}")
    assert lo <= frac <= hi


def test_smaller_targets_keep_more_context():
    cfg = MaskConfig(num_targets=4, target_scale=(0.1, 0.15), min_keep=4)
    small = context_keep_fraction(MultiBlockMaskGenerator(8, cfg, seed=0), 128, 10)
    default = context_keep_fraction(MultiBlockMaskGenerator(8, MaskConfig(min_keep=4), seed=0), 128, 10)
    print(f"8x8 keep: targets (0.1, 0.15) {small:.3f}, defaults {default:.3f}")
    assert small > default + 0.05


@pytest.mark.parametrize(("grid", "cfg", "key"), [
    (8, MaskConfig(min_keep=65), "mask.min_keep"),
    (8, MaskConfig(min_keep=50), "mask.min_keep"),  # > the 7x7 context block
    (8, MaskConfig(min_keep=0), "mask.min_keep"),
    (4, MaskConfig(min_keep=2), "mask.num_targets"),  # 4 blocks of 3 patches cover 16
    (8, MaskConfig(target_scale=(0.01, 0.2), min_keep=4), "mask.target_scale"),
    (8, MaskConfig(target_scale=(0.3, 0.2), min_keep=4), "mask.target_scale"),
    (8, MaskConfig(context_aspect=(0.0, 1.0), min_keep=4), "mask.context_aspect"),
    (8, MaskConfig(num_targets=0, min_keep=4), "mask.num_targets"),
    (1, MaskConfig(min_keep=1), "grid"),
])
def test_impossible_configs_raise_config_error(grid, cfg, key):
    with pytest.raises(ConfigError, match=key):
        MultiBlockMaskGenerator(grid, cfg, seed=0)


def test_bad_call_arguments():
    gen = MultiBlockMaskGenerator(8, MaskConfig(min_keep=4), seed=0)
    with pytest.raises(ValueError):
        gen(0, 1)
    with pytest.raises(ValueError):
        gen(4, -1)
