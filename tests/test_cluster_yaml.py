"""The cluster launcher configs pass Ray's own validation offline (``ray up`` has no dry run).

Uses Ray's private ``prepare_config`` (fills defaults, expands the local provider's IPs into node
types) and ``validate_config`` (jsonschema against ``ray/autoscaler/ray-schema.json`` plus Ray's
cross-field checks). Private API: written against Ray 2.60 (pinned in the cluster files' setup
commands); if a Ray upgrade moves it, fall back to jsonschema on ray-schema.json directly.
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
