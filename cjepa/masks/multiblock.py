"""I-JEPA multi-block masks, reproducible from (seed, step) and vectorised over the batch.

Behaviour follows facebookresearch/ijepa ``src/masks/multiblock.py`` (see ../docs/method.md §1):

* Block *sizes* are drawn once per batch: one uniform ``r`` sets both the scale and the aspect
  ratio (the same ``r``, as in the official code, so large target blocks are also the tallest),
  ``h = round(sqrt(max_keep * ar))``, ``w = round(sqrt(max_keep / ar))``, then clamped to
  ``1 <= h < H`` and ``1 <= w < W``. Targets first, then the context block.
* Block *positions* are drawn per image: ``num_targets`` target blocks (they may overlap each
  other), then one context block minus the union of that image's target patches.
* The context must keep ``min_keep`` patches: up to 20 positions are tried; after 20 failures the
  requirement drops by one (never below 1) and the search goes on. Rounds in which no position
  could possibly meet the requirement are skipped (the image's best position bounds it), which
  changes nothing but the number of random draws. Differences from the official code, on
  purpose: (1) the official check is ``len > min_keep``, ours ``len >= min_keep``; (2) the
  official code relaxes by dropping target blocks from the exclusion, so its context can then
  overlap a target; ours lowers ``min_keep`` instead, so context and targets stay disjoint;
  (3) positions include the last row/column (see ``_positions``).
* Every context list is cut to the shortest in the batch, keeping the first K indices in
  ascending (row-major) order, as the official code does. This biases what survives the cut
  towards the *top rows* of each context block: the bottom of a block is dropped first.
* ``mask.context_views = K > 1`` (the official ``nenc``): K context blocks per image, all of the
  batch's one context size, each at its own position and placed as above (minus the image's
  targets, ``min_keep`` with the same relaxation); the cut to the shortest runs over every view of
  every image, as the official ``min_keep_enc``. View 0 is drawn first, with the draws K = 1 makes,
  so K = 1 gives the masks it always gave.

Reproducibility: each call builds a fresh ``torch.Generator`` seeded from
``SeedSequence([seed, step, tag])``; no global RNG state is read or changed, so a DataLoader
worker, a resumed run or another process gets the same masks for the same (seed, step).

Measured on a shared 2-core CPU (batch 256, M=4, defaults, numpy grid work, torch only for the
random draws): 0.7-1.6 ms per call on 8x8, 2.1-2.7 ms on 14x14 (budget: 5 ms), independent of
torch's thread count.
Context keep fraction (truncated context / grid, defaults incl. min_keep 10, batch 256, 20 steps):
14x14 0.25, 8x8 0.19, 7x7 0.19. method.md quotes 0.28 / 0.19 / 0.15 for the official collator; a
re-simulation of it at batch 256 gives 0.26 on 14x14 (its targets never reach the last
row/column, so they overlap more inside the context block) and hangs on 8x8 / 7x7 with
min_keep 10 (it also demands > min_keep patches of every *target* block).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from cjepa.config import MaskConfig
from cjepa.config.mask_rules import block_size, check_masks

_TRIES = 20  # context positions tried per min_keep level (the official timeout)
_STREAM_TAG = 0x6D61736B  # "mask": keeps this stream apart from other streams seeded by (seed, step)


@dataclass(frozen=True)
class Masks:
    """One batch of multi-block masks (patch indices are row-major: ``row * W + col``).

    With several context views (``mask.context_views = K > 1``) ``context`` is view 0 and
    ``extra_context`` the other K - 1, all of one length: whatever reads one context (evaluation,
    the mask figure, the benchmarks) reads view 0 unchanged (``cjepa.data.loader.rank_masks`` cuts
    a rank's rows of all three)."""

    context: torch.Tensor  # (B, Kc) int64, ascending; the tokens the context encoder sees
    targets: torch.Tensor  # (M, B, Kt) int64, each block in row-major order
    extra_context: torch.Tensor | None = None  # (K - 1, B, Kc) views 1..K-1; None when K = 1

    def __post_init__(self) -> None:
        c, t, e = self.context, self.targets, self.extra_context
        if c.dim() != 2 or t.dim() != 3 or t.shape[1] != c.shape[0]:
            raise ValueError(f"Masks: expected context (B, Kc) and targets (M, B, Kt), "
                             f"got {tuple(c.shape)} and {tuple(t.shape)}")
        if e is not None and (e.dim() != 3 or e.shape[0] < 1 or e.shape[1:] != c.shape):
            raise ValueError(f"Masks: expected extra_context (K - 1 >= 1, B, Kc) like context {tuple(c.shape)}, "
                             f"got {tuple(e.shape)}")

    @property
    def num_views(self) -> int:
        """K, the context masks per image."""
        return 1 if self.extra_context is None else 1 + int(self.extra_context.shape[0])

    def stacked(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(context (K*B, Kc), targets (M, K*B, Kt)), view-major, as the official ``apply_masks``
        concatenates one copy of the batch per context mask: one encoder and one predictor call
        for all views, each copy predicting its image's targets. K = 1: the tensors themselves."""
        if self.extra_context is None:
            return self.context, self.targets
        context = torch.cat([self.context[None], self.extra_context]).flatten(0, 1)
        return context, self.targets.repeat(1, self.num_views, 1)

    @property
    def num_targets(self) -> int:
        return int(self.targets.shape[0])

    @property
    def batch_size(self) -> int:
        return int(self.context.shape[0])

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Masks:
        extra = self.extra_context
        return Masks(self.context.to(device, non_blocking=non_blocking),
                     self.targets.to(device, non_blocking=non_blocking),
                     None if extra is None else extra.to(device, non_blocking=non_blocking))


def mask_seed(seed: int, step: int) -> int:
    """The 64-bit generator seed for (seed, step); a negative seed is taken modulo 2**64."""
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    entropy = [int(seed) & 0xFFFF_FFFF_FFFF_FFFF, int(step), _STREAM_TAG]
    return int(np.random.SeedSequence(entropy).generate_state(1, dtype=np.uint64)[0])


class MultiBlockMaskGenerator:
    """Draws :class:`Masks` for a batch; a pure function of (grid, cfg, seed, batch_size, step)."""

    def __init__(self, grid: int | tuple[int, int], cfg: MaskConfig, seed: int) -> None:
        height, width = (grid, grid) if isinstance(grid, int) else (int(grid[0]), int(grid[1]))
        self._grid = (height, width)
        self.cfg = cfg
        self.seed = int(seed)
        self._validate()
        self._rows = np.arange(height)
        self._cols = np.arange(width)

    @property
    def grid(self) -> tuple[int, int]:
        return self._grid

    def _validate(self) -> None:
        """The config's own mask rules (cjepa.config.mask_rules), for generators built from a
        MaskConfig that skipped :func:`cjepa.config.validate`."""
        c = self.cfg
        check_masks(self._grid, c.num_targets, c.target_scale, c.target_aspect, c.context_scale, c.context_aspect,
                    c.min_keep, c.context_views)

    def _generator(self, step: int) -> torch.Generator:
        return torch.Generator().manual_seed(mask_seed(self.seed, step))

    def _draw_sizes(self, g: torch.Generator) -> tuple[tuple[int, int], tuple[int, int]]:
        cfg = self.cfg
        r_target = float(torch.rand(1, generator=g))
        r_context = float(torch.rand(1, generator=g))
        return (block_size(self._grid, cfg.target_scale, cfg.target_aspect, r_target),
                block_size(self._grid, cfg.context_scale, cfg.context_aspect, r_context))

    def block_sizes(self, step: int) -> tuple[tuple[int, int], tuple[int, int]]:
        """((h, w) of the targets, (h, w) of the context block) used at ``step`` (for logs, tests)."""
        return self._draw_sizes(self._generator(step))

    def _positions(self, n: tuple[int, ...], h: int, w: int,
                   g: torch.Generator) -> tuple[np.ndarray, np.ndarray]:
        # Top in [0, H-h] and left in [0, W-w], both inclusive. The official code uses
        # randint(0, H-h), which never reaches the last row/column; we deliberately include it.
        top = torch.randint(0, self._grid[0] - h + 1, n, generator=g)
        left = torch.randint(0, self._grid[1] - w + 1, n, generator=g)
        return top.numpy(), left.numpy()

    def _rects(self, top: np.ndarray, left: np.ndarray, h: int, w: int) -> np.ndarray:
        """Boolean grids (..., H, W) of the h x w rectangles at (top, left), by broadcasting."""
        rows = (self._rows >= top[..., None]) & (self._rows < top[..., None] + h)
        cols = (self._cols >= left[..., None]) & (self._cols < left[..., None] + w)
        return rows[..., :, None] & cols[..., None, :]

    def _place_context(self, covered: np.ndarray, h: int, w: int,
                       g: torch.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Per image, a context position keeping >= min_keep free patches (relaxed as documented)."""
        batch, (height, width) = covered.shape[0], self._grid
        n_top, n_left = height - h + 1, width - w + 1
        # free patches inside the block at every position, from a summed-area table
        s = np.zeros((batch, height + 1, width + 1), dtype=np.int32)
        s[:, 1:, 1:] = (~covered).cumsum(1, dtype=np.int32).cumsum(2, dtype=np.int32)
        keep = s[:, h:, w:] - s[:, :n_top, w:] - s[:, h:, :n_left] + s[:, :n_top, :n_left]
        keep = keep.reshape(batch, n_top * n_left)
        base = np.clip(keep.max(1), 1, self.cfg.min_keep)
        chosen = keep.argmax(1)  # the fallback; overwritten as images find a position
        pending = np.ones(batch, dtype=bool)
        level = 0
        while pending.any():
            cand = torch.randint(0, n_top * n_left, (batch, _TRIES), generator=g).numpy()
            need = np.maximum(base - level, 1)
            ok = np.take_along_axis(keep, cand, 1) >= need[:, None]
            hit = pending & ok.any(1)
            first = np.take_along_axis(cand, ok.argmax(1)[:, None], 1)[:, 0]  # first success
            chosen = np.where(hit, first, chosen)
            # at the floor of 1 a failed round keeps the best position, so the loop always ends
            pending &= ~hit & (need > 1)
            level += 1
        return chosen // n_left, chosen % n_left

    def __call__(self, batch_size: int, step: int) -> Masks:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        g = self._generator(step)
        (th, tw), (ch, cw) = self._draw_sizes(g)
        m, width = self.cfg.num_targets, self._grid[1]

        # Grid work is done in numpy: these ~50k-element boolean ops are cheap single-threaded,
        # while torch would hand them to its intra-op thread pool (10-20x slower on busy cores).
        t_top, t_left = self._positions((batch_size, m), th, tw, g)
        rows = t_top[..., None, None] + np.arange(th)[:, None]
        cols = t_left[..., None, None] + np.arange(tw)
        targets = (rows * width + cols).reshape(batch_size, m, th * tw).transpose(1, 0, 2)
        covered = self._rects(t_top, t_left, th, tw).any(1)  # (B, H, W)

        views = []
        for _ in range(self.cfg.context_views):  # view 0 first: K = 1 makes exactly these draws
            c_top, c_left = self._place_context(covered, ch, cw, g)
            views.append(self._rects(c_top, c_left, ch, cw) & ~covered)
        ctx = np.stack(views).reshape(len(views), batch_size, -1)  # (K, B, N)
        k = int(ctx.sum(-1).min())  # the shortest over every view of every image
        if k < 1:  # excluded by _validate; kept as a guard against future edits
            raise RuntimeError("mask generator produced an empty context")
        ctx &= ctx.cumsum(-1, dtype=np.int32) <= k  # first k in ascending order, like the official truncation
        context = torch.from_numpy(ctx.nonzero()[2].reshape(len(views), batch_size, k).astype(np.int64))
        return Masks(context=context[0], targets=torch.from_numpy(np.ascontiguousarray(targets, dtype=np.int64)),
                     extra_context=context[1:] if len(views) > 1 else None)


def context_keep_fraction(generator: MultiBlockMaskGenerator, batch_size: int = 256,
                          steps: int = 20) -> float:
    """Mean fraction of the grid the (truncated) context keeps over steps 0..steps-1."""
    height, width = generator.grid
    kept = sum(generator(batch_size, step).context.shape[1] for step in range(steps))
    return kept / (steps * height * width)
