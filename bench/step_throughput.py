"""Training-step throughput: C-JEPA vs our I-JEPA vs the official I-JEPA code vs ``lightly``'s.

Why this exists: C-JEPA's selling point is "I-JEPA plus a cheap regulariser". The default
``pred_blocks`` VICReg reading adds a projector on M*B pooled vectors and a few batch statistics,
which should cost almost nothing next to the encoders; this benchmark checks that claim (goal:
<= 3 % slower than I-JEPA at identical settings) and checks our I-JEPA step against the code the
paper's numbers came from (facebookresearch/ijepa, goal >= 1.3x, issue 14) and against lightly's,
so that a comparison of *methods* is not confounded by a slow *implementation*.

What one "step" is, for every variant: target-encoder forward on the full image (no grad),
context-encoder + predictor forward, loss, backward, AdamW step, EMA update of the target.
Everything else (data, augmentation, mask drawing) is prepared before the clock starts, and every
variant consumes the *same* batches (``cjepa.benchmarking.steps.make_batches``).

Measurement (``cjepa.benchmarking.timing``): all variants in one process with a fixed torch thread
count, interleaved rounds of ``--steps`` steps each, ratios per round, medians with their min-max
range and the 95 % CI of the median ratio. The official modules come from a local clone
(``--ijepa-src DIR`` or ``$CJEPA_IJEPA_SRC``; ``cjepa.benchmarking.official_ijepa``), never
vendored. lightly runs from a separate venv (``bench/.venv-lightly``, bench/README.md): started
with a python that cannot import lightly, this script re-executes itself under that venv's python.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from cjepa.benchmarking import breakdown, timing
from cjepa.benchmarking.machine import machine_info, machine_line
from cjepa.benchmarking.steps import LEVERS, OURS, Batch, Variant, build_ours, make_batches

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = REPO / "configs" / "cjepa_fmnist_cpu.yaml"
VENV_PYTHON = REPO / "bench" / ".venv-lightly" / "bin" / "python"
REEXEC_ENV, IJEPA_ENV = "CJEPA_BENCH_REEXECUTED", "CJEPA_IJEPA_SRC"
# The project's .venv is a venv itself, whose packages --system-site-packages would not see: bench/README.md
# ("The lightly reference lives in its own venv") gives the three commands, a .pth line pointing at .venv.
VENV_HINT = "see bench/README.md, \"The lightly reference lives in its own venv\" (three commands)"
LIGHTLY = ("lightly_timm", "lightly_tv")
OFFICIAL, OFFICIAL_BF16 = "official_ijepa", "official_ijepa_bf16"  # the bf16 one: train.py's autocast branch
ALL_VARIANTS = (*OURS, *LEVERS, OFFICIAL, OFFICIAL_BF16, *LIGHTLY)
DEFAULT_VARIANTS = ("cjepa", "ijepa", "ijepa_bf16", OFFICIAL, OFFICIAL_BF16, *LIGHTLY)
# Ratio columns: key -> reference variant (the row's images/s over the reference's, per round).
REFERENCES = {"vs_ijepa": "ijepa", "vs_official": OFFICIAL, "vs_official_bf16": OFFICIAL_BF16,
              "vs_lightly": "lightly_timm", "vs_lightly_tv": "lightly_tv"}
OFFICIAL_GOAL, VICREG_GOAL_PCT = 1.3, 3.0  # issue 14: ours >= 1.3x official; pred_blocks <= 3 % slower
# --dry-run: every chosen variant at toy sizes, one step per round, two rounds (the plumbing only).
DRY_RUN = ["model.embed_dim=32", "model.depth=1", "model.num_heads=2", "model.pred_embed_dim=16",
           "model.pred_depth=1"]


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="cjepa YAML config")
    p.add_argument("override", nargs="*", help="dotted overrides, e.g. model.depth=6")
    p.add_argument("--batch-size", type=int, default=0, help="0: the config's optim.batch_size")
    p.add_argument("--steps", type=int, default=10, help="timed steps per variant per round")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps per variant before the rounds")
    p.add_argument("--repeats", type=int, default=15, help="rounds (each times every variant once)")
    p.add_argument("--batches", type=int, default=20, help="distinct prepared batches, cycled")
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads for every variant")
    p.add_argument("--variants", default=",".join(DEFAULT_VARIANTS),
                   help=f"comma list from {', '.join(ALL_VARIANTS)}; 'all' for every one")
    p.add_argument("--ijepa-src", type=Path, default=os.environ.get(IJEPA_ENV) or None,
                   help=f"a local clone of facebookresearch/ijepa for the {OFFICIAL} variants (default ${IJEPA_ENV})")
    p.add_argument("--data", choices=("random", "fashion_mnist"), default="random",
                   help="random normal images, or real Fashion-MNIST training crops")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-lightly", action="store_true", help="skip the lightly variants (no re-exec)")
    p.add_argument("--breakdown", action="store_true",
                   help="also time the VICReg (pred_blocks) parts of the step in isolation")
    p.add_argument("--profile", type=Path, default=None,
                   help="also write torch.profiler op tables of --steps steps per variant into this folder")
    p.add_argument("--dry-run", action="store_true",
                   help="toy model, batch 8, 1 step x 2 rounds: checks that every variant runs, measures nothing")
    p.add_argument("--json", type=Path, default=None, help="write all numbers and metadata here")
    p.add_argument("--report", type=Path, default=None,
                   help="re-summarise the rounds saved by an earlier --json run (no measuring)")
    args = p.parse_args(argv)
    if args.dry_run:
        args.override = [*args.override, *DRY_RUN]
        args.batch_size, args.steps, args.warmup, args.repeats, args.batches = 8, 1, 0, 2, 2
    return args


def maybe_reexec(names: Sequence[str], argv: Sequence[str]) -> str | None:
    """Run under the lightly venv when lightly variants are asked for and this python lacks lightly;
    a note when they must be skipped (None when they can run)."""
    if not any(v in LIGHTLY for v in names) or importlib.util.find_spec("lightly") is not None:
        return None
    if VENV_PYTHON.exists() and not os.environ.get(REEXEC_ENV):
        print(f"[step_throughput] lightly is not importable here; re-running under {VENV_PYTHON}", flush=True)
        os.execve(str(VENV_PYTHON), [str(VENV_PYTHON), str(Path(__file__).resolve()), *argv],
                  {**os.environ, REEXEC_ENV: "1"})
    return (f"lightly is not importable (and {VENV_PYTHON} is missing or lacks it): the lightly variants are "
            f"skipped. To compare against lightly, create the venv: {VENV_HINT}")


def choose_variants(args: argparse.Namespace, argv: Sequence[str]) -> tuple[tuple[str, ...], list[str]]:
    """The variants that will run, and notes on those that cannot (no lightly, no ijepa clone)."""
    names = ALL_VARIANTS if args.variants == "all" else tuple(v.strip() for v in args.variants.split(",") if v)
    unknown = [v for v in names if v not in ALL_VARIANTS]
    if unknown:
        raise SystemExit(f"unknown variant(s) {', '.join(unknown)}; choose from {', '.join(ALL_VARIANTS)}")
    if args.no_lightly:
        names = tuple(v for v in names if v not in LIGHTLY)
    notes = [note] if (note := maybe_reexec(names, argv)) else []
    if notes:
        names = tuple(v for v in names if v not in LIGHTLY)
    if {OFFICIAL, OFFICIAL_BF16} & set(names) and args.ijepa_src is None:
        notes.append(f"no --ijepa-src (or ${IJEPA_ENV}): the {OFFICIAL} variants are skipped. To compare against "
                     "the official code: git clone https://github.com/facebookresearch/ijepa DIR; --ijepa-src DIR")
        names = tuple(v for v in names if v not in (OFFICIAL, OFFICIAL_BF16))
    return names, notes


def build(name: str, args: argparse.Namespace) -> Variant:
    """The variant ``name`` at the benchmark's config, overrides, batch size and seed."""
    common: tuple[Any, ...] = (args.config, args.override, args.batch_size, args.seed)
    if name in OURS or name in LEVERS:
        return build_ours(name, *common)
    if name in (OFFICIAL, OFFICIAL_BF16):
        from cjepa.benchmarking.official_ijepa import build_official

        return build_official(args.ijepa_src, *common, bf16=name == OFFICIAL_BF16)
    from cjepa.benchmarking import lightly_ijepa

    return getattr(lightly_ijepa, f"build_{name}")(*common)


