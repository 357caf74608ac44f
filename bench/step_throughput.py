"""Training-step throughput: C-JEPA vs our I-JEPA vs the official I-JEPA code vs ``lightly``'s.

Why this exists: C-JEPA's selling point is "I-JEPA plus a cheap regulariser". The default
``pred_blocks`` VICReg reading adds a projector on M*B pooled vectors and a few batch statistics,
which should cost almost nothing next to the encoders; this benchmark checks that claim (goal:
<= 3 % slower than I-JEPA at identical settings) and checks our I-JEPA step against the code the
paper's numbers came from (facebookresearch/ijepa, goal >= 1.3x, issue 14) and against lightly's,
so that a comparison of *methods* is not confounded by a slow *implementation*.

What one "step" is, for every variant: target-encoder forward on the full image (no grad),
context-encoder + predictor forward, loss, backward, AdamW step, EMA update of the target.
Everything that is not the step (data loading, augmentation, mask drawing) is prepared before the
clock starts, and every variant consumes the *same* batches: the same images (random normal
tensors by default, or real Fashion-MNIST crops with ``--data fashion_mnist``) and the same
multi-block mask index tensors from ``cjepa.masks.MultiBlockMaskGenerator``.

Measurement (bench/step_stats.py): all variants live in one process with a fixed torch thread
count; each round times ``--steps`` steps of every variant in a rotated order, and ratios are
computed per round. The official I-JEPA modules are imported from a local clone given by
``--ijepa-src DIR`` (or ``$CJEPA_IJEPA_SRC``; bench/step_official.py), never vendored. lightly runs
from a separate venv (``bench/.venv-lightly``, bench/README.md): started with a python that cannot
import lightly, this script re-executes itself under that venv's python when it exists.

Run ``python bench/step_throughput.py --help`` for the options.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import os
import platform
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/ is not a package

from step_breakdown import profile_variants, vicreg_breakdown  # noqa: E402
from step_data import Batch, Variant, make_batches  # noqa: E402,F401  (make_batches: bench/gpu_check_step.py)
from step_stats import run_rounds, summarise, table, verdict  # noqa: E402
from step_variants import ALL_VARIANTS, DEFAULT_VARIANTS, LIGHTLY, OFFICIAL, OFFICIAL_BF16, build  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = REPO / "configs" / "cjepa_fmnist_cpu.yaml"
VENV = REPO / "bench" / ".venv-lightly"
VENV_PYTHON = VENV / "bin" / "python"
REEXEC_ENV = "CJEPA_BENCH_REEXECUTED"
IJEPA_ENV = "CJEPA_IJEPA_SRC"
VENV_HINT = (f"python -m venv --system-site-packages {VENV.relative_to(REPO)} && "
             f"{VENV.relative_to(REPO)}/bin/pip install -r bench/requirements-lightly.txt")
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
                   help=f"a local clone of facebookresearch/ijepa for the {OFFICIAL} variant (default ${IJEPA_ENV})")
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


def _lightly_available() -> bool:
    return importlib.util.find_spec("lightly") is not None


def maybe_reexec(args: argparse.Namespace, argv: Sequence[str]) -> str | None:
    """Run under the lightly venv when lightly variants are asked for and this python lacks lightly.

    Returns a note when the lightly variants must be skipped (None when they can run).
    """
    wants = any(v in LIGHTLY for v in args.variants)
    if not wants or _lightly_available():
        return None
    if VENV_PYTHON.exists() and not os.environ.get(REEXEC_ENV):
        print(f"[step_throughput] lightly is not importable here; re-running under {VENV_PYTHON}", flush=True)
        env = {**os.environ, REEXEC_ENV: "1"}
        os.execve(str(VENV_PYTHON), [str(VENV_PYTHON), str(Path(__file__).resolve()), *argv], env)
    return (f"lightly is not importable (and {VENV_PYTHON} is missing or lacks it): the lightly variants are "
            f"skipped. To compare against lightly, create the venv from the repository root:\n    {VENV_HINT}")


def choose_variants(args: argparse.Namespace, argv: Sequence[str]) -> tuple[tuple[str, ...], list[str]]:
    """The variants that will run, and notes on those that cannot (no lightly, no ijepa clone)."""
    names = ALL_VARIANTS if args.variants == "all" else tuple(v.strip() for v in args.variants.split(",") if v)
    unknown = [v for v in names if v not in ALL_VARIANTS]
    if unknown:
        raise SystemExit(f"unknown variant(s) {', '.join(unknown)}; choose from {', '.join(ALL_VARIANTS)}")
    if args.no_lightly:
        names = tuple(v for v in names if v not in LIGHTLY)
    args.variants = names
    notes = []
    note = maybe_reexec(args, argv)
    if note:
        notes.append(note)
        names = tuple(v for v in names if v not in LIGHTLY)
    if {OFFICIAL, OFFICIAL_BF16} & set(names) and args.ijepa_src is None:
        notes.append(f"no --ijepa-src (or ${IJEPA_ENV}): the {OFFICIAL} variants are skipped. To compare against "
                     "the official code: git clone https://github.com/facebookresearch/ijepa DIR; --ijepa-src DIR")
        names = tuple(v for v in names if v not in (OFFICIAL, OFFICIAL_BF16))
    return names, notes


def machine() -> dict[str, Any]:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "logical_cpus": os.cpu_count(), "python": platform.python_version(),
            "torch": torch.__version__, "platform": platform.platform(), "loadavg_at_start": _loadavg()}


def _loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def report(path: Path) -> int:
    """Print the table and verdict of a saved run, recomputed from its per-round images/s."""
    saved = json.loads(path.read_text())
    ips = {name: row["rounds"] for name, row in saved["summary"].items()}
    variants = [Variant(name, v["impl"], lambda b: None, v["trainable_params"], v["notes"])
                for name, v in saved["variants"].items()]
    for k, v in saved["meta"].items():
        print(f"{k}: {v}")
    summary = summarise(ips)
    print()
    print(table(summary, variants))
    print()
    print("\n".join(verdict(summary)))
    for k, v in saved.get("vicreg_breakdown_ms", {}).items():
        print(f"  {k:34s} {v:8.2f}")
    return 0


def metadata(args: argparse.Namespace, argv: Sequence[str], names: Sequence[str], notes: list[str]) -> dict[str, Any]:
    """What a reader needs to trust or redo the numbers: command, machine, versions, settings."""
    import timm

    meta = {"date_utc": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "command": "python bench/step_throughput.py " + " ".join(argv),
            "torch_threads": torch.get_num_threads(), "batch_size": args.batch_size, "steps": args.steps,
            "warmup": args.warmup, "repeats": args.repeats, "data": args.data, "config": str(args.config),
            "overrides": list(args.override), "variants": list(names), **machine(), "timm": timm.__version__}
    if any(v in LIGHTLY for v in names):
        import lightly

        meta["lightly"] = lightly.__version__
    if {OFFICIAL, OFFICIAL_BF16} & set(names):
        meta["ijepa_src"] = str(args.ijepa_src)
    if notes:
        meta["note"] = " | ".join(notes)
    for k in ("date_utc", "cpu", "logical_cpus", "loadavg_at_start", "torch", "timm", "lightly", "ijepa_src",
              "torch_threads", "batch_size", "data"):
        if k in meta:
            print(f"{k}: {meta[k]}")
    return meta


def prepare(args: argparse.Namespace, names: Sequence[str]) -> tuple[list[Batch], list[Variant]]:
    """The shared batches (masks of steps 0..batches-1) and every variant, built before any timing."""
    from cjepa.config import load_config

    base = load_config(args.config, list(args.override))
    batches = make_batches(base, args.batch_size, args.batches, args.data, args.seed)
    kc = sorted({b.context.shape[1] for b in batches})
    kt = sorted({b.targets.shape[2] for b in batches})
    print(f"masks: {batches[0].targets.shape[0]} targets, context tokens {kc[0]}-{kc[-1]}, "
          f"target tokens {kt[0]}-{kt[-1]} per block (over {len(batches)} batches)")
    variants = [build(n, args) for n in names]
    for v in variants:
        print(f"  {v.name:22s} {v.impl:8s} {v.trainable_params:>9,} trainable params  {v.notes}")
    return batches, variants


def extras(args: argparse.Namespace, batches: list[Batch], variants: list[Variant],
           summary: dict[str, dict[str, Any]], result: dict[str, Any]) -> None:
    """--breakdown and --profile: attribution, after (and apart from) the timed rounds."""
    if args.breakdown:
        bd = vicreg_breakdown(args, batches, reps=max(5, args.repeats))
        result["vicreg_breakdown_ms"] = bd
        print("\nVICReg (pred_blocks) parts in isolation, median ms:")
        for k, v in bd.items():
            print(f"  {k:34s} {v:8.2f}")
        if "ijepa" in summary:
            step_ms = 1000 * args.batch_size / summary["ijepa"]["median"]
            print(f"  (our I-JEPA step: {step_ms:.1f} ms)")
            result["ijepa_step_ms"] = step_ms
    if args.profile:
        profile_variants(variants, batches, args.steps, args.profile)


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
    meta = metadata(args, argv, names, notes)
    batches, variants = prepare(args, names)
    ips = run_rounds(variants, batches, args.steps, args.warmup, args.repeats, args.batch_size,
                     lambda s: print(s, flush=True))
    summary = summarise(ips)
    print(f"\n{table(summary, variants)}\n")
    lines = verdict(summary)
    print("\n".join(lines))
    result: dict[str, Any] = {"meta": meta, "summary": summary, "verdict": lines,
                              "variants": {v.name: {"impl": v.impl, "trainable_params": v.trainable_params,
                                                    "notes": v.notes} for v in variants}}
    extras(args, batches, variants, summary, result)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
