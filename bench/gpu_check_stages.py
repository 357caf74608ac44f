"""The stages of bench/gpu_check.py and the runners that give each its own time limit.

Each stage function takes the parsed arguments (and its limit, for those that start a
subprocess) and returns a dict of figures; a key ``error`` marks a partial failure, an exception a
failed stage. ``SkipStage`` means "not run in this mode". The orchestrator (bench/gpu_check.py)
fills missing keys from ``RESULT_KEYS`` so the JSON has the same keys whatever happened.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
# bench/ for the sibling modules; the repository root for cjepa and tests where cjepa is not installed
# (the lent GPU machine gets a copy of the working tree and its own python).
for _p in (str(BENCH), str(REPO)):
    if _p not in sys.path:
        sys.path.insert(0, _p)
CONFIGS = {"cjepa": REPO / "configs" / "cjepa_vit_b16.yaml", "ijepa": REPO / "configs" / "ijepa_vit_b16.yaml"}
TINY = ["model.img_size=32", "model.patch_size=4", "model.embed_dim=32", "model.depth=2", "model.num_heads=2",
        "model.pred_embed_dim=16", "model.pred_depth=1", "mask.min_keep=4"]
# name -> (limit on a GPU, limit in a dry run), seconds; run in this order. Sum of GPU limits <= 480.
LIMITS = {"gpu_tests": (70, 120), "step_eager": (60, 60), "step_compiled": (170, 120), "shards": (25, 60),
          "data_pipeline": (40, 60), "ray_train": (110, 60)}
RESULT_KEYS = {
    "gpu_tests": ("command", "returncode", "passed", "failed", "skipped", "errors", "tests", "log_tail"),
    "shards": ("root", "train_images", "test_images", "size", "format", "seconds"),
    "data_pipeline": ("device", "img_size", "source_size", "batch", "loader_workers", "cpu_threads", "images",
                      "pil_crop_img_per_s_one_process", "device_decode_img_per_s", "device_vs_workers_mean_abs_diff",
                      "loader_workers_decode_img_per_s", "loader_workers_decode_first_batch_s",
                      "loader_device_decode_img_per_s", "loader_device_decode_first_batch_s"),
    "ray_train": ("command", "planned", "validated", "returncode", "epochs", "final_metrics", "epoch_img_per_s",
                  "log_tail"),
}


class StageTimeout(Exception):
    """A stage ran past its limit."""


class SkipStage(Exception):
    """A stage that is not run in this mode (recorded as skipped, with the reason)."""


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise StageTimeout in the main thread after ``seconds`` (the dry run's in-process stages)."""
    def expire(signum: int, frame: Any) -> None:
        raise StageTimeout(f"ran past its {seconds:.0f} s limit")

    old = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def write_json(path: Path, obj: Any, indent: int | None = None) -> None:
    """Write-then-rename: a process killed mid-write leaves the previous file, never half a JSON."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=indent, default=str))
    os.replace(tmp, path)


def run_subprocess(cmd: Sequence[str], limit: float, log: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``cmd`` in its own session, kill the whole group at ``limit``; returncode None on timeout."""
    t0 = time.monotonic()
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    with open(log, "w") as fh:
        proc = subprocess.Popen(list(cmd), cwd=REPO, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True,
                                env={**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": path, **(env or {})})
        try:
            rc: int | None = proc.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            rc = None
            for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, sig)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=wait)
                    break
    return {"returncode": rc, "timed_out": rc is None, "seconds": time.monotonic() - t0,
            "log_tail": log.read_text(errors="replace")[-3000:]}


# --------------------------------------------------------------------------- stages


def _device(args: argparse.Namespace) -> Any:
    import torch

    return torch.device("cuda" if torch.cuda.is_available() and not args.dry_run else "cpu")


def stage_gpu_tests(args: argparse.Namespace, limit: float) -> dict[str, Any]:
    """(a) tests/gpu under ``pytest -m gpu``; per-test outcomes from its JUnit XML."""
    xml = Path(args.workdir) / "gpu_tests.xml"
    cmd = [sys.executable, "-m", "pytest", "-m", "gpu", "tests/gpu", "-q", "-p", "no:cacheprovider",
           f"--junitxml={xml}"]
    run = run_subprocess(cmd, limit, Path(args.workdir) / "gpu_tests.log")
    tests: dict[str, str] = {}
    if xml.exists():
        for case in ET.parse(xml).iter("testcase"):
            kinds = [c.tag for c in case if c.tag in ("failure", "error", "skipped")]
            tests[f"{case.get('classname')}::{case.get('name')}"] = kinds[0] if kinds else "passed"
    out = {"command": " ".join(cmd[1:]), "returncode": run["returncode"], "tests": tests,
           "passed": sum(v == "passed" for v in tests.values()), "skipped": sum(v == "skipped" for v in tests.values()),
           "failed": sum(v == "failure" for v in tests.values()), "errors": sum(v == "error" for v in tests.values()),
           "log_tail": run["log_tail"][-1500:]}
    if run["timed_out"]:
        raise StageTimeout(f"pytest ran past its {limit:.0f} s limit")
    if run["returncode"] != 0:
        out["error"] = f"pytest exited with {run['returncode']}"
    return out


