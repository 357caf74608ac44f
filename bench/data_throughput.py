"""Data-path throughput: the shard stream (decode + training crops) vs the in-memory path.

``--photos``: ImageNet-like JPEGs, torchvision's ImageFolder pipeline vs the shard stream
(``bench/data_photos.py``, issue 23's comparison). Without it, as below (the "parquet" variants are
the trainer's ``ShardStream`` since the stream landed; "decode only" is the random-access reader).

Why: the Parquet path adds a PNG/JPEG decode per image that the in-memory path (whole uint8
tensors) does not have. The question is whether that makes data loading the bottleneck of a
training step. Measured per core: torch uses one thread here (``--threads``), and DataLoader
workers run one thread each, so ``workers=0`` is one core doing everything and ``workers=1`` is
one worker core (plus a mostly idle main process). Real training runs several workers.

Sources, side by side in one process (bench/README.md rules: interleaved rounds, rotated order,
medians with spread, per-round ratios to the in-memory path):

- decode only: the reader alone (PNG/JPEG decode into uint8 batches), one core.
- 28 px: Fashion-MNIST train (60k) in memory vs converted to PNG shards (``convert_builtin``).
- 224 px: ``--images-224`` synthetic random-texture RGB JPEGs (~18 KB each, ImageNet-like size
  at 224 px), as shards with the JPEG bytes kept, vs the same pixels decoded into memory.

What is timed: ``StepBatchDataset`` batches (gather or decode, RandomResizedCrop + normalise) through
``build_loader``, without masks (the same for both paths). The first batch of a round is not timed
(worker wake-up). With ``--step`` the CPU training step of ``configs/cjepa_fmnist_cpu.yaml`` is timed
in the same rounds (``--step-threads`` threads, masks included) as the consumer to compare with.

    python bench/data_throughput.py                     # ~3 min on 2 cores, data prepared once
    python bench/data_throughput.py --rounds 3 --json runs/bench/data.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from cjepa.config import DataConfig, load_config
from cjepa.data import LabeledImages, StepBatchDataset, StepBatchSampler, build_loader, dataset_stats, load_split
from cjepa.data.convert import MANIFEST, convert_builtin, convert_image_folder
from cjepa.data.shards import ParquetImages
from cjepa.data.stream import ShardSplit, ShardStream

REPO = Path(__file__).resolve().parents[1]


def _texture(rng: np.random.Generator, size: int = 224) -> np.ndarray:
    """Sum of bicubic-upsampled noise octaves: JPEG sizes and decode cost like natural images."""
    out = np.full((size, size, 3), 128.0)
    for res, amp in ((4, 90), (16, 50), (56, 25), (size, 12)):
        small = Image.fromarray((rng.random((res, res, 3)) * 255).astype(np.uint8))
        out += (np.asarray(small.resize((size, size), Image.BICUBIC), dtype=np.float64) - 128) / 128 * amp
    return np.clip(out, 0, 255).astype(np.uint8)


def prepare(work: Path, n224: int) -> tuple[Path, Path]:
    """Shard directories for both sizes (reused when already there)."""
    fm = work / "fmnist" / "train"
    if not (fm / MANIFEST).exists():
        t = time.perf_counter()
        convert_builtin("fashion_mnist", "train", fm, overwrite=True)
        print(f"converted Fashion-MNIST train to {fm} in {time.perf_counter() - t:.1f} s", flush=True)
    syn = work / f"synth224_{n224}" / "train"
    if not (syn / MANIFEST).exists():
        t = time.perf_counter()
        rng = np.random.default_rng(0)
        src = work / f"synth224_{n224}_jpeg"
        for i in range(n224):
            (src / f"c{i % 10}").mkdir(parents=True, exist_ok=True)
            Image.fromarray(_texture(rng)).save(src / f"c{i % 10}" / f"{i:05d}.jpg", quality=90)
        convert_image_folder(src, syn, image_format="keep", overwrite=True)
        print(f"wrote {n224} 224 px JPEGs and their shards in {time.perf_counter() - t:.1f} s", flush=True)
    return fm, syn


class DecodeOnly(torch.utils.data.Dataset):
    """Batches of decoded uint8 images, no crops: the reader's share of the work."""

    def __init__(self, data) -> None:
        self.data = data

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, key) -> dict:
        return {"images": self.data.images[key[1]]}


