"""Streaming-dataset libraries vs cjepa's shard stream, on the same JPEGs: reads, img/s per core, resume.

The data: ``--images`` JPEG crops (500x375 / 375x500, q90) of scikit-learn's sample photos
(``cjepa.benchmarking.data.make_photos``), converted by ``convert_image_folder(shard_size=256,
image_format="keep")`` to cjepa's Parquet shards; the same bytes, in the same row order and 256
images per shard, are written as WebDataset tars (``wds.ShardWriter``), LitData chunks
(``litdata.optimize``, raw bytes) and MosaicML MDS shards (``MDSWriter``, ``bytes`` column).
Ray Data reads the Parquet shards themselves.

Measured, per library:

- reads: bytes read from storage by one process over one epoch of its share (``/proc/self/io``
  rchar, keys only, no decode, in a fresh subprocess; Ray: bytes passed through a counting fsspec
  filesystem, summed over its workers) / the data's bytes; world size 1 and rank 0 of 2.
- img/s per core: read + PIL decode + ``RandomResizedCrop(224, scale=(0.3, 1))`` + flip to a
  uint8 batch of 64, ``torch.set_num_threads(1)``, ``num_workers=0``, interleaved rounds; the CPU
  seconds of the process and its children are counted too (Ray runs its tasks in other processes).
- resume: process A reads k batches and saves the library's state (``state_dict``; WebDataset and
  Ray Data have none), process B resumes from it; B's keys are compared with an uninterrupted run.
  Order determinism: two fresh processes, same seed. Disjoint ranks: ranks 0 and 1 of 2, simulated
  by each library's own mechanism (env ``RANK``/``WORLD_SIZE``, LitData's ``distributed_env``,
  Ray's ``streaming_split``).

A separate venv that sees the project's packages (never install these into .venv)::

    python -m venv bench/.venv-streams     # with .venv's python, then let it see .venv's packages:
    echo "import site; site.addsitedir('$PWD/.venv/lib/python3.11/site-packages')" \\
        > bench/.venv-streams/lib/python3.11/site-packages/_cjepa_venv.pth
    bench/.venv-streams/bin/pip install webdataset litdata
    # mosaicml-streaming pins numpy<2.2 and pulls ~35 packages: only what it imports
    bench/.venv-streams/bin/pip install --no-deps mosaicml-streaming xxhash zstd brotli python-snappy \\
        cramjam catalogue transformers==4.57.6 huggingface_hub==0.36.2 tokenizers==0.22.2 regex hf-xet

    flock /tmp/cjepa-ray.lock bench/.venv-streams/bin/python bench/stream_candidates.py   # ~10 min, 2 cores
    bench/.venv-streams/bin/python bench/stream_candidates.py --skip ray                    # no Ray, no lock
"""

from __future__ import annotations

import argparse
import functools
import io
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch
from PIL import Image

from cjepa.benchmarking import timing
from cjepa.benchmarking.machine import machine_info

LIBS = ("cjepa", "webdataset", "litdata", "mosaic", "ray")
BATCH, PER_SHARD, RESUME_AT = 64, 256, 10


# ---------------------------------------------------------------- data, the same bytes in every format

