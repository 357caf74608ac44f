"""The geometry of I-JEPA's multi-block masks, and the one place that decides whether a mask config works.

Why here and not in cjepa/masks: the config is validated before torch is imported (the CLI checks
its arguments first), so these rules are plain Python; the mask generator
(cjepa/masks/multiblock.py) draws its blocks with the same :func:`block_size` and checks nothing
itself. The official formula (facebookresearch/ijepa ``src/masks/multiblock.py``) draws one
uniform ``r`` per batch for both scale and aspect ratio.
"""

from __future__ import annotations

import math

from cjepa.errors import ConfigError

R_SWEEP = 2001  # values of r used to bound the block sizes a config can produce


def block_size(grid: tuple[int, int], scale: tuple[float, float], aspect: tuple[float, float],
               r: float) -> tuple[int, int]:
    """(h, w) of a block for the uniform draw ``r`` (the official formula, one ``r`` for both)."""
    height, width = grid
    max_keep = int(height * width * (scale[0] + r * (scale[1] - scale[0])))
    ar = aspect[0] + r * (aspect[1] - aspect[0])
    h = int(round(math.sqrt(max_keep * ar)))
    w = int(round(math.sqrt(max_keep / ar)))
    # official: ``while h >= H: h -= 1``; the lower clamp guards max_keep == 0 on tiny grids
    return max(1, min(h, height - 1)), max(1, min(w, width - 1))


def size_range(grid: tuple[int, int], scale: tuple[float, float], aspect: tuple[float, float]) -> tuple[int, int]:
    """Smallest and largest block area over a fine sweep of ``r``."""
    areas = [h * w for h, w in (block_size(grid, scale, aspect, i / (R_SWEEP - 1)) for i in range(R_SWEEP))]
    return min(areas), max(areas)


def check_masks(grid: tuple[int, int], num_targets: int, target_scale: tuple[float, float],
                target_aspect: tuple[float, float], context_scale: tuple[float, float],
                context_aspect: tuple[float, float], min_keep: int, context_views: int = 1) -> None:
    """Refuse ``mask.*`` settings that cannot produce valid masks on this grid, naming the key."""
    height, width = grid
    n = height * width
    if context_views < 1:
        raise ConfigError(f"mask.context_views: expected >= 1 context masks per image, got {context_views}")
    if height < 2 or width < 2:
        raise ConfigError(f"mask grid {height}x{width}: needs at least 2x2 patches "
                          "(model.img_size // model.patch_size); blocks stay smaller than the grid")
    if num_targets < 1:
        raise ConfigError(f"mask.num_targets: expected >= 1, got {num_targets}")
    for key, (lo, hi) in (("target_scale", target_scale), ("context_scale", context_scale)):
        if not 0 < lo <= hi <= 1:
            raise ConfigError(f"mask.{key}={[lo, hi]}: expected 0 < min <= max <= 1")
        if int(n * lo) < 1:
            raise ConfigError(f"mask.{key}={[lo, hi]}: the smallest block is under one patch "
                              f"of the {height}x{width} grid; raise the minimum")
    for key, (lo, hi) in (("target_aspect", target_aspect), ("context_aspect", context_aspect)):
        if not 0 < lo <= hi:
            raise ConfigError(f"mask.{key}={[lo, hi]}: expected 0 < min <= max")
    if not 1 <= min_keep <= n:
        raise ConfigError(f"mask.min_keep={min_keep}: expected 1..{n} (the patches of the {height}x{width} grid)")
    _, ctx_max = size_range(grid, context_scale, context_aspect)
    if min_keep > ctx_max:
        raise ConfigError(f"mask.min_keep={min_keep} exceeds the largest context block "
                          f"({ctx_max} patches of the {height}x{width} grid): it could never be met")
    _, tgt_max = size_range(grid, target_scale, target_aspect)
    if num_targets * tgt_max >= n:
        raise ConfigError(f"mask.num_targets={num_targets} blocks of up to {tgt_max} patches "
                          f"(mask.target_scale) can cover the whole {n}-patch grid, leaving no context")
