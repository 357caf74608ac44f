"""``cjepa train --workers N``: the CLI's side of the Ray Train layer (kept here so cli.py stays small)."""

from __future__ import annotations

import argparse
import math
import os

from cjepa.config import Config
from cjepa.errors import DistributedError


def add_distributed_args(p: argparse.ArgumentParser) -> None:
    """The ``train`` flags that switch to Ray Train; without ``--workers`` training stays in-process."""
    g = p.add_argument_group("distributed (Ray Train; the cluster at $RAY_ADDRESS, else a local Ray)")
    g.add_argument("--workers", type=int, metavar="N",
                   help="data-parallel workers (DDP over gloo, NCCL with --use-gpu); optim.batch_size stays "
                        "the global batch and must be divisible by N")
    g.add_argument("--use-gpu", action="store_true", help="one GPU per worker, NCCL backend")
    g.add_argument("--gpus-per-worker", type=float, metavar="G",
                   help="GPUs per worker (implies --use-gpu; fractions share a GPU)")
    g.add_argument("--storage", metavar="PATH|URI",
                   help="checkpoint storage (default: ./ray_results; a shared path or s3:// URI on a cluster)")
    g.add_argument("--max-failures", type=int, default=0, metavar="K",
                   help="restart the workers from the latest checkpoint up to K times (-1: always; default 0)")
    g.add_argument("--address", metavar="HOST:PORT",
                   help="the Ray cluster to run on (default: $RAY_ADDRESS, else a local Ray); checked in 5 s")


def check_flags(args: argparse.Namespace) -> None:
    """The distributed flags' own ranges, checked before Ray is imported or started.

    Why here: ``fit_distributed`` checked ``--max-failures`` only after importing Ray, and a
    negative or non-finite ``--gpus-per-worker`` reached ``ray.init`` and the placement check.
    """
    if args.workers is None:
        if getattr(args, "address", None):
            raise DistributedError("--address names the Ray cluster of --workers N; without --workers training "
                                   "runs in this process")
        return
    if args.workers < 1:
        raise DistributedError(f"--workers must be >= 1, got {args.workers}")
    if args.max_failures < -1:
        raise DistributedError(f"--max-failures must be >= 0 (or -1 for unlimited), got {args.max_failures}")
    gpus = args.gpus_per_worker
    if gpus is not None and not (math.isfinite(gpus) and gpus > 0):
        raise DistributedError(f"--gpus-per-worker must be a finite number > 0 (fractions share a GPU), got {gpus:g}")


def use_ray_address(args: argparse.Namespace) -> None:
    """``--address`` wins over ``$RAY_ADDRESS`` (set in the environment: Ray and its workers read it
    there); then the address is probed, so a cluster that is not there costs seconds, not minutes."""
    from cjepa.distributed.preflight import check_ray_address

    if getattr(args, "address", None):
        os.environ["RAY_ADDRESS"] = args.address
    check_ray_address()


def train_distributed(cfg: Config, args: argparse.Namespace, tracking_uri: str | None) -> int:
    """Run ``cfg`` through :func:`fit_distributed`; MLflow (if not ``--no-mlflow``) goes to rank 0."""
    from cjepa.distributed.preflight import check_split, resolve_storage

    check_flags(args)  # the cheap checks first: a mistake costs no torch/Ray import
    check_split(cfg, args.workers)
    storage = resolve_storage(args.storage)
    from cjepa.distributed.ray_trainer import fit_distributed

    use_gpu = bool(args.use_gpu or args.gpus_per_worker)
    resources = {"GPU": args.gpus_per_worker} if args.gpus_per_worker else None
    tracking = None
    if tracking_uri is not None:
        tracking = {"tracking_uri": tracking_uri, "experiment": getattr(args, "experiment", "cjepa"),
                    "run_name": getattr(args, "run_name", None)}
    result = fit_distributed(cfg, args.workers, use_gpu=use_gpu, resources_per_worker=resources,
                             storage_path=storage, max_failures=args.max_failures, tracking=tracking)
    epoch = int(result.metrics.get("epoch", 0)) if result.metrics else 0
    print(f"[cjepa] finished {epoch} epoch(s) on {args.workers} workers; checkpoints in {result.path}; "
          f"metrics in {cfg.run.output_dir}/metrics.jsonl")
    return 0
