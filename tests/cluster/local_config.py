"""The cluster YAML the `ray up` test runs: docs/cluster-local.yaml, pointed at 127.0.0.1.

Derived from the documented file (not written separately) so the test exercises what a user runs.
Every change is a string replacement that must match exactly once, so an edit of the documented
file that the test no longer covers fails here, loudly, instead of silently testing something else.

What changes, and why:

- provider: ``head_ip: 127.0.0.1``, no workers (one machine).
- auth: ``root``, the fixture's key, and ``ssh_proxy_command: nc %h PORT``: Ray 2.60 has no SSH port
  option (``SSHCommandRunner`` builds ``ssh -i KEY -o ...`` without ``-p``; the schema's ``auth`` allows
  only ``ssh_user``, ``ssh_private_key``, ``ssh_public_key``, ``ssh_proxy_command``,
  ``ssh_proxy_use_node_id``). A ProxyCommand is the way; rsync (``--rsh``) gets the same options.
- setup_commands, head_setup_commands, file_mounts empty: this machine already has everything, and
  they would write into root's home (~/.bashrc, ~/cjepa, ~/.ray/auth_token).
- head_start_ray_commands, kept otherwise as documented: the venv activation becomes this Python's
  bin/ on PATH, ``~/.cjepa_net`` (written by setup) becomes loopback interfaces, the fixed ports
  become free ones, Ray binds to 127.0.0.1 (``--node-ip-address``, dashboard on 127.0.0.1), and
  ``RAY_TMPDIR`` / ``RAY_AUTH_TOKEN_PATH`` point at the test's own directory and token, so the
  cluster's sessions, its launcher state file and its token never touch /tmp/ray or ~/.ray.
"""

from __future__ import annotations

import copy
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTED = ROOT / "docs" / "cluster-local.yaml"
VENV = "source ~/cjepa-venv/bin/activate"


@dataclass(frozen=True)
class LocalCluster:
    """Everything that makes one test cluster distinct from the documented file."""

    ssh_port: int
    key: Path
    tmpdir: Path  # RAY_TMPDIR: sessions go to TMPDIR/ray/session_*; keep it short (AF_UNIX paths <= 107 bytes)
    token: Path
    gcs_port: int
    dashboard_port: int
    object_manager_port: int
    metrics_port: int
    bindir: Path = Path(sys.executable).parent

    @property
    def name(self) -> str:
        """Unique per sshd port: Ray's ssh ControlMaster sockets are keyed by cluster name."""
        return f"cjepa-local-test-{self.ssh_port}"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.gcs_port}"

    def env(self) -> dict[str, str]:
        """Environment of `ray up` / `ray down` / the driver on this side (the node gets it in the commands)."""
        return {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(self.token), "RAY_TMPDIR": str(self.tmpdir),
                "RAY_USAGE_STATS_ENABLED": "0"}


def _replace_once(text: str, old: str, new: str) -> str:
    if text.count(old) != 1:
        raise ValueError(f"docs/cluster-local.yaml changed: expected {old!r} once in {text!r}; "
                         "update tests/cluster/local_config.py")
    return text.replace(old, new)


def local_test_config(cluster: LocalCluster, documented: dict | None = None) -> dict:
    """The documented config, rewritten for a private one-node cluster on 127.0.0.1 (see the module doc)."""
    cfg = copy.deepcopy(documented if documented is not None else yaml.safe_load(DOCUMENTED.read_text()))
    cfg["cluster_name"] = cluster.name
    cfg["provider"] = {"type": "local", "head_ip": "127.0.0.1", "worker_ips": []}
    cfg["auth"] = {"ssh_user": "root", "ssh_private_key": str(cluster.key),
                   "ssh_proxy_command": f"nc %h {cluster.ssh_port}"}
    cfg["file_mounts"] = {}
    for key in ("initialization_commands", "setup_commands", "head_setup_commands", "worker_setup_commands"):
        cfg[key] = []
    env = " ".join(f"{k}={v}" for k, v in cluster.env().items())
    prelude = f"export PATH={cluster.bindir}:$PATH {env}"
    start = []
    for cmd in cfg["head_start_ray_commands"]:
        cmd = _replace_once(cmd, VENV, prelude)
        if "ray start" in cmd:
            cmd = _replace_once(cmd, "source ~/.cjepa_net", "export GLOO_SOCKET_IFNAME=lo NCCL_SOCKET_IFNAME=lo")
            cmd = _replace_once(cmd, "--port=6379", f"--port={cluster.gcs_port}")
            om = cluster.object_manager_port
            cmd = _replace_once(cmd, "--object-manager-port=8076", f"--object-manager-port={om}")
            cmd = _replace_once(cmd, "--metrics-export-port=8080", f"--metrics-export-port={cluster.metrics_port}")
            cmd = _replace_once(cmd, "--dashboard-host=127.0.0.1", f"--dashboard-host=127.0.0.1 --dashboard-port="
                                f"{cluster.dashboard_port} --node-ip-address=127.0.0.1 --disable-usage-stats")
        start.append(cmd)
    cfg["head_start_ray_commands"] = start
    return cfg


def write_local_test_config(cluster: LocalCluster, path: Path) -> Path:
    path.write_text(yaml.safe_dump(local_test_config(cluster), sort_keys=False))
    return path
