"""The streaming-library comparison's key checks: bytes read, order determinism, resume and disjoint ranks.

Why each key run is a fresh process (``run_key_job`` runs ``python -m cjepa.benchmarking.stream_checks``):
``/proc/self/io`` counts every byte a process has read, so the reads of one epoch are only those of the
library if nothing else ran in that process, and resume is only honest across processes (process A saves
the library's state after k batches, process B loads it). Only keys are read there, no decode, and the
library is imported before the counters start (MosaicML's import alone reads ~150 MB of ``.pyc``).

Ranks: ranks 0 and 1 of 2 run concurrently, each library split by its own mechanism (env
``RANK``/``WORLD_SIZE``, LitData's ``distributed_env``, MosaicML's torch.distributed env); Ray Data,
run in this process under the Ray lock, splits with ``streaming_split`` (``ray_checks``).
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from cjepa.benchmarking.stream_formats import (
    BATCH,
    DATA_EXT,
    FORMAT_DIR,
    cjepa_epochs,
    key_of_rows,
    litdata_loader,
    mosaic_loader,
    ray_dataset,
    wds_epoch,
)
from cjepa.benchmarking.stream_timing import proc_io, tree_rchar

RESUME_AT = 10  # batches the head process reads before saving its state
# what a key job imports before its counters start: the library's imports are not data reads
_LIBRARY_MODULE = {"cjepa": "cjepa.data.stream", "webdataset": "webdataset", "litdata": "litdata",
                   "mosaic": "streaming"}


@dataclass
class KeyJob:
    """One key run: library, data dir, seed, rank of world, mode ('full' | 'head' | 'resume'), state file."""

    lib: str
    d: Path
    seed: int
    rank: int
    world: int
    mode: str
    state_file: str
    resume_at: int = RESUME_AT

    def to_json(self) -> str:
        return json.dumps([self.lib, str(self.d), self.seed, self.rank, self.world, self.mode, self.state_file,
                           self.resume_at])

    @classmethod
    def from_json(cls, spec: str) -> KeyJob:
        lib, d, seed, rank, world, mode, state_file, resume_at = json.loads(spec)
        return cls(lib, Path(d), seed, rank, world, mode, state_file, resume_at)


# ---------------------------------------------------------------- key runs (fresh subprocess each)

def key_job(job: KeyJob) -> dict:
    """mode: 'full' (2 epochs of keys, reads of the first), 'head' (resume_at batches, then save the
    state), 'resume' (load the state, the rest of the epoch)."""
    torch.set_num_threads(1)
    out: dict = {"lib": job.lib, "rank": job.rank, "world": job.world, "mode": job.mode}
    resumes = job.mode == "resume" and job.lib in ("litdata", "mosaic")
    state = torch.load(job.state_file, weights_only=True) if resumes else None  # a plain dict: ints, strings, lists
    importlib.import_module(_LIBRARY_MODULE[job.lib])
    io0, t0 = proc_io(), time.perf_counter()
    if job.lib == "cjepa":
        epochs, io0, io1 = _cjepa_keys(job, out)
    else:
        epochs, io1 = _library_keys(job, state, out)
    out["epochs"] = epochs
    io1 = io1 or proc_io()
    out["rchar_epoch"] = io1["rchar"] - io0["rchar"]
    out["wchar_epoch"] = io1["wchar"] - io0["wchar"]
    out["seconds"] = time.perf_counter() - t0
    return out


def _cjepa_keys(job: KeyJob, out: dict) -> tuple[list[list[str]], dict, dict | None]:
    """cjepa's keys by epoch, the I/O counters before and after the first epoch (after the head's
    batches in 'head' mode); its shard reads of an epoch go into ``out``."""
    from cjepa.data.shard_order import steps_per_epoch

    rows = int(key_of_rows(job.d).size)
    io0, io1, epochs = proc_io(), None, []
    start = job.resume_at if job.mode == "resume" else 0
    per = steps_per_epoch(rows, BATCH * job.world, job.world, 1)
    stop, keys = {"full": 2 * per, "head": job.resume_at, "resume": per}[job.mode], []
    batches = cjepa_epochs(job.d, job.seed, job.rank, job.world, False, start)
    for step, (_, k, _, split) in zip(range(start, stop), batches):
        keys += k
        if step + 1 == per:
            epochs.append(keys)
            keys, io1, out["shard_reads_epoch"] = [], proc_io(), split.reads
    if keys:
        epochs.append(keys)
    if job.mode == "head":
        io1 = proc_io()
    return epochs, io0, io1


def _library_keys(job: KeyJob, state: dict | None, out: dict) -> tuple[list[list[str]], dict | None]:
    """A library's keys by epoch and the I/O counters after the first; 'head' saves its state (if it has one)."""
    loader = None
    if job.lib == "webdataset":
        os.environ.update(RANK=str(job.rank), WORLD_SIZE=str(job.world))
    elif job.lib == "litdata":
        loader = litdata_loader(job.d, job.seed, job.rank, job.world, decode=False, state=state)
    elif job.lib == "mosaic":
        loader = mosaic_loader(job.d, job.seed, decode=False, state=state)
    epochs: list[list[str]] = []
    io1 = None
    for epoch in range(2 if job.mode == "full" else 1):
        keys: list[str] = []
        batches = wds_epoch(job.d, job.seed, decode=False) if job.lib == "webdataset" else loader
        for n, (_, k) in enumerate(iter(batches)):
            keys += k
            if job.mode == "head" and n + 1 == job.resume_at:
                break
        epochs.append(keys)
        if epoch == 0:
            io1 = proc_io()
    if job.mode == "head" and loader is not None:
        torch.save(loader.state_dict(), job.state_file)
        out["state"] = repr(loader.state_dict())[:300]
    if job.mode == "head" and job.lib == "webdataset":
        out["state"] = "none (no state_dict): resume = rebuild the pipeline and replay k batches"
    return epochs, io1