def table(summary: dict[str, dict[str, Any]], variants: list[Variant]) -> str:
    """Markdown table: one row per variant, a ratio column per reference that ran."""
    refs = [(key, ref) for key, ref in REFERENCES.items() if ref in summary]
    rows = ["| variant | impl | trainable params | img/s median [min-max] | "
            + " | ".join(f"ratio vs {ref} [min-max]" for _, ref in refs) + " |", "|" + "---|" * (4 + len(refs))]
    for v in variants:
        s = summary[v.name]
        cells = " | ".join(timing.cell(s.get(key), 3) for key, _ in refs)
        rows.append(f"| {v.name} | {v.impl} | {v.trainable_params:,} | {timing.cell(s)} | {cells} |")
    return "\n".join(rows)


def _goal(r: dict[str, Any], goal: float) -> str:
    lo, hi = r["ci95"]
    return ("met" if lo >= goal else "MISSED" if hi < goal
            else f"not resolved (median {'above' if r['median'] >= goal else 'below'} {goal:g})")


def verdict(summary: dict[str, dict[str, Any]]) -> list[str]:
    """The goals, read from the per-round ratios: "met" when the whole 95 % CI of the median ratio
    satisfies a goal, "MISSED" when it violates it, "not resolved" (and the median's side) otherwise."""
    lines = []
    c = summary.get("cjepa", {}).get("vs_ijepa")
    if c is not None:  # step-time overhead: 1/ratio - 1, so the ratio's high end is the overhead's low end
        over, (lo, hi) = 100 * (1 / c["median"] - 1), (100 * (1 / r - 1) for r in reversed(c["ci95"]))
        ok = ("met" if hi <= VICREG_GOAL_PCT else "MISSED" if lo > VICREG_GOAL_PCT
              else f"not resolved (median {'within' if over <= VICREG_GOAL_PCT else 'above'} the goal)")
        lines.append(f"VICReg (pred_blocks) step-time overhead vs I-JEPA: {over:+.1f} % (95 % CI {lo:+.1f} .. "
                     f"{hi:+.1f} %, range of rounds {100 * (1 / c['hi'] - 1):+.1f} .. {100 * (1 / c['lo'] - 1):+.1f} "
                     f"%); goal <= {VICREG_GOAL_PCT:g} %: {ok}")
    for row, key, goal in (("ijepa", "vs_official", OFFICIAL_GOAL), ("ijepa_bf16", "vs_official_bf16", OFFICIAL_GOAL),
                           ("ijepa", "vs_lightly", 1.0), ("ijepa", "vs_lightly_tv", 1.0)):
        r = summary.get(row, {}).get(key)
        if r is not None:
            name = "I-JEPA" + (" bf16" if row.endswith("bf16") else "")
            lines.append(f"our {name} / {REFERENCES[key]} (equal precision): {r['median']:.3f}x (95 % CI "
                         f"{r['ci95'][0]:.3f} .. {r['ci95'][1]:.3f}, range of rounds {r['lo']:.3f} .. {r['hi']:.3f}); "
                         f"goal >= {goal:g}: {_goal(r, goal)}")
    return lines


