"""VICReg's photometric augmentations that apply to greyscale images: Gaussian blur and solarisation.

VICReg (Bardes et al. 2022, BYOL's recipe) augments its two views asymmetrically: blur with
probability 1.0 / 0.1, solarisation with probability 0.0 / 0.2 (view 1 / view 2), besides crops,
flips and colour (colour does not apply to Fashion-MNIST). ``data.blur`` and ``data.solarize`` give
the probability per view (default 0: I-JEPA uses neither, and the JEPA loss reads view 1); the
``two_views`` reading is the one with a second view to augment.

The draws are batched and made where the crops are drawn (the same generator, after the crops and
flips, only when a probability is > 0, so runs without them keep their exact streams); the images
are changed where they become float: in the in-memory loader, or on the device for the shard
stream (:meth:`cjepa.data.stream.ShardStream.finish_on_device`).
Why not torchvision.transforms.v2: its GaussianBlur draws one sigma per call (per batch), not per
image, and takes its randomness from the global RNG, which the step-keyed loader must not touch.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

#: blur sigma range of VICReg at 224 px; scaled to the training image size (2 px at 224 ~ 0.25 at 28)
BLUR_SIGMA_224 = (0.1, 2.0)


def draw(n: int, blur_p: float, solarize_p: float, img_size: int,
         generator: torch.Generator | np.random.Generator) -> Tensor:
    """(n, 2) float: per image, its blur sigma in pixels (0: none) and 1.0 where it is solarised.
    ``generator``: the loader's torch generator, or the shard stream's numpy one."""

    def uniform() -> Tensor:
        if isinstance(generator, np.random.Generator):
            return torch.from_numpy(generator.random(n)).float()
        return torch.rand(n, generator=generator)

    lo, hi = (s * img_size / 224 for s in BLUR_SIGMA_224)
    blur = uniform() < blur_p
    sigma = lo + (hi - lo) * uniform()
    solar = uniform() < solarize_p
    return torch.stack([torch.where(blur, sigma, torch.zeros_like(sigma)), solar.float()], dim=1)


def apply(x: Tensor, params: Tensor) -> Tensor:
    """``x`` (B, C, H, W) float in [0, 1], ``params`` from :func:`draw` -> the augmented batch."""
    params = params.to(x.device)
    sigma, solar = params[:, 0], params[:, 1] > 0
    if bool((sigma > 0).any()):
        x = _blur(x, sigma)
    if bool(solar.any()):
        x = torch.where(solar.view(-1, 1, 1, 1) & (x >= 0.5), 1.0 - x, x)
    return x


def _blur(x: Tensor, sigma: Tensor) -> Tensor:
    """Separable Gaussian blur, one sigma per image (sigma 0: the image unchanged), reflect borders."""
    b, c, h, w = x.shape
    radius = max(1, min(math.ceil(3 * float(sigma.max())), (min(h, w) - 1) // 2))
    offsets = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    s = sigma.to(x.dtype).clamp_min(1e-6).view(-1, 1)
    k = torch.exp(-0.5 * (offsets.view(1, -1) / s) ** 2)
    k = torch.where((sigma > 0).view(-1, 1), k / k.sum(dim=1, keepdim=True), (offsets == 0).to(x.dtype).view(1, -1))
    k = k.repeat_interleave(c, dim=0)  # (B * C, K): one kernel per image and channel
    y = F.pad(x.reshape(1, b * c, h, w), (radius, radius, radius, radius), mode="reflect")
    y = F.conv2d(y, k.view(b * c, 1, 1, -1), groups=b * c)
    y = F.conv2d(y, k.view(b * c, 1, -1, 1), groups=b * c)
    return y.view(b, c, h, w)
