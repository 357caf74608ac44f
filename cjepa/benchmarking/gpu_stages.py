"""The stages of ``bench/gpu_check.py``: what can only be learnt on a GPU, each returning figures.

Each stage takes the parsed arguments (and its limit, for those that start a command) and returns
a dict of figures; a key ``error`` marks a partial failure, an exception a failed stage, ``SkipStage``
"not run in this mode". The orchestrator fills missing keys from ``RESULT_KEYS`` (and
``VARIANT_KEYS`` for the step stages), so the JSON has the same keys whatever happened.

The step stages time the trainer's own step (``cjepa.benchmarking.steps.trainer_step``) on the
shared prepared batches, moved to the device before the clock starts; ``train_step`` reads the
loss back every step (one host sync), so per-step wall times are real step times. On CUDA OOM the
batch is halved and retried. MFU's numerator is the closed-form FLOPs of each timed batch's token
counts, cross-checked on batch 0 by the FLOP counter (``cjepa.benchmarking.flops``).
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import os
import statistics
import sys
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cjepa.benchmarking.processes import REPO, TimeLimit, run_command, write_json

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
VARIANT_KEYS = (
    "config", "batch_size", "batch_tried", "steps", "warmup", "compiled", "autocast", "device", "params",
    "img_per_s", "step_ms_median", "step_ms_min", "first_step_s", "warmup_s", "peak_mem_gib",
    "context_tokens_mean", "flops_per_image", "flops_per_image_counted_batch0", "flops_per_image_analytic_batch0",
    "flops_check_rel_diff", "flops_per_step", "achieved_tflops", "mfu", "loss_first", "loss_last",
)


class SkipStage(Exception):
    """A stage that is not run in this mode (recorded as skipped, with the reason)."""


def _device(args: argparse.Namespace) -> Any:
    import torch

    return torch.device("cuda" if torch.cuda.is_available() and not args.dry_run else "cpu")


def stage_gpu_tests(args: argparse.Namespace, limit: float) -> dict[str, Any]:
    """(a) tests/gpu under ``pytest -m gpu``; per-test outcomes from its JUnit XML."""
    xml = Path(args.workdir) / "gpu_tests.xml"
    cmd = [sys.executable, "-m", "pytest", "-m", "gpu", "tests/gpu", "-q", "-p", "no:cacheprovider",
           f"--junitxml={xml}"]
    run = run_command(cmd, Path(args.workdir) / "gpu_tests.log", limit)
    tests: dict[str, str] = {}
    if xml.exists():
        for case in ET.parse(xml).iter("testcase"):
            kinds = [c.tag for c in case if c.tag in ("failure", "error", "skipped")]
            tests[f"{case.get('classname')}::{case.get('name')}"] = kinds[0] if kinds else "passed"
    count = {k: sum(v == kind for v in tests.values())
             for k, kind in (("passed", "passed"), ("skipped", "skipped"), ("failed", "failure"), ("errors", "error"))}
    out = {"command": " ".join(cmd[1:]), "returncode": run["returncode"], "tests": tests, **count,
           "log_tail": run["log_tail"][-1500:]}
    if run["timed_out"]:
        raise TimeLimit(f"pytest ran past its {limit:.0f} s limit")
    if run["returncode"] != 0:
        out["error"] = f"pytest exited with {run['returncode']}"
    return out


def measure_variant(config: Path, overrides: list[str], batch_size: int, device: Any, args: argparse.Namespace,
                    compile_: bool) -> dict[str, Any]:
    """One variant's figures (``VARIANT_KEYS``) at ``batch_size``, bf16 autocast, on ``device``."""
    import torch

    from cjepa.benchmarking.flops import analytic_flops, mfu, step_flops
    from cjepa.benchmarking.steps import make_batches, trainer_step
    from cjepa.benchmarking.timing import seconds
    from cjepa.config import load_config
    from cjepa.masks import Masks

    cfg = load_config(config, [*overrides, f"optim.batch_size={batch_size}", "run.precision=bf16"])
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    batches = [{"step": i, "images": b.images.to(device), "masks": Masks(b.context, b.targets).to(device)}
               for i, b in enumerate(make_batches(cfg, batch_size, args.nbatches, "random", seed=0))]
    model, autocast, step = trainer_step(cfg, device, compile_)
    logs: list[dict[str, float]] = []
    first_s = seconds(lambda: logs.append(step(batches[0])), device)  # compilation, if any, is here
    warmup_s = first_s + seconds(lambda: [step(batches[i % len(batches)]) for i in range(1, args.warmup)], device)
    timed = [batches[(args.warmup + i) % len(batches)] for i in range(args.steps)]
    times = [seconds(lambda b=b: logs.append(step(b)), device) for b in timed]
    per_image = statistics.fmean(analytic_flops(cfg, int(b["masks"].context.shape[1]),
                                                int(b["masks"].targets.shape[2]))["total"] for b in timed)
    per_step, flops_step, check = sum(times) / len(times), per_image * batch_size, step_flops(cfg, batches[0])
    return {
        "config": str(config), "batch_size": batch_size, "steps": args.steps, "warmup": args.warmup,
        "compiled": compile_, "autocast": str(autocast).replace("torch.", "") if autocast else None,
        "device": str(device), "params": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "img_per_s": batch_size / per_step, "step_ms_median": 1000 * statistics.median(times),
        "step_ms_min": 1000 * min(times), "first_step_s": first_s, "warmup_s": warmup_s,
        "peak_mem_gib": torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None,
        "context_tokens_mean": statistics.fmean(int(b["masks"].context.shape[1]) for b in timed),
        "flops_per_image": per_image, "flops_per_image_counted_batch0": check["counted"],
        "flops_per_image_analytic_batch0": check["analytic"],
        "flops_check_rel_diff": abs(check["counted"] - check["analytic"]) / check["counted"],
        "flops_per_step": flops_step, "achieved_tflops": flops_step / per_step / 1e12,
        "mfu": mfu(flops_step, per_step, args.peak), "loss_first": logs[0]["loss"], "loss_last": logs[-1]["loss"],
    }


