"""Evaluation's share of an epoch, Ray-free: one epoch of training vs one evaluation, per variant.

Why: in the quick study (``configs/cjepa_fmnist_quick.yaml``) a trial spent ~50 s of ~218 s in
evaluation (docs/benchmarks.md, "Sweep utilisation"). This script measures the same two things a
trial does, in one process and without Ray: the engine trains one epoch (``cjepa.engine.train``,
resumed epoch by epoch through ``run.max_steps``; its ``epoch_time_s`` excludes evaluation), then
every evaluation variant scores the epoch's checkpointed weights, timed, in an order rotated from
round to round. Variants are sets of ``eval.*`` overrides, e.g. the old extraction
(``before``: batch 512, fp32) against the defaults (``after``).

Both clocks are reported: wall time, and this process's CPU time (``time.process_time``), which
a loaded machine moves far less (with one thread it is what a free core's wall time would be).
It also prints every variant's probe accuracies and their largest difference from the first
variant per round: a speed-up that moved kNN or linear-probe accuracy would show here.

    python bench/eval_cost.py                                   # quick study settings, 3 rounds
    python bench/eval_cost.py --rounds 1 --repeats 2 --breakdown --json runs/bench/eval_cost.json
    python bench/eval_cost.py --variant fp32_128="eval.precision=fp32"
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

from cjepa.benchmarking import timing
from cjepa.benchmarking.machine import machine_info, machine_line
from cjepa.config import Config, load_config
from cjepa.data import load_split
from cjepa.engine import train
from cjepa.engine.checkpoint import CHECKPOINT_NAME
from cjepa.engine.evaluation import Evaluator
from cjepa.engine.trained import load_method
from cjepa.method import CJEPA

DEFAULT_VARIANTS = {"before": "eval.batch_size=512,eval.precision=fp32",
                    "fp32": "eval.precision=fp32",
                    "after": ""}
PROBES = ("knn_target", "linear_target", "knn_context", "linear_context")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default="configs/cjepa_fmnist_quick.yaml")
    p.add_argument("--rounds", type=int, default=3, help="epochs trained; each is followed by every variant")
    p.add_argument("--threads", type=int, default=1, help="torch threads (the quick study: 1 per trial)")
    p.add_argument("--variant", action="append", default=[], metavar="NAME=OVERRIDES",
                   help="comma-separated eval.* overrides; replaces the default before/fp32/after set")
    p.add_argument("--repeats", type=int, default=1, help="evaluations per variant per round (the fastest counts)")
    p.add_argument("--breakdown", action="store_true", help="also time extraction and predictor spread alone")
    p.add_argument("--json", type=Path, help="write per-round figures here")
    p.add_argument("overrides", nargs="*", help="dotted config overrides, e.g. data.train_subset=5000")
    return p.parse_args()


def variants(specs: list[str]) -> dict[str, list[str]]:
    """Name -> overrides; ``--variant`` entries replace the defaults."""
    pairs = [s.split("=", 1) for s in specs] if specs else list(DEFAULT_VARIANTS.items())
    return {name: [o for o in spec.split(",") if o] for name, spec in pairs}


def load_model(cfg: Config, run_dir: Path) -> CJEPA:
    """The online and target networks of the run's latest checkpoint."""
    return load_method(run_dir / CHECKPOINT_NAME)[1]


def breakdown(ev: Evaluator, model: CJEPA) -> dict[str, float]:
    """Seconds of the forward passes alone (both encoders, both sets) and of the predictor spread."""
    t0 = time.perf_counter()
    for enc in (model.target, model.encoder):
        ev._features(enc, ev.train_x)
        ev._features(enc, ev.test_x)
    t1 = time.perf_counter()
    ev.predictor_spread(model)
    return {"extract_s": t1 - t0, "pred_spread_s": time.perf_counter() - t1}


