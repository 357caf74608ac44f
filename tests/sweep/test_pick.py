"""A search's pick.yaml: the selected trial's settings at full precision, as config values, and back."""

from __future__ import annotations

import pytest
import yaml

from cjepa.sweep import Space, Study
from cjepa.sweep.pick import PICK_FILE, read_pick, write_pick


def _row(trial: str, epoch: int, status: str, loss: float, lr: float) -> dict:
    return {"arm": f"optuna-{trial}", "seed": 0, "trial_id": trial, "epoch": epoch, "status": status,
            "loss": loss, "factor.optim.lr": lr, "factor.data.crop_scale": "(0.3, 1.0)"}


def test_a_minimising_search_writes_its_lowest_completed_trial(tmp_path) -> None:
    study = Study(name="s", search="optuna", seeds=(0,), metric="loss", mode="min",
                  space={"optim.lr": Space("loguniform", 1e-3, 1e-2)})
    rows = [_row("t1", 2, "COMPLETED", 0.40, 0.0021234567891),
            _row("t2", 1, "STOPPED", 0.10, 0.005),  # lowest, but ASHA stopped it
            _row("t3", 2, "COMPLETED", 0.50, 0.003)]
    path = write_pick(tmp_path, rows, study)
    record = yaml.safe_load(path.read_text())
    assert (record["trial_id"], record["arm"], record["value"], record["mode"]) == ("t1", "optuna-t1", 0.40, "min")
    assert read_pick(path) == {"data.crop_scale": [0.3, 1.0], "optim.lr": 0.0021234567891}  # not rounded


def test_a_grid_writes_no_pick_and_a_foreign_file_is_refused(tmp_path) -> None:
    grid = Study(name="g", factors={"loss.beta_vicreg": [0.0]}, seeds=(0,))
    assert write_pick(tmp_path, [_row("t1", 2, "COMPLETED", 0.4, 0.002)], grid) is None
    assert not (tmp_path / PICK_FILE).exists()
    (tmp_path / PICK_FILE).write_text("- 1\n- 2\n")
    with pytest.raises(SystemExit, match="expected a search's pick"):
        read_pick(tmp_path / PICK_FILE)