def stage_steps(args: argparse.Namespace, compile_: bool) -> dict[str, Any]:
    """(b) both variants, eager or compiled (see bench/gpu_check_step.py)."""
    from gpu_check_step import stage_steps as run

    if compile_ and args.dry_run and not args.compile:
        raise SkipStage("dry run without --compile")
    overrides = TINY if args.dry_run else []
    out = getattr(args, "stage_out", None)  # in a stage's own process: keep finished variants on disk

    def progress(results: dict[str, Any]) -> None:
        if out is not None:
            write_json(out, results)

    return run(CONFIGS, overrides, args.batch_size, _device(args), args.steps, args.warmup, args.nbatches, compile_,
               args.peak, progress)


def stage_shards(args: argparse.Namespace) -> dict[str, Any]:
    from gpu_check_data import make_shards

    n_train, n_test, size = (64, 16, 32) if args.dry_run else (1024, 256, 224)
    return make_shards(Path(args.workdir), n_train, n_test, size)


def stage_data(args: argparse.Namespace) -> dict[str, Any]:
    """(c) the data pipeline at the step's image size (see bench/gpu_check_data.py)."""
    from gpu_check_data import bench_data

    from cjepa.config import load_config

    cfg = load_config(CONFIGS["cjepa"], TINY if args.dry_run else [])
    workers = 0 if args.dry_run else max(1, min(8, (os.cpu_count() or 2) - 2))
    return bench_data(args.shards, cfg, args.batch_size, 1 if args.dry_run else 2, workers, _device(args))


def ray_command(args: argparse.Namespace) -> list[str]:
    wd = Path(args.workdir)
    return [sys.executable, "-m", "cjepa", "train", "-c", "cjepa_vit_b16", "--workers", "1", "--use-gpu",
            "--storage", str(wd / "ray_results"), "--no-mlflow",
            "data.dataset=parquet", f"data.root={args.shards}", "data.num_workers=4", "optim.batch_size=64",
            "optim.warmup_epochs=1", "run.epochs=2", f"run.output_dir={wd / 'ray_run'}", "run.log_every=8",
            "eval.every=2", "eval.train_samples=512", "eval.test_samples=128", "eval.linear_epochs=20",
            f"data.val_samples={16 if args.dry_run else 128}"]  # held out of the 64 / 1024 training photos


def stage_ray(args: argparse.Namespace, limit: float) -> dict[str, Any]:
    """(d) the Ray Train run; in a dry run the command is parsed and its config, split and shards checked."""
    from cjepa.cli import build_config, make_parser
    from cjepa.config import check_data_source
    from cjepa.data.shards import split_root
    from cjepa.data.stream import ShardSplit
    from cjepa.distributed.preflight import check_split

    cmd = ray_command(args)
    parsed = make_parser().parse_args(cmd[3:])
    cfg = build_config(parsed)
    check_split(cfg, parsed.workers)
    check_data_source(cfg)
    sizes = {s: ShardSplit(split_root(cfg.data.root, s)).num_rows for s in ("train", "test")}
    out: dict[str, Any] = {"command": " ".join(cmd[1:]), "validated": {"workers": parsed.workers, **sizes,
                                                                        "config_digest": cfg.digest()}}
    if args.dry_run:
        return {**out, "planned": True}
    if importlib.util.find_spec("ray") is None:  # the lent GPU machine's image has no Ray (nor MLflow)
        raise RuntimeError("ray is not importable here: carry its wheels (.whl, /work/.library/device/README.md)")
    run = run_subprocess(cmd, limit, Path(args.workdir) / "ray_train.log")
    metrics = Path(cfg.run.output_dir) / "metrics.jsonl"
    epochs = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()] if metrics.exists() else []
    out.update(planned=False, returncode=run["returncode"], epochs=len(epochs), final_metrics=epochs[-1] if epochs
               else None, epoch_img_per_s=[e.get("img_per_s") for e in epochs], log_tail=run["log_tail"][-1500:])
    if run["timed_out"]:
        raise StageTimeout(f"cjepa train ran past its {limit:.0f} s limit")
    if run["returncode"] != 0 or len(epochs) != 2:
        out["error"] = f"cjepa train exited with {run['returncode']} after {len(epochs)} of 2 epochs"
    return out


STAGES: dict[str, Callable[[argparse.Namespace, float], dict[str, Any]]] = {
    "gpu_tests": stage_gpu_tests,
    "step_eager": lambda a, limit: stage_steps(a, False),
    "step_compiled": lambda a, limit: stage_steps(a, True),
    "shards": lambda a, limit: stage_shards(a),
    "data_pipeline": lambda a, limit: stage_data(a),
    "ray_train": stage_ray,
}
ISOLATED = ("step_eager", "step_compiled", "data_pipeline")  # python stages that get their own process on a GPU
