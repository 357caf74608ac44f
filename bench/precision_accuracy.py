"""Does bf16 training on CPU change what the recipe learns? fp32 vs bf16, same seeds, paired.

Why: issue 14 allows bf16 autocast on CPU only with "the recipe's accuracy unchanged within its
CI". This trains a preset (default: the quick study's, ``cjepa_fmnist_quick``) once per seed and
precision with ``cjepa train --no-mlflow`` (the real CLI, one fresh process each, ``jobs`` at a
time), then prints, per metric of the last epoch, fp32 and bf16 as mean ± 95 % CI and the
seed-paired difference bf16 - fp32 (cjepa.sweep.stats), plus each run's training img/s.
A paired interval that contains 0 means no difference was found at this many seeds; it is not
proof of equality, so the interval's width is printed with it.

    python bench/precision_accuracy.py --seeds 0 1 2 --jobs 2 --json runs/bench/precision_accuracy.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from cjepa.benchmarking.machine import machine_info

REPO = Path(__file__).resolve().parents[1]
METRICS = ("knn_target", "linear_target", "knn_context", "linear_context", "target_eff_rank", "loss_jepa")
PRECISIONS = ("fp32", "bf16")
FORMAT = {"img_per_s": (1.0, 1), "target_eff_rank": (1.0, 1), "loss_jepa": (1.0, 4)}  # (scale, digits)


def train_once(preset: str, precision: str, seed: int, out: Path, overrides: list[str]) -> dict:
    """One ``cjepa train`` run; returns its last metrics.jsonl line (SystemExit on a failed run)."""
    run_dir = out / f"{precision}-s{seed}"
    argv = [sys.executable, "-m", "cjepa", "train", "-c", preset, "--no-mlflow", f"run.precision={precision}",
            f"run.seed={seed}", f"run.output_dir={run_dir}", "run.resume=false", *overrides]
    start = time.perf_counter()
    proc = subprocess.run(argv, cwd=REPO, capture_output=True, text=True)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise SystemExit(f"{precision} seed {seed} failed ({run_dir}): {last}")
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return {**json.loads(lines[-1]), "wall_s": time.perf_counter() - start}


def compare(runs: dict[tuple[str, int], dict], seeds: list[int]) -> list[dict]:
    """Per metric: each precision's mean ± CI and the paired bf16 - fp32 difference."""
    from cjepa.sweep.stats import mean_ci, paired_difference

    rows = []
    for metric in (*METRICS, "img_per_s"):
        per = {p: {s: runs[(p, s)][metric] for s in seeds if metric in runs[(p, s)]} for p in PRECISIONS}
        if not per["fp32"]:
            continue
        rows.append({"metric": metric, "fp32": mean_ci(per["fp32"].values()), "bf16": mean_ci(per["bf16"].values()),
                     "diff": paired_difference(per["bf16"], per["fp32"]), "per_seed": per})
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="cjepa_fmnist_quick")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--jobs", type=int, default=2, help="runs at a time (each at the preset's run.threads)")
    p.add_argument("--out", type=Path, default=REPO / "runs" / "bench" / "precision_accuracy")
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("override", nargs="*", help="dotted overrides for every run")
    args = p.parse_args()
    from cjepa.config import load_config
    from cjepa.config.presets import resolve_config_path
    from cjepa.errors import CJepaError

    try:  # bad input: one clear line before any run starts
        load_config(resolve_config_path(args.preset), [*args.override, "run.precision=bf16"])
    except (CJepaError, OSError) as exc:
        raise SystemExit(f"precision_accuracy: {exc}") from None

    jobs = [(prec, s) for s in args.seeds for prec in PRECISIONS]  # a seed's two runs side by side
    with ThreadPoolExecutor(args.jobs) as pool:
        done = pool.map(lambda j: train_once(args.preset, j[0], j[1], args.out, args.override), jobs)
        runs = dict(zip(jobs, done))
    rows = compare(runs, args.seeds)
    print(f"{args.preset}, seeds {args.seeds}: last epoch, mean ± 95 % CI; bf16 - fp32 paired over seeds")
    for r in rows:
        scale, digits = FORMAT.get(r["metric"], (100.0, 1))  # accuracies in %
        print(f"  {r['metric']:16s} fp32 {r['fp32'].fmt(scale, digits):>14s}  bf16 {r['bf16'].fmt(scale, digits):>14s}"
              f"  diff {r['diff'].fmt(scale, digits):>14s}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = {"machine": machine_info(), "preset": args.preset, "seeds": args.seeds, "overrides": args.override,
                   "runs": {f"{k[0]}-s{k[1]}": v for k, v in runs.items()},
                   "rows": [{**r, "fp32": vars(r["fp32"]), "bf16": vars(r["bf16"]), "diff": vars(r["diff"]),
                             "per_seed": {p: {str(s): v for s, v in d.items()} for p, d in r["per_seed"].items()}}
                            for r in rows]}
        args.json.write_text(json.dumps(payload, indent=1))


if __name__ == "__main__":
    main()
