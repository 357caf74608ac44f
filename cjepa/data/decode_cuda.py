"""The GPU decode path (``data.decode=cuda``): nvJPEG through ``torchvision.io.decode_jpeg``.

Loader workers then only read shards, parse JPEG headers and draw the crop boxes and flips (the
same draws as the CPU path, from (seed, step, rank)); the main process decodes the whole batch
on the device in one call and crops, resizes (bilinear, antialiased when shrinking, as PIL),
flips and normalises there. What the CPU path spends on decode and resize moves to the GPU.

Why torchvision and not NVIDIA DALI: torchvision is already a dependency, its batched
``decode_jpeg(list, device="cuda")`` is nvJPEG, and keeping our own crop draws keeps batches a
function of (seed, step); DALI would bring its own pipeline, threads and random state.

The same functions run with ``device="cpu"`` (libjpeg-turbo), which is how they are tested on
machines without a GPU. Only JPEG shards can take this path (checked when the stream opens).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def encoded_tensors(encoded: list[bytes]) -> list[Tensor]:
    """Encoded JPEGs as 1-D uint8 tensors, the input of ``decode_jpeg`` (pinned by the DataLoader)."""
    return [torch.frombuffer(bytearray(b), dtype=torch.uint8) for b in encoded]


def decode_views(jpegs: list[Tensor], boxes: Tensor, flips: Tensor, size: int, channels: int,
                 device: torch.device) -> Tensor:
    """Decode on ``device``, crop each image to its box ``(top, left, h, w)``, resize to size x size,
    flip: (n, channels, size, size) uint8 on ``device``."""
    from torchvision.io import ImageReadMode, decode_jpeg

    mode = ImageReadMode.GRAY if channels == 1 else ImageReadMode.RGB
    images = decode_jpeg(jpegs, mode=mode, device=device)
    out = torch.empty(len(images), channels, size, size, dtype=torch.uint8, device=device)
    for i, (img, (top, left, h, w)) in enumerate(zip(images, boxes.tolist())):
        crop = img[None, :, top:top + h, left:left + w].float()
        shrink = h > size or w > size
        out[i] = F.interpolate(crop, size=(size, size), mode="bilinear", align_corners=False,
                               antialias=shrink).round_().clamp_(0, 255)[0].to(torch.uint8)
    flips = flips.to(device)
    out[flips] = out[flips].flip(-1)
    return out