def prepare(work: Path, images: int) -> dict:
    from cjepa.benchmarking.data import make_photos
    from cjepa.data.convert import MANIFEST, convert_image_folder

    src = make_photos(work / f"photos_{images}", images)
    d = work / f"data_{images}"
    if not (d / "parquet" / MANIFEST).exists():
        convert_image_folder(src, d / "parquet", shard_size=PER_SHARD, image_format="keep", overwrite=True)
    files = sorted((d / "parquet").glob("*.parquet"))
    rows = [(Path(p).stem, src / p) for f in files for p in pq.read_table(f, columns=["path"]).column(0).to_pylist()]
    if not (d / "wds").exists():
        import webdataset as wds

        (d / "wds").mkdir(parents=True)
        with wds.ShardWriter(str(d / "wds" / "shard-%05d.tar"), maxcount=PER_SHARD, verbose=0) as sink:
            for key, path in rows:
                sink.write({"__key__": key, "jpg": path.read_bytes(), "cls": int(path.parent.name[1:])})
    if not (d / "litdata").exists():
        import litdata

        litdata.optimize(fn=_lit_item, inputs=[(k, str(p)) for k, p in rows], output_dir=str(d / "litdata"),
                         chunk_size=PER_SHARD, num_workers=1, mode="overwrite")
    if not (d / "mds").exists():
        from streaming import MDSWriter

        limit = int(sum(p.stat().st_size for _, p in rows) / len(rows) * PER_SHARD * 1.05)
        with MDSWriter(out=str(d / "mds"), columns={"key": "str", "image": "bytes", "label": "int"},
                       size_limit=limit) as out:
            for key, path in rows:
                out.write({"key": key, "image": path.read_bytes(), "label": int(path.parent.name[1:])})
    sizes = {fmt: sum(f.stat().st_size for f in (d / fmt).rglob("*") if f.is_file())
             for fmt in ("parquet", "wds", "litdata", "mds")}
    files_n = {"parquet": len(files), "wds": len(list((d / "wds").glob("*.tar"))),
               "litdata": len(list((d / "litdata").glob("*.bin"))), "mds": len(list((d / "mds").glob("*.mds")))}
    return {"dir": str(d), "images": len(rows), "bytes": sizes, "files": files_n,
            "jpeg_bytes": sum(p.stat().st_size for _, p in rows)}


def _lit_item(item: tuple[str, str]) -> dict:
    key, path = item
    return {"key": key, "image": Path(path).read_bytes(), "label": int(Path(path).parent.name[1:])}


# ---------------------------------------------------------------- the transform every library gets

def tv(data_or_image) -> torch.Tensor:
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
    images = [x[0] for x in items if x[0] is not None]  # none when only keys are read: a placeholder
    return (torch.stack(images) if images else torch.zeros(len(items))), [x[1] for x in items]


# ---------------------------------------------------------------- one loader per library: batches of (images, keys)

@functools.cache
def _key_of_rows(d: Path) -> np.ndarray:
    files = sorted((d / "parquet").glob("*.parquet"))
    return np.array([Path(p).stem for f in files for p in pq.read_table(f, columns=["path"]).column(0).to_pylist()])


def cjepa_epochs(d: Path, seed: int, rank: int, world: int, decode: bool, start_step: int = 0, native: bool = False):
    """cjepa's ShardStream (native: its own decode + normalise) or its order + ``tv``; yields batches."""
    from cjepa.data.stream import ShardSplit, ShardStream, ShardWindowCache, StreamSampler

    split = ShardSplit(str(d / "parquet"))
    keys = _key_of_rows(d)
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


def wds_epoch(d: Path, seed: int, decode: bool):
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


def litdata_loader(d: Path, seed: int, rank: int, world: int, decode: bool, state: dict | None = None):
    from litdata import StreamingDataLoader, StreamingDataset
    from litdata.utilities.env import _DistributedEnv

    ds = StreamingDataset(str(d / "litdata"), shuffle=True, seed=seed, cache_dir=str(d / "litdata_cache"),
                          max_cache_size="200MB", transform=_lit_decode if decode else _lit_key)
    ds.distributed_env = _DistributedEnv(world, rank, 1)
    dl = StreamingDataLoader(ds, batch_size=BATCH, num_workers=0, collate_fn=_collate)
    if state is not None:
        dl.load_state_dict(state)
    return dl


def mosaic_loader(d: Path, seed: int, decode: bool, state: dict | None = None):
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


# ---------------------------------------------------------------- key runs (fresh subprocess each)

def proc_io() -> dict[str, int]:
    with open("/proc/self/io") as f:
        return {k: int(v) for k, v in (line.split(": ") for line in f)}