def _free(device: Any, compile_: bool) -> None:
    import torch

    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    if compile_:
        torch._dynamo.reset()


def bench_variant(config: Path, overrides: list[str], device: Any, args: argparse.Namespace, compile_: bool,
                  min_batch: int = 8) -> dict[str, Any]:
    """``measure_variant`` at ``--batch-size``, halved on CUDA OOM (down to ``min_batch``)."""
    import torch

    batch_size, tried = args.batch_size, []
    while True:
        tried.append(batch_size)
        try:
            return {**measure_variant(config, overrides, batch_size, device, args, compile_), "batch_tried": tried}
        except torch.OutOfMemoryError:
            if batch_size // 2 < min_batch:
                raise
        _free(device, compile_)  # outside the except block: the traceback no longer pins the step's tensors
        batch_size //= 2


def stage_steps(args: argparse.Namespace, compile_: bool) -> dict[str, Any]:
    """(b) both variants, eager or compiled; one failing does not stop the next. In a stage's own
    process the finished variants go to ``--stage-out`` after each (compiling the second one may be
    what runs out of time)."""
    if compile_ and args.dry_run and not args.compile:
        raise SkipStage("dry run without --compile")
    device, results = _device(args), {}
    for name, config in CONFIGS.items():
        try:
            results[name] = {**bench_variant(config, TINY if args.dry_run else [], device, args, compile_),
                             "error": None}
        except Exception as exc:  # recorded, and the next variant still runs
            results[name] = {**dict.fromkeys(VARIANT_KEYS), "error": f"{type(exc).__name__}: {str(exc)[:500]}"}
        _free(device, compile_)
        if getattr(args, "stage_out", None) is not None:
            write_json(args.stage_out, results)
    return results


def stage_shards(args: argparse.Namespace) -> dict[str, Any]:
    from cjepa.benchmarking.data import make_shards

    n_train, n_test, size = (64, 16, 32) if args.dry_run else (1024, 256, 224)
    return make_shards(Path(args.workdir), n_train, n_test, size)


def stage_data(args: argparse.Namespace) -> dict[str, Any]:
    """(c) the data pipeline at the step's image size (``cjepa.benchmarking.data.bench_data``)."""
    from cjepa.benchmarking.data import bench_data
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
    run = run_command(cmd, Path(args.workdir) / "ray_train.log", limit)
    metrics = Path(cfg.run.output_dir) / "metrics.jsonl"
    epochs = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()] if metrics.exists() else []
    out.update(planned=False, returncode=run["returncode"], epochs=len(epochs), final_metrics=epochs[-1] if epochs
               else None, epoch_img_per_s=[e.get("img_per_s") for e in epochs], log_tail=run["log_tail"][-1500:])
    if run["timed_out"]:
        raise TimeLimit(f"cjepa train ran past its {limit:.0f} s limit")
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
