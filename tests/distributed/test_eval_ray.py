"""``cjepa eval --workers N``: Ray tasks each encode a slice of a set; the features, and so every
figure, equal one process's exactly (a real local Ray, a real tiny run)."""

from __future__ import annotations

from pathlib import Path

import pytest
import ray
import torch

from cjepa.config import load_config
from cjepa.distributed.eval_ray import ray_extractor
from cjepa.engine.offline_eval import EvalRequest, encode_set, evaluate_trained
from cjepa.engine.trained import load_trained
from cjepa.engine.trainer import train
from tests.conftest import tiny_overrides

pytestmark = pytest.mark.integration  # a local Ray cluster

EVAL = ["data.val_samples=300", "eval.every=1", "eval.train_samples=400", "eval.test_samples=200",
        "eval.linear_epochs=5", "eval.precision=fp32", "run.epochs=1"]


@pytest.fixture(scope="module")
def ray_local():
    if not ray.is_initialized():
        ray.init(num_cpus=4)  # as every Ray test module: later modules reuse this cluster and count on 4 CPUs
    yield


def test_ray_slices_give_one_process_features_and_figures(ray_local, tmp_path: Path) -> None:
    train(load_config(None, tiny_overrides(tmp_path / "run", *EVAL)))
    run = load_trained(tmp_path / "run")
    extract = ray_extractor(workers=3)
    feats, labels = extract(run, "target", "train")  # 1200 images in 3 slices
    local, local_labels = encode_set(run, "target", "train")
    assert torch.equal(feats["mean"], local["mean"]) and torch.equal(labels, local_labels)
    req = EvalRequest(bank="train", encoders=("target", "context"))
    assert evaluate_trained(run, req, extract) == evaluate_trained(run, req)
