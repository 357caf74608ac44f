"""One prepared GPU check: CUDA tests, ViT-B/16 step throughput + MFU, data pipeline, Ray Train run.

Why one script: GPU time is lent rarely and briefly (about 15 minutes, all tries together), so
everything that can only be learnt on a GPU runs in one call of at most 8 minutes and leaves one
JSON of figures: (a) ``pytest -m gpu`` (tests/gpu); (b) C-JEPA and I-JEPA training-step images/s
at ViT-B/16 224 px in bf16, eager and ``torch.compile``d, peak memory and MFU (FLOPs from
``cjepa.benchmarking.flops``); (c) the shard stream's images/s with JPEG decode in the loader
workers (Pillow) vs on the GPU (nvJPEG, ``data.decode=device``), and nvJPEG alone; (d) a 2-epoch
``cjepa train --workers 1 --use-gpu`` through Ray Train on shards of ImageNet-like photo crops
(500x375 JPEGs). Every stage has its own time limit (and all share ``--budget-s``); on a GPU each
runs in its own process, killed at its limit, so a hang, an OOM or a crash is recorded in the JSON
and the next stage still runs. The JSON is rewritten after every stage, so a run killed from
outside still leaves the stages it finished.

``--dry-run`` runs every stage on the CPU at tiny sizes, in this process (a tiny ViT, a few
steps, no compile unless ``--compile``); stage (d) is only validated and planned: Ray is never
started. The same JSON keys come out, with ``"dry_run": true``; tests/bench/test_gpu_check.py
runs it. The stages themselves: ``cjepa.benchmarking.gpu_stages``. Usage:
``python bench/gpu_check.py --out $OUT/gpu_check.json`` (on a machine where cjepa is not installed,
e.g. the lent GPU machine with a copy of the working tree: ``PYTHONPATH=. python3 bench/gpu_check.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from cjepa.benchmarking.flops import peak_tflops
from cjepa.benchmarking.gpu_stages import ISOLATED, LIMITS, RESULT_KEYS, STAGES, VARIANT_KEYS, SkipStage
from cjepa.benchmarking.machine import machine_info
from cjepa.benchmarking.processes import TimeLimit, run_command, time_limit, write_json

SCHEMA = "cjepa.gpu_check/1"
SKIP_KEY = "__skipped__"  # how an isolated stage's process says SkipStage
GOAL_MFU, GOAL_VICREG_OVERHEAD = 0.40, 0.03


def skeleton(name: str) -> dict[str, Any]:
    """The results keys of a stage, all None: what a stage that did not run reports."""
    if name.startswith("step_"):
        return {v: {**dict.fromkeys(VARIANT_KEYS), "error": None} for v in ("cjepa", "ijepa")}
    return dict.fromkeys(RESULT_KEYS[name])


def _errors(results: dict[str, Any]) -> list[str]:
    errs = [str(results["error"])] if results.get("error") else []
    return errs + [f"{k}: {v['error']}" for k, v in results.items() if isinstance(v, dict) and v.get("error")]


def run_stage(name: str, args: argparse.Namespace, argv: Sequence[str], limit: float) -> dict[str, Any]:
    """One stage under its limit; every outcome becomes a record, nothing propagates."""
    t0 = time.monotonic()
    record: dict[str, Any] = {"status": "ok", "limit_s": round(limit, 1), "isolated": False, "error": None}
    results: dict[str, Any] = {}
    try:
        if limit < 5:
            raise SkipStage("the overall --budget-s is spent")
        if args.isolate and name in ISOLATED:  # its own process, killed at the limit
            record["isolated"] = True
            out = Path(args.workdir) / f"stage_{name}.json"
            out.unlink(missing_ok=True)
            cmd = [sys.executable, str(Path(__file__).resolve()), *argv, "--stage", name, "--stage-out", str(out),
                   "--workdir", args.workdir, "--shards", args.shards or ""]
            run = run_command(cmd, Path(args.workdir) / f"stage_{name}.log", limit)
            if out.exists():
                results = json.loads(out.read_text())
            if SKIP_KEY in results:
                raise SkipStage(results.pop(SKIP_KEY))
            if run["timed_out"]:
                raise TimeLimit(f"ran past its {limit:.0f} s limit")
            if run["returncode"] != 0:
                raise RuntimeError(f"exited with {run['returncode']}: {run['log_tail'][-800:]}")
        else:
            with time_limit(limit):
                results = STAGES[name](args, limit)
        errs = _errors(results)
        if errs:
            record.update(status="failed", error="; ".join(errs)[:2000])
    except SkipStage as exc:
        record.update(status="skipped", error=str(exc))
    except TimeLimit as exc:
        record.update(status="timeout", error=str(exc))
    except Exception as exc:  # recorded; the next stage still runs
        record.update(status="failed", error=f"{type(exc).__name__}: {str(exc)[:2000]}")
    if results.get("planned"):
        record["status"] = "planned"
    base = skeleton(name)
    for key, value in results.items():
        base[key] = {**base[key], **value} if isinstance(base.get(key), dict) and isinstance(value, dict) else value
    record["seconds"] = round(time.monotonic() - t0, 2)
    record["results"] = base
    return record


def meta(args: argparse.Namespace, argv: Sequence[str]) -> dict[str, Any]:
    """The machine (``cjepa.benchmarking.machine``), the chip's peak and the run's settings."""
    cuda = torch.cuda.is_available()
    info = machine_info()
    name = info["gpu"] if cuda else info["cpu"]
    if not args.dry_run or args.peak_tflops is not None:
        args.peak, source = peak_tflops(name, args.peak_tflops)
    else:
        args.peak, source = None, "dry run: pass --peak-tflops for an MFU figure"
    return {"command": "python bench/gpu_check.py " + " ".join(argv), **info,
            "device": name if cuda and not args.dry_run else "cpu", "device_name": name,
            "peak_tflops": args.peak, "peak_source": source, "budget_s": args.budget_s,
            "batch_size": args.batch_size, "steps": args.steps, "warmup": args.warmup, "workdir": args.workdir}


def summary(stages: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The headline figures and the issue's goals (None where a figure is missing)."""
    s: dict[str, Any] = {}
    for mode in ("eager", "compiled"):
        res = stages.get(f"step_{mode}", {}).get("results", {})
        for v in ("cjepa", "ijepa"):
            for key in ("img_per_s", "mfu", "peak_mem_gib", "batch_size"):
                s[f"{v}_{key}_{mode}"] = res.get(v, {}).get(key)
        c, i = s[f"cjepa_img_per_s_{mode}"], s[f"ijepa_img_per_s_{mode}"]
        same = s[f"cjepa_batch_size_{mode}"] == s[f"ijepa_batch_size_{mode}"]
        s[f"vicreg_overhead_{mode}"] = i / c - 1 if c and i and same else None
    data = stages.get("data_pipeline", {}).get("results", {})
    for key in ("loader_workers_decode_img_per_s", "loader_device_decode_img_per_s", "device_decode_img_per_s"):
        s[key] = data.get(key)
    tests = stages.get("gpu_tests", {}).get("results", {})
    s.update({f"gpu_tests_{k}": tests.get(k) for k in ("passed", "failed", "skipped", "errors")})
    s["ray_train_epochs"] = stages.get("ray_train", {}).get("results", {}).get("epochs")
    s["stage_status"] = {k: v["status"] for k, v in stages.items()}
    mfus = [x for x in (s["cjepa_mfu_eager"], s["cjepa_mfu_compiled"]) if x is not None]
    steps = [x for x in (s["cjepa_img_per_s_eager"], s["cjepa_img_per_s_compiled"]) if x]
    loaders = [x for x in (s["loader_workers_decode_img_per_s"], s["loader_device_decode_img_per_s"]) if x]
    overheads = [x for x in (s["vicreg_overhead_eager"], s["vicreg_overhead_compiled"]) if x is not None]
    goals = {"cjepa_mfu_ge_40pct": max(mfus) >= GOAL_MFU if mfus else None,
             "vicreg_overhead_le_3pct": all(x <= GOAL_VICREG_OVERHEAD for x in overheads) if overheads else None,
             "data_faster_than_step": max(loaders) > max(steps) if loaders and steps else None}
    return s, goals


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out", type=Path, default=None, help="JSON path (default: $OUT/gpu_check.json, else workdir)")
    p.add_argument("--dry-run", action="store_true", help="CPU, tiny sizes, in-process; Ray is not started")
    p.add_argument("--compile", action="store_true", help="dry run: also run the torch.compile stage")
    p.add_argument("--peak-tflops", type=float, default=None, help="chip peak (dense bf16); default from the name")
    p.add_argument("--budget-s", type=float, default=480.0, help="all stages together")
    p.add_argument("--skip", nargs="*", default=[], choices=list(STAGES), help="stages not to run")
    p.add_argument("--batch-size", type=int, default=0, help="per-GPU batch (0: 128, dry run 8)")
    p.add_argument("--steps", type=int, default=0, help="timed steps per variant (0: 30, dry run 3)")
    p.add_argument("--warmup", type=int, default=0, help="untimed steps first (0: 5, dry run 1)")
    p.add_argument("--nbatches", type=int, default=0, help="distinct prepared batches (0: 6, dry run 2)")
    p.add_argument("--isolate", choices=("auto", "yes", "no"), default="auto",
                   help="python stages in their own process (auto: yes on a GPU, no in a dry run)")
    p.add_argument("--workdir", default=None, help="scratch folder (default: a new temporary one)")
    p.add_argument("--stage", choices=list(STAGES), help=argparse.SUPPRESS)  # internal: run one stage, write JSON
    p.add_argument("--stage-out", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--shards", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    dry = args.dry_run
    args.batch_size = args.batch_size or (8 if dry else 128)
    args.steps = args.steps or (3 if dry else 30)
    args.warmup = args.warmup or (1 if dry else 5)
    args.nbatches = args.nbatches or (2 if dry else 6)
    args.isolate = args.isolate == "yes" or (args.isolate == "auto" and not dry)
    args.workdir = str(Path(args.workdir).resolve()) if args.workdir else tempfile.mkdtemp(prefix="cjepa-gpu-check-")
    Path(args.workdir).mkdir(parents=True, exist_ok=True)
    return args


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.stage:  # a child of an isolated stage: run it and leave its figures in --stage-out
        args.shards = args.shards or None
        args.peak = args.peak_tflops
        try:
            results = STAGES[args.stage](args, 0.0)
        except SkipStage as exc:
            results = {SKIP_KEY: str(exc)}
        write_json(args.stage_out, results)
        return {}
    out = args.out or (Path(os.environ["OUT"]) / "gpu_check.json" if os.environ.get("OUT")
                       else Path(args.workdir) / "gpu_check.json")
    report: dict[str, Any] = {"schema": SCHEMA, "dry_run": args.dry_run, "meta": meta(args, argv), "stages": {},
                              "summary": {}, "goals": {}}
    child_argv = [a for a in argv if a not in ("--compile",)] + (["--compile"] if args.compile else [])
    child_argv += ["--peak-tflops", str(args.peak)] if args.peak is not None and args.peak_tflops is None else []
    deadline = time.monotonic() + args.budget_s
    threads = torch.get_num_threads()
    if args.dry_run:  # tiny tensors: more threads only add contention on a shared CPU
        torch.set_num_threads(1)
    try:
        _run_all(args, child_argv, report, out, deadline)
    finally:
        torch.set_num_threads(threads)
    print(json.dumps(report, indent=1, default=str))
    print(f"[gpu_check] wrote {out}", flush=True)
    return report


def _run_all(args: argparse.Namespace, child_argv: list[str], report: dict[str, Any], out: Path,
             deadline: float) -> None:
    for name in STAGES:
        if name in args.skip:
            report["stages"][name] = {"status": "skipped", "limit_s": 0, "isolated": False, "seconds": 0.0,
                                      "error": "--skip", "results": skeleton(name)}
        else:
            limit = min(LIMITS[name][1 if args.dry_run else 0], deadline - time.monotonic())
            print(f"[gpu_check] {name}: limit {limit:.0f} s", flush=True)
            report["stages"][name] = rec = run_stage(name, args, child_argv, limit)
            if name == "shards" and rec["status"] == "ok":
                args.shards = rec["results"]["root"]
            print(f"[gpu_check] {name}: {rec['status']} in {rec['seconds']:.1f} s"
                  + (f" ({rec['error'][:300]})" if rec["error"] else ""), flush=True)
        report["summary"], report["goals"] = summary(report["stages"])
        out.parent.mkdir(parents=True, exist_ok=True)
        write_json(out, report, indent=1)


if __name__ == "__main__":
    main()
    sys.exit(0)
