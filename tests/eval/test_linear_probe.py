"""Linear probe: separable data, digits, determinism, the weight-decay bank."""

from __future__ import annotations

import pytest
import torch
from sklearn.datasets import load_digits

from cjepa.eval import linear_probe_accuracy


def _separable(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Three tight, far-apart blobs, plus nuisance features on a 1e4 scale that standardisation
    must tame (otherwise one lr cannot fit both)."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 3, (n,), generator=g)
    blobs = 5.0 * torch.eye(3)[y] + 0.3 * torch.rand(n, 3, generator=g)
    noise = 1e4 * torch.randn(n, 2, generator=g)
    return torch.cat([blobs, noise], dim=1), y


def test_separable_is_perfect() -> None:
    xtr, ytr = _separable(600, 0)
    xte, yte = _separable(300, 1)
    out = linear_probe_accuracy(xtr, ytr, xte, yte, epochs=100)
    assert out["acc"] == 1.0
    assert set(out) == {"acc", "weight_decay"}


def _digits() -> tuple[torch.Tensor, ...]:
    d = load_digits()
    x, y = torch.tensor(d.data, dtype=torch.float32), torch.tensor(d.target)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    tr, te = perm[:1300], perm[1300:]
    return x[tr], y[tr], x[te], y[te]


def test_digits_raw_pixels() -> None:
    out = linear_probe_accuracy(*_digits(), epochs=100)
    print(f"digits raw-pixel linear probe: {out}")
    assert out["acc"] > 0.9


def test_deterministic_for_fixed_seed() -> None:
    data = _digits()
    a = linear_probe_accuracy(*data, epochs=20, seed=3)
    b = linear_probe_accuracy(*data, epochs=20, seed=3)
    assert a == b


def test_chosen_weight_decay_is_in_bank() -> None:
    bank = (0.0, 0.5, 3.0)
    out = linear_probe_accuracy(*_digits(), epochs=20, weight_decays=bank)
    assert out["weight_decay"] in bank
    out1 = linear_probe_accuracy(*_digits(), epochs=20, weight_decays=(1e-3,))
    assert out1["weight_decay"] == 1e-3


def test_val_selection_picks_the_better_head() -> None:
    """A head with a huge weight decay is nearly constant and fails on val: the probe must pick the
    other one although it comes second in the bank (selection by accuracy, not by order)."""
    out = linear_probe_accuracy(*_digits(), epochs=30, weight_decays=(100.0, 0.0))
    assert out["weight_decay"] == 0.0
    assert out["acc"] > 0.9


def test_bad_arguments() -> None:
    data = _digits()
    with pytest.raises(ValueError):
        linear_probe_accuracy(*data, epochs=0)
    with pytest.raises(ValueError):
        linear_probe_accuracy(*data, weight_decays=())
    with pytest.raises(ValueError):
        linear_probe_accuracy(*data, val_fraction=1.0)
