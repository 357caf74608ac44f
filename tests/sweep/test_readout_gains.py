"""cjepa/sweep/readout_gains.py: gains over the initial network and changes between eval settings,
paired by seed, computed by hand."""

from __future__ import annotations

import pytest

from cjepa.sweep.readout_gains import format_gains_by_setting, gains_by_setting, readouts

K1, K4 = "eval.last_layers=1", "eval.last_layers=4"


def row(arm: str, seed: int, overrides: str, knn: float, knn_init: float, lin7: float, lin7_init: float) -> dict:
    return {"arm": arm, "seed": seed, "overrides": overrides, "split": "val", "val_knn_target": knn,
            "val_knn_random": knn_init, "val_linear_target_grid7": lin7, "val_linear_random_grid7": lin7_init,
            "val_linear_target_grid7_ijepa_lr": 0.01}


ROWS = [row("a", 1, K1, 0.70, 0.50, 0.80, 0.82), row("a", 2, K1, 0.72, 0.50, 0.81, 0.81),
        row("a", 1, K4, 0.74, 0.52, 0.84, 0.83), row("a", 2, K4, 0.78, 0.50, 0.85, 0.83)]


def test_readouts_are_the_trained_encoders_knn_first() -> None:
    assert readouts(ROWS, "val") == ["knn_target", "linear_target_grid7"]


def test_gain_over_the_initial_network_and_change_between_settings() -> None:
    table = gains_by_setting(ROWS, "val", [K1, K4])
    assert [(e["arm"], e["setting"], e["n"]) for e in table] == [("a", K1, 2), ("a", K4, 2)]
    k1, k4 = table
    assert k1["gain"]["knn_target"].mean == pytest.approx(0.21)  # (0.20 + 0.22) / 2
    assert k1["gain"]["linear_target_grid7"].mean == pytest.approx(-0.01)  # (-0.02 + 0.00) / 2
    assert k1["change"] == {}
    assert k4["gain"]["knn_target"].mean == pytest.approx(0.25)  # (0.22 + 0.28) / 2
    # paired by seed: (0.74 - 0.70, 0.78 - 0.72) -> 0.05, t(1) half-width 12.706 * 0.01 / sqrt(2) * sqrt(2)
    change = k4["change"]["knn_target"]
    assert change.mean == pytest.approx(0.05) and change.high - change.mean == pytest.approx(12.7062 * 0.01, rel=1e-4)
    text = format_gains_by_setting(table, "val", [K1, K4])
    assert "| a | `eval.last_layers=4` | 2 | 25.0 ± 38.1 (Δ 5.0 ± 12.7) |" in text


def test_a_later_row_of_the_same_trial_and_setting_wins() -> None:
    again = [*ROWS, row("a", 1, K1, 0.60, 0.50, 0.80, 0.80)]
    assert gains_by_setting(again, "val", [K1])[0]["gain"]["knn_target"].mean == pytest.approx(0.16)
