"""kNN: hand-checked weighted vote, digits accuracy, chunking invariance."""

from __future__ import annotations

import math

import pytest
import torch
from sklearn.datasets import load_digits

from cjepa.eval import knn_accuracy, knn_predict


def _angle(deg: float, r: float = 1.0) -> list[float]:
    return [r * math.cos(math.radians(deg)), r * math.sin(math.radians(deg))]


# Query at 0 deg. Cosine similarities: class 0 at 10 deg -> cos 10 = 0.985; class 1 at +-60 deg ->
# 0.5 each; class 0 at 180 deg -> -1 (never among the 3 nearest). Norms differ on purpose: the
# similarity is cosine, so they must not matter.
TRAIN = torch.tensor([_angle(10, 0.3), _angle(60, 5.0), _angle(-60, 2.0), _angle(180, 1.0)])
LABELS = torch.tensor([0, 1, 1, 0])
QUERY = torch.tensor([_angle(0, 7.0)])
# With k=3 class 0 wins iff exp(c/T) > 2 exp(0.5/T), i.e. T < (cos 10 - 0.5) / ln 2 = 0.6999.
T_STAR = (math.cos(math.radians(10)) - 0.5) / math.log(2)


@pytest.mark.parametrize(
    ("temperature", "expected"),
    [(0.07, 0), (0.6, 0), (0.8, 1), (math.inf, 1)],  # inf: every neighbour weight 1 = majority vote
)
def test_weighted_vote_by_hand(temperature: float, expected: int) -> None:
    assert 0.69 < T_STAR < 0.70
    pred = knn_predict(TRAIN, LABELS, QUERY, k=3, temperature=temperature)
    assert pred.tolist() == [expected]


def test_k1_whole_bank_and_k_larger_than_bank() -> None:
    assert knn_predict(TRAIN, LABELS, QUERY, k=1).tolist() == [0]
    # k=4 is the whole bank: the 180-deg point joins with weight exp(-1/T) ~ 0.
    assert knn_predict(TRAIN, LABELS, QUERY, k=4, temperature=0.07).tolist() == [0]
    assert knn_predict(TRAIN, LABELS, QUERY, k=4, temperature=math.inf).tolist() == [0]  # 2-2 tie -> 0
    with pytest.raises(ValueError, match=r"1 <= k <= 4 \(the training bank\), got 10"):  # refused, not clipped
        knn_predict(TRAIN, LABELS, QUERY, k=10)


def test_small_temperature_does_not_overflow() -> None:
    pred = knn_predict(TRAIN, LABELS, QUERY, k=3, temperature=1e-3)
    assert pred.tolist() == [0]


def _digits_split() -> tuple[torch.Tensor, ...]:
    d = load_digits()
    x, y = torch.tensor(d.data, dtype=torch.float32), torch.tensor(d.target)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    tr, te = perm[:1300], perm[1300:]
    return x[tr], y[tr], x[te], y[te]


def test_digits_raw_pixels_high_accuracy() -> None:
    xtr, ytr, xte, yte = _digits_split()
    acc = knn_accuracy(xtr, ytr, xte, yte, k=20, temperature=0.07)
    print(f"digits raw-pixel kNN (k=20, T=0.07): {acc:.4f}")
    assert 0.9 < acc <= 1.0


def test_chunked_equals_unchunked() -> None:
    xtr, ytr, xte, _ = _digits_split()
    full = knn_predict(xtr, ytr, xte, chunk=100_000)
    assert torch.equal(knn_predict(xtr, ytr, xte, chunk=7), full)
    assert torch.equal(knn_predict(xtr, ytr, xte, chunk=1), full)
    assert full.dtype == torch.long and full.shape == (len(xte),)


def test_bad_inputs_raise() -> None:
    with pytest.raises(ValueError):
        knn_predict(TRAIN, LABELS, torch.zeros(1, 3))
    with pytest.raises(ValueError):
        knn_predict(TRAIN, LABELS[:2], QUERY)
    with pytest.raises(ValueError):
        knn_predict(TRAIN, LABELS, QUERY, temperature=0.0)
