"""The streaming-library comparison's data and loaders: the same bytes in every format, one loader per library.

Why one module for all of them: ``bench/stream_candidates.py`` compares WebDataset, LitData, MosaicML
Streaming and Ray Data with cjepa's shard stream, and the comparison is only fair if every library reads
the same JPEG bytes, in the same row order and 256 images a shard, and every batch goes through the same
transform (``tv``). ``prepare`` writes the formats once; each loader yields batches of ``(images, keys)``
(images ``None`` or a placeholder when only the keys are read, for the read and resume checks).

The libraries are imported inside the functions that use them: they live in their own venv
(``bench/.venv-streams``), never in the project's, and a run that skips one never imports it.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import torch
from PIL import Image

LIBS = ("cjepa", "webdataset", "litdata", "mosaic", "ray")
BATCH, PER_SHARD = 64, 256
# each library's data directory under the prepared data dir, and its data files' extension
FORMAT_DIR = {"cjepa": "parquet", "webdataset": "wds", "litdata": "litdata", "mosaic": "mds"}
DATA_EXT = {"cjepa": ".parquet", "webdataset": ".tar", "litdata": ".bin", "mosaic": ".mds"}


# ---------------------------------------------------------------- data, the same bytes in every format

def prepare(work: Path, images: int) -> dict:
    """Photos -> cjepa's Parquet shards -> the same rows as WebDataset tars, LitData chunks and MDS
    shards (each written once, kept in ``work``); returns the data's sizes and file counts."""
    from cjepa.benchmarking.data import make_photos
    from cjepa.data.convert import MANIFEST, convert_image_folder

    src = make_photos(work / f"photos_{images}", images)
    d = work / f"data_{images}"
    if not (d / "parquet" / MANIFEST).exists():
        convert_image_folder(src, d / "parquet", shard_size=PER_SHARD, image_format="keep", overwrite=True)
    files = sorted((d / "parquet").glob("*.parquet"))
    rows = [(Path(p).stem, src / p) for f in files for p in pq.read_table(f, columns=["path"]).column(0).to_pylist()]
    if not (d / "wds").exists():
        _write_wds(d / "wds", rows)
    if not (d / "litdata").exists():
        import litdata

        litdata.optimize(fn=_lit_item, inputs=[(k, str(p)) for k, p in rows], output_dir=str(d / "litdata"),
                         chunk_size=PER_SHARD, num_workers=1, mode="overwrite")
    if not (d / "mds").exists():
        _write_mds(d / "mds", rows)
    sizes = {fmt: sum(f.stat().st_size for f in (d / fmt).rglob("*") if f.is_file())
             for fmt in ("parquet", "wds", "litdata", "mds")}
    files_n = {"parquet": len(files), "wds": len(list((d / "wds").glob("*.tar"))),
               "litdata": len(list((d / "litdata").glob("*.bin"))), "mds": len(list((d / "mds").glob("*.mds")))}
    return {"dir": str(d), "images": len(rows), "bytes": sizes, "files": files_n,
            "jpeg_bytes": sum(p.stat().st_size for _, p in rows)}


def _write_wds(out: Path, rows: list[tuple[str, Path]]) -> None:
    """The rows as WebDataset tars of PER_SHARD samples (``wds.ShardWriter``)."""
    import webdataset as wds

    out.mkdir(parents=True)
    with wds.ShardWriter(str(out / "shard-%05d.tar"), maxcount=PER_SHARD, verbose=0) as sink:
        for key, path in rows:
            sink.write({"__key__": key, "jpg": path.read_bytes(), "cls": int(path.parent.name[1:])})


def _write_mds(out: Path, rows: list[tuple[str, Path]]) -> None:
    """The rows as MosaicML MDS shards; MDS cuts shards by size, so the limit is PER_SHARD mean images + 5 %."""
    from streaming import MDSWriter

    limit = int(sum(p.stat().st_size for _, p in rows) / len(rows) * PER_SHARD * 1.05)
    with MDSWriter(out=str(out), columns={"key": "str", "image": "bytes", "label": "int"}, size_limit=limit) as w:
        for key, path in rows:
            w.write({"key": key, "image": path.read_bytes(), "label": int(path.parent.name[1:])})


def _lit_item(item: tuple[str, str]) -> dict:
    """One LitData sample (module level: ``litdata.optimize`` pickles it)."""
    key, path = item
    return {"key": key, "image": Path(path).read_bytes(), "label": int(Path(path).parent.name[1:])}


# ---------------------------------------------------------------- the transform every library gets

def tv(data_or_image: bytes | Image.Image) -> torch.Tensor:
    """PIL decode + RandomResizedCrop(224, scale=(0.3, 1)) + horizontal flip -> uint8 (3, 224, 224), as
    torchvision's transforms do it on a PIL image (crop + bilinear resize in one PIL call)."""
    from torchvision.transforms import RandomResizedCrop

    im = data_or_image if isinstance(data_or_image, Image.Image) else Image.open(io.BytesIO(data_or_image))
    im = im.convert("RGB")
    i, j, h, w = RandomResizedCrop.get_params(im, scale=[0.3, 1.0], ratio=[3 / 4, 4 / 3])
    im = im.resize((224, 224), Image.BILINEAR, box=(j, i, j + w, i + h))
    if torch.rand(1).item() < 0.5:
        im = im.transpose(Image.FLIP_LEFT_RIGHT)
    return torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1)