class Variant:
    """One (source, workers) pair with a persistent loader; ``run`` times the next ``steps`` batches."""

    def __init__(self, name: str, data, img_size: int, in_chans: int, batch: int, workers: int, group: str,
                 decode_only: bool = False) -> None:
        self.name, self.batch, self.workers, self.group = name, batch, workers, group
        mean, std = dataset_stats("parquet")
        if isinstance(data, ShardSplit):  # the trainer's reader: uint8 views, normalised by the consumer
            ds = ShardStream(data, img_size, (0.3, 1.0), *data.stats(), in_chans, seed=0, mask_fn=None)
            self.sampler = ds.sampler(batch, seed=0, start_step=0, epochs=10_000, lanes=max(1, workers))
        else:
            ds = (DecodeOnly(data) if decode_only
                  else StepBatchDataset(data, img_size, (0.3, 1.0), mean, std, in_chans, seed=0, mask_fn=None))
            self.sampler = StepBatchSampler(len(data), batch, seed=0, epochs=10_000)
        self.finish = getattr(ds, "finish_on_device", lambda b, d: b)
        self.loader = build_loader(ds, self.sampler, workers, pin_memory=False)
        self.next_step, self.rates = 0, []

    def run(self, steps: int) -> float:
        start, end = self.next_step, self.next_step + steps  # fresh batches per round
        if isinstance(self.sampler, StepBatchSampler):
            self.sampler.begin, self.sampler.end = start, end
        else:
            self.sampler.start_step, self.sampler.end = start, end
        self.next_step += steps
        it = (self.finish(b, torch.device("cpu")) for b in self.loader)
        next(it)  # untimed: worker wake-up
        t = time.perf_counter()
        n = sum(1 for _ in it)
        rate = n * self.batch / (time.perf_counter() - t)
        self.rates.append(rate)
        return rate


