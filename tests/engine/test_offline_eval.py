"""``cjepa eval``'s library part: the same numbers as the in-training evaluator on the same images,
a whole-split bank, I-JEPA's probe grid chosen on validation, one way into a trained model."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from cjepa.config import load_config
from cjepa.engine.eval_sets import set_size
from cjepa.engine.offline_eval import EvalRequest, encode_set, evaluate_trained
from cjepa.engine.trained import load_trained
from cjepa.engine.trainer import train
from cjepa.errors import CheckpointError
from tests.conftest import tiny_overrides

EVAL = ["data.val_samples=300", "eval.every=1", "eval.train_samples=400", "eval.test_samples=200",
        "eval.linear_epochs=5", "eval.poolings=[mean,grid2]", "eval.precision=fp32", "run.epochs=1"]


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> tuple[Path, dict[str, float]]:
    run = tmp_path_factory.mktemp("offline") / "run"
    return run, train(load_config(None, tiny_overrides(run, *EVAL))).history[-1]


def test_the_in_training_bank_gives_the_trainers_numbers(finished) -> None:
    """bank="eval" on the test split is the trainer's test_* figure, on val its per-epoch one: exactly."""
    run_dir, final = finished
    run = load_trained(run_dir)
    assert run.epoch == 1 and run.cfg.data.val_samples == 300
    test = evaluate_trained(run, EvalRequest(split="test", bank="eval", encoders=("target", "context")))
    val = evaluate_trained(run, EvalRequest(split="val", bank="eval"))
    for name in ("knn_target", "linear_target", "knn_target_grid2", "knn_context", "linear_context_grid2"):
        assert test[f"test_{name}"] == final[f"test_{name}"], name
    assert val["val_knn_target"] == final["knn_target"] and val["val_linear_target"] == final["linear_target"]


def test_the_random_encoder_is_the_trainers_random_init_reference(finished) -> None:
    """``--encoders random``: the network as the run initialised it, read exactly as the trainer read
    its "rand" baseline on the same sets, so a read-out the trainer never ran has its reference too."""
    from cjepa.metrics import baseline_name

    run_dir, final = finished
    run = load_trained(run_dir)
    out = evaluate_trained(run, EvalRequest(split="val", bank="eval", encoders=("random", "target")))
    for probe in ("knn", "linear"):
        for pooling in ("mean", "grid2"):
            name = f"val_{probe}_random" + ("" if pooling == "mean" else f"_{pooling}")
            assert out[name] == final[baseline_name("rand", probe, pooling)], name
    assert out["val_knn_random"] != out["val_knn_target"]  # the trained weights are not the initial ones


def test_the_whole_training_split_as_bank(finished) -> None:
    run = load_trained(finished[0] / "checkpoint.pt")
    assert set_size(run.cfg, "train") == 1200 and set_size(run.cfg, "bank") == 400
    feats, labels = encode_set(run, "target", "train")
    assert feats["mean"].shape == (1200, 32) and feats["grid2"].shape == (1200, 4 * 32) and len(labels) == 1200
    part, _ = encode_set(run, "target", "train", 100, 300)  # a worker's slice: the same features
    assert torch.equal(part["mean"], feats["mean"][100:300])
    out = evaluate_trained(run, EvalRequest(bank="train", protocol="ijepa"))
    assert 0.1 < out["test_knn_target_fullbank"] <= 1.0
    assert out["test_linear_target_fullbank_ijepa_lr"] in (0.01, 0.05, 0.001)
    assert out["test_linear_target_fullbank_ijepa_wd"] in (5e-4, 0.0)


def test_probe_grid_chooses_on_validation_not_test() -> None:
    """Validation labels decide: the head the grid picks is the one best on val, whatever test says."""
    from cjepa.eval.probe_grid import linear_probe_select

    g = torch.Generator().manual_seed(0)
    x = torch.randn(600, 8, generator=g)
    y = (x[:, 0] > 0).long()
    out = linear_probe_select((x[:400], y[:400]), (x[400:500], y[400:500]), (x[500:], 1 - y[500:]), epochs=100)
    assert out["val_acc"] > 0.9 and out["acc"] < 0.1  # chosen on val; test (labels flipped) only read


def test_an_old_checkpoint_trained_on_the_whole_split_and_a_missing_one(finished, tmp_path: Path) -> None:
    from cjepa.engine.trained import saved_config

    state = torch.load(finished[0] / "checkpoint.pt", weights_only=True)
    del state["config"]["data"]["val_samples"]  # written before the validation split existed
    assert saved_config(state).data.val_samples == 0
    with pytest.raises(CheckpointError, match="not found; expected a checkpoint file or a run directory"):
        load_trained(tmp_path / "nothing")