def report(path: Path) -> int:
    """Print the table and verdict of a saved run, recomputed from its per-round images/s."""
    saved = json.loads(path.read_text())
    summary = timing.summarise({name: row["rounds"] for name, row in saved["summary"].items()}, REFERENCES)
    variants = [Variant(name, v["impl"], lambda b: None, v["trainable_params"], v["notes"])
                for name, v in saved["variants"].items()]
    for k, v in saved["meta"].items():
        print(f"{k}: {v}")
    print(f"\n{table(summary, variants)}\n\n" + "\n".join(verdict(summary)))
    for k, v in saved.get("vicreg_breakdown_ms", {}).items():
        print(f"  {k:34s} {v:8.2f}")
    return 0


def prepare(args: argparse.Namespace, names: Sequence[str]) -> tuple[list[Batch], list[Variant]]:
    """The shared batches (masks of steps 0..batches-1) and every variant, built before any timing."""
    from cjepa.config import load_config

    batches = make_batches(load_config(args.config, list(args.override)), args.batch_size, args.batches,
                           args.data, args.seed)
    kc, kt = sorted({b.context.shape[1] for b in batches}), sorted({b.targets.shape[2] for b in batches})
    print(f"masks: {batches[0].targets.shape[0]} targets, context tokens {kc[0]}-{kc[-1]}, "
          f"target tokens {kt[0]}-{kt[-1]} per block (over {len(batches)} batches)")
    variants = [build(n, args) for n in names]
    for v in variants:
        print(f"  {v.name:22s} {v.impl:8s} {v.trainable_params:>9,} trainable params  {v.notes}")
    return batches, variants


def measure(args: argparse.Namespace, batches: list[Batch], variants: list[Variant]) -> dict[str, list[float]]:
    """Images/s per variant per round (interleaved rounds of ``--steps`` steps, after ``--warmup``)."""
    for v in variants:  # warm-up: allocator, autograd graph caches, AdamW state creation
        for i in range(args.warmup):
            v.step(batches[i % len(batches)])

    def timed(v: Variant):
        def run(r: int) -> float:
            go = [batches[(r * args.steps + i) % len(batches)] for i in range(args.steps)]
            return args.steps * args.batch_size / timing.seconds(lambda: [v.step(b) for b in go])
        return run

    return timing.interleaved({v.name: timed(v) for v in variants}, args.repeats,
                              lambda s: print(s, flush=True), " img/s")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.report:
        return report(args.report)
    names, notes = choose_variants(args, argv)
    for note in notes:
        print(f"[step_throughput] NOTE: {note}", flush=True)
    torch.set_num_threads(args.threads)
    if args.batch_size <= 0:
        from cjepa.config import load_config

        args.batch_size = load_config(args.config, list(args.override)).optim.batch_size
    meta = {"command": "python bench/step_throughput.py " + " ".join(argv), **machine_info(("lightly",)), **vars(args),
            "variants": list(names), "note": " | ".join(notes) or None}
    print(machine_line(meta))
    batches, variants = prepare(args, names)
    summary = timing.summarise(measure(args, batches, variants), REFERENCES)
    lines = verdict(summary)
    print(f"\n{table(summary, variants)}\n\n" + "\n".join(lines))
    result: dict[str, Any] = {"meta": meta, "summary": summary, "verdict": lines,
                              "variants": {v.name: {"impl": v.impl, "trainable_params": v.trainable_params,
                                                    "notes": v.notes} for v in variants}}
    if args.breakdown:
        result.update(breakdown.report(args, batches, summary))
    if args.profile:
        breakdown.profile_variants(variants, batches, args.steps, args.profile)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2, default=str))
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