def one_round(r: int, cfg_of: dict[str, Config], evaluators: dict[str, Evaluator], run_dir: Path,
              args: argparse.Namespace) -> dict:
    """Train epoch ``r`` (1-based), then time every variant's evaluation of it."""
    first = next(iter(cfg_of.values()))
    train_cfg = load_config(args.config, [*args.overrides, f"run.output_dir={run_dir}", "eval.every=0",
                                          f"run.threads={args.threads}", f"run.max_steps={r * steps_per_epoch(first)}"])
    cpu0 = time.process_time()
    epoch = train(train_cfg).history[-1]
    train_cpu = time.process_time() - cpu0  # includes set-up and the checkpoint: a slight over-count
    torch.set_num_threads(args.threads)
    model = load_model(first, run_dir)
    out: dict = {"round": r, "train_s": epoch["epoch_time_s"], "train_cpu_s": train_cpu, "eval_s": {},
                 "eval_cpu_s": {}, "metrics": {}, "breakdown": {}}

    def evaluate(name: str):
        def run(rep: int) -> float:  # the fastest of --repeats counts, on both clocks
            t0, c0 = time.perf_counter(), time.process_time()
            out["metrics"][name] = evaluators[name].evaluate(model)
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            out["eval_s"][name] = min(out["eval_s"].get(name, wall), wall)
            out["eval_cpu_s"][name] = min(out["eval_cpu_s"].get(name, cpu), cpu)
            if args.breakdown:
                out["breakdown"][name] = breakdown(evaluators[name], model)
            return wall
        return run

    names = list(evaluators)  # the first variant of the rotation moves on by one every round
    names = names[(r - 1) % len(names):] + names[:(r - 1) % len(names)]
    timing.interleaved({n: evaluate(n) for n in names}, args.repeats, log=None)
    out["eval_s"], out["eval_cpu_s"] = ({n: d[n] for n in evaluators} for d in (out["eval_s"], out["eval_cpu_s"]))
    return out


def steps_per_epoch(cfg: Config) -> int:
    """As the engine's sampler counts them: training images // batch size."""
    return len(load_split(cfg.data, "train").labels) // cfg.optim.batch_size


def report(rounds: list[dict]) -> None:
    """Per round and clock (wall, and this process's CPU time, which a loaded machine moves less):
    each variant's evaluation seconds and its share of (training epoch + evaluation)."""
    names = list(rounds[0]["eval_s"])
    ref = names[0]
    for clock, train_key, eval_key in (("wall", "train_s", "eval_s"), ("CPU", "train_cpu_s", "eval_cpu_s")):
        print(f"\n{clock} seconds: round, training epoch, then per variant: evaluation s, share %, "
              f"speed-up vs {ref}")
        for rd in rounds:
            tr = rd[train_key]
            cells = [f"{n} {rd[eval_key][n]:6.1f} s {100 * rd[eval_key][n] / (tr + rd[eval_key][n]):5.1f} % "
                     f"{rd[eval_key][ref] / rd[eval_key][n]:4.2f}x" for n in names]
            print(f"  {rd['round']:>2} {tr:7.1f} s | " + " | ".join(cells))
    print("\nprobe accuracies per round, and the largest |difference| of any metric from", ref)
    for rd in rounds:
        base = rd["metrics"][ref]
        for n in names:
            m = rd["metrics"][n]
            diff = max(abs(m[k] - base[k]) for k in base if k.startswith(("knn_", "linear_")))
            accs = " ".join(f"{k}={m[k]:.4f}" for k in PROBES if k in m)
            print(f"  round {rd['round']} {n:>10}: {accs}  max|d probe|={diff:.4f}")
    if rounds[0]["breakdown"]:
        print("\nbreakdown (median s): extraction of both encoders / predictor spread")
        for n in names:
            ex = statistics.median(rd["breakdown"][n]["extract_s"] for rd in rounds)
            ps = statistics.median(rd["breakdown"][n]["pred_spread_s"] for rd in rounds)
            ev = statistics.median(rd["eval_s"][n] for rd in rounds)
            print(f"  {n:>10}: extraction {ex:6.1f} s ({100 * ex / ev:3.0f} % of eval), spread {ps:5.2f} s")


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    specs = variants(args.variant)
    with tempfile.TemporaryDirectory(prefix="eval_cost_") as tmp:
        run_dir = Path(tmp) / "run"
        cfg_of = {n: load_config(args.config, [*args.overrides, *o, f"run.output_dir={run_dir}"])
                  for n, o in specs.items()}
        evaluators = {n: Evaluator(c, torch.device("cpu")) for n, c in cfg_of.items()}  # baselines: not timed
        print(machine_line(machine_info()))
        for n, ev in evaluators.items():
            print(f"{n}: overrides {specs[n] or '(defaults)'}, extraction autocast {ev.autocast_dtype}")
        rounds = []
        for r in range(1, args.rounds + 1):
            rounds.append(one_round(r, cfg_of, evaluators, run_dir, args))
            print(f"round {r}: train {rounds[-1]['train_s']:.1f} s, eval "
                  + ", ".join(f"{n} {s:.1f} s" for n, s in rounds[-1]["eval_s"].items()), flush=True)
            if args.json:  # after every round: a long run interrupted keeps what it measured
                args.json.parent.mkdir(parents=True, exist_ok=True)
                args.json.write_text(json.dumps(rounds, indent=1))
    report(rounds)


if __name__ == "__main__":
    main()