def key_job(lib: str, d: Path, seed: int, rank: int, world: int, mode: str, state_file: str) -> dict:
    """mode: 'full' (2 epochs of keys, reads of the first), 'head' (RESUME_AT batches, then save the
    state), 'resume' (load the state, the rest of the epoch)."""
    torch.set_num_threads(1)
    out: dict = {"lib": lib, "rank": rank, "world": world, "mode": mode}
    state = torch.load(state_file, weights_only=False) if mode == "resume" and lib in ("litdata", "mosaic") else None
    import importlib  # the library's imports are not data reads (MosaicML's import reads ~150 MB of .pyc)

    importlib.import_module({"cjepa": "cjepa.data.stream", "webdataset": "webdataset", "litdata": "litdata",
                             "mosaic": "streaming"}[lib])
    io0, io1, t0 = proc_io(), None, time.perf_counter()
    epochs: list[list[str]] = []
    if lib == "cjepa":
        from cjepa.data.shard_order import steps_per_epoch

        rows = int(_key_of_rows(d).size)
        io0 = proc_io()
        start, per = (RESUME_AT if mode == "resume" else 0), steps_per_epoch(rows, BATCH * world, world, 1)
        stop, keys = {"full": 2 * per, "head": RESUME_AT, "resume": per}[mode], []
        for step, (_, k, _, split) in zip(range(start, stop), cjepa_epochs(d, seed, rank, world, False, start)):
            keys += k
            if step + 1 == per:
                epochs.append(keys)
                keys, io1, out["shard_reads_epoch"] = [], proc_io(), split.reads
        if keys:
            epochs.append(keys)
        if mode == "head":
            io1 = proc_io()
    else:
        def batches_of_epoch(epoch: int):
            if lib == "webdataset":
                return iter(wds_epoch(d, seed, decode=False))
            return iter(loader)

        loader = None
        if lib == "webdataset":
            os.environ.update(RANK=str(rank), WORLD_SIZE=str(world))
        elif lib == "litdata":
            loader = litdata_loader(d, seed, rank, world, decode=False, state=state)
        elif lib == "mosaic":
            loader = mosaic_loader(d, seed, decode=False, state=state)
        for epoch in range(2 if mode == "full" else 1):
            keys = []
            for n, (_, k) in enumerate(batches_of_epoch(epoch)):
                keys += k
                if mode == "head" and n + 1 == RESUME_AT:
                    break
            epochs.append(keys)
            if epoch == 0:
                io1 = proc_io()
        if mode == "head" and loader is not None:
            torch.save(loader.state_dict(), state_file)
            out["state"] = repr(loader.state_dict())[:300]
        if mode == "head" and lib == "webdataset":
            out["state"] = "none (no state_dict): resume = rebuild the pipeline and replay k batches"
    out["epochs"] = epochs
    io1 = io1 or proc_io()
    out["rchar_epoch"] = io1["rchar"] - io0["rchar"]
    out["wchar_epoch"] = io1["wchar"] - io0["wchar"]
    out["seconds"] = time.perf_counter() - t0
    return out


def run_key_job(lib: str, d: Path, seed: int, rank: int, world: int, mode: str, state_file: str,
                strace: str | None = None) -> dict:
    """One key job in a fresh process; ``strace``: log its file opens (``openat``) there."""
    # one node, `world` local ranks (run concurrently: MosaicML's ranks meet in torch.distributed)
    env = dict(os.environ, RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(world),
               MASTER_ADDR="127.0.0.1", MASTER_PORT="29533")
    cmd = [sys.executable, __file__, "--job", json.dumps([lib, str(d), seed, rank, world, mode, state_file,
                                                                 RESUME_AT])]
    if strace:
        cmd = ["strace", "-f", "-qq", "-e", "trace=openat", "-o", strace, *cmd]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    if res.returncode:
        return {"lib": lib, "mode": mode, "error": res.stderr[-2000:]}
    return json.loads(res.stdout.strip().splitlines()[-1])


DATA_EXT = {"cjepa": ".parquet", "webdataset": ".tar", "litdata": ".bin", "mosaic": ".mds"}