def run_key_job(job: KeyJob, strace: str | None = None) -> dict:
    """One key job in a fresh process; ``strace``: log its file opens (``openat``) there."""
    # one node, `world` local ranks (run concurrently: MosaicML's ranks meet in torch.distributed)
    env = dict(os.environ, RANK=str(job.rank), WORLD_SIZE=str(job.world), LOCAL_RANK=str(job.rank),
               LOCAL_WORLD_SIZE=str(job.world), MASTER_ADDR="127.0.0.1", MASTER_PORT="29533")
    cmd = [sys.executable, "-m", "cjepa.benchmarking.stream_checks", job.to_json()]
    if strace:
        cmd = ["strace", "-f", "-qq", "-e", "trace=openat", "-o", strace, *cmd]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    if res.returncode:
        return {"lib": job.lib, "mode": job.mode, "error": res.stderr[-2000:]}
    return json.loads(res.stdout.strip().splitlines()[-1])


def data_opens(log: str, d: Path, lib: str) -> tuple[int, int]:
    """(successful opens of the format's data files, distinct files opened) in an strace log."""
    prefix, opened = f'"{d / FORMAT_DIR[lib]}/', []
    for line in Path(log).read_text().splitlines():
        if prefix in line and f'{DATA_EXT[lib]}"' in line and "= -1" not in line:
            opened.append(line.split(prefix, 1)[1].split('"', 1)[0])
    return len(opened), len(set(opened))


def _ranks_of_2(job: KeyJob) -> list[dict]:
    """Full key runs of ranks 0 and 1 of 2, concurrently (MosaicML's ranks wait for each other)."""
    ranks: list[dict] = [{}, {}]

    def rank_job(i: int) -> None:
        ranks[i] = run_key_job(replace(job, rank=i, world=2, mode="full"))

    threads = [threading.Thread(target=rank_job, args=(i,)) for i in range(2)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    return ranks


def key_checks(lib: str, info: dict, seed: int, resume_at: int = RESUME_AT) -> dict:
    """One library's reads per epoch, determinism, resume after ``resume_at`` batches and rank split."""
    d, work = Path(info["dir"]), Path(info["dir"]).parent
    job = KeyJob(lib, d, seed, 0, 1, "full", str(work / f"state_{lib}.pt"), resume_at)
    if lib == "mosaic":
        from streaming.base.util import clean_stale_shared_memory

        clean_stale_shared_memory()
    a = run_key_job(job)
    trace = str(work / f"strace_{lib}.log")
    b = run_key_job(job, strace=trace)
    h = run_key_job(replace(job, mode="head"))
    r = run_key_job(replace(job, mode="resume"))
    r0, r1 = _ranks_of_2(job)
    for x in (a, b, h, r, r0, r1):
        if "error" in x:
            return {"error": f"{x['mode']}: {x['error']}"}
    data = info["bytes"][FORMAT_DIR[lib]]
    e0, rk = a["epochs"][0], (r["epochs"] or [[]])[0]
    k = resume_at * BATCH
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
        "ranks_cover": len(set(r0["epochs"][0]) | set(r1["epochs"][0])),
        "rank_sizes": [len(r0["epochs"][0]), len(r1["epochs"][0])],
        "state": h.get("state"), "shard_reads_epoch": a.get("shard_reads_epoch"),
        "data_file_opens_2_epochs": data_opens(trace, d, lib)[0], "data_files": info["files"][FORMAT_DIR[lib]],
    }
    if lib == "webdataset":  # no state: the resumed process replays the first k batches (same seed)
        res["resume_exact"] = res["deterministic"] and res["head_matches"]
        res["resume_note"] = "replay only"
    return res


# ---------------------------------------------------------------- Ray Data (in process, under the Ray lock)

def ray_checks(info: dict, seed: int) -> dict:
    """Ray Data's reads per epoch (its workers' bytes), determinism, and a 2-way ``streaming_split``."""
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


def job_main(spec: str) -> None:
    """Run the key job of a JSON spec (``KeyJob.to_json``) and print its result as the last line."""
    print(json.dumps(key_job(KeyJob.from_json(spec))))


if __name__ == "__main__":
    job_main(sys.argv[1])
