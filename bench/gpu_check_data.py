"""Shards of ImageNet-like JPEGs and stage (c) of bench/gpu_check.py: the data pipeline's images/s.

Sources: crops of scikit-learn's sample photos (500x375 / 375x500, JPEG q90, ``data_photos.py``)
in train/ and test/ class folders, converted by ``cjepa data convert --format keep``. The stage
times the shard stream as the trainer runs it, both ways ``data.decode`` offers:

- ``workers``: DataLoader workers decode with Pillow (DCT-domain downscaling where the crop allows)
  and crop/resize to uint8; the main process moves the batch to the device and normalises it there;
- ``device``: workers only read shards and draw boxes; the main process decodes the batch with
  nvJPEG (``torchvision.io.decode_jpeg(device="cuda")``) and crops, resizes, flips and normalises
  on the GPU (``cjepa/data/decode_cuda.py``).

Also the device decode alone (one batch, nvJPEG + crops) and the mean |difference| in grey levels
between the two paths' images for the same boxes. In a dry run the "device" is the CPU
(libjpeg-turbo through torchvision): the same code, no GPU figures.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch


def make_shards(workdir: Path, n_train: int, n_test: int, size: int, classes: int = 10) -> dict[str, Any]:
    """ImageNet-like photo crops in train/ and test/ folders, turned into shards by ``cjepa data convert``
    (JPEG bytes kept). ``size`` is recorded for the report: the sources are 500x375."""
    from data_photos import make_photos

    from cjepa.cli import main as cjepa_main

    t0 = time.perf_counter()
    src = workdir / "images"
    make_photos(src / "train", n_train)
    make_photos(src / "test", n_test, seed=1)
    out = workdir / "shards"
    rc = cjepa_main(["data", "convert", str(src), str(out), "--format", "keep", "--shard-size", "256",
                     "--overwrite"])
    if rc != 0:
        raise RuntimeError(f"cjepa data convert exited with {rc}")
    return {"root": str(out), "train_images": n_train, "test_images": n_test, "size": size, "format": "keep",
            "seconds": time.perf_counter() - t0}


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
        n += len(batch["labels"])
    _sync(device)
    return n / max(time.perf_counter() - t1, 1e-9), first


def _stream(root: str, cfg: Any, decode: str, mask_fn: Any) -> Any:
    from cjepa.data.stream import ShardSplit, ShardStream

    split = ShardSplit(str(Path(root) / "train"))
    mean, std = split.stats()
    return ShardStream(split, cfg.model.img_size, tuple(cfg.data.crop_scale), mean, std, cfg.model.in_chans, 0,
                       mask_fn, hflip=0.5, decode=decode)


def bench_data(shards: str, cfg: Any, batch: int, epochs: int, workers: int, device: torch.device,
               calls: int = 5) -> dict[str, Any]:
    """Stage (c): the stream with workers' decode vs device decode, whole pipelines and alone, in images/s.

    ``cfg`` (a cjepa Config) gives the image size, channels, crop scale and masks.
    """
    from cjepa.data import build_loader
    from cjepa.masks import MultiBlockMaskGenerator

    gen = MultiBlockMaskGenerator(cfg.model.img_size // cfg.model.patch_size, cfg.mask, seed=0)
    on_workers, on_device = _stream(shards, cfg, "workers", gen), _stream(shards, cfg, "device", gen)
    key = (0, torch.arange(batch))
    t0 = time.perf_counter()
    raw_workers = on_workers[key]
    pil_s = time.perf_counter() - t0
    raw_device = on_device[key]
    a = on_workers.finish_on_device(dict(raw_workers), torch.device("cpu"))
    b = on_device.finish_on_device(dict(raw_device), device)
    diff = float((a["images"] - b["images"].cpu()).abs().mean() * float(on_workers.std[0]) * 255)
    dev_decode = _rate(lambda: on_device.finish_on_device(dict(raw_device), device), batch, calls, device)
    pin = device.type == "cuda"

    def consume(stream: Any) -> Any:
        def on_batch(b: dict[str, Any]) -> None:
            moved = {k: (v.to(device, non_blocking=pin) if torch.is_tensor(v) else v) for k, v in b.items()}
            stream.finish_on_device(moved, device)
            b["masks"].to(device, non_blocking=pin)
        return on_batch

    rates = {}
    for name, stream in (("workers", on_workers), ("device", on_device)):
        sampler = stream.sampler(batch, 0, 0, epochs, max(1, workers))
        rates[name] = _loader_rate(build_loader(stream, sampler, workers, pin_memory=pin), device, consume(stream))
    sizes = [im.shape for im in raw_device["images_jpeg"]]
    return {"device": str(device), "img_size": cfg.model.img_size, "source_size": [min(sizes), max(sizes)],
            "batch": batch, "loader_workers": workers, "cpu_threads": torch.get_num_threads(),
            "images": on_workers.split.num_rows, "pil_crop_img_per_s_one_process": batch / pil_s,
            "device_decode_img_per_s": dev_decode, "device_vs_workers_mean_abs_diff": diff,
            "loader_workers_decode_img_per_s": rates["workers"][0],
            "loader_workers_decode_first_batch_s": rates["workers"][1],
            "loader_device_decode_img_per_s": rates["device"][0],
            "loader_device_decode_first_batch_s": rates["device"][1]}
