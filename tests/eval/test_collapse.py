"""Collapse telemetry: constant, isotropic, low-rank and redundant features."""

from __future__ import annotations

import math

import pytest
import torch

from cjepa.eval import collapse_metrics, effective_rank, feature_std, mean_abs_offdiag_corr


def _gauss(n: int, d: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("value", [0.0, 0.1, 3.0])
def test_constant_features(value: float) -> None:
    feats = torch.full((64, 16), value)
    std = feature_std(feats)
    assert std["std_min"] == pytest.approx(0.0, abs=1e-9)
    assert std["std_mean"] == pytest.approx(0.0, abs=1e-9)
    assert std["std_mean_normalized"] == pytest.approx(0.0, abs=1e-6)
    assert effective_rank(feats) == pytest.approx(1.0, abs=1e-6)
    assert mean_abs_offdiag_corr(feats) == 0.0
    assert all(math.isfinite(v) for v in collapse_metrics(feats, "c").values())


def test_isotropic_gaussian() -> None:
    feats = _gauss(4096, 16)
    m = collapse_metrics(feats, "target")
    assert m["target_std_mean"] == pytest.approx(1.0, abs=0.03)
    assert 0.9 < m["target_std_min"] <= m["target_std_mean"]
    assert m["target_std_mean_normalized"] == pytest.approx(1.0, abs=0.03)
    assert 15.8 < m["target_eff_rank"] <= 16.0
    assert m["target_offdiag_corr"] < 0.03  # ~ sqrt(2 / (pi N)) = 0.012 for independent features


def test_normalized_std_is_scale_free_raw_std_is_not() -> None:
    feats = _gauss(2048, 8)
    small = feature_std(1e-3 * feats)
    big = feature_std(feats)
    assert small["std_mean"] == pytest.approx(1e-3 * big["std_mean"], rel=1e-6)
    assert small["std_mean_normalized"] == pytest.approx(big["std_mean_normalized"], rel=1e-6)
    assert effective_rank(1e-3 * feats) == pytest.approx(effective_rank(feats), rel=1e-9)


def test_rank_two_data() -> None:
    coeffs, basis = _gauss(4096, 2, seed=1), _gauss(2, 16, seed=2)
    feats = coeffs @ basis  # spans exactly 2 of 16 directions
    rank = effective_rank(feats)
    assert 1.0 < rank <= 2.05
    full = effective_rank(_gauss(4096, 16))
    assert full > 7 * rank


def test_rankme_matches_definition_on_known_singular_values() -> None:
    # Orthogonal columns with norms 3, 1: s = (3, 1), p = (0.75, 0.25), rank = exp(H(p)).
    feats = torch.tensor([[3.0, 0.0], [0.0, 1.0]])
    expected = math.exp(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25)))
    assert effective_rank(feats, eps=0.0) == pytest.approx(expected, rel=1e-9)


def test_rankme_is_uncentred() -> None:
    # A constant offset plus variation along one other axis: two directions uncentred, one centred.
    t = _gauss(512, 1).squeeze(1)
    feats = torch.stack([torch.full_like(t, 5.0), t], dim=1)
    assert effective_rank(feats) > 1.3


def test_perfectly_correlated_features() -> None:
    base = _gauss(256, 1)
    feats = torch.cat([base, -2.0 * base, 0.5 * base + 7.0], dim=1)  # |corr| = 1 for every pair
    assert mean_abs_offdiag_corr(feats) == pytest.approx(1.0, abs=1e-9)


def test_dead_feature_counts_as_zero_correlation() -> None:
    base = _gauss(256, 1)
    feats = torch.cat([base, 3.0 * base, torch.full_like(base, 0.1)], dim=1)
    # Pairs (0,1) and (1,0) have |corr| 1; the 4 pairs with the dead feature count 0: mean 2 / 6.
    assert mean_abs_offdiag_corr(feats) == pytest.approx(1 / 3, abs=1e-9)


def test_degenerate_shapes_and_nan_input() -> None:
    one = torch.ones(1, 4)
    assert feature_std(one)["std_min"] == 0.0
    assert mean_abs_offdiag_corr(one) == 0.0
    assert mean_abs_offdiag_corr(_gauss(10, 1)) == 0.0
    assert effective_rank(torch.zeros(8, 4)) == pytest.approx(1.0)
    bad = _gauss(8, 4)
    bad[0, 0] = float("nan")
    assert all(math.isnan(v) for v in collapse_metrics(bad, "x").values())
    with pytest.raises(ValueError):
        feature_std(torch.zeros(4))


def test_keys() -> None:
    keys = set(collapse_metrics(_gauss(32, 4), "ctx"))
    assert keys == {"ctx_std_min", "ctx_std_mean", "ctx_std_mean_normalized", "ctx_eff_rank",
                    "ctx_offdiag_corr"}
