"""What Ray Train costs: the same run through ``fit_distributed`` (1 worker) and the bare engine.

Why: the Ray layer should be a wrapper, not a tax. Its costs are of two kinds, which this script
separates by timing a short and a longer run of the same config with both paths and fitting
``t = a + b * epochs`` per path: ``a`` is fixed start-up (the engine: data and model set-up; Ray:
that plus the controller, a worker process, torch import and the gloo group in it), ``b`` the
cost of an epoch (Ray adds per epoch: copying the checkpoint into storage, waiting until the
controller has committed it, and the report barrier). Goal: ``b_ray / b_bare - 1 <= 5 %``.

Measurement (bench/README.md rules): one process, fixed torch threads (``run.threads``, and the
worker reserves as many Ray CPUs), rounds that time all four variants in a rotated order, medians
over rounds, and the ratio computed per round. ``ray.init`` happens once, before the rounds,
and is reported on its own line (a local cluster, the dashboard included). Every Ray run gets a
fresh experiment name, so none resumes another. Evaluation is off: it is rank-0 work identical
in both paths. Both paths checkpoint every epoch (the engine's atomic ``checkpoint.pt``).

    python bench/ray_overhead.py                         # cjepa_fmnist_cpu, 5120 images, 1 vs 4 epochs, 3 rounds
    python bench/ray_overhead.py --rounds 2 --long 3 data.train_subset=2560
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULTS = ["data.train_subset=5120", "eval.every=0", "run.log_every=1000000"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default="cjepa_fmnist_cpu", help="YAML or preset name (default: cjepa_fmnist_cpu)")
    p.add_argument("--short", type=int, default=1, help="epochs of the short run (default 1)")
    p.add_argument("--long", type=int, default=4, help="epochs of the long run (default 4)")
    p.add_argument("--rounds", type=int, default=3, help="rounds of all four variants (default 3)")
    p.add_argument("--threads", type=int, default=2, help="torch threads in both paths (default 2)")
    p.add_argument("--json", type=Path, help="also write the raw timings here")
    p.add_argument("overrides", nargs="*", help=f"dotted overrides after the defaults {DEFAULTS}")
    return p.parse_args(argv)


def make_cfg(args: argparse.Namespace, epochs: int, out: Path) -> Any:
    from cjepa.cli import resolve_config_path
    from cjepa.config import load_config

    return load_config(resolve_config_path(args.config),
                       [*DEFAULTS, *args.overrides, f"run.epochs={epochs}", f"run.threads={args.threads}",
                        f"run.output_dir={out}"])


def run_bare(cfg: Any) -> float:
    from cjepa.engine import JsonlReporter, train

    t0 = time.perf_counter()
    train(cfg, [JsonlReporter()])
    return time.perf_counter() - t0


def run_ray(cfg: Any, threads: int, storage: Path, name: str) -> float:
    from cjepa.distributed import fit_distributed

    t0 = time.perf_counter()
    fit_distributed(cfg, 1, resources_per_worker={"CPU": threads}, storage_path=str(storage), name=name)
    return time.perf_counter() - t0


def epoch_seconds(out: Path) -> list[float]:
    from cjepa.engine import read_metrics

    return [float(m["epoch_time_s"]) for m in read_metrics(out)]


def summarise(rows: list[dict[str, Any]], short: int, long: int) -> dict[str, Any]:
    """Per round: a, b for both paths and b_ray/b_bare; then medians over rounds."""
    per_round = []
    for r in sorted({row["round"] for row in rows}):
        t = {(row["path"], row["epochs"]): row["seconds"] for row in rows if row["round"] == r}
        fit = {}
        for path in ("bare", "ray"):
            b = (t[path, long] - t[path, short]) / (long - short)
            fit[path] = {"a": t[path, short] - b * short, "b": b}
        per_round.append({"round": r, **{f"{k}_{p}": v[k] for p, v in fit.items() for k in ("a", "b")},
                          "b_ratio": fit["ray"]["b"] / fit["bare"]["b"],
                          "a_extra": fit["ray"]["a"] - fit["bare"]["a"]})
    med = {k: statistics.median(row[k] for row in per_round) for k in per_round[0] if k != "round"}
    return {"per_round": per_round, "median": med}


def _spread(values: list[float]) -> str:
    return f"{statistics.median(values):7.2f} s ({min(values):.2f}-{max(values):.2f})"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.long <= args.short:
        sys.exit("--long must be larger than --short")
    import ray
    import torch

    busy = subprocess.run(["pgrep", "-af", "cjepa train"], capture_output=True, text=True).stdout.strip()
    if busy:
        print(f"WARNING: other training processes are running; numbers will be noisy:\n{busy}\n")
    t0 = time.perf_counter()
    ray.init(num_cpus=max(args.threads, 1), log_to_driver=False)
    init_s = time.perf_counter() - t0

    rows: list[dict[str, Any]] = []
    variants = [("bare", args.short), ("bare", args.long), ("ray", args.short), ("ray", args.long)]
    with tempfile.TemporaryDirectory(prefix="cjepa-bench-ray-") as tmp:
        for rnd in range(args.rounds):
            order = variants[rnd % len(variants):] + variants[:rnd % len(variants)]
            for path, epochs in order:
                out = Path(tmp) / f"r{rnd}-{path}-{epochs}"
                cfg = make_cfg(args, epochs, out)
                gc.collect()
                secs = (run_bare(cfg) if path == "bare"
                        else run_ray(cfg, args.threads, Path(tmp) / "ray", f"bench-{os.getpid()}-r{rnd}-{epochs}"))
                rows.append({"round": rnd, "path": path, "epochs": epochs, "seconds": secs,
                             "epoch_time_s": epoch_seconds(out)})
                print(f"round {rnd} {path:4s} {epochs} epoch(s): {secs:7.2f} s", flush=True)
    ray.shutdown()

    summary = summarise(rows, args.short, args.long)
    med = summary["median"]
    print(f"\n{platform.node()}  {os.cpu_count()} cores  torch {torch.__version__}  ray {ray.__version__}  "
          f"threads {args.threads}  {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC")
    print(f"config {args.config} + {DEFAULTS + args.overrides}")
    print(f"ray.init (local cluster, once per process): {init_s:.2f} s\n")
    print(f"| path | {args.short} epoch(s) | {args.long} epochs | engine epoch_time_s | fixed a | per epoch b |")
    print("|---|---|---|---|---|---|")
    for path in ("bare", "ray"):
        t = {e: [row["seconds"] for row in rows if row["path"] == path and row["epochs"] == e]
             for e in (args.short, args.long)}
        ep = [s for row in rows if row["path"] == path for s in row["epoch_time_s"]]
        print(f"| {path} | {_spread(t[args.short])} | {_spread(t[args.long])} | {statistics.median(ep):.2f} s | "
              f"{med['a_' + path]:.2f} s | {med['b_' + path]:.2f} s |")
    ratios = ", ".join(f"{row['b_ratio']:.3f}" for row in summary["per_round"])
    print(f"\nper-epoch overhead of Ray Train: {100 * (med['b_ratio'] - 1):+.1f} % (median of per-round "
          f"b_ray/b_bare: {ratios}; goal <= +5 %)")
    print(f"fixed start-up added by Ray Train: {med['a_extra']:+.2f} s per fit (ray.init not included)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"ray_init_s": init_s, "rows": rows, **summary}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
