"""The validation split in evaluation: what each set holds, keys that cannot collide, and the test
split scored once, at the end of a run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cjepa.config import load_config
from cjepa.data.holdout import memory_indices
from cjepa.engine.eval_sets import cache_key, data_identity, eval_images, query_split
from cjepa.engine.trainer import train
from cjepa.metrics import final_metrics, reported_metrics, split_of
from tests.conftest import tiny_overrides

VAL = ["data.val_samples=300", "eval.train_samples=400", "eval.test_samples=200"]


def _cfg(tmp_path: Path, *extra: str):
    return load_config(None, tiny_overrides(tmp_path / "run", *VAL, *extra))


def test_bank_val_and_test_never_overlap(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path)
    bank, val, test = (eval_images(cfg, s) for s in ("bank", "val", "test"))
    trained = set(memory_indices(cfg.data, 1500, "train").tolist())
    assert (len(bank.ids), len(val.ids), len(test.ids)) == (400, 300, 200)
    assert set(bank.ids.tolist()) <= trained  # the bank is made of training images ...
    assert not set(val.ids.tolist()) & trained  # ... the validation queries never are
    assert query_split(cfg) == "val" and query_split(_cfg(tmp_path, "data.val_samples=0")) == "test"


def _key(cfg, kind: str = "raw", **settings) -> str:
    bank, query = eval_images(cfg, "bank"), eval_images(cfg, query_split(cfg))
    return cache_key(kind, cfg, bank, query, data_identity(cfg), settings)


def test_two_different_subsets_never_share_a_cache_entry(tmp_path: Path) -> None:
    """Equal sizes, other images: another key. (The old key, made of sizes, gave them one entry.)"""
    base = _cfg(tmp_path)
    same_sizes = [_cfg(tmp_path, "data.val_seed=1"),  # other validation images (and so another pool)
                  _cfg(tmp_path, "data.train_subset=800"),  # the bank drawn from another training set
                  _cfg(tmp_path, "data.train_subset=900")]
    keys = [_key(base)] + [_key(c) for c in same_sizes]
    prefixes = {k.rsplit(":", 1)[0] for k in keys}
    assert prefixes == {"raw:val:bank400:val300"} and len(set(keys)) == len(keys)
    assert _key(base) == _key(_cfg(tmp_path))  # the same images and settings: the same entry
    assert _key(base, lin_lr=0.01) != _key(base, lin_lr=0.02)  # every probe setting is in the hash
    assert _key(base) != _key(_cfg(tmp_path, "model.img_size=8", "model.patch_size=1"))


def test_test_split_is_scored_once_at_the_end(tmp_path: Path) -> None:
    """Epochs score the validation split; only the last epoch adds test_* (the same probes on the
    test split), and none of them is a metric a study may select on."""
    cfg = _cfg(tmp_path, "eval.every=1", "eval.linear_epochs=5", "run.epochs=2")
    history = train(cfg).history
    tests = {k for k in history[-1] if k.startswith("test_")}
    assert tests == final_metrics(cfg) and "test_knn_target" in tests and "test_raw_knn_acc" in tests
    assert not [k for k in history[0] if k.startswith("test_")]
    assert reported_metrics(cfg) <= set(history[0]) and not reported_metrics(cfg) & tests
    assert history[-1]["test_knn_target"] != history[-1]["knn_target"]  # 300 val vs 200 test images
    assert split_of(cfg, "knn_target") == "val" and split_of(cfg, "test_knn_target") == "test"
    assert split_of(cfg, "loss") == "train" and split_of(cfg, "raw_knn_acc") == "val"
    assert all(0.0 <= history[-1][k] <= 1.0 for k in tests if not np.isnan(history[-1][k]))


def test_without_a_validation_split_epochs_read_the_test_split(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, "data.val_samples=0", "eval.every=1", "eval.linear_epochs=0", "run.epochs=1")
    final = train(cfg).history[-1]
    assert not final_metrics(cfg) and not [k for k in final if k.startswith("test_")]
    assert split_of(cfg, "knn_target") == "test"


@pytest.mark.parametrize("bad,words", [("data.val_samples=1500", "data.val_samples=1500 leaves no training image"),
                                       ("data.train_subset=1201", "data.train_subset=1201 exceeds the 1200"),
                                       ("data.val_samples=-1", "data.val_samples must be >= 0")])
def test_impossible_holdouts_are_one_line_before_training(tmp_path: Path, bad: str, words: str) -> None:
    from cjepa.config.validation import check_data_source
    from cjepa.errors import ConfigError

    with pytest.raises(ConfigError, match=words):
        check_data_source(_cfg(tmp_path, bad))


def test_last_k_layers_concatenated(tmp_path: Path) -> None:
    """eval.last_layers=k reads the last k blocks, each through the final norm, side by side; k=1 is the
    encoder's own output; the read-out is part of the random-init baseline's key."""
    import torch

    from cjepa.model import build_encoder
    from cjepa.model.vit import LastLayers

    cfg = _cfg(tmp_path, "eval.last_layers=2")
    enc = build_encoder(cfg.model).eval()
    x = torch.randn(3, 1, 16, 16)
    with torch.no_grad():
        two, one = LastLayers(enc, 2)(x), enc(x)
        assert two.shape == (3, 64, 64) and torch.equal(two[..., 32:], one)
        assert torch.equal(LastLayers(enc, 1)(x), one)
        h = enc.blocks[0](enc.patch_embed(x) + enc.pos_embed)
        assert torch.allclose(two[..., :32], enc.norm(h))
    from cjepa.errors import ConfigError

    with pytest.raises(ConfigError, match=r"eval.last_layers=3: expected 1 <= k <= model.depth=2"):
        _cfg(tmp_path, "eval.last_layers=3")
