"""Raw-pixel baseline and its JSON cache."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from sklearn.datasets import load_digits

from cjepa.eval import knn_accuracy, raw_pixel_baseline


@pytest.fixture(scope="module")
def digits() -> tuple[torch.Tensor, ...]:
    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0  # (N, 1, 8, 8) images
    y = torch.tensor(d.target)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    tr, te = perm[:1300], perm[1300:]
    return x[tr], y[tr], x[te], y[te]


def test_values_and_cache(digits: tuple[torch.Tensor, ...], tmp_path: Path) -> None:
    cache = tmp_path / "sub" / "raw_baseline.json"
    out = raw_pixel_baseline(*digits, linear_epochs=30, cache_file=cache, cache_key="digits-1300")
    print(f"digits raw baseline: {out}")
    assert set(out) == {"raw_knn_acc", "raw_linear_acc"}
    assert out["raw_knn_acc"] > 0.9 and out["raw_linear_acc"] > 0.9
    xtr, ytr, xte, yte = digits
    assert out["raw_knn_acc"] == knn_accuracy(xtr.flatten(1), ytr, xte.flatten(1), yte)
    stored = json.loads(cache.read_text())
    assert stored["digits-1300"]["raw_knn_acc"] == out["raw_knn_acc"]
    assert not [p for p in cache.parent.iterdir() if p.name != cache.name]  # no temp files left

    # Same key, data that would score ~0.1: the cached numbers must come back, untouched.
    garbage = torch.zeros_like(xtr), torch.zeros_like(ytr), torch.zeros_like(xte), yte
    again = raw_pixel_baseline(*garbage, linear_epochs=30, cache_file=cache, cache_key="digits-1300")
    assert again == out

    # A different key is computed (and really gives the garbage result), the old key is kept.
    other = raw_pixel_baseline(*garbage, linear_epochs=5, cache_file=cache, cache_key="zeros")
    assert other["raw_knn_acc"] < 0.5
    assert set(json.loads(cache.read_text())) == {"digits-1300", "zeros"}


def test_changed_parameters_recompute(digits: tuple[torch.Tensor, ...], tmp_path: Path) -> None:
    cache = tmp_path / "b.json"
    xtr, ytr, xte, yte = digits
    cache.write_text(json.dumps({"d": {"raw_knn_acc": 0.123, "raw_linear_acc": 0.456, "k": 20,
                                       "temperature": 0.07, "linear_epochs": 5, "lr": 0.01,
                                       "seed": 0}}))
    assert raw_pixel_baseline(*digits, linear_epochs=5, cache_file=cache, cache_key="d") == {
        "raw_knn_acc": 0.123, "raw_linear_acc": 0.456}
    fresh = raw_pixel_baseline(*digits, k=5, linear_epochs=5, cache_file=cache, cache_key="d")
    assert fresh["raw_knn_acc"] > 0.9
    assert json.loads(cache.read_text())["d"]["k"] == 5


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", "", '{"d": "oops"}', "\udcff"])
def test_corrupt_cache_is_rewritten(digits: tuple[torch.Tensor, ...], tmp_path: Path, content: str) -> None:
    cache = tmp_path / "raw.json"
    cache.write_bytes(content.encode("utf-8", "surrogateescape"))
    out = raw_pixel_baseline(*digits, linear_epochs=5, cache_file=cache, cache_key="d")
    assert out["raw_knn_acc"] > 0.9
    assert json.loads(cache.read_text())["d"]["raw_knn_acc"] == out["raw_knn_acc"]


def test_no_cache_and_no_probe(digits: tuple[torch.Tensor, ...]) -> None:
    out = raw_pixel_baseline(*digits, linear_epochs=0)
    assert out["raw_knn_acc"] > 0.9
    assert out["raw_linear_acc"] != out["raw_linear_acc"]  # NaN: probe skipped
