"""Ray Train (V2) around the plain engine: ``fit_distributed`` runs ``cjepa.engine.train`` in N workers.

Why Ray Train and not ``torchrun``: Ray places the workers (one machine or a cluster), sets up
the torch.distributed group (``TorchConfig``), keeps checkpoints in one storage path, and
restarts the worker group from the latest one after a crash (``FailureConfig``). The engine
already knows DDP (global-batch BatchNorm, global-batch slices, gathered VICReg statistics,
rank-0 evaluation and checkpoints), so the worker loop only wires Ray to it:

* one resume mechanism: Ray's latest checkpoint holds the engine's ``checkpoint.pt``; a worker
  copies it into a fresh worker-local run dir and the engine's own exact resume takes over;
* :class:`~cjepa.distributed.RayReporter` on every rank reports each epoch (Train V2 needs every
  worker to report), rank 0 attaching the checkpoint; rank 0 also gets console, metrics.jsonl,
  live ``ray.util.metrics`` gauges for Grafana (:class:`~cjepa.distributed.metrics.RayMetricsReporter`)
  and, with ``tracking``, an MLflow run that a restart continues (its id is in the checkpoint);
* the experiment name is a function of the settings a resume must keep, so re-running the
  same command resumes (Train V2 restores from ``storage_path/name`` by itself).

Backends: gloo on CPU, NCCL with ``use_gpu``. gloo picks a network interface from the hostname;
where that maps to a loopback address (e.g. ``127.0.1.1`` on Debian/Ubuntu) workers on other
hosts cannot connect: export ``GLOO_SOCKET_IFNAME=<interface>`` (e.g. ``eth0``) on every node
(``NCCL_SOCKET_IFNAME`` likewise for NCCL) before starting Ray there.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import logging
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cjepa.config import Config
from cjepa.distributed.metrics import RayMetricsReporter
from cjepa.distributed.preflight import (
    check_placement,
    check_split,
    connect_ray,
    resolve_storage,
    worker_resources,
)
from cjepa.distributed.ray_checkpoints import copy_previous_checkpoint
from cjepa.distributed.reporter import RayReporter
from cjepa.engine.checkpoint import RESUME_FREE_KEYS, RESUME_SECTIONS
from cjepa.engine.reporting import Reporter
from cjepa.errors import CJepaError, DistributedError

if TYPE_CHECKING:
    from ray.train import Result

#: A picklable ``rank -> reporters`` factory run inside each worker (tests, the Tune layer).
ReporterFactory = Callable[[int], list[Reporter]]


def experiment_name(cfg: Config) -> str:
    """``<run.output_dir name>-<hash>``, the hash over exactly what ``check_compatible`` keeps fixed
    across a resume (model/mask/loss/ema/optim/data, run.epochs, run.seed): the same command
    resumes, a changed recipe starts a new experiment instead of being refused."""
    d = cfg.identity_dict()
    key = {s: {k: v for k, v in d[s].items() if f"{s}.{k}" not in RESUME_FREE_KEYS} for s in RESUME_SECTIONS}
    key["run"] = {"epochs": cfg.run.epochs, "seed": cfg.run.seed}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:10]
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(cfg.run.output_dir).name).strip("._") or "run"
    return f"{stem}-{digest}"


def absolute_paths(cfg: Config) -> Config:
    """Workers run in Ray's working directory, not the caller's: make relative paths absolute
    (data locations, and run.output_dir, which MLflow records as the run's name and directory)."""
    out = copy.deepcopy(cfg)
    out.run.output_dir = str(Path(out.run.output_dir).expanduser().resolve())
    for key in ("root", "cache_dir"):
        value = getattr(out.data, key)
        if value and not value.startswith("~") and "://" not in value and not Path(value).is_absolute():
            setattr(out.data, key, str(Path(value).resolve()))
    return out


def worker_run_dir(experiment: str, rank: int) -> Path:
    """The worker-local run dir: per rank, because every rank must load the resume checkpoint and
    two ranks on one node must not race over the same file; rank 0's is the real one."""
    return Path(tempfile.gettempdir()) / "cjepa-ray" / experiment / f"rank{rank}"


class _StdoutProxy:
    """Writes to the worker's ``sys.stdout`` without *being* it. Train V2 patches ``print``: for
    ``file=sys.stdout`` (a wrapper in Ray workers) it tees to the stream *and* to its logger, and
    both reach the driver, so each console line appeared twice; other files are printed once."""

    def write(self, text: str) -> int:
        return sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()


def _quiet_report_log() -> None:
    """Train V2 logs every ``ray.train.report`` at INFO with the whole metrics dict (~2 kB per
    epoch per worker, forwarded to the driver's console); rank 0's ConsoleReporter already prints
    a readable line. Its logger is private and named after its file, so this stays best-effort."""
    try:
        from ray.train.v2._internal.execution import context as train_context
    except ImportError:
        return
    logging.getLogger(train_context.__file__).setLevel(logging.WARNING)


def restore_run_dir(run_dir: Path, checkpoint: Any) -> None:
    """An empty ``run_dir`` holding the files of Ray's ``checkpoint`` (if any): Ray's checkpoint is
    the only truth, so a restart never sees a stale file of an earlier attempt."""
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    if checkpoint is not None:
        with checkpoint.as_directory() as src:
            for file in Path(src).iterdir():
                if file.is_file():
                    shutil.copy2(file, run_dir / file.name)
        copy_previous_checkpoint(checkpoint, run_dir)


def main_reporters(user_cfg: Config, tracking: dict[str, Any] | None, run_name: str | None = None) -> list[Reporter]:
    """Rank 0's reporters: console, metrics.jsonl, the MLflow run (with ``tracking``), Ray gauges
    labelled ``run_name`` (default: the Ray Train run's name). The scratch run dir is emptied at
    the end, so the console names where the files are copied."""
    from cjepa.engine import ConsoleReporter, JsonlReporter

    reporters: list[Reporter] = [ConsoleReporter(stream=_StdoutProxy(), destination=user_cfg.run.output_dir),
                                 JsonlReporter()]
    if tracking:
        from cjepa.tracking import MLflowReporter

        reporters.append(MLflowReporter(user_cfg, **tracking))
    reporters.append(RayMetricsReporter(run_name))  # live gauges for Grafana (no-op without a metrics agent)
    return reporters


def train_telling_reporters(cfg: Config, reporters: list[Reporter]) -> None:
    """``cjepa.engine.train``; on any exit by exception each reporter's ``on_failure`` hears of it
    first (e.g. the MLflow run is marked FAILED or KILLED; a restart sets it RUNNING again)."""
    from cjepa.engine import train

    try:
        train(cfg, reporters)
    except BaseException as exc:
        for r in reporters:
            if callable(getattr(r, "on_failure", None)):
                r.on_failure(exc)
        raise


def remove_run_dir(run_dir: Path) -> None:
    """Drop a finished scratch run dir and, once no other rank's is left, its experiment folder."""
    shutil.rmtree(run_dir, ignore_errors=True)
    with contextlib.suppress(OSError):
        run_dir.parent.rmdir()


def train_loop_per_worker(config: dict[str, Any]) -> None:
    """Body of every Ray Train worker: fresh run dir <- Ray checkpoint, then ``cjepa.engine.train``."""
    import ray.train

    _quiet_report_log()
    ctx = ray.train.get_context()
    rank = ctx.get_world_rank()
    # The driver validated this Config once and Ray pickled it once; it is used as it arrives.
    user_cfg: Config = config["cfg"]  # as given: MLflow's params, tags and run name come from it
    cfg = copy.deepcopy(user_cfg)
    run_dir = worker_run_dir(ctx.get_experiment_name(), rank)
    restore_run_dir(run_dir, ray.train.get_checkpoint())
    cfg.run.output_dir = str(run_dir)
    cfg.run.resume = True  # restarts after a failure must continue; fit_distributed handles resume=false

    reporters = main_reporters(user_cfg, config.get("tracking")) if rank == 0 else []
    factory: ReporterFactory | None = config.get("reporters")
    if factory is not None:
        reporters += factory(rank)
    reporters.append(RayReporter())  # last: report() waits for all ranks
    train_telling_reporters(cfg, reporters)
    remove_run_dir(run_dir)  # everything is in Ray storage (and exported by the driver)


def fit_distributed(cfg: Config, num_workers: int, use_gpu: bool = False,
                    resources_per_worker: dict[str, float] | None = None, storage_path: str | None = None,
                    name: str | None = None, max_failures: int = 0, tracking: dict[str, Any] | None = None,
                    placement_strategy: str = "PACK", reporters: ReporterFactory | None = None,
                    callbacks: list[Any] | None = None, export: bool = True) -> Result:
    """Train ``cfg`` data-parallel in ``num_workers`` Ray Train workers; returns Ray's ``Result``.

    ``optim.batch_size`` is the global batch (each worker takes ``batch_size / num_workers``).
    Ray connection: the running Ray instance, else ``RAY_ADDRESS``, else a new local cluster.
    Checkpoints go to ``storage_path/name/epoch_NNNN`` (default ``<cwd>/ray_results``; a shared
    path or ``s3://`` URI on a multi-node cluster), the last two kept. ``name`` defaults to
    :func:`experiment_name`, so the same call resumes; ``run.resume=false`` then starts a new,
    time-stamped experiment. ``max_failures`` restarts the worker group from the latest
    checkpoint that many times. ``tracking`` holds ``MLflowReporter`` keyword arguments
    (``tracking_uri`` required; ``experiment``, ``run_name``, ``parent_run_id``, ``tags``) for
    rank 0. ``reporters`` is a picklable ``rank -> list[Reporter]`` factory run in each worker;
    ``callbacks`` go to ``ray.train.RunConfig`` (in a Tune trial: ``TuneReportCallback()``, which
    forwards rank 0's per-epoch report, ``epoch`` included, to Tune).
    With ``export``, the final checkpoint's files (checkpoint.pt, metrics.jsonl, config.yaml)
    are copied to ``run.output_dir``, where the single-process tools look for them.

    Raises :class:`DistributedError` before any worker starts when the batch does not split,
    the storage cannot be written or the cluster can never place the workers, and when the
    run fails (naming a worker's :class:`~cjepa.errors.CJepaError` where there is one).
    """
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    check_split(cfg, num_workers)
    if max_failures < -1:
        raise DistributedError(f"--max-failures must be >= 0 (or -1 for unlimited), got {max_failures}")
    storage = resolve_storage(storage_path)
    if tracking:
        from cjepa.tracking import check_tracking_uri

        check_tracking_uri(tracking["tracking_uri"])
    connect_ray()
    per_worker = worker_resources(use_gpu, resources_per_worker)
    check_placement(num_workers, per_worker, placement_strategy)
    if name is None:  # an explicit name is the caller's restore key (e.g. a Tune trial's): kept as is
        name = experiment_name(cfg)
        if not cfg.run.resume:
            name = f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"

    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={"cfg": absolute_paths(cfg), "tracking": tracking, "reporters": reporters},
        torch_config=TorchConfig(backend="nccl" if use_gpu else "gloo"),
        scaling_config=ScalingConfig(num_workers=num_workers, use_gpu=use_gpu, resources_per_worker=per_worker,
                                     placement_strategy=placement_strategy),
        run_config=RunConfig(name=name, storage_path=storage, failure_config=FailureConfig(max_failures=max_failures),
                             checkpoint_config=CheckpointConfig(num_to_keep=2), callbacks=callbacks),
    )
    try:
        result = trainer.fit()
    except Exception as exc:  # ray.train.TrainingFailedError and controller failures
        raise DistributedError(_explain(exc, name, storage)) from exc
    if export and result.checkpoint is not None:
        export_checkpoint(result, Path(cfg.run.output_dir))
    return result


