"""Data-path throughput: the shard stream (decode + training crops) vs the in-memory path, or vs torchvision.

Default: the question was whether the Parquet path's PNG/JPEG decode (absent from the in-memory
path of whole uint8 tensors) makes data loading a training step's bottleneck. Per core: torch at
``--threads`` (1), DataLoader workers one thread each, so ``workers=0`` is one core doing
everything and ``workers=1`` one worker core. Sources: decode only (the reader alone, one core);
28 px Fashion-MNIST train in memory vs PNG shards (``convert_builtin``); 224 px ``--images-224``
synthetic random-texture RGB JPEGs (~18 KB, ImageNet-like size at 224 px) as shards with the JPEG
bytes kept vs the same pixels in memory. Timed: batches (gather or decode, RandomResizedCrop +
normalise) through ``build_loader``, without masks; with ``--step`` also the CPU preset's training
step (``--step-threads``, masks included) as the consumer to compare with.

``--photos`` (issue 23): ImageNet-like JPEGs (``cjepa.benchmarking.data.make_photos``) read by the
pipeline most users write (``ImageFolder`` + ``RandomResizedCrop(224, scale=(0.3, 1))`` + flip +
``ToTensor``, the reference of the ratios; or ``PILToTensor``, uint8 as the stream delivers) vs
``ShardStream`` on ``cjepa data convert --format keep`` shards (the same bytes) and on shards
re-encoded with the shorter side at 256. ``--workers 0`` is one core.

Measurement (``cjepa.benchmarking.timing``): one process, interleaved rounds, the first batch of
each round untimed (worker wake-up), medians [min-max] and per-round ratios.

    python bench/data_throughput.py                     # ~3 min on 2 cores, data prepared once
    python bench/data_throughput.py --rounds 3 --json runs/bench/data.json
    python bench/data_throughput.py --photos --images 2000 --rounds 5 --workers 0 2
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cjepa.benchmarking import timing
from cjepa.benchmarking.data import make_photos
from cjepa.benchmarking.machine import machine_info, machine_line
from cjepa.config import DataConfig, load_config
from cjepa.data import LabeledImages, StepBatchDataset, StepBatchSampler, build_loader, dataset_stats, load_split
from cjepa.data.convert import MANIFEST, convert_builtin, convert_image_folder
from cjepa.data.shards import ParquetImages
from cjepa.data.stream import ShardSplit, ShardStream

REPO = Path(__file__).resolve().parents[1]


class Loader:
    """A named source of batches; ``run(k)`` times k batches after one untimed one (images/s)."""

    def __init__(self, name: str, batches: Callable[[int], Iterator[Any]], batch: int, ref: str = "") -> None:
        self.name, self.batches, self.batch, self.ref, self.rss_mb = name, batches, batch, ref, 0.0

    def run(self, steps: int) -> float:
        it = self.batches(steps + 1)
        next(it)
        t = time.perf_counter()
        n = sum(1 for _ in it)
        rate = n * self.batch / (time.perf_counter() - t)
        usage = (resource.getrusage(who).ru_maxrss for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
        self.rss_mb = max(self.rss_mb, max(usage) / 1024)
        return rate


def _cycle(loader: Any, finish: Callable[[Any], Any] = lambda b: b) -> Callable[[int], Iterator[Any]]:
    """k batches per call from a persistent loader, restarted when an epoch ends."""
    state = {"it": iter(loader)}

    def batches(k: int) -> Iterator[Any]:
        for _ in range(k):
            try:
                yield finish(next(state["it"]))
            except StopIteration:
                state["it"] = iter(loader)
                yield finish(next(state["it"]))
    return batches


def _texture(rng: np.random.Generator, size: int = 224) -> np.ndarray:
    """Sum of bicubic-upsampled noise octaves: JPEG sizes and decode cost like natural images."""
    from PIL import Image

    out = np.full((size, size, 3), 128.0)
    for res, amp in ((4, 90), (16, 50), (56, 25), (size, 12)):
        small = Image.fromarray((rng.random((res, res, 3)) * 255).astype(np.uint8))
        out += (np.asarray(small.resize((size, size), Image.BICUBIC), dtype=np.float64) - 128) / 128 * amp
    return np.clip(out, 0, 255).astype(np.uint8)


def prepare(work: Path, n224: int) -> tuple[Path, Path]:
    """Shard directories for both sizes (reused when already there)."""
    from PIL import Image

    fm, syn = work / "fmnist" / "train", work / f"synth224_{n224}" / "train"
    if not (fm / MANIFEST).exists():
        convert_builtin("fashion_mnist", "train", fm, overwrite=True)
    if not (syn / MANIFEST).exists():
        rng, src = np.random.default_rng(0), work / f"synth224_{n224}_jpeg"
        for i in range(n224):
            (src / f"c{i % 10}").mkdir(parents=True, exist_ok=True)
            Image.fromarray(_texture(rng)).save(src / f"c{i % 10}" / f"{i:05d}.jpg", quality=90)
        convert_image_folder(src, syn, image_format="keep", overwrite=True)
    return fm, syn


def _ranged(loader: Any, sampler: Any, finish: Callable[[Any], Any] = lambda b: b) -> Callable[[int], Iterator[Any]]:
    """k fresh batches per call: the sampler's range moves on by k, the (persistent) loader restarts."""
    state = {"next": 0}

    def batches(k: int) -> Iterator[Any]:
        start, state["next"] = state["next"], state["next"] + k
        if isinstance(sampler, StepBatchSampler):
            sampler.begin, sampler.end = start, start + k
        else:
            sampler.start_step, sampler.end = start, start + k
        return (finish(b) for b in loader)
    return batches


