"""A simulated 2-node Ray cluster: STRICT_SPREAD puts the two workers on different Ray nodes.

``ray.cluster_utils.Cluster`` starts a head and a second raylet on this host. Each rank records
its Ray node id; node_rank is *not* checked (Ray derives it from the IP, so both simulated nodes
report 0). Storage is a local path, which both "nodes" share because they share the host.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import ray
import ray.cloudpickle
from ray.cluster_utils import Cluster

from cjepa.config import load_config
from cjepa.distributed import DistributedError, check_placement, fit_distributed
from cjepa.engine import Reporter, load_checkpoint
from tests.conftest import tiny_overrides

pytestmark = pytest.mark.integration  # a two-node local Ray cluster

ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import this module


class NodeRecorder(Reporter):
    def __init__(self, rank: int, out_dir: Path) -> None:
        self.rank, self.out_dir = rank, out_dir

    def on_start(self, run_dir: Path, start_epoch: int, extra: dict) -> None:
        (self.out_dir / f"node_rank{self.rank}.txt").write_text(ray.get_runtime_context().get_node_id())


def node_recorders(out_dir: str):
    return lambda rank: [NodeRecorder(rank, Path(out_dir))]


@pytest.fixture(scope="module")
def two_nodes():
    ray.shutdown()  # a local Ray left by an earlier module
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2})
    cluster.add_node(num_cpus=2)
    ray.init(address=cluster.address)
    cluster.wait_for_nodes()
    yield cluster
    ray.shutdown()
    cluster.shutdown()


def test_strict_spread_runs_one_worker_per_node_and_checkpoints(two_nodes, tmp_path):
    nodes = {n["NodeID"] for n in ray.nodes() if n["Alive"]}
    assert len(nodes) == 2
    with pytest.raises(DistributedError, match="distinct nodes"):
        check_placement(3, {"CPU": 1.0}, "STRICT_SPREAD")

    cfg = load_config(None, tiny_overrides(tmp_path / "spread"))  # 2 epochs
    storage = tmp_path / "ray"
    result = fit_distributed(cfg, num_workers=2, placement_strategy="STRICT_SPREAD", storage_path=str(storage),
                             reporters=node_recorders(str(tmp_path)))
    ran_on = [(tmp_path / f"node_rank{r}.txt").read_text() for r in (0, 1)]
    assert ran_on[0] != ran_on[1] and set(ran_on) == nodes

    assert result.metrics["epoch"] == 2.0
    exp_dir = Path(result.path)
    assert exp_dir.parent == storage
    assert sorted(p.name for p in exp_dir.glob("epoch_*")) == ["epoch_0001", "epoch_0002"]
    assert Path(result.checkpoint.path) == exp_dir / "epoch_0002"
    state = load_checkpoint(exp_dir / "epoch_0002" / "checkpoint.pt")
    assert (state["epoch"], state["step"]) == (2, 46)
    assert (exp_dir / "epoch_0002" / "metrics.jsonl").read_text().count("\n") == 2