def _collate(items: list) -> tuple[torch.Tensor, list[str]]:
    """(stacked images, keys); a placeholder tensor when only keys were read, so every batch has a length."""
    images = [x[0] for x in items if x[0] is not None]  # none when only keys are read: a placeholder
    return (torch.stack(images) if images else torch.zeros(len(items))), [x[1] for x in items]


# ---------------------------------------------------------------- one loader per library: batches of (images, keys)

@functools.cache
def key_of_rows(d: Path) -> np.ndarray:
    """Each Parquet row's key (its file stem), in row order: cjepa's sampler yields row numbers."""
    files = sorted((d / "parquet").glob("*.parquet"))
    return np.array([Path(p).stem for f in files for p in pq.read_table(f, columns=["path"]).column(0).to_pylist()])


def cjepa_epochs(d: Path, seed: int, rank: int, world: int, decode: bool, start_step: int = 0,
                 native: bool = False) -> Iterator[tuple]:
    """cjepa's ShardStream (native: its own decode + normalise) or its order + ``tv``; yields batches
    ``(images, keys)`` (native) or ``(images, keys, step, split)`` (the split counts its shard reads)."""
    from cjepa.data.stream import ShardSplit, ShardStream, ShardWindowCache, StreamSampler

    split = ShardSplit(str(d / "parquet"))
    keys = key_of_rows(d)
    if native:
        mean, std = split.stats()
        ds = ShardStream(split, 224, (0.3, 1.0), mean, std, 3, seed=seed, mask_fn=None, hflip=0.5,
                         rank=rank, world_size=world)
        sampler = ds.sampler(BATCH * world, seed=seed, start_step=start_step, epochs=10_000, lanes=1)
        for key in sampler:
            yield ds[key]["images"], list(keys[key[1].numpy()])
        return
    sampler = StreamSampler(split, BATCH * world, seed, start_step, 10_000, rank, world, 1)
    cache = ShardWindowCache(split, 2 * (2 + 1))
    for step, rows in sampler:
        encoded, _ = cache.rows(rows.numpy())
        images = torch.stack([tv(b) for b in encoded]) if decode else None
        yield images, list(keys[rows.numpy()]), step, split


def wds_epoch(d: Path, seed: int, decode: bool) -> Any:
    """One WebDataset epoch (shards shuffled, a 1000-sample buffer); ranks from env RANK/WORLD_SIZE."""
    import webdataset as wds

    urls = sorted(str(p) for p in (d / "wds").glob("*.tar"))
    ds = wds.WebDataset(urls, shardshuffle=len(urls), seed=seed, nodesplitter=wds.split_by_node,
                        empty_check=False).shuffle(1000, seed=seed)
    ds = ds.decode("pil").map(lambda s: (tv(s["jpg"]), s["__key__"])) if decode else \
        ds.map(lambda s: (None, s["__key__"]))
    return ds.batched(BATCH, collation_fn=_collate, partial=True)


def _lit_decode(item: dict) -> tuple:
    return tv(item["image"]), item["key"]


def _lit_key(item: dict) -> tuple:
    return None, item["key"]


def litdata_loader(d: Path, seed: int, rank: int, world: int, decode: bool, state: dict | None = None) -> Any:
    """LitData's loader, rank ``rank`` of ``world`` through its ``distributed_env``; ``state``: resume."""
    from litdata import StreamingDataLoader, StreamingDataset
    from litdata.utilities.env import _DistributedEnv

    ds = StreamingDataset(str(d / "litdata"), shuffle=True, seed=seed, cache_dir=str(d / "litdata_cache"),
                          max_cache_size="200MB", transform=_lit_decode if decode else _lit_key)
    ds.distributed_env = _DistributedEnv(world, rank, 1)
    dl = StreamingDataLoader(ds, batch_size=BATCH, num_workers=0, collate_fn=_collate)
    if state is not None:
        dl.load_state_dict(state)
    return dl


def mosaic_loader(d: Path, seed: int, decode: bool, state: dict | None = None) -> Any:
    """MosaicML Streaming's loader (ranks from the torch.distributed env); ``state``: resume."""
    from streaming import StreamingDataLoader, StreamingDataset

    class MDS(StreamingDataset):
        def __getitem__(self, idx):
            obj = super().__getitem__(idx)
            return (tv(obj["image"]) if decode else None), obj["key"]

    ds = MDS(local=str(d / "mds"), shuffle=True, shuffle_seed=seed, batch_size=BATCH)
    dl = StreamingDataLoader(ds, batch_size=BATCH, num_workers=0, collate_fn=_collate)
    if state is not None:
        dl.load_state_dict(state)
    return dl


def _ray_decode(batch: dict) -> dict:
    return {"image": np.stack([tv(b).numpy() for b in batch["image"]]),
            "key": np.array([Path(p).stem for p in batch["path"]])}


def _ray_keys(batch: dict) -> dict:
    return {"key": np.array([Path(p).stem for p in batch["path"]])}


def ray_dataset(d: Path, seed: int, decode: bool) -> Any:
    """Ray Data on the Parquet shards themselves (block order shuffled), mapped to images and keys."""
    import ray

    files = sorted(str(p) for p in (d / "parquet").glob("*.parquet"))
    ds = ray.data.read_parquet(files, columns=["image", "path"]).randomize_block_order(seed=seed)
    return ds.map_batches(_ray_decode if decode else _ray_keys, batch_size=BATCH, batch_format="numpy")


def ray_init() -> None:
    """One CPU (tasks run one at a time), a small object store; only under the Ray lock."""
    import ray

    if not ray.is_initialized():
        ray.init(num_cpus=1, object_store_memory=400 * 2**20, log_to_driver=False)
        ray.data.DataContext.get_current().enable_progress_bars = False
