"""ImageNet-like JPEGs: the pipeline most users write vs the shard stream, img/s per core.

Sources: ``--images`` crops of scikit-learn's two sample photos (china.jpg, flower.jpg; 427x640),
500x375 or 375x500, randomly placed and mirrored, saved as JPEG quality 90 (~ImageNet's mean
size and quality) in an ImageFolder tree of 10 classes. Nothing is downloaded.

Variants, timed in one process, interleaved rounds (bench/README.md rules):

- ``torchvision``: ``ImageFolder`` + ``RandomResizedCrop(224, scale=(0.3, 1))`` +
  ``RandomHorizontalFlip`` + ``ToTensor`` in a shuffled ``DataLoader``, reading the original files
  (the reference of the ratios); the same with ``PILToTensor`` (uint8 out, as the stream delivers:
  the stream's batches are normalised on the device by the trainer, so that cost is not the loader's).
- ``stream, originals``: ``cjepa data convert --format keep`` shards (the same JPEG bytes),
  read by ``ShardStream`` (I-JEPA's crop on the full image, flip, normalise, DCT-domain decode
  where the crop allows it).
- ``stream, shorter side 256``: shards re-encoded at import with the shorter side at 256 (aspect
  kept, JPEG q90): what the import changes is the stored resolution; a 0.3-scale crop of a
  256 x 341 image is ~140 px wide before the resize to 224 (~205 px from a 375 x 500 original).

``--workers 0`` is one core (torch at one thread, everything in the main process): img/s per core.

    python bench/data_throughput.py --photos                       # ~3 min on 2 cores
    python bench/data_throughput.py --photos --images 2000 --rounds 5 --workers 0 2
"""

from __future__ import annotations

import resource
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from cjepa.data.convert import MANIFEST, convert_image_folder
from cjepa.data.loader import build_loader
from cjepa.data.stream import ShardSplit, ShardStream


def make_photos(root: Path, n: int, seed: int = 0) -> Path:
    """n JPEG crops (500x375 / 375x500, q90) of the sklearn sample photos under root/cK/."""
    if root.exists() and sum(1 for _ in root.rglob("*.JPEG")) == n:
        return root
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


def shards(src: Path, out: Path, resize: int | None) -> Path:
    if not (out / MANIFEST).exists():
        kw = {"image_format": "keep"} if resize is None else {"image_format": "jpeg", "resize": resize,
                                                               "jpeg_quality": 90}
        convert_image_folder(src, out, shard_size=256, overwrite=True, **kw)
    return out


class Loader:
    """A named, persistent loader; ``run(k)`` times k batches after one untimed batch."""

    def __init__(self, name: str, make_iter, batch: int) -> None:
        self.name, self.make_iter, self.batch, self.rates, self.rss_mb = name, make_iter, batch, [], 0.0

    def run(self, steps: int) -> float:
        it = self.make_iter(steps + 1)
        next(it)
        t = time.perf_counter()
        n = sum(1 for _ in it)
        rate = n * self.batch / (time.perf_counter() - t)
        self.rates.append(rate)
        peak = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                   resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
        self.rss_mb = max(self.rss_mb, peak / 1024)
        return rate


def torchvision_loader(src: Path, batch: int, workers: int, uint8: bool = False) -> Loader:
    from torchvision import datasets
    from torchvision import transforms as T

    last = T.PILToTensor() if uint8 else T.ToTensor()
    tf = T.Compose([T.RandomResizedCrop(224, scale=(0.3, 1.0)), T.RandomHorizontalFlip(), last])
    ds = datasets.ImageFolder(str(src), transform=tf)
    loader = torch.utils.data.DataLoader(ds, batch_size=batch, shuffle=True, num_workers=workers,
                                         persistent_workers=workers > 0, drop_last=True)
    state = {"it": iter(loader)}

    def make_iter(k: int):
        for _ in range(k):
            try:
                yield next(state["it"])
            except StopIteration:
                state["it"] = iter(loader)
                yield next(state["it"])

    kind = "PILToTensor (uint8)" if uint8 else "ToTensor"
    return Loader(f"torchvision ImageFolder + {kind}, workers={workers}", make_iter, batch)


def stream_loader(name: str, root: Path, batch: int, workers: int) -> Loader:
    split = ShardSplit(str(root))
    ds = ShardStream(split, 224, (0.3, 1.0), split.stats()[0], split.stats()[1], 3, seed=0, mask_fn=None, hflip=0.5)
    sampler = ds.sampler(batch, seed=0, start_step=0, epochs=10_000, lanes=max(1, workers))
    loader = build_loader(ds, sampler, workers, pin_memory=False)
    state = {"it": iter(loader)}
    return Loader(f"{name}, workers={workers}", lambda k: (next(state["it"]) for _ in range(k)), batch)


def run(workdir: Path, images: int, batch: int, steps: int, rounds: int, workers: list[int]) -> list[Loader]:
    src = make_photos(workdir / f"photos_{images}", images)
    keep = shards(src, workdir / f"keep_{images}", None)
    small = shards(src, workdir / f"short256_{images}", 256)
    torch.set_num_threads(1)
    loaders = []
    for w in workers:
        loaders += [torchvision_loader(src, batch, w), torchvision_loader(src, batch, w, uint8=True),
                    stream_loader("stream, originals", keep, batch, w),
                    stream_loader("stream, shorter side 256", small, batch, w)]
    for r in range(rounds):
        order = loaders[r % len(loaders):] + loaders[: r % len(loaders)]
        got = {ld.name: ld.run(steps) for ld in order}
        print(f"round {r + 1}/{rounds}: " + ", ".join(f"{k}={v:.0f}" for k, v in got.items()), flush=True)
    return loaders


def report(loaders: list[Loader]) -> str:
    lines = [f"{'variant':44s} {'img/s median [min-max]':>24s}  vs torchvision (median of per-round ratios)"]
    for ld in loaders:
        ref = next(x for x in loaders if "ToTensor," in x.name and x.name.split(", ")[-1] == ld.name.split(", ")[-1])
        ratio = statistics.median(a / b for a, b in zip(ld.rates, ref.rates))
        lines.append(f"{ld.name:44s} {statistics.median(ld.rates):8.0f} [{min(ld.rates):.0f}-{max(ld.rates):.0f}]"
                     f"  {ratio:.2f}x")
    by_workers: dict[str, float] = {}
    for ld in loaders:
        w = ld.name.split(", ")[-1]
        by_workers[w] = max(by_workers.get(w, 0.0), ld.rss_mb)
    lines.append("peak RSS, MB (the bench process, or its largest loader worker, over all variants of a row): "
                 + ", ".join(f"{w}: {mb:.0f}" for w, mb in by_workers.items()))
    return "\n".join(lines)
