"""bench/eval_flops.py's count (``cjepa.benchmarking.flops.evaluation_flops``) is what an evaluation
computes: each extra evaluation-bank image costs each encoder one full-token forward (hand-counted
below, attention included) plus its row of the kNN similarity matmul, exactly. Ray-free, digits,
a few seconds."""

from __future__ import annotations

from pathlib import Path

from cjepa.benchmarking.flops import evaluation_flops
from cjepa.config import load_config
from tests.conftest import tiny_overrides


def _evaluation(tmp_path: Path, train_samples: int) -> float:
    cfg = load_config(None, tiny_overrides(tmp_path / "run", "eval.every=1", "eval.linear_epochs=0",
                                           "eval.test_samples=50", f"eval.train_samples={train_samples}"))
    return evaluation_flops(cfg)


def test_a_bank_image_costs_one_forward_per_encoder_and_its_knn_row(tmp_path):
    tokens, dim, depth, patch, test = 64, 32, 2, 2, 50  # TINY: 16 px / patch 2, width 32, 2 blocks
    block = 2 * tokens * dim * 3 * dim + 2 * 2 * tokens * tokens * dim + 2 * tokens * dim * dim \
        + 2 * 2 * tokens * dim * 4 * dim  # qkv, q.k and attn.v, proj, MLP (ratio 4)
    forward = depth * block + 2 * tokens * patch * patch * dim  # + the patch embedding
    knn_row = 2 * test * dim  # one bank image's similarities to every test image
    extra = _evaluation(tmp_path, 200) - _evaluation(tmp_path, 100)
    assert extra == 2 * 100 * (forward + knn_row)  # target and context encoder
