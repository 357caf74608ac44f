"""Fast decode + RandomResizedCrop of encoded images of any size, uint8 until the last step.

Why per image with PIL: images of a real data set differ in size, so crops cannot be one batched
resample (``transforms.py`` does that for equal-size in-memory sets). The levers, measured in
``bench/data_throughput.py`` (docs/benchmarks.md, "Data throughput"):

- the crop box is drawn from the *header* (``Image.open`` reads no pixels), before decoding;
- JPEGs are then decoded at a reduced scale in the DCT domain (``Image.draft``, libjpeg-turbo's
  scaled IDCT) whenever the crop still covers ``size`` pixels at that scale: a 1/2-scale decode
  costs ~1/3 of a full one;
- crop + resize is a view of the decoded pixels and one uint8 channels-last bilinear resize
  (antialiased when shrinking, torchvision v2's kernel), and flips are a flip of the small output:
  no float image ever exists before the batch is normalised (on the training device).

The GPU path (``data.decode=cuda``: nvJPEG through ``torchvision.io.decode_jpeg(device="cuda")``)
lives in ``decode_cuda.py``. Chosen over NVIDIA DALI: torchvision is already a dependency and
keeps the crops step-keyed; DALI brings its own pipeline, scheduler and RNG.
"""

from __future__ import annotations

import io
import math

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

CROP_RATIO = (3 / 4, 4 / 3)
EVAL_CROP_PCT = 0.875  # ImageNet's Resize(256) + CenterCrop(224), for images of many sizes


def crop_boxes(heights: np.ndarray, widths: np.ndarray, scale: tuple[float, float],
               rng: np.random.Generator, ratio: tuple[float, float] = CROP_RATIO) -> np.ndarray:
    """RandomResizedCrop boxes ``(top, left, h, w)``, one per image of its own size: (n, 4) int64.

    torchvision's ``RandomResizedCrop.get_params`` vectorised, as ``transforms.crop_params`` but
    with a size per image: 10 tries of (area, log-ratio), the first that fits wins, else the
    centre crop of torchvision's fallback. The draws do not depend on which try wins.
    """
    n = len(heights)
    hh, ww = np.asarray(heights, np.int64), np.asarray(widths, np.int64)
    u = rng.random((n, 10, 2))
    area = (hh * ww).astype(np.float64)[:, None]
    target = area * (scale[0] + (scale[1] - scale[0]) * u[..., 0])
    lo, hi = math.log(ratio[0]), math.log(ratio[1])
    aspect = np.exp(lo + (hi - lo) * u[..., 1])
    w = np.rint(np.sqrt(target * aspect)).astype(np.int64)
    h = np.rint(np.sqrt(target / aspect)).astype(np.int64)
    ok = (w > 0) & (w <= ww[:, None]) & (h > 0) & (h <= hh[:, None])
    first = np.argmax(ok, axis=1)
    any_ok = ok.any(axis=1)
    rows = np.arange(n)
    h, w = h[rows, first], w[rows, first]
    in_ratio = ww / np.maximum(hh, 1)
    fw = np.where(in_ratio < ratio[0], ww, np.where(in_ratio > ratio[1], np.rint(hh * ratio[1]), ww)).astype(np.int64)
    fh = np.where(in_ratio < ratio[0], np.rint(ww / ratio[0]), hh).astype(np.int64)
    h, w = np.where(any_ok, h, fh), np.where(any_ok, w, fw)
    pos = rng.random((n, 2))
    top = np.where(any_ok, np.floor(pos[:, 0] * (hh - h + 1)), (hh - fh) // 2).astype(np.int64)
    left = np.where(any_ok, np.floor(pos[:, 1] * (ww - w + 1)), (ww - fw) // 2).astype(np.int64)
    return np.stack([top, left, h, w], axis=1)


def open_image(data: bytes) -> Image.Image:
    """The image's header (size, mode, format); no pixels are decoded yet."""
    return Image.open(io.BytesIO(data))


def _draft(im: Image.Image, mode: str, box: tuple[float, float, float, float],
           size: int) -> tuple[Image.Image, tuple[float, float, float, float]]:
    """Ask libjpeg for the smallest DCT scale at which the crop still spans ``size`` pixels; the
    box in the drafted image's coordinates."""
    left, top, right, bottom = box
    k = max(size / max(right - left, 1e-6), size / max(bottom - top, 1e-6))
    if im.format != "JPEG" or k >= 1.0:
        return im, box
    width, height = im.size
    im.draft(mode, (math.ceil(width * k), math.ceil(height * k)))
    sx, sy = im.size[0] / width, im.size[1] / height
    return im, (left * sx, top * sy, right * sx, bottom * sy)


def crop_resize(im: Image.Image, box: tuple[float, float, float, float], size: int, mode: str,
                flip: bool = False) -> np.ndarray:
    """Decode (drafted when it can), crop ``box`` (left, top, right, bottom), resize to size x size.
    Returns (size, size) or (size, size, 3) uint8.

    RGB crops are resized by torch's uint8 channels-last bilinear kernel (antialiased when
    shrinking, the kernel of torchvision's v2 ``Resize``): 2.8x faster than ``Image.resize`` here
    (0.27 vs 0.78 ms for a 180 x 160 crop to 224, one thread). The box is rounded to whole pixels
    of the decoded (drafted) image. Grey images take Pillow's resize (the fast kernel is RGB)."""
    im, box = _draft(im, mode, box, size)
    if im.mode != mode:
        im = im.convert(mode)
    if mode != "RGB":
        out = im.resize((size, size), Image.BILINEAR, box=box, reducing_gap=None)
        return np.asarray(out.transpose(Image.FLIP_LEFT_RIGHT) if flip else out)
    left, top, right, bottom = (int(round(v)) for v in box)
    pixels = torch.from_numpy(np.array(im))  # (H, W, 3), writable
    crop = pixels[top:max(bottom, top + 1), left:max(right, left + 1)].permute(2, 0, 1)[None]  # channels-last
    out = F.interpolate(crop, size=(size, size), mode="bilinear", align_corners=False, antialias=True)[0]
    if flip:
        out = out.flip(-1)
    return out.permute(1, 2, 0).numpy()


def train_crop(data: bytes, box_thw: np.ndarray, size: int, mode: str, flip: bool = False) -> np.ndarray:
    """One training view of encoded ``data`` at the crop box ``(top, left, h, w)``."""
    top, left, h, w = (int(v) for v in box_thw)
    return crop_resize(open_image(data), (left, top, left + w, top + h), size, mode, flip)


def eval_crop(data: bytes, size: int, mode: str, crop_pct: float = EVAL_CROP_PCT) -> np.ndarray:
    """The evaluation view: the centre square of side ``crop_pct`` x the shorter side, resized to
    ``size`` (``crop_pct=1``: the whole shorter side; a square image is then resized whole)."""
    im = open_image(data)
    width, height = im.size
    side = min(width, height) * crop_pct
    left, top = (width - side) / 2, (height - side) / 2
    return crop_resize(im, (left, top, left + side, top + side), size, mode)
