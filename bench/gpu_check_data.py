"""Synthetic Parquet shards and stage (c) of bench/gpu_check.py: the data pipeline's images/s.

Why crops on the GPU: ``cjepa.data.transforms.resized_crops`` is two batched matmuls. At 224 px
they cost CPU workers more than a small ViT's step; on the device they are nearly free. The
pipeline as the trainer runs it today (``StepBatchDataset`` in DataLoader workers: decode, crop
boxes, crops, masks) is measured next to one whose workers only decode and draw boxes and masks,
with the crops done on the device in the main process (``device_views``: the same functions,
run under ``torch.device(dev)`` because ``_interp_matrix`` builds its weights on the default
device). Both include the host-to-device copy of what the step consumes.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

RATIO = (3 / 4, 4 / 3)


def synth_image_folder(root: Path, per_class: dict[str, int], size: int, classes: int = 4, seed: int = 0) -> Path:
    """``root/{split}/{class}/NNNNN.png``: smooth random RGB images (upsampled noise + a gradient).

    Smooth content so that PNG/JPEG sizes and decode times look like photos, not like noise.
    """
    from PIL import Image

    rng = np.random.default_rng(seed)
    for split, n in per_class.items():
        for c in range(classes):
            folder = root / split / f"class{c}"
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                low = rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
                img = Image.fromarray(low).resize((size, size), Image.BICUBIC)
                ramp = np.linspace(0, 40 * c, size, dtype=np.float32)[None, :, None]
                arr = np.clip(np.asarray(img, dtype=np.float32) + ramp, 0, 255).astype(np.uint8)
                Image.fromarray(arr).save(folder / f"{i:05d}.png")
    return root


def make_shards(workdir: Path, n_train: int, n_test: int, size: int, classes: int = 4) -> dict[str, Any]:
    """A synthetic train/test image folder turned into JPEG shards by ``cjepa data convert``."""
    from cjepa.cli import main as cjepa_main

    t0 = time.perf_counter()
    src = synth_image_folder(workdir / "images", {"train": n_train // classes, "test": n_test // classes}, size,
                             classes)
    out = workdir / "shards"
    rc = cjepa_main(["data", "convert", str(src), str(out), "--format", "jpeg", "--shard-size", "256",
                     "--overwrite"])
    if rc != 0:
        raise RuntimeError(f"cjepa data convert exited with {rc}")
    return {"root": str(out), "train_images": n_train // classes * classes, "test_images": n_test // classes * classes,
            "size": size, "format": "jpeg", "seconds": time.perf_counter() - t0}


def device_views(images_u8: Tensor, boxes: Tensor, img_size: int, mean: Any, std: Any, in_chans: int) -> Tensor:
    """``train_views`` with given boxes, computed on the images' device (CPU or CUDA)."""
    from cjepa.data.transforms import normalize, resized_crops

    with torch.device(images_u8.device):
        x = images_u8.to(torch.float32).div_(255.0)
        return normalize(resized_crops(x, boxes.to(images_u8.device), img_size), mean, std, in_chans)


class DecodeOnly(torch.utils.data.Dataset):
    """Whole-batch items like ``StepBatchDataset`` but without the crops: uint8 images, boxes, masks."""

    def __init__(self, data: Any, seed: int, mask_fn: Any, crop_scale: tuple[float, float]) -> None:
        self.data, self.seed, self.mask_fn, self.crop_scale = data, seed, mask_fn, crop_scale

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, key: tuple[int, Tensor]) -> dict[str, Any]:
        from cjepa.data import crop_params, derive_seed
        from cjepa.data.loader import _AUG_TAG  # the trainer's augmentation stream

        step, idx = int(key[0]), key[1]
        images = self.data.images[idx]
        g = torch.Generator().manual_seed(derive_seed(self.seed, _AUG_TAG, step))
        boxes = crop_params(len(idx), images.shape[2], images.shape[3], self.crop_scale, RATIO, g)
        return {"step": step, "images": images, "boxes": boxes, "masks": self.mask_fn(len(idx), step)}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _rate(fn: Any, images_per_call: int, calls: int, device: torch.device) -> float:
    fn()
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    _sync(device)
    return images_per_call * calls / (time.perf_counter() - t0)


