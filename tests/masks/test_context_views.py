"""Several context masks per image (``mask.context_views = K``, the official collator's ``nenc``)."""

from __future__ import annotations

import dataclasses
import hashlib

import pytest
import torch

from cjepa.config import MaskConfig
from cjepa.data.loader import rank_masks
from cjepa.errors import ConfigError
from cjepa.masks import Masks, MultiBlockMaskGenerator

GRIDS = [(7, 7), (8, 8), (14, 14)]


def _views(masks: Masks) -> torch.Tensor:
    """(K, B, Kc): every context view of the batch."""
    return torch.cat([masks.context[None], masks.extra_context]) if masks.extra_context is not None \
        else masks.context[None]


def _digest(masks: Masks) -> str:
    h = hashlib.sha256()
    for t in (masks.context, masks.targets):
        h.update(str(tuple(t.shape)).encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()[:16]


#: digests of (context, targets) recorded from the generator before context views existed
#: (batch 32; (seed 0, step 0) and (seed 3, step 17)): K = 1 must keep drawing exactly these
OLD_DIGESTS = {
    7: (MaskConfig(min_keep=4), ("51026325bc360c21", "cd4787b03e0e69fd")),
    8: (MaskConfig(), ("4533a74c2269888a", "bb971e74d6488959")),
    14: (MaskConfig(), ("b30b71940b639f54", "5c55c28aea6f9688")),
}


@pytest.mark.parametrize("side", sorted(OLD_DIGESTS))
def test_one_view_draws_exactly_the_old_masks(side):
    cfg, expected = OLD_DIGESTS[side]
    got = tuple(_digest(m) for m in (MultiBlockMaskGenerator(side, cfg, 0)(32, 0),
                                     MultiBlockMaskGenerator(side, cfg, 3)(32, 17)))
    assert got == expected
    masks = MultiBlockMaskGenerator(side, cfg, 0)(32, 0)
    assert masks.extra_context is None and masks.num_views == 1
    assert masks.stacked()[0] is masks.context and masks.stacked()[1] is masks.targets


@pytest.mark.parametrize("grid", GRIDS)
@pytest.mark.parametrize("views", [2, 3])
def test_k_views_per_image_each_avoiding_the_targets(grid, views):
    cfg = MaskConfig(min_keep=4, context_views=views)
    gen = MultiBlockMaskGenerator(grid, cfg, seed=7)
    for step in range(8):
        masks = gen(16, step)
        all_views = _views(masks)
        assert masks.num_views == views and all_views.shape[:2] == (views, 16)  # one length for every view
        assert all_views.dtype == torch.int64
        for v in range(views):
            for b in range(16):
                ctx = all_views[v, b]
                assert torch.equal(ctx, ctx.sort().values) and ctx.unique().numel() == ctx.numel()
                assert not set(ctx.tolist()) & set(masks.targets[:, b].reshape(-1).tolist())


def test_views_sit_at_their_own_positions_and_view_0_is_the_one_view_draw():
    """The views are not copies of one another, and view 0 (with the targets) is the K = 1 draw,
    cut to the shorter length: K = 1 makes exactly view 0's random draws."""
    one = MultiBlockMaskGenerator(8, MaskConfig(min_keep=4), seed=1)
    two = MultiBlockMaskGenerator(8, MaskConfig(min_keep=4, context_views=2), seed=1)
    differ = 0
    for step in range(5):
        a, b = one(32, step), two(32, step)
        kc = b.context.shape[1]
        assert kc <= a.context.shape[1]
        assert torch.equal(b.targets, a.targets) and torch.equal(b.context, a.context[:, :kc])
        differ += int((b.context != b.extra_context[0]).any(dim=1).sum())
    assert differ > 0


def test_the_cut_to_one_length_runs_across_the_views():
    """Batch 1, so only the views can shorten one another: view 0 keeps at most what the K = 1 draw
    keeps (its whole context), and is cut below it when another view is shorter; every view lies
    in one context-sized rectangle."""
    one = MultiBlockMaskGenerator(8, MaskConfig(min_keep=4), seed=2)
    three = MultiBlockMaskGenerator(8, MaskConfig(min_keep=4, context_views=3), seed=2)
    cut = 0
    for step in range(20):
        masks, whole = three(1, step), one(1, step).context.shape[1]
        _, (ch, cw) = three.block_sizes(step)
        kc = masks.context.shape[1]
        assert 1 <= kc <= whole
        cut += kc < whole
        for view in _views(masks)[:, 0]:
            rows, cols = view // 8, view % 8
            assert int(rows.max() - rows.min()) < ch and int(cols.max() - cols.min()) < cw
    assert cut > 0


def test_masks_move_and_split_by_rank_with_their_views():
    gen = MultiBlockMaskGenerator(8, MaskConfig(min_keep=4, context_views=2), seed=0)
    full = gen(8, 3)
    moved = full.to("cpu")
    assert torch.equal(moved.extra_context, full.extra_context)
    parts = [rank_masks(gen, 4, 3, rank, 2) for rank in range(2)]
    assert torch.equal(torch.cat([p.extra_context for p in parts], dim=1), full.extra_context)
    assert torch.equal(torch.cat([p.context for p in parts]), full.context)
    assert torch.equal(torch.cat([p.targets for p in parts], dim=1), full.targets)


def test_stacked_is_view_major():
    gen = MultiBlockMaskGenerator(8, MaskConfig(min_keep=4, context_views=3), seed=0)
    masks = gen(5, 0)
    ctx, tgt = masks.stacked()
    assert ctx.shape == (15, masks.context.shape[1]) and tgt.shape == (masks.num_targets, 15, masks.targets.shape[2])
    assert torch.equal(ctx[:5], masks.context) and torch.equal(ctx[5:10], masks.extra_context[0])
    assert torch.equal(ctx[10:], masks.extra_context[1])
    assert all(torch.equal(tgt[:, 5 * v:5 * (v + 1)], masks.targets) for v in range(3))


def test_bad_views_are_refused():
    with pytest.raises(ConfigError, match="mask.context_views"):
        MultiBlockMaskGenerator(8, MaskConfig(context_views=0), seed=0)
    masks = MultiBlockMaskGenerator(8, MaskConfig(min_keep=4), seed=0)(4, 0)
    with pytest.raises(ValueError, match="extra_context"):
        dataclasses.replace(masks, extra_context=masks.context[None, :3])
    with pytest.raises(ValueError, match="extra_context"):
        dataclasses.replace(masks, extra_context=masks.context[None, :, :0][:0])
