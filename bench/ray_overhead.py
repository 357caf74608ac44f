"""What Ray Train costs: ``cjepa train --workers 1`` against plain ``cjepa train``, same config.

Why: the Ray layer should be a wrapper, not a tax. Its costs are of two kinds, which this script
separates by timing a short and a longer run of the same config with both paths and fitting
``t = a + b * epochs`` per path: ``a`` is fixed start-up (both: interpreter, torch import, data
and model set-up; Ray adds the connection, the controller, a worker process with its own imports
and the gloo group), ``b`` the cost of an epoch (Ray adds per epoch: copying the checkpoint into
storage and the report barrier; the first checkpoint also waits for the controller's commit).
Goal: ``b_ray / b_bare - 1 <= 5 %``.

Both paths run as the command a user types, each in a fresh process (the bare engine inside
this driver process ran at another speed than in a fresh one, so in-process timing would
compare process states, not code). Measurement (bench/README.md rules, ``cjepa.benchmarking.timing``):
fixed torch threads (``run.threads`` and ``OMP_NUM_THREADS``), rounds that time all four variants
in a rotated order, medians [min-max] over rounds, and the ratio computed per round. The Ray commands connect to one
local cluster started here (``RAY_ADDRESS``); its ``ray.init`` is reported on its own line, since
``cjepa train --workers`` on a laptop pays it once per command. Every run has its own
``run.output_dir`` and so its own experiment name: none resumes another. Evaluation and MLflow
are off (identical rank-0 work in both paths). Both paths checkpoint every epoch.

    python bench/ray_overhead.py                         # cjepa_fmnist_cpu, 2560 images, 1 vs 4 epochs, 3 rounds
    python bench/ray_overhead.py --threads 1 --rounds 2 data.train_subset=5120
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from cjepa.benchmarking import timing
from cjepa.benchmarking.machine import load_average, machine_info, machine_line
from cjepa.benchmarking.timing import spread

REPO = Path(__file__).resolve().parents[1]
DEFAULTS = ["data.train_subset=2560", "eval.every=0", "run.log_every=1000000"]


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


def command(args: argparse.Namespace, path: str, epochs: int, out: Path, storage: Path) -> list[str]:
    cmd = [sys.executable, "-m", "cjepa", "train", "--no-mlflow", "--config", args.config,
           *DEFAULTS, *args.overrides, f"run.epochs={epochs}", f"run.threads={args.threads}", f"run.output_dir={out}"]
    return cmd + (["--workers", "1", "--storage", str(storage)] if path == "ray" else [])


def timed_run(cmd: list[str], env: dict[str, str], log: Path) -> float:
    t0 = time.perf_counter()
    with log.open("w") as fh:
        proc = subprocess.run(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT, cwd=log.parent)
    seconds = time.perf_counter() - t0
    if proc.returncode:
        sys.exit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{log.read_text()[-3000:]}")
    return seconds


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


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.long <= args.short:
        sys.exit("--long must be larger than --short")
    import ray

    busy = subprocess.run(["pgrep", "-af", "cjepa train"], capture_output=True, text=True).stdout.strip()
    if busy:
        print(f"WARNING: other training processes are running; numbers will be noisy:\n{busy}\n")
    os.environ["OMP_NUM_THREADS"] = str(args.threads)  # before ray.init: the workers inherit it
    machine = machine_info()
    t0 = time.perf_counter()
    ray.init(num_cpus=max(args.threads, 1), log_to_driver=False)
    init_s = time.perf_counter() - t0
    env = {**os.environ, "RAY_ADDRESS": ray.get_runtime_context().gcs_address}

    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="cjepa-bench-ray-") as tmp:
        def variant(path: str, epochs: int):
            def run(rnd: int) -> float:
                out = Path(tmp) / f"r{rnd}-{path}-{epochs}"
                cmd = command(args, path, epochs, out, Path(tmp) / "ray")
                secs = timed_run(cmd, env if path == "ray" else {k: v for k, v in env.items() if k != "RAY_ADDRESS"},
                                 Path(tmp) / f"{out.name}.log")
                rows.append({"round": rnd, "path": path, "epochs": epochs, "seconds": secs,
                             "epoch_time_s": epoch_seconds(out)})
                return secs
            return run

        timing.interleaved({f"{p} {e} epoch(s)": variant(p, e) for p, e in (("bare", args.short), ("bare", args.long),
                                                                             ("ray", args.short), ("ray", args.long))},
                           args.rounds, lambda s: print(s, flush=True), " s")
    ray.shutdown()

    summary = summarise(rows, args.short, args.long)
    med = summary["median"]
    print(f"\n{machine_line(machine)}, threads {args.threads}")
    print(f"config {args.config} + {DEFAULTS + args.overrides}")
    print(f"load average (1/5/15 min) before {machine['load_avg']}, after {load_average()}")
    print(f"ray.init (local cluster, once per process): {init_s:.2f} s\n")
    print(f"| path | {args.short} epoch(s) | {args.long} epochs | engine epoch_time_s | fixed a | per epoch b |")
    print("|---|---|---|---|---|---|")
    for path in ("bare", "ray"):
        t = {e: [row["seconds"] for row in rows if row["path"] == path and row["epochs"] == e]
             for e in (args.short, args.long)}
        ep = [s for row in rows if row["path"] == path for s in row["epoch_time_s"]]
        print(f"| {path} | {spread(t[args.short]).fmt(2)} s | {spread(t[args.long]).fmt(2)} s | "
              f"{statistics.median(ep):.2f} s | "
              f"{med['a_' + path]:.2f} s | {med['b_' + path]:.2f} s |")
    ratios = ", ".join(f"{row['b_ratio']:.3f}" for row in summary["per_round"])
    print(f"\nper-epoch overhead of Ray Train: {100 * (med['b_ratio'] - 1):+.1f} % (median of per-round "
          f"b_ray/b_bare: {ratios}; goal <= +5 %)")
    print(f"fixed start-up added by Ray Train: {med['a_extra']:+.2f} s per command (+ ray.init, once per "
          "command without a running cluster)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"machine": machine, "ray_init_s": init_s, "rows": rows, **summary}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
