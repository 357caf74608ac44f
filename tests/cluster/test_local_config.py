"""The generated local cluster config, checked without starting Ray.

Offline half of the `ray up` test: the config passes Ray's own validation, and Ray's own SSH command
runner and rsync (the code `ray up` uses to reach a node) get through to the private sshd on its
non-22 port with the config's ``auth``, so a later `ray up` fails, if at all, only at Ray itself.
"""

from __future__ import annotations

import copy
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from ray.autoscaler._private.command_runner import SSHCommandRunner
from ray.autoscaler._private.local.node_provider import LocalNodeProvider
from ray.autoscaler._private.util import prepare_config, validate_config

from tests.cluster.conftest import SshServer, free_port
from tests.cluster.local_config import DOCUMENTED, LocalCluster, local_test_config, write_local_test_config


def _cluster(sshd_port: int, key: Path, tmp: Path) -> LocalCluster:
    return LocalCluster(ssh_port=sshd_port, key=key, tmpdir=tmp / "raytmp", token=tmp / "token", gcs_port=free_port(),
                        dashboard_port=free_port(), object_manager_port=free_port(), metrics_port=free_port())


def test_generated_config_is_valid_for_ray(tmp_path: Path) -> None:
    cluster = _cluster(2222, tmp_path / "key", tmp_path)
    cfg = yaml.safe_load(write_local_test_config(cluster, tmp_path / "c.yaml").read_text())
    prepared = prepare_config(copy.deepcopy(cfg))
    validate_config(prepared)
    assert prepared["provider"] == {"type": "local", "head_ip": "127.0.0.1", "worker_ips": []}
    assert prepared["max_workers"] == 0  # the local provider's own rule: as many workers as worker_ips
    assert cfg["auth"]["ssh_proxy_command"] == "nc %h 2222"
    assert cfg["setup_commands"] == cfg["head_setup_commands"] == [] and cfg["file_mounts"] == {}
    start = next(c for c in cfg["head_start_ray_commands"] if "ray start" in c)
    for part in (f"--port={cluster.gcs_port}", "--node-ip-address=127.0.0.1", "--dashboard-host=127.0.0.1",
                 f"--dashboard-port={cluster.dashboard_port}", f"RAY_TMPDIR={cluster.tmpdir}",
                 f"RAY_AUTH_TOKEN_PATH={cluster.token}", "RAY_AUTH_MODE=token", "GLOO_SOCKET_IFNAME=lo",
                 "--autoscaling-config=~/ray_bootstrap_config.yaml"):
        assert part in start, part
    assert "6379" not in start and "8076" not in start and "8080" not in start and "cjepa-venv" not in start


def test_a_changed_documented_file_fails_loudly(tmp_path: Path) -> None:
    documented = yaml.safe_load(DOCUMENTED.read_text())
    documented["head_start_ray_commands"] = [c.replace("--port=6379", "--port=6380")
                                             for c in documented["head_start_ray_commands"]]
    with pytest.raises(ValueError, match="docs/cluster-local.yaml changed"):
        local_test_config(_cluster(2222, tmp_path / "key", tmp_path), documented)


@pytest.mark.integration
def test_rays_own_ssh_runner_and_rsync_reach_the_private_sshd(sshd: SshServer, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """What `ray up` does first on a node (SSH "uptime", rsync of the bootstrap files), with Ray's classes."""
    if shutil.which("rsync") is None or shutil.which("nc") is None:
        pytest.skip("needs rsync and netcat-openbsd (apt-get install -y rsync netcat-openbsd)")
    cluster = _cluster(sshd.port, sshd.key, tmp_path)
    cfg = local_test_config(cluster)
    monkeypatch.setenv("RAY_TMPDIR", str(cluster.tmpdir))  # the provider's state file goes there, not /tmp/ray
    provider = LocalNodeProvider(cfg["provider"], cfg["cluster_name"])
    runner = SSHCommandRunner(log_prefix="test: ", node_id="127.0.0.1", provider=provider, auth_config=cfg["auth"],
                              cluster_name=cfg["cluster_name"], process_runner=subprocess, use_internal_ip=False)
    out = runner.run("echo ssh-ok; id -u; { ulimit -n 65536 2>/dev/null || ulimit -n hard; } && ulimit -n",
                     with_output=True).decode()
    assert "ssh-ok" in out and "\n0" in out.replace("\r", ""), out  # a login shell, as root
    src, dst = tmp_path / "bootstrap.yaml", tmp_path / "remote" / "bootstrap.yaml"
    dst.parent.mkdir()
    src.write_text("cluster_name: x\n")
    runner.run_rsync_up(str(src), str(dst), options={"rsync_filter": cfg["rsync_filter"],
                                                     "rsync_exclude": cfg["rsync_exclude"]})
    assert dst.read_text() == "cluster_name: x\n"
