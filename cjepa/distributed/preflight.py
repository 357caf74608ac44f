"""Checks that run before Ray Train starts any worker, so mistakes fail in a second, clearly.

Why: Ray Train V2 does not refuse an impossible request. A placement group the cluster can
never satisfy makes the controller wait and retry (``WorkerGroupStartupTimeoutError`` every
60 s, forever); an unwritable storage path fails inside the controller with a long traceback;
an uneven batch split fails in every worker after start-up. Each of these becomes one
:class:`~cjepa.errors.DistributedError` line here instead.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

from cjepa.config import Config
from cjepa.errors import DistributedError

#: Set to 1 on an autoscaling cluster, where nodes that do not exist yet can still be placed on.
SKIP_PLACEMENT_ENV = "CJEPA_SKIP_PLACEMENT_CHECK"
PLACEMENT_STRATEGIES = ("PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD")


def check_split(cfg: Config, num_workers: int) -> None:
    """The global batch must split into equal per-worker batches (all_gather needs equal shapes)."""
    if num_workers < 1:
        raise DistributedError(f"--workers must be >= 1, got {num_workers}")
    if cfg.optim.batch_size % num_workers:
        raise DistributedError(f"optim.batch_size={cfg.optim.batch_size} (the global batch) is not divisible by "
                               f"{num_workers} workers; choose a batch size that is a multiple of it")


def resolve_storage(storage_path: str | None) -> str:
    """An absolute, writable storage path (default ``<cwd>/ray_results``); URIs pass through.

    Local paths are tested by creating and removing a file, since Ray only finds out inside the
    controller. Remote URIs (``s3://``, ``gs://``, ...) are left to pyarrow and Ray: probing them
    would need credentials and network here, on the driver, which the workers may not share.
    """
    raw = str(storage_path) if storage_path else str(Path.cwd() / "ray_results")
    scheme, sep, rest = raw.partition("://")
    if sep and scheme != "file":
        return raw
    path = Path(rest if sep else raw).expanduser().resolve()
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".cjepa-write-probe-", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise DistributedError(f"storage path {path} cannot be written ({reason}); pass a writable "
                               "--storage directory (a shared filesystem or s3:// URI on a cluster)") from None
    return str(path)


def worker_resources(use_gpu: bool, resources_per_worker: dict[str, float] | None) -> dict[str, float]:
    """What one worker asks for: the same defaulting as ``ray.train.ScalingConfig`` (1 CPU, or
    1 GPU and no CPU with ``use_gpu``; an explicit dict wins, with GPU 1 added under use_gpu)."""
    if resources_per_worker is None:
        res = {"GPU": 1.0} if use_gpu else {"CPU": 1.0}
    else:
        res = {k: float(v) for k, v in resources_per_worker.items() if v}
    if use_gpu:
        res.setdefault("GPU", 1.0)
    return res


#: Ray Train V2's node-preemption watcher: an actor per worker group, whose creation logs an
#: error-looking ``core_worker.cc ... PreemptionWatcher ... max_restarts > 0`` line for every
#: trial (ray-project/ray#53727). A local cluster is one machine, which nobody preempts.
PREEMPTION_WATCHER_ENV = "RAY_TRAIN_ENABLE_PREEMPTION_WATCHER"


def quiet_local_cluster() -> None:
    """Settings for a local cluster started by ``ray.init`` (its processes inherit this env):
    no preemption watcher. A value the user exported wins; clusters started by hand keep theirs."""
    os.environ.setdefault(PREEMPTION_WATCHER_ENV, "0")


#: How long a cluster address may take to accept a TCP connection before it counts as down.
RAY_PROBE_TIMEOUT_S = 5.0


def _host_port(address: str) -> tuple[str, int] | None:
    """``(host, port)`` of ``host:port``, ``ray://host:port``, ``http://host:port``, ``[::1]:port``;
    None for ``auto``/``local`` and other forms Ray resolves itself."""
    rest = address.strip().split("://", 1)[-1].split("/", 1)[0]
    host, sep, port = rest.rpartition(":")
    if not sep or not port.isdigit() or not host:
        return None
    return host.strip("[]"), int(port)


def check_ray_address(address: str | None = None, timeout: float = RAY_PROBE_TIMEOUT_S) -> None:
    """Refuse, in ``timeout`` seconds, a Ray address (``RAY_ADDRESS`` by default) where nothing listens.

    Why: ``ray.init(address=...)`` towards a port with no cluster behind it keeps retrying for
    minutes without a word (issue 27: still waiting after 2 minutes); one TCP connect says at
    once whether anything is there. Called before any MLflow run is opened or Ray is imported.
    """
    address = os.environ.get("RAY_ADDRESS") if address is None else address
    where = _host_port(address) if address else None
    if where is None:
        return
    import socket

    try:
        socket.create_connection(where, timeout=timeout).close()
    except OSError as exc:
        reason = exc.strerror or (f"no answer within {timeout:g} s" if isinstance(exc, TimeoutError) else str(exc))
        raise DistributedError(f"no Ray cluster answers at {address} (RAY_ADDRESS / --address: {reason}); is a "
                               f"cluster running there? check with `ray status --address {where[0]}:{where[1]}`, "
                               "start one with `ray start --head`, or leave RAY_ADDRESS and --address unset for a "
                               "local Ray") from None


def connect_ray(log_to_driver: bool = True) -> str:
    """Use the running Ray, or connect to ``RAY_ADDRESS``, or start a local cluster.

    The local cluster gets the machine's cores and Ray's defaults, the dashboard included:
    with the dashboard disabled at ray.init Ray's State API is missing and Tune cannot free the
    placement groups of stopped trials (stack-notes, Pitfall 1). ``log_to_driver=False`` keeps the
    workers' own output (step lines, "Checkpoint successfully created") in Ray's log files instead
    of this console: a study's quiet default. Returns a description.
    """
    import ray

    if ray.is_initialized():
        return "the running Ray instance"
    address = os.environ.get("RAY_ADDRESS")
    if not address:
        quiet_local_cluster()
    check_ray_address(address)
    try:
        ray.init(address=address or None, log_to_driver=log_to_driver)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise DistributedError(f"cannot connect to the Ray cluster at RAY_ADDRESS={address!r} "
                               f"({str(exc).splitlines()[0][:200]}); start it with `ray start --head` "
                               "(export RAY_AUTH_MODE=token for clusters started by hand) or unset "
                               "RAY_ADDRESS to use a local one") from None
    return f"the Ray cluster at {address}" if address else "a local Ray cluster"


def placeable(per_worker: dict[str, float], node_totals: list[dict[str, float]]) -> list[int]:
    """How many workers each node could ever hold (its *total* resources, not what is free)."""
    counts = []
    for total in node_totals:
        fits = [math.floor(total.get(k, 0.0) / v + 1e-9) for k, v in per_worker.items() if v > 0]
        counts.append(min(fits) if fits else 0)
    return counts


def check_placement(num_workers: int, per_worker: dict[str, float], strategy: str) -> None:
    """Refuse a worker group the connected cluster can never place under ``strategy``.

    Identical bundles make this exact: a node holds ``min_k floor(total_k / need_k)`` workers;
    PACK/SPREAD need the sum over nodes, STRICT_SPREAD one node per worker, STRICT_PACK one
    node for all. Skipped with ``CJEPA_SKIP_PLACEMENT_CHECK=1`` (autoscaling clusters).
    """
    import ray

    if strategy not in PLACEMENT_STRATEGIES:
        raise DistributedError(f"placement strategy {strategy!r}: expected one of {', '.join(PLACEMENT_STRATEGIES)}")
    if os.environ.get(SKIP_PLACEMENT_ENV) == "1":
        return
    nodes: list[dict[str, Any]] = [n for n in ray.nodes() if n.get("Alive")]
    totals = [{k: float(v) for k, v in n.get("Resources", {}).items()} for n in nodes]
    counts = placeable(per_worker, totals)
    cluster = ray.cluster_resources()
    have = {k: cluster.get(k, 0.0) for k in per_worker}
    want = {k: v * num_workers for k, v in per_worker.items()}
    fit = {"STRICT_SPREAD": sum(c >= 1 for c in counts), "STRICT_PACK": max(counts, default=0)}.get(
        strategy, sum(counts))
    if fit >= num_workers:
        return
    where = {"STRICT_SPREAD": "on distinct nodes", "STRICT_PACK": "on one node"}.get(strategy, "")
    raise DistributedError(
        f"{num_workers} workers x {_fmt(per_worker)} ({_fmt(want)} in all, placement {strategy}) cannot be "
        f"placed{' ' + where if where else ''}: the cluster has {len(nodes)} node(s) with {_fmt(have)} and room "
        f"for {fit} such worker(s); use fewer --workers or smaller per-worker resources "
        f"(on an autoscaling cluster set {SKIP_PLACEMENT_ENV}=1)")


def _fmt(res: dict[str, float]) -> str:
    return "{" + ", ".join(f"{k}: {v:g}" for k, v in sorted(res.items())) + "}"


#: Where a trial's deterministic failure is remembered (in its driver-side ``run.output_dir``).
FAILURE_MEMO = "failed.json"


def remember_failure(output_dir: str | Path, exc: BaseException) -> None:
    """Record ``exc`` when it is deterministic (a :class:`~cjepa.errors.TrainingError` such as a
    non-finite loss, found in its cause chain), so that a retry can refuse at once.

    Why: Tune's ``FailureConfig(max_failures)`` retries every trial error. A non-finite loss
    recurs at the same step after a restore (training is exactly reproducible), so the retry only
    re-trains up to that step, and before the first checkpoint it even opens a second MLflow run.
    """
    from cjepa.errors import TrainingError

    stack, seen = [exc], set()
    while stack:  # Ray nests the worker's exception: causes, contexts, worker_failures
        e = stack.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, TrainingError):
            path = Path(output_dir)
            path.mkdir(parents=True, exist_ok=True)
            (path / FAILURE_MEMO).write_text(json.dumps({"error": str(e).splitlines()[0]}) + "\n")
            return
        stack += [getattr(e, "cause", None), e.__cause__, e.__context__, getattr(e, "controller_failure", None),
                  *getattr(e, "worker_failures", {}).values()]


def refuse_repeat_failure(output_dir: str | Path) -> None:
    """Raise the remembered deterministic failure of this run dir again, without training."""
    from cjepa.errors import TrainingError

    memo = Path(output_dir) / FAILURE_MEMO
    if memo.is_file():
        error = json.loads(memo.read_text())["error"]
        raise TrainingError(f"{error} (not retried: it recurs at the same step; delete {memo} to try again)")
