"""The cluster launcher configs pass Ray's own validation offline (``ray up`` has no dry run).

Uses Ray's private ``prepare_config`` (fills defaults, expands the local provider's IPs into node
types) and ``validate_config`` (jsonschema against ``ray/autoscaler/ray-schema.json`` plus Ray's
cross-field checks). Private API: written against Ray 2.60 (pinned in the cluster files' setup
commands); if a Ray upgrade moves it, fall back to jsonschema on ray-schema.json directly.
The second half checks that the AWS and the local file differ only where the provider decides
(issue 15, item 0); tests/cluster/ runs the local file for real.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path

import jsonschema
import pytest
import ray
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

ROOT = Path(__file__).resolve().parents[1]
FILES = {"aws": ROOT / "ray_cluster.yaml", "local": ROOT / "docs" / "cluster-local.yaml"}
RAY_VERSION = "2.60.0"


def _load(name: str) -> dict:
    return yaml.safe_load(FILES[name].read_text())


def _validate(config: dict) -> dict:
    prepared = prepare_config(copy.deepcopy(config))
    validate_config(prepared)
    return prepared


def test_ray_version_matches_the_pin() -> None:
    assert ray.__version__ == RAY_VERSION, "re-check the private autoscaler API and the pins in the cluster files"
    for path in FILES.values():
        assert f"ray[default,tune,train]=={RAY_VERSION}" in path.read_text(), path


@pytest.mark.parametrize("name", sorted(FILES))
def test_cluster_file_is_valid(name: str) -> None:
    prepared = _validate(_load(name))
    assert prepared["head_node_type"] in prepared["available_node_types"]


def test_aws_layout() -> None:
    cfg = _load("aws")
    types = cfg["available_node_types"]
    assert cfg["provider"]["type"] == "aws" and types["gpu_8x"]["resources"]["GPU"] == 8
    assert types["gpu_8x"]["min_workers"] == 0 and types["cpu"]["min_workers"] == 0
    assert sum(t.get("max_workers", 0) for t in types.values()) <= cfg["max_workers"]
    assert cfg["file_mounts"]["~/cjepa"] == "."


@pytest.mark.parametrize("name", sorted(FILES))
def test_token_auth_and_interfaces_on_every_ray_start(name: str) -> None:
    cfg = _load(name)
    for key in ("head_start_ray_commands", "worker_start_ray_commands"):
        start = [c for c in cfg[key] if "ray start" in c]
        assert start and all("RAY_AUTH_MODE=token" in c and "source ~/.cjepa_net" in c for c in start), key
    net = next(c for c in cfg["setup_commands"] if ".cjepa_net" in c)
    assert "GLOO_SOCKET_IFNAME" in net and "NCCL_SOCKET_IFNAME" in net
    assert cfg["file_mounts"]["~/.ray/auth_token"] == "~/.ray/auth_token"  # the token travels as a file


@pytest.mark.parametrize("name", sorted(FILES))
def test_no_secrets_in_the_file(name: str) -> None:
    text = FILES[name].read_text()
    assert not re.search(r"AKIA[0-9A-Z]{16}", text)  # AWS access key ids
    assert not re.search(r"(?i)(secret|password|aws_secret_access_key)\s*[:=]", text)
    assert not re.search(r"RAY_AUTH_TOKEN\s*=", text)  # the token is never written inline
    assert "BEGIN" not in text and "PRIVATE KEY" not in text


@pytest.mark.parametrize("name", sorted(FILES))
def test_a_mistyped_key_fails(name: str) -> None:
    bad = _load(name)
    bad["idle_timeout_minutez"] = bad.pop("idle_timeout_minutes")  # top level
    with pytest.raises(jsonschema.ValidationError, match="idle_timeout_minutez"):
        _validate(bad)


def test_mistyped_keys_fail_aws() -> None:
    bad = _load("aws")
    bad["max_workerz"] = bad.pop("max_workers")
    with pytest.raises(jsonschema.ValidationError, match="max_workerz"):
        _validate(bad)
    bad = _load("aws")
    bad["available_node_types"]["gpu_8x"]["min_worker"] = 0  # inside a node type
    with pytest.raises(jsonschema.ValidationError, match="min_worker"):
        _validate(bad)
    bad = _load("aws")
    bad["available_node_types"]["gpu_8x"]["min_workers"] = 9  # more than max_workers allows
    with pytest.raises(ValueError, match="max_workers"):
        _validate(bad)


# --- ray_cluster.yaml (AWS) and docs/cluster-local.yaml say the same thing, except where the provider decides ---
#
# Top-level keys allowed to differ, and why:
#   cluster_name        two clusters of one user must not share Ray's launcher state and SSH control sockets
#   provider, auth      what a provider is: cloud region/zones vs. fixed IPs; the AMI's user vs. yours
#   available_node_types, head_node_type
#                       the local provider forbids them (`prepare_local` aborts) and makes its own single type
#   max_workers, upscaling_speed
#                       the local provider forces max_workers = len(worker_ips) (`prepare_manual`); a fixed
#                       set of machines does not upscale
# Every other key must be equal (a missing list counts as Ray's default, []). Inside the command lists,
# per-file names are normalised (the venv: ~/venv on a throw-away AMI, ~/cjepa-venv on your machines,
# where ~/venv may be yours) and only these AWS-only commands may exist on one side:
#   apt-get installs    the AMI is fresh and root is available; on your machines you install (file header)
#   the EFS mount       AWS's shared storage; on your machines SHARED_DIR is already mounted
#   MLflow server, Prometheus, MLFLOW_TRACKING_URI
#                       `ray down` terminates AWS nodes; on your machines it only runs `ray stop`, so services
#                       started by head_start_ray_commands would outlive `ray down`
ALLOWED_TOP_LEVEL = {"cluster_name", "provider", "auth", "available_node_types", "head_node_type", "max_workers",
                     "upscaling_speed"}
COMMAND_KEYS = ("initialization_commands", "setup_commands", "head_setup_commands", "worker_setup_commands",
                "head_start_ray_commands", "worker_start_ray_commands")
NORMALISE = {"local": [("~/cjepa-venv", "~/venv")], "aws": []}  # both take the hard limit where 65536 is refused
AWS_ONLY = re.compile(r"apt-get install|mount -t nfs4|mlflow server|prometheus|MLFLOW_TRACKING_URI")


def _commands(cfg: dict, name: str, key: str) -> list[str]:
    out = []
    for cmd in cfg.get(key) or []:
        for old, new in NORMALISE[name]:
            cmd = cmd.replace(old, new)
        if not (name == "aws" and AWS_ONLY.search(cmd)):
            out.append(" ".join(cmd.split()))
    return out


def parity_differences(aws: dict, local: dict) -> list[str]:
    """What differs between the two files beyond the allowed set (empty: they agree)."""
    diffs = []
    for key in sorted((set(aws) | set(local)) - ALLOWED_TOP_LEVEL - set(COMMAND_KEYS)):
        if aws.get(key) != local.get(key):
            diffs.append(f"{key}: aws {aws.get(key)!r} != local {local.get(key)!r}")
    for key in COMMAND_KEYS:
        a, b = _commands(aws, "aws", key), _commands(local, "local", key)
        if a != b:
            diffs.append(f"{key}:\n  aws   {a}\n  local {b}")
    return diffs


def test_aws_and_local_files_differ_only_in_provider_things() -> None:
    assert parity_differences(_load("aws"), _load("local")) == []


def test_every_allowed_difference_is_real() -> None:
    """The allow-list is not wider than needed: each allowed key does differ (or is absent on one side)."""
    aws, local = _load("aws"), _load("local")
    assert all(aws.get(k) != local.get(k) for k in ALLOWED_TOP_LEVEL)
    for key in COMMAND_KEYS:  # and every AWS-only command is one of the justified kinds
        for cmd in aws.get(key) or []:
            if AWS_ONLY.search(cmd):
                assert key in ("setup_commands", "head_setup_commands", "head_start_ray_commands"), (key, cmd)


@pytest.mark.parametrize(("key", "old", "new"), [
    ("setup_commands", '==2.60.0"', '==2.59.0"'),  # a different Ray on the nodes
    ("head_start_ray_commands", "--dashboard-host=127.0.0.1", "--dashboard-host=0.0.0.0"),  # dashboard exposed
    ("worker_start_ray_commands", "export RAY_AUTH_MODE=token && ", ""),  # a worker without token auth
    ("setup_commands", "NCCL_SOCKET_IFNAME=$CJEPA_IFACE", "NCCL_SOCKET_IFNAME=eth0"),
])
def test_drift_in_commands_is_caught(key: str, old: str, new: str) -> None:
    local = _load("local")
    assert any(old in c for c in local[key]), (key, old)
    local[key] = [c.replace(old, new) for c in local[key]]
    assert parity_differences(_load("aws"), local)


@pytest.mark.parametrize(("key", "value"), [("file_mounts", {"~/cjepa": "."}), ("rsync_exclude", [".git"]),
                                            ("idle_timeout_minutes", 60), ("docker", {"image": "rayproject/ray"})])
def test_drift_in_other_keys_is_caught(key: str, value: object) -> None:
    local = _load("local")
    local[key] = value
    assert parity_differences(_load("aws"), local)
