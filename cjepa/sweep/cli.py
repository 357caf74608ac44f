"""The command line every study script in ``sweeps/`` shares.

``--quick`` (default) runs the embedded setup: local Ray, the local MLflow store, Fashion-MNIST
and the CPU-size ViT of ``configs/cjepa_fmnist_quick.yaml``; ``--full`` runs the paper-scale
preset on a cluster (``RAY_ADDRESS``, ``--storage`` on shared storage, ``--tracking-uri`` to
the head node's MLflow server). Anything the study does not fix can be overridden with
``key=value`` arguments, exactly as for ``cjepa train``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from cjepa.errors import CJepaError
from cjepa.sweep.study import Study


def parse_args(description: str, argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    scale = p.add_mutually_exclusive_group()
    scale.add_argument("--quick", dest="full", action="store_false",
                       help="laptop scale (default): Fashion-MNIST, CPU-size ViT, minutes on 2 cores")
    scale.add_argument("--full", dest="full", action="store_true", help="paper scale, for a GPU cluster")
    p.set_defaults(full=False)
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted study (finished trials are not run again)")
    p.add_argument("--storage", help="where trials and checkpoints go (default ./ray_results; "
                                     "a shared path or s3:// on a cluster)")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, "
                                          "else sqlite ./mlflow.db)")
    p.add_argument("--no-mlflow", action="store_true", help="do not log to MLflow")
    p.add_argument("--seeds", type=int, nargs="+", help="seeds (paired across arms)")
    p.add_argument("--max-concurrent", type=int, help="trials in parallel")
    p.add_argument("--workers-per-trial", type=int, help="Ray Train workers per trial")
    p.add_argument("--use-gpu", action="store_true", help="GPU workers (NCCL, bf16 autocast)")
    p.add_argument("--dry-run", action="store_true", help="validate and list the trials; do not start Ray")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides for every trial")
    return p.parse_args(argv)


def apply_args(study: Study, args: argparse.Namespace) -> Study:
    if args.seeds:
        study.seeds = tuple(args.seeds)
    if args.max_concurrent:
        study.max_concurrent = args.max_concurrent
    if args.workers_per_trial:
        study.workers_per_trial = args.workers_per_trial
    if args.use_gpu:
        study.use_gpu = True
    return study


def main(make_study: Callable[[bool], Study], description: str, argv: list[str] | None = None) -> int:
    """Parse arguments, build the study (``make_study(full)``), validate, run, summarise."""
    args = parse_args(description, argv)
    try:
        study = apply_args(make_study(args.full), args)
        if args.dry_run:
            from cjepa.sweep.study import validate_study

            arms = validate_study(study, args.overrides)
            print(f"study {study.name}: {len(arms)} arms x {len(study.seeds)} seeds "
                  f"({study.search}, scheduler {study.scheduler})")
            for name in arms:
                print(f"  {name}")
            return 0
        from cjepa.sweep.runner import run_study

        run_study(study, storage=args.storage, resume=args.resume, tracking_uri=args.tracking_uri,
                  extra=args.overrides, mlflow=not args.no_mlflow)
        return 0
    except CJepaError as exc:
        print(f"{sys.argv[0]}: error: {exc}", file=sys.stderr)
        return 2
