"""The command line every study script in ``sweeps/`` shares.

``--quick`` (default) runs the embedded setup: local Ray, the local MLflow store, Fashion-MNIST
and the CPU-size ViT of ``configs/cjepa_fmnist_quick.yaml``; ``--full`` runs the paper-scale
preset on a cluster (``RAY_ADDRESS``, ``--storage`` on shared storage, ``--tracking-uri`` to
the head node's MLflow server). Anything the study does not fix can be overridden with
``key=value`` arguments, exactly as for ``cjepa train``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from cjepa.errors import OVERRIDES_METAVAR, ArgumentParser, CJepaError
from cjepa.sweep.study import Study

if TYPE_CHECKING:
    from cjepa.sweep.plan import StudyPlan

EPILOG = """\
examples (every script in sweeps/ takes the same options):
  python sweeps/vicreg_coeff.py --dry-run         # validate and list the trials; Ray is not started
  python sweeps/vicreg_coeff.py --seeds 0 run.epochs=2
  python sweeps/vicreg_coeff.py --resume          # after an interruption: only unfinished trials run
  cjepa report --study ray_results/vicreg_coeff   # HTML report and ablation table of the study
"""


def _nonempty(text: str) -> str:
    """An argparse type: an empty --storage/--tracking-uri would silently mean the default."""
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty (leave the flag out for the default)")
    return text


def parse_args(description: str, argv: list[str] | None = None) -> argparse.Namespace:
    p = ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG)
    scale = p.add_mutually_exclusive_group()
    scale.add_argument("--quick", dest="full", action="store_false",
                       help="laptop scale (default): Fashion-MNIST, CPU-size ViT, minutes on 2 cores")
    scale.add_argument("--full", dest="full", action="store_true", help="paper scale, for a GPU cluster")
    p.set_defaults(full=False)
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted or finished study (finished trials are not run again); "
                        "without it, a study whose storage already holds results is refused")
    p.add_argument("--extend", action="store_true",
                   help="add new levels or seeds (edit the study, or pass --seeds) to a finished study: only the "
                        "(arm, seed) trials its results.parquet does not hold run, under the same MLflow parent; "
                        "the summary, table and report then cover all of them")
    p.add_argument("--name", type=_nonempty, help="run the study under another name (a new folder under "
                                                  "--storage and a new MLflow experiment)")
    p.add_argument("--storage", type=_nonempty, metavar="DIR|URI",
                   help="where trials and checkpoints go (default ./ray_results; a shared path or s3:// on a cluster)")
    p.add_argument("--tracking-uri", type=_nonempty, metavar="URI",
                   help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite ./mlflow.db)")
    p.add_argument("--no-mlflow", action="store_true", help="do not log to MLflow")
    p.add_argument("--seeds", type=int, nargs="+", metavar="SEED",
                   help="seeds (paired across arms; distinct, >= 0; default: the study's)")
    p.add_argument("--max-concurrent", type=int, metavar="N", help="trials in parallel (>= 1; default: the study's)")
    p.add_argument("--workers-per-trial", type=int, metavar="N",
                   help="Ray Train workers per trial (>= 1; default: the study's)")
    p.add_argument("--use-gpu", action="store_true", help="GPU workers (NCCL, bf16 autocast)")
    p.add_argument("--address", type=_nonempty, metavar="HOST:PORT",
                   help="the Ray cluster to run on (default: $RAY_ADDRESS, else a local Ray); checked in 5 s")
    p.add_argument("--trial-runner", choices=("auto", "actor", "ray_train"), default=None,
                   help="where a trial trains: in Tune's trial actor (one CPU worker; no Ray Train processes "
                        "to start) or in Ray Train workers; auto (default): actor for one CPU worker per trial")
    p.add_argument("--verbose", action="store_true",
                   help="Ray Tune's whole console output (every trial's metrics, step and checkpoint lines, Ray's "
                        "own lines); default: a table of arm, seed, epoch and the probe accuracies with the study's "
                        "ETA, and one line per finished trial")
    p.add_argument("--dry-run", action="store_true",
                   help="validate (study, storage, earlier results) and list the trials; do not start Ray")
    p.add_argument("overrides", nargs="*", metavar=OVERRIDES_METAVAR,
                   help="config overrides for every trial, as for cjepa train (e.g. run.epochs=2)")
    args = p.parse_args(argv)
    if args.no_mlflow and args.tracking_uri:
        p.error("--tracking-uri and --no-mlflow contradict each other; give one")
    return args


def apply_args(study: Study, args: argparse.Namespace) -> Study:
    """The study with the command line's flags (a new Study; the one given is not changed). ``is not None``,
    not truthiness: ``--max-concurrent 0`` must reach validation (and be refused there), not be ignored."""
    changes: dict[str, Any] = {key: getattr(args, key) for key in ("name", "max_concurrent", "workers_per_trial",
                                                                    "trial_runner") if getattr(args, key) is not None}
    if args.seeds is not None:
        changes["seeds"] = tuple(args.seeds)
    if args.use_gpu:
        changes["use_gpu"] = True
    return replace(study, **changes)


def dry_run(plan: StudyPlan) -> None:
    """What ``--dry-run`` prints: the planned study's arms and seeds, and the trials an extension adds."""
    study = plan.study
    print(f"study {study.name}: {len(plan.arms)} arms x {len(study.seeds)} seeds "
          f"({study.search}, scheduler {study.scheduler}) in {plan.study_dir}")
    for name in plan.arms:
        print(f"  {name}")
    if plan.only is not None:
        print(f"--extend runs {len(plan.only)} new trials: " + (", ".join(f"{a} s{s}" for a, s in plan.only) or "none"))


def main(make_study: Callable[[bool], Study], description: str, argv: list[str] | None = None) -> int:
    """Parse arguments, build the study (``make_study(full)``), validate, run, summarise."""
    args = parse_args(description, argv)
    try:
        study = apply_args(make_study(args.full), args)
        if args.dry_run:
            from cjepa.sweep.plan import prepare_study

            dry_run(prepare_study(study, args.storage, args.resume, args.overrides, extend=args.extend))
            return 0
        from cjepa.sweep.runner import run_study

        if args.address:  # where Ray reads it (connect_ray, and the trials' own processes)
            os.environ["RAY_ADDRESS"] = args.address
        run_study(study, storage=args.storage, resume=args.resume, tracking_uri=args.tracking_uri,
                  extra=args.overrides, mlflow=not args.no_mlflow, verbose=args.verbose, extend=args.extend)
        return 0
    except CJepaError as exc:
        print(f"{sys.argv[0]}: error: {exc}", file=sys.stderr)
        return 2