class StepVariant:
    """The training step of the CPU preset: the consumer the data path has to keep up with."""

    def __init__(self, threads: int) -> None:
        from cjepa.engine.step import build_optimizer
        from cjepa.masks import MultiBlockMaskGenerator
        from cjepa.method import CJEPA

        self.name, self.group, self.threads, self.rates = f"train step ({threads} threads)", "step", threads, []
        self.cfg = cfg = load_config(REPO / "configs" / "cjepa_fmnist_cpu.yaml")
        m = cfg.model
        data = load_split(DataConfig(dataset="fashion_mnist"), "train")
        mean, std = dataset_stats("fashion_mnist")
        gen = MultiBlockMaskGenerator(m.img_size // m.patch_size, cfg.mask, seed=0)
        ds = StepBatchDataset(data, m.img_size, cfg.data.crop_scale, mean, std, m.in_chans, 0, gen)
        sampler = StepBatchSampler(len(data), cfg.optim.batch_size, seed=0, epochs=1)
        self.batches = [ds[key] for key, _ in zip(sampler, range(4))]
        torch.manual_seed(0)
        self.model = CJEPA(cfg)
        self.opt = build_optimizer(self.model, cfg.optim)
        self.batch = cfg.optim.batch_size

    def run(self, steps: int) -> float:
        from cjepa.engine.step import train_step

        torch.set_num_threads(self.threads)
        step = lambda i: train_step(self.model, self.opt, self.batches[i % 4], 1e-4, 0.04, 0.996)  # noqa: E731
        step(0)  # untimed, like the first batch of a loader
        t = time.perf_counter()
        for i in range(1, steps):
            step(i)
        rate = (steps - 1) * self.batch / (time.perf_counter() - t)
        self.rates.append(rate)
        return rate


def _summary(rates: list[float]) -> str:
    q = statistics.quantiles(rates, n=4) if len(rates) > 1 else [rates[0]] * 3
    return f"{statistics.median(rates):8.0f}  [{q[0]:.0f}-{q[2]:.0f}]"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workdir", type=Path, default=REPO / "runs" / "bench" / "data_throughput")
    ap.add_argument("--images-224", type=int, default=2000)
    ap.add_argument("--batch-28", type=int, default=256)
    ap.add_argument("--batch-224", type=int, default=64)
    ap.add_argument("--steps", type=int, default=9, help="batches per variant per round (the first untimed)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1, help="torch threads of the main process")
    ap.add_argument("--step", action=argparse.BooleanOptionalAction, default=True,
                    help="also time the CPU preset's training step (default: on)")
    ap.add_argument("--step-threads", type=int, default=2)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--photos", action="store_true",
                    help="instead: ImageNet-like JPEGs, torchvision's ImageFolder pipeline vs the shard stream "
                         "(bench/data_photos.py)")
    ap.add_argument("--images", type=int, default=2000, help="with --photos: JPEGs to make (500x375, q90)")
    ap.add_argument("--workers", type=int, nargs="+", default=[0], help="with --photos: DataLoader workers "
                    "(0 = one core: everything in the main process at one torch thread)")
    ap.add_argument("--batch", type=int, default=64, help="with --photos: batch size")
    args = ap.parse_args()
    if args.photos:
        return photos(args)
    torch.set_num_threads(args.threads)
    fm_dir, syn_dir = prepare(args.workdir, args.images_224)

    fm_mem = load_split(DataConfig(dataset="fashion_mnist"), "train")
    fm_pq = ShardSplit(str(fm_dir))
    syn_pq = ShardSplit(str(syn_dir))
    syn_all = ParquetImages(syn_dir)
    syn_mem = LabeledImages(syn_all.images[:], syn_all.labels, 10, "synth224")
    variants: list = [Variant("28 px parquet, decode only", ParquetImages(fm_dir), 28, 1, args.batch_28, 0, "28/dec",
                              True),
                      Variant("224 px parquet, decode only", syn_all, 224, 3, args.batch_224, 0, "224/dec", True)]
    for w in (0, 1):
        variants += [Variant(f"28 px in-memory, workers={w}", fm_mem, 28, 1, args.batch_28, w, f"28/{w}"),
                     Variant(f"28 px parquet,   workers={w}", fm_pq, 28, 1, args.batch_28, w, f"28/{w}"),
                     Variant(f"224 px in-memory, workers={w}", syn_mem, 224, 3, args.batch_224, w, f"224/{w}"),
                     Variant(f"224 px parquet,   workers={w}", syn_pq, 224, 3, args.batch_224, w, f"224/{w}")]
    if args.step:
        variants.append(StepVariant(args.step_threads))
    ratios: dict[str, list[float]] = {}
    for r in range(args.rounds):
        order = variants[r % len(variants):] + variants[: r % len(variants)]
        got = {}
        for v in order:
            torch.set_num_threads(args.threads)
            got[v.name] = v.run(args.steps)
        for v in variants:
            if isinstance(v, Variant) and "parquet" in v.name and "decode" not in v.name:
                mem = next(u for u in variants if isinstance(u, Variant) and u.group == v.group and u is not v)
                ratios.setdefault(v.name, []).append(got[v.name] / got[mem.name])
        print(f"round {r + 1}/{args.rounds}: " + ", ".join(f"{k.replace(' ', '')}={v:.0f}" for k, v in got.items()),
              flush=True)

    load = os.getloadavg()
    print(f"\n{dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, torch {torch.__version__}, main threads {args.threads}, load avg {load[0]:.1f}")
    print(f"{'variant':34s} {'img/s median [IQR]':>22s}  parquet / in-memory (median of per-round ratios)")
    for v in variants:
        ratio = f"{statistics.median(ratios[v.name]):.2f}" if v.name in ratios else ""
        print(f"{v.name:34s} {_summary(v.rates):>22s}  {ratio}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"args": {k: str(x) for k, x in vars(args).items()}, "load": load,
                                         "rates": {v.name: v.rates for v in variants}, "ratios": ratios}, indent=1))


def photos(args: argparse.Namespace) -> None:
    from data_photos import report, run  # bench/ is the script's folder, first on sys.path

    loaders = run(args.workdir, args.images, args.batch, args.steps, args.rounds, args.workers)
    load = os.getloadavg()
    print(f"\n{dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC, {_cpu_model()}, {os.cpu_count()} CPUs, "
          f"torch {torch.__version__}, load avg {load[0]:.1f}\n{report(loaders)}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"args": {k: str(x) for k, x in vars(args).items()}, "load": load,
                                         "rates": {ld.name: ld.rates for ld in loaders},
                                         "peak_rss_mb": {ld.name: ld.rss_mb for ld in loaders}}, indent=1))


def _cpu_model() -> str:
    try:
        return next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


if __name__ == "__main__":
    main()
