"""``cjepa data convert --ray``: one import spread over a Ray cluster's CPUs, one task per shard.

The plan (``cjepa/data/convert_shards.py``) already makes each shard a pure function of (plan,
shard index) that writes its shard and its done-marker atomically; here each becomes a Ray task
(one CPU), the plan travels once through the object store, and the driver merges the results as on
one machine. So resume, corrupt-file handling and the bytes written are the same as with local
processes. Every node must see SRC and OUT at the same paths (the cluster's shared mount, e.g.
``/mnt/cjepa``); the driver checks what it can before any task starts. Kept out of ``cjepa/data``,
which does not import Ray.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from cjepa.data.convert_shards import ShardResult, SplitPlan, convert_shard
from cjepa.errors import CJepaError, DataError

Execute = Callable[[SplitPlan, list[int], int], Iterator[tuple[int, ShardResult]]]


def ray_execute() -> Execute:
    """An executor for ``run_plan``: the running Ray, else ``RAY_ADDRESS``, else a local one."""
    def execute(plan: SplitPlan, todo: list[int], workers: int) -> Iterator[tuple[int, ShardResult]]:
        import ray

        from cjepa.distributed.preflight import connect_ray

        for where in (plan.source, plan.out):
            if "://" in where or not Path(where).is_absolute():
                raise DataError(f"{where}: --ray needs absolute paths on storage every node mounts")
        connect_ray(log_to_driver=False)
        task = ray.remote(num_cpus=1, max_retries=2)(convert_shard)
        plan_ref = ray.put(plan)
        pending = {task.remote(plan_ref, i): i for i in todo}
        try:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                i = pending.pop(done[0])
                yield i, _result(done[0], plan)
        finally:  # an error or Ctrl-C: nothing new starts; finished shards keep their markers
            for ref in pending:
                ray.cancel(ref)

    return execute


def _result(ref: object, plan: SplitPlan) -> ShardResult:
    import ray

    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as exc:
        cause = exc.cause if isinstance(getattr(exc, "cause", None), BaseException) else None
        if isinstance(cause, CJepaError):  # a corrupt file (refused), named as on one machine
            raise cause from None
        raise DataError(f"{plan.out}: a conversion task failed on the cluster ({str(exc).splitlines()[0][:200]}); "
                        "re-run the same command to resume") from None