def export_checkpoint(result: Result, output_dir: Path) -> Path:
    """Copy the latest checkpoint's files into ``output_dir`` (so ``cjepa`` without Ray can resume
    or evaluate it, and metrics.jsonl sits where it does for a single-process run)."""
    output_dir.mkdir(parents=True, exist_ok=True)
    with result.checkpoint.as_directory() as src:
        for file in Path(src).iterdir():
            if file.is_file():
                shutil.copy2(file, output_dir / file.name)
    return output_dir


def _explain(exc: BaseException, name: str, storage: str) -> str:
    """One line for the CLI: a worker's own CJepaError message if there is one, else Ray's first line."""
    user = _find_user_error(exc)
    where = f"the same command resumes from the checkpoints of {name!r} in {storage}, if any"
    if user is not None:
        return f"a worker failed: {user} ({where})"
    first = next((line for line in str(exc).splitlines() if line.strip() and "Training failed" not in line),
                 type(exc).__name__)
    return f"distributed training failed: {first.strip()[:300]} ({where})"


def _find_user_error(exc: BaseException) -> CJepaError | None:
    seen: set[int] = set()
    stack: list[Any] = [exc]
    while stack:
        e = stack.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, CJepaError):
            return e
        stack += [getattr(e, "cause", None), e.__cause__, e.__context__, getattr(e, "controller_failure", None)]
        stack += list(getattr(e, "worker_failures", {}).values())
    return None
