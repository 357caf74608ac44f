"""I-JEPA multi-block masks (what the context encoder sees, what the predictor must predict)."""

from cjepa.masks.multiblock import (
    Masks,
    MultiBlockMaskGenerator,
    block_size,
    context_keep_fraction,
    mask_seed,
)
from cjepa.masks.render import save_mask_png

__all__ = [
    "Masks",
    "MultiBlockMaskGenerator",
    "block_size",
    "context_keep_fraction",
    "mask_seed",
    "save_mask_png",
]
