"""Benchmark data: ImageNet-like photo JPEGs and their shards, and the data pipeline's images/s.

The photos: crops of scikit-learn's two sample photos (china.jpg, flower.jpg; 427x640), 500x375
or 375x500, randomly placed and mirrored, JPEG quality 90 (~ImageNet's mean size and quality) in
an ImageFolder tree of 10 classes. Nothing is downloaded. Used by ``bench/data_throughput.py
--photos``, ``bench/stream_candidates.py`` and the GPU check's shards stage.

``bench_data`` is the GPU check's stage (c): the shard stream as the trainer runs it, both ways
``data.decode`` offers: ``workers`` (DataLoader workers decode with Pillow and crop/resize to
uint8; the main process moves the batch and normalises it there) and ``device`` (workers only read
shards and draw boxes; the main process decodes with nvJPEG and crops, resizes, flips and
normalises on the GPU, ``cjepa/data/decode_cuda.py``). In a dry run the "device" is the CPU.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cjepa.benchmarking.timing import rate, sync


def make_photos(root: Path, n: int, seed: int = 0) -> Path:
    """n JPEG crops (500x375 / 375x500, q90) of the sklearn sample photos under root/cK/."""
    if root.exists() and sum(1 for _ in root.rglob("*.JPEG")) == n:
        return root
    from PIL import Image
    from sklearn.datasets import load_sample_images

    photos = load_sample_images().images
    rng = np.random.default_rng(seed)
    for i in range(n):
        photo = photos[i % 2]
        h, w = (375, 500) if rng.random() < 0.7 else (min(427, 500), 375)
        top, left = rng.integers(0, photo.shape[0] - h + 1), rng.integers(0, photo.shape[1] - w + 1)
        crop = photo[top:top + h, left:left + w]
        crop = crop[:, ::-1] if rng.random() < 0.5 else crop
        (root / f"c{i % 10}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.ascontiguousarray(crop)).save(root / f"c{i % 10}" / f"{i:06d}.JPEG", quality=90)
    return root


def make_shards(workdir: Path, n_train: int, n_test: int, size: int) -> dict[str, Any]:
    """Photos in train/ and test/ folders, turned into shards by ``cjepa data convert --format keep``
    (JPEG bytes kept). ``size`` is recorded for the report: the sources are 500x375."""
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


def _loader_rate(loader: Any, device: torch.device, on_batch: Any) -> tuple[float, float]:
    """(images/s after the first batch, seconds to the first batch) through a DataLoader."""
    t0 = time.perf_counter()
    it = iter(loader)
    on_batch(next(it))
    sync(device)
    first = time.perf_counter() - t0
    t1, n = time.perf_counter(), 0
    for batch in it:
        on_batch(batch)
        n += len(batch["labels"])
    sync(device)
    return n / max(time.perf_counter() - t1, 1e-9), first


def _stream(root: str, cfg: Any, decode: str, mask_fn: Any) -> Any:
    from cjepa.data.stream import ShardSplit, ShardStream

    split = ShardSplit(str(Path(root) / "train"))
    mean, std = split.stats()
    return ShardStream(split, cfg.model.img_size, tuple(cfg.data.crop_scale), mean, std, cfg.model.in_chans, 0,
                       mask_fn, hflip=0.5, decode=decode)


def _consume(stream: Any, device: torch.device) -> Any:
    pin = device.type == "cuda"

    def on_batch(b: dict[str, Any]) -> None:
        moved = {k: (v.to(device, non_blocking=pin) if torch.is_tensor(v) else v) for k, v in b.items()}
        stream.finish_on_device(moved, device)
        b["masks"].to(device, non_blocking=pin)
    return on_batch


def bench_data(shards: str, cfg: Any, batch: int, epochs: int, workers: int, device: torch.device,
               calls: int = 5) -> dict[str, Any]:
    """The stream with workers' decode vs device decode, whole pipelines and alone, in images/s;
    ``cfg`` (a cjepa Config) gives the image size, channels, crop scale and masks."""
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
    dev_decode = rate(lambda: on_device.finish_on_device(dict(raw_device), device), batch, calls, device)
    rates = {}
    for name, stream in (("workers", on_workers), ("device", on_device)):
        sampler = stream.sampler(batch, 0, 0, epochs, max(1, workers))
        loader = build_loader(stream, sampler, workers, pin_memory=device.type == "cuda")
        rates[name] = _loader_rate(loader, device, _consume(stream, device))
    sizes = [im.shape for im in raw_device["images_jpeg"]]
    return {"device": str(device), "img_size": cfg.model.img_size, "source_size": [min(sizes), max(sizes)],
            "batch": batch, "loader_workers": workers, "cpu_threads": torch.get_num_threads(),
            "images": on_workers.split.num_rows, "pil_crop_img_per_s_one_process": batch / pil_s,
            "device_decode_img_per_s": dev_decode, "device_vs_workers_mean_abs_diff": diff,
            "loader_workers_decode_img_per_s": rates["workers"][0],
            "loader_workers_decode_first_batch_s": rates["workers"][1],
            "loader_device_decode_img_per_s": rates["device"][0],
            "loader_device_decode_first_batch_s": rates["device"][1]}
