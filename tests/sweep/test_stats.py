import math

import pytest

from cjepa.sweep.stats import format_summary, mean_ci, paired_difference, summarize


def test_mean_ci_against_hand_values():
    # n=3, mean 2, sd 1, t(0.975, 2) = 4.302653 -> half width 4.302653 / sqrt(3) = 2.484138
    ci = mean_ci([1.0, 2.0, 3.0])
    assert ci.mean == 2.0 and ci.n == 3
    assert ci.high - ci.mean == pytest.approx(2.484138, abs=1e-5)
    one = mean_ci([0.7])
    assert (one.low, one.high, one.n) == (0.7, 0.7, 1)
    assert math.isnan(mean_ci([]).mean)


def test_paired_difference_removes_shared_seed_noise():
    base = {0: 0.50, 1: 0.60, 2: 0.70}
    arm = {0: 0.52, 1: 0.62, 2: 0.72, 3: 0.99}  # seed 3 has no partner: ignored
    d = paired_difference(arm, base)
    assert d.n == 3 and d.mean == pytest.approx(0.02) and d.high - d.low == pytest.approx(0, abs=1e-12)


def test_summary_table():
    rows = [{"arm": a, "seed": s, "knn_target": v} for a, s, v in
            [("I", 0, 0.5), ("I", 1, 0.6), ("C", 0, 0.55), ("C", 1, 0.66)]]
    summary = summarize(rows, ["knn_target"], baseline="I")
    by_arm = {e["arm"]: e for e in summary}
    assert by_arm["C"]["knn_target_diff"].mean == pytest.approx(0.055)
    assert by_arm["I"]["knn_target_diff"] is None
    text = format_summary(summary, ["knn_target"], "I")
    assert "| C | 2 | 60.5 ±" in text and "(baseline)" in text and "5.5 ±" in text
