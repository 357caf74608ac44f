"""Draw multi-block masks as a PNG, so a preset's masks can be checked by eye.

One row per image: optionally the image itself, then a mask panel in which context patches are
blue and each target block has its own colour. A patch covered by k target blocks is split into
k vertical stripes, one per block, so overlapping targets stay visible. With an image, the mask
colours are blended over it and unmasked patches are dimmed.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from cjepa.masks.multiblock import Masks

CONTEXT_RGB = (66, 133, 244)
TARGET_RGB = ((234, 67, 53), (251, 188, 5), (52, 168, 83), (171, 71, 188),
              (255, 112, 67), (0, 172, 193), (233, 30, 99), (124, 179, 66))
BACKGROUND_RGB = (224, 224, 224)
PAD = 2  # pixels between panels and around the sheet (white)
_ALPHA = 0.6  # weight of the mask colour over an image


def _rgb(values: tuple[int, int, int] | tuple[tuple[int, int, int], ...]) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32) / 255.0


def _mask_panel(context: torch.Tensor, targets: torch.Tensor, grid: tuple[int, int],
                scale: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(3, H*s, W*s) colours and a (H*s, W*s) bool map of the pixels any mask covers.

    ``context``: (Kc,) indices of one image; ``targets``: (M, Kt) indices of its target blocks.
    """
    height, width = grid
    n, m = height * width, targets.shape[0]
    in_ctx = torch.zeros(n, dtype=torch.bool)
    in_ctx[context] = True
    cover = torch.zeros(m, n, dtype=torch.bool)
    cover.scatter_(1, targets, True)
    rank = cover.long().cumsum(0) - 1  # position of block m among the blocks covering a patch

    ys = torch.arange(height * scale)
    xs = torch.arange(width * scale)
    patch = (ys // scale)[:, None] * width + (xs // scale)[None, :]  # (Hs, Ws) patch index
    count = cover.sum(0)[patch]  # how many target blocks cover the pixel's patch
    stripe = ((xs % scale)[None, :] * count) // scale  # which of those blocks this pixel shows
    shown = cover[:, patch] & (rank[:, patch] == stripe[None])  # (M, Hs, Ws), one-hot where count>0
    palette = _rgb(TARGET_RGB)[torch.arange(m) % len(TARGET_RGB)]  # (M, 3)
    target_colour = torch.einsum("mhw,mc->chw", shown.float(), palette)

    colour = torch.where(in_ctx[patch][None], _rgb(CONTEXT_RGB)[:, None, None],
                         _rgb(BACKGROUND_RGB)[:, None, None])
    colour = torch.where((count > 0)[None], target_colour, colour)
    return colour, (count > 0) | in_ctx[patch]


def _image_panel(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(C, H, W) image in any range -> (3, *size) in [0, 1] (min-max per image)."""
    if image.shape[0] not in (1, 3):
        raise ValueError(f"images: expected 1 or 3 channels, got {image.shape[0]}")
    img = image.detach().float().cpu()
    img = (img - img.min()) / (img.max() - img.min()).clamp(min=1e-8)
    img = F.interpolate(img[None], size=size, mode="bilinear", align_corners=False)[0]
    return img.expand(3, -1, -1).clamp(0, 1)


def save_mask_png(masks: Masks, grid: tuple[int, int], path: str | Path, max_images: int = 8,
                  images: torch.Tensor | None = None, scale: int = 16) -> Path:
    """Write the first ``max_images`` images' masks to ``path``; returns the path.

    The sheet is ``n * (H*scale + PAD) + PAD`` pixels high and ``panels * (W*scale + PAD) + PAD``
    wide, with ``panels`` = 2 when ``images`` (B, C, H, W) are given, else 1.
    """
    # imported here: torchvision takes ~2 s to import and training code never renders masks
    from torchvision.utils import make_grid, save_image

    height, width = grid
    n = min(masks.batch_size, max_images)
    if n < 1 or scale < 1:
        raise ValueError(f"save_mask_png: need max_images >= 1 and scale >= 1, got {max_images}, {scale}")
    if images is not None and images.shape[0] < n:
        raise ValueError(f"save_mask_png: {images.shape[0]} images for {n} masks")
    context, targets = masks.context.cpu(), masks.targets.cpu()
    size = (height * scale, width * scale)
    tiles = []
    for b in range(n):
        colour, masked = _mask_panel(context[b], targets[:, b], grid, scale)
        if images is not None:
            img = _image_panel(images[b], size)
            tiles.append(img)
            colour = torch.where(masked[None], _ALPHA * colour + (1 - _ALPHA) * img, 0.35 * img)
        tiles.append(colour)
    sheet = make_grid(torch.stack(tiles), nrow=2 if images is not None else 1, padding=PAD, pad_value=1.0)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_image(sheet, out)
    return out
