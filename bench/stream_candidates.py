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

This script holds the arguments, the flow and the printout; the formats and loaders come from
``cjepa.benchmarking.stream_formats``, the key checks (each in a fresh ``python -m
cjepa.benchmarking.stream_checks`` process) from ``cjepa.benchmarking.stream_checks``, the process-tree
counters and the img/s rounds from ``cjepa.benchmarking.stream_timing``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from cjepa.benchmarking import timing
from cjepa.benchmarking.machine import machine_info
from cjepa.benchmarking.stream_checks import RESUME_AT, job_main, key_checks, ray_checks
from cjepa.benchmarking.stream_formats import LIBS, prepare, ray_init
from cjepa.benchmarking.stream_timing import throughput


def main() -> None:
    """Prepare the data, then the key checks and the img/s rounds of every library not skipped."""
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
    if args.job:  # a key job, as `python -m cjepa.benchmarking.stream_checks SPEC` runs it
        job_main(args.job)
        return
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
                    key_checks(lib, info, args.seed, args.resume_at)
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