class DecodeOnly(torch.utils.data.Dataset):
    """Batches of decoded uint8 images, no crops: the reader's share of the work."""

    def __init__(self, data: Any) -> None:
        self.data = data

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, key: Any) -> dict[str, Any]:
        return {"images": self.data.images[key[1]]}


def stream(name: str, split: ShardSplit, size: int, chans: int, batch: int, workers: int, ref: str = "",
           photos: bool = False) -> Loader:
    """The trainer's reader. Default mode: uint8 views normalised here (the CPU as the device), fresh
    batches per round; ``photos``: uint8 out (the trainer normalises on its device), flips, one stream."""
    ds = ShardStream(split, size, (0.3, 1.0), *split.stats(), chans, seed=0, mask_fn=None,
                     hflip=0.5 if photos else 0.0)
    sampler = ds.sampler(batch, seed=0, start_step=0, epochs=10_000, lanes=max(1, workers))
    loader = build_loader(ds, sampler, workers, pin_memory=False)
    if photos:
        return Loader(name, _cycle(loader), batch, ref)
    return Loader(name, _ranged(loader, sampler, lambda b: ds.finish_on_device(b, torch.device("cpu"))), batch, ref)


def in_memory(name: str, data: Any, size: int, chans: int, batch: int, workers: int, decode_only: bool = False
              ) -> Loader:
    """``StepBatchDataset`` batches (gather + crops), or decoded uint8 images only (``decode_only``)."""
    mean, std = dataset_stats("parquet")
    ds = DecodeOnly(data) if decode_only else StepBatchDataset(data, size, (0.3, 1.0), mean, std, chans, seed=0,
                                                                mask_fn=None)
    sampler = StepBatchSampler(len(data), batch, seed=0, epochs=10_000)
    return Loader(name, _ranged(build_loader(ds, sampler, workers, pin_memory=False), sampler), batch)


def train_step_loader(threads: int) -> Loader:
    """The CPU preset's training step (fp32, masks included): the consumer the data path must feed."""
    from cjepa.benchmarking.steps import make_batches, trainer_step
    from cjepa.masks import Masks

    cfg = load_config(REPO / "configs" / "cjepa_fmnist_cpu.yaml", ["run.precision=fp32"])
    prepared = make_batches(cfg, cfg.optim.batch_size, 4, "fashion_mnist", 0)
    batches = [{"step": i, "images": b.images, "masks": Masks(b.context, b.targets)} for i, b in enumerate(prepared)]
    _, _, step = trainer_step(cfg, torch.device("cpu"))

    def steps(k: int) -> Iterator[Any]:
        torch.set_num_threads(threads)
        for i in range(k):
            yield step(batches[i % 4])
    return Loader(f"train step ({threads} threads)", steps, cfg.optim.batch_size)


def default_loaders(args: argparse.Namespace) -> list[Loader]:
    fm_dir, syn_dir = prepare(args.workdir, args.images_224)
    syn_all = ParquetImages(syn_dir)
    fm_mem = load_split(DataConfig(dataset="fashion_mnist"), "train")
    syn_mem = LabeledImages(syn_all.images[:], syn_all.labels, 10, "synth224")
    loaders = [in_memory("28 px parquet, decode only", ParquetImages(fm_dir), 28, 1, args.batch_28, 0, True),
               in_memory("224 px parquet, decode only", syn_all, 224, 3, args.batch_224, 0, True)]
    for w in (0, 1):
        loaders += [in_memory(f"28 px in-memory, workers={w}", fm_mem, 28, 1, args.batch_28, w),
                    stream(f"28 px parquet, workers={w}", ShardSplit(str(fm_dir)), 28, 1, args.batch_28, w,
                           ref=f"28 px in-memory, workers={w}"),
                    in_memory(f"224 px in-memory, workers={w}", syn_mem, 224, 3, args.batch_224, w),
                    stream(f"224 px parquet, workers={w}", ShardSplit(str(syn_dir)), 224, 3, args.batch_224, w,
                           ref=f"224 px in-memory, workers={w}")]
    return loaders + ([train_step_loader(args.step_threads)] if args.step else [])