def data_opens(log: str, d: Path, lib: str) -> tuple[int, int]:
    """(successful opens of the format's data files, distinct files opened) in an strace log."""
    fmt = {"cjepa": "parquet", "webdataset": "wds", "litdata": "litdata", "mosaic": "mds"}[lib]
    prefix, opened = f'"{d / fmt}/', []
    for line in Path(log).read_text().splitlines():
        if prefix in line and f'{DATA_EXT[lib]}"' in line and "= -1" not in line:
            opened.append(line.split(prefix, 1)[1].split('"', 1)[0])
    return len(opened), len(set(opened))


def key_checks(lib: str, info: dict, seed: int) -> dict:
    d, work = Path(info["dir"]), Path(info["dir"]).parent
    state_file = str(work / f"state_{lib}.pt")
    if lib == "mosaic":
        from streaming.base.util import clean_stale_shared_memory

        clean_stale_shared_memory()
    a = run_key_job(lib, d, seed, 0, 1, "full", state_file)
    trace = str(work / f"strace_{lib}.log")
    b = run_key_job(lib, d, seed, 0, 1, "full", state_file, strace=trace)
    h = run_key_job(lib, d, seed, 0, 1, "head", state_file)
    r = run_key_job(lib, d, seed, 0, 1, "resume", state_file)
    ranks: list[dict] = [{}, {}]

    def rank_job(i: int) -> None:
        ranks[i] = run_key_job(lib, d, seed, i, 2, "full", state_file)

    threads = [threading.Thread(target=rank_job, args=(i,)) for i in range(2)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    r0, r1 = ranks
    for x in (a, b, h, r, r0, r1):
        if "error" in x:
            return {"error": f"{x['mode']}: {x['error']}"}
    data = info["bytes"][{"cjepa": "parquet", "webdataset": "wds", "litdata": "litdata", "mosaic": "mds"}[lib]]
    e0, rk = a["epochs"][0], (r["epochs"] or [[]])[0]
    k = RESUME_AT * BATCH
    res = {
        "epoch_samples": len(e0), "unique": len(set(e0)),
        "reads_epoch_x_data": a["rchar_epoch"] / data, "wchar_epoch": a["wchar_epoch"],
        "rank0_of_2_reads_x_data": r0["rchar_epoch"] / data,
        "rank0_of_2_reads_x_its_share": 2 * r0["rchar_epoch"] / data,
        "deterministic": a["epochs"] == b["epochs"],
        "epoch2_differs": a["epochs"][0] != a["epochs"][1],
        "head_matches": h["epochs"][0] == e0[:k],
        "resume_exact": rk == e0[k:], "resume_samples": len(rk), "expected_after_k": len(e0) - k,
        "resume_overlap_with_head": len(set(rk) & set(h["epochs"][0])),
        "ranks_disjoint": not (set(r0["epochs"][0]) & set(r1["epochs"][0])),
        "ranks_cover": len(set(r0["epochs"][0]) | set(r1["epochs"][0])), "rank_sizes": [len(r0["epochs"][0]),
                                                                                        len(r1["epochs"][0])],
        "state": h.get("state"), "shard_reads_epoch": a.get("shard_reads_epoch"),
        "data_file_opens_2_epochs": data_opens(trace, d, lib)[0], "data_files": info["files"][
            {"cjepa": "parquet", "webdataset": "wds", "litdata": "litdata", "mosaic": "mds"}[lib]],
    }
    if lib == "webdataset":  # no state: the resumed process replays the first k batches (same seed)
        res["resume_exact"] = res["deterministic"] and res["head_matches"]
        res["resume_note"] = "replay only"
    return res


# ---------------------------------------------------------------- Ray Data (in process, under the Ray lock)

def tree_rchar() -> int:
    """Bytes read through read syscalls by every descendant of this process (Ray's workers)."""
    me, total = os.getpid(), 0
    parents = {}
    for p in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{p}/stat") as f:
                parents[int(p)] = int(f.read().rsplit(")", 1)[1].split()[1])
        except OSError:
            continue
    for pid in parents:
        q = pid
        while q > 1 and q != me:
            q = parents.get(q, 0)
        if q == me and pid != me:
            try:
                with open(f"/proc/{pid}/io") as f:
                    total += int(f.readline().split(": ")[1])
            except OSError:
                continue
    return total


def _ray_decode(batch: dict) -> dict:
    return {"image": np.stack([tv(b).numpy() for b in batch["image"]]),
            "key": np.array([Path(p).stem for p in batch["path"]])}


def _ray_keys(batch: dict) -> dict:
    return {"key": np.array([Path(p).stem for p in batch["path"]])}


def ray_dataset(d: Path, seed: int, decode: bool):
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


def ray_checks(info: dict, seed: int) -> dict:
    import ray

    d = Path(info["dir"])

    def keys(ds, **kw) -> list[str]:
        out = []
        for b in ds.iter_batches(batch_size=BATCH, batch_format="numpy", local_shuffle_buffer_size=1000,
                                 local_shuffle_seed=seed, **kw):
            out += list(b["key"])
        return out

    e1 = keys(ray_dataset(d, seed, False))  # also starts the workers, so their imports are not counted
    before = tree_rchar()
    e0 = keys(ray_dataset(d, seed, False))
    read = tree_rchar() - before
    e2 = keys(ray_dataset(d, seed + 1, False))
    split = ray_dataset(d, seed, False).streaming_split(2, equal=True)
    parts: list[list[str]] = [[], []]

    def consume(i: int) -> None:
        for b in split[i].iter_batches(batch_size=BATCH, batch_format="numpy"):
            parts[i] += list(b["key"])

    threads = [threading.Thread(target=consume, args=(i,)) for i in range(2)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    return {"epoch_samples": len(e0), "unique": len(set(e0)), "reads_epoch_x_data": read / info["bytes"]["parquet"],
            "deterministic": e0 == e1, "other_seed_differs": e0 != e2,
            "ranks_disjoint": not (set(parts[0]) & set(parts[1])), "ranks_cover": len(set(parts[0]) | set(parts[1])),
            "rank_sizes": [len(p) for p in parts], "resume_exact": False,
            "resume_note": "no iterator state in Ray Data: a restarted run restarts the epoch",
            "ray": ray.__version__}


# ---------------------------------------------------------------- throughput, interleaved rounds

def tree_cpu() -> float:
    """CPU seconds (user + system) of this process and every living descendant."""
    parents, cpu = {}, {}
    tick = os.sysconf("SC_CLK_TCK")
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(p)] = int(fields[1])
        cpu[int(p)] = (int(fields[11]) + int(fields[12])) / tick
    me, total = os.getpid(), 0.0
    for pid in cpu:
        q = pid
        while q > 1 and q != me:
            q = parents.get(q, 0)
        if q == me:
            total += cpu[pid]
    return total


class Timed:
    """A loader timed over k batches after one untimed batch; CPU: this process (tree: and its
    descendants, for Ray, whose tasks run in other processes)."""

    def __init__(self, name: str, epoch, tree: bool = False) -> None:
        self.name, self.epoch, self.rates, self.cpu_rates, self.tree = name, epoch, [], [], tree
        self.it = None if tree else iter(epoch())

    def next(self):
        try:
            return next(self.it)
        except StopIteration:
            self.it = iter(self.epoch())
            return next(self.it)

    def run(self, steps: int) -> float:
        if self.tree:  # Ray: a fresh iterator per round, else its workers decode ahead between rounds
            self.it = iter(self.epoch())
        self.next()
        cpu_s = tree_cpu if self.tree else (lambda: time.process_time())
        c, t, n = cpu_s(), time.perf_counter(), 0
        for _ in range(steps):
            n += len(self.next()[0])
        wall, cpu = time.perf_counter() - t, cpu_s() - c
        self.rates.append(n / wall)
        self.cpu_rates.append(n / max(cpu, 1e-9))
        if self.tree:
            self.it = None
        return n / wall


def throughput(info: dict, libs: list[str], seed: int, steps: int, rounds: int) -> dict:
    d = Path(info["dir"])
    torch.set_num_threads(1)
    loaders = []
    if "cjepa" in libs:
        loaders.append(Timed("cjepa ShardStream (own decode)", lambda: cjepa_epochs(d, seed, 0, 1, True, native=True)))
        loaders.append(Timed("cjepa order + tv decode", lambda: (x[:2] for x in cjepa_epochs(d, seed, 0, 1, True))))
    if "webdataset" in libs:
        os.environ.update(RANK="0", WORLD_SIZE="1")
        loaders.append(Timed("webdataset", lambda: wds_epoch(d, seed, True)))
    if "litdata" in libs:
        dl = litdata_loader(d, seed, 0, 1, True)
        loaders.append(Timed("litdata", lambda: dl))
    if "mosaic" in libs:
        ml = mosaic_loader(d, seed, True)
        loaders.append(Timed("mosaic", lambda: ml))
    if "ray" in libs:
        ds = ray_dataset(d, seed, True)
        ds = ds.drop_columns(["key"])
        loaders.append(Timed("ray", lambda: ((b["image"], None) for b in ds.iter_torch_batches(
            batch_size=BATCH, local_shuffle_buffer_size=512, local_shuffle_seed=seed)), tree=True))
    timing.interleaved({ld.name: (lambda r, ld=ld: ld.run(steps)) for ld in loaders}, rounds,
                       lambda s: print(s, flush=True), " img/s")
    return {ld.name: {**asdict(timing.spread(ld.rates)), "img_per_cpu_s": statistics.median(ld.cpu_rates)}
            for ld in loaders}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/cjepa-stream-candidates"))
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=8, help="timed batches per round and loader")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--resume-at", type=int, default=RESUME_AT, help="batches before the resume")
    ap.add_argument("--skip", nargs="*", default=[], choices=LIBS)
    ap.add_argument("--only", choices=("keys", "speed"), default=None)
    ap.add_argument("--job", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.job:
        lib, d, seed, rank, world, mode, state_file, resume_at = json.loads(args.job)
        globals()["RESUME_AT"] = resume_at
        print(json.dumps(key_job(lib, Path(d), seed, rank, world, mode, state_file)))
        return
    globals()["RESUME_AT"] = args.resume_at
    libs = [x for x in LIBS if x not in args.skip]
    args.workdir.mkdir(parents=True, exist_ok=True)
    info = prepare(args.workdir, args.images)
    print(json.dumps(info), flush=True)
    results: dict = {"machine": machine_info(("webdataset", "litdata", "mosaicml-streaming")), "data": info, "keys": {}}
    if args.only != "speed":
        for lib in libs:
            t = time.perf_counter()
            try:
                if lib == "ray":
                    ray_init()
                results["keys"][lib] = ray_checks(info, args.seed) if lib == "ray" else \
                    key_checks(lib, info, args.seed)
            except Exception as exc:  # one library's failure is a result too
                results["keys"][lib] = {"error": repr(exc)[:2000]}
            print(lib, f"({time.perf_counter() - t:.0f} s)", json.dumps(results["keys"][lib]), flush=True)
    if args.only != "keys":
        if "ray" in libs:
            ray_init()
        results["speed"] = throughput(info, libs, args.seed, args.steps, args.rounds)
        for name, v in results["speed"].items():
            print(f"{name:32s} {timing.cell(v)} img/s, "
                  f"{v['img_per_cpu_s']:.0f} img per CPU-second", flush=True)
    cache = Path(info["dir"]) / "litdata_cache"
    results["litdata_cache_bytes"] = sum(f.stat().st_size for f in cache.rglob("*") if f.is_file()) \
        if cache.exists() else 0
    out = args.workdir / f"results_{'-'.join(libs)}.json"
    out.write_text(json.dumps(results, indent=1, default=str))
    print("litdata cache dir bytes:", results["litdata_cache_bytes"])
    print("wrote", out)


if __name__ == "__main__":
    main()