def _loader_rate(loader: Any, device: torch.device, on_batch: Any) -> tuple[float, float]:
    """(images/s after the first batch, seconds to the first batch) through a DataLoader."""
    t0 = time.perf_counter()
    it = iter(loader)
    on_batch(next(it))
    _sync(device)
    first = time.perf_counter() - t0
    t1, n = time.perf_counter(), 0
    for batch in it:
        on_batch(batch)
        n += len(batch["images"])
    _sync(device)
    return n / max(time.perf_counter() - t1, 1e-9), first


def bench_data(shards: str, cfg: Any, batch: int, epochs: int, workers: int, device: torch.device,
               calls: int = 5) -> dict[str, Any]:
    """Stage (c): decode, crops on CPU vs on ``device``, and the two whole pipelines, in images/s.

    ``cfg`` (a cjepa Config) gives the image size, channels, crop scale and masks.
    """
    from cjepa.data import StepBatchDataset, StepBatchSampler, build_loader, crop_params, dataset_stats, train_views
    from cjepa.data.shards import ParquetImages
    from cjepa.masks import MultiBlockMaskGenerator

    img_size, in_chans, scale = cfg.model.img_size, cfg.model.in_chans, tuple(cfg.data.crop_scale)
    data = ParquetImages(Path(shards) / "train")
    mean, std = dataset_stats("parquet")
    gen = MultiBlockMaskGenerator(img_size // cfg.model.patch_size, cfg.mask, seed=0)
    t0 = time.perf_counter()
    u8 = data.images[torch.arange(batch)]
    decode_s = time.perf_counter() - t0
    g = torch.Generator().manual_seed(0)
    boxes = crop_params(batch, u8.shape[2], u8.shape[3], scale, RATIO, g)
    cpu_view = train_views(u8, img_size, scale, mean, std, g, in_chans, boxes=boxes)
    u8_dev = u8.to(device)
    dev_view = device_views(u8_dev, boxes, img_size, mean, std, in_chans)
    crops_cpu = _rate(lambda: train_views(u8, img_size, scale, mean, std, g, in_chans, boxes=boxes),
                      batch, calls, torch.device("cpu"))
    crops_dev = _rate(lambda: device_views(u8_dev, boxes, img_size, mean, std, in_chans), batch, calls, device)
    pin = device.type == "cuda"

    def to_dev(b: dict[str, Any]) -> None:
        b["images"].to(device, non_blocking=pin)
        b["masks"].to(device, non_blocking=pin)

    sampler = StepBatchSampler(len(data), batch, seed=0, epochs=epochs)
    ds = StepBatchDataset(data, img_size, scale, mean, std, in_chans, 0, gen)
    cpu_rate, cpu_first = _loader_rate(build_loader(ds, sampler, workers, pin_memory=pin), device, to_dev)

    def crop_on_dev(b: dict[str, Any]) -> None:
        imgs = b["images"].to(device, non_blocking=pin)
        device_views(imgs, b["boxes"], img_size, mean, std, in_chans)
        b["masks"].to(device, non_blocking=pin)

    sampler = StepBatchSampler(len(data), batch, seed=0, epochs=epochs)
    dev_rate, dev_first = _loader_rate(build_loader(DecodeOnly(data, 0, gen, scale), sampler, workers, pin_memory=pin),
                                       device, crop_on_dev)
    return {"device": str(device), "img_size": img_size, "source_size": list(u8.shape[2:]), "batch": batch,
            "loader_workers": workers, "cpu_threads": torch.get_num_threads(), "images": len(data),
            "decode_img_per_s_one_process": batch / decode_s, "crops_cpu_img_per_s": crops_cpu,
            "crops_device_img_per_s": crops_dev,
            "device_vs_cpu_max_abs_diff": float((dev_view.cpu() - cpu_view).abs().max()),
            "loader_cpu_crops_img_per_s": cpu_rate, "loader_cpu_crops_first_batch_s": cpu_first,
            "loader_device_crops_img_per_s": dev_rate, "loader_device_crops_first_batch_s": dev_first}