def torchvision_loader(src: Path, batch: int, workers: int, uint8: bool = False) -> Loader:
    from torchvision import datasets
    from torchvision import transforms as T

    last = T.PILToTensor() if uint8 else T.ToTensor()
    tf = T.Compose([T.RandomResizedCrop(224, scale=(0.3, 1.0)), T.RandomHorizontalFlip(), last])
    loader = torch.utils.data.DataLoader(datasets.ImageFolder(str(src), transform=tf), batch_size=batch,
                                         shuffle=True, num_workers=workers, persistent_workers=workers > 0,
                                         drop_last=True)
    ref = f"torchvision ImageFolder + ToTensor, workers={workers}"
    name = f"torchvision ImageFolder + {'PILToTensor (uint8)' if uint8 else 'ToTensor'}, workers={workers}"
    return Loader(name, _cycle(loader), batch, "" if name == ref else ref)


def photo_loaders(args: argparse.Namespace) -> list[Loader]:
    src = make_photos(args.workdir / f"photos_{args.images}", args.images)
    shards = {}
    for label, resize in (("originals", None), ("shorter side 256", 256)):
        out = args.workdir / (f"keep_{args.images}" if resize is None else f"short{resize}_{args.images}")
        if not (out / MANIFEST).exists():
            kw = {"image_format": "keep"} if resize is None else {"image_format": "jpeg", "resize": resize,
                                                                   "jpeg_quality": 90}
            convert_image_folder(src, out, shard_size=256, overwrite=True, **kw)
        shards[label] = ShardSplit(str(out))
    loaders = []
    for w in args.workers:
        ref = f"torchvision ImageFolder + ToTensor, workers={w}"
        loaders += [torchvision_loader(src, args.batch, w), torchvision_loader(src, args.batch, w, uint8=True)]
        loaders += [stream(f"stream, {label}, workers={w}", split, 224, 3, args.batch, w, ref, photos=True)
                    for label, split in shards.items()]
    return loaders


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workdir", type=Path, default=REPO / "runs" / "bench" / "data_throughput")
    ap.add_argument("--images-224", type=int, default=2000)
    ap.add_argument("--batch-28", type=int, default=256)
    ap.add_argument("--batch-224", type=int, default=64)
    ap.add_argument("--steps", type=int, default=9,
                    help="batches per variant per round, the first untimed (--photos: plus one untimed)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1, help="torch threads of the main process")
    ap.add_argument("--step", action=argparse.BooleanOptionalAction, default=True,
                    help="also time the CPU preset's training step (default: on)")
    ap.add_argument("--step-threads", type=int, default=2)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--photos", action="store_true",
                    help="instead: ImageNet-like JPEGs, torchvision's ImageFolder pipeline vs the shard stream")
    ap.add_argument("--images", type=int, default=2000, help="with --photos: JPEGs to make (500x375, q90)")
    ap.add_argument("--workers", type=int, nargs="+", default=[0], help="with --photos: DataLoader workers "
                    "(0 = one core: everything in the main process at one torch thread)")
    ap.add_argument("--batch", type=int, default=64, help="with --photos: batch size")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(1 if args.photos else args.threads)
    loaders = photo_loaders(args) if args.photos else default_loaders(args)

    def timed(ld: Loader) -> Callable[[int], float]:
        def run(r: int) -> float:  # default mode: --steps batches a round, the first untimed (as before)
            torch.set_num_threads(1 if args.photos else args.threads)
            return ld.run(args.steps if args.photos else args.steps - 1)
        return run

    rates = timing.interleaved({ld.name: timed(ld) for ld in loaders}, args.rounds, lambda s: print(s, flush=True))
    summary = timing.summarise(rates)
    for ld in loaders:
        if ld.ref:
            summary[ld.name]["vs_ref"] = timing.ratio_stats(rates[ld.name], rates[ld.ref])
    print(f"\n{machine_line(machine_info())}")
    print(f"{'variant':48s} {'img/s median [min-max]':>24s}  per-round ratio to the reference [min-max]")
    for ld in loaders:
        ratio = f"{timing.cell(summary[ld.name].get('vs_ref'), 2)} vs {ld.ref}" if ld.ref else ""
        print(f"{ld.name:48s} {timing.cell(summary[ld.name]):>24s}  {ratio}")
    print("peak RSS, MB (this process or its largest loader worker): "
          + ", ".join(f"{ld.name}: {ld.rss_mb:.0f}" for ld in loaders))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"args": {k: str(x) for k, x in vars(args).items()}, "machine": machine_info(),
                                         "summary": summary, "peak_rss_mb": {ld.name: ld.rss_mb for ld in loaders}},
                                        indent=1))


if __name__ == "__main__":
    main()
