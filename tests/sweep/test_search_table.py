"""A search's trials.md: each trial's searched settings beside its per-epoch score, status and test score."""

from __future__ import annotations

from cjepa.sweep import Space, Study
from cjepa.sweep.search_table import TRIALS_FILE, trials_markdown, write_trials

STUDY = Study(name="s", search="optuna", seeds=(0,), metric="knn_target",
              space={"optim.lr": Space("loguniform", 1e-3, 1e-2), "ema.schedule": Space("choice", choices=("a", "b"))})


def _row(trial: str, epoch: int, status: str, knn: float, test: float | None = None) -> dict:
    return {"arm": f"optuna-{trial}", "seed": 0, "trial_id": trial, "epoch": epoch, "status": status,
            "knn_target": knn, "test_knn_target": test, "train_cpu_min": 1.25 * epoch,
            "factor.optim.lr": 0.0021234567, "factor.ema.schedule": "a"}


def test_one_line_per_trial_in_run_order_with_the_pick_in_bold() -> None:
    rows = [_row("t2", 1, "COMPLETED", 0.50), _row("t1", 1, "STOPPED", 0.90),  # t1 best, but ASHA stopped it
            _row("t2", 2, "COMPLETED", 0.625, test=0.6)]
    lines = trials_markdown(rows, STUDY).splitlines()
    assert lines[2] == ("| trial | optim.lr | ema.schedule | knn_target % per epoch | status | train CPU-min | "
                        "test_knn_target % |")
    assert lines[4:] == ["| **t2** | 0.002123 | a | 50.0 / 62.5 | completed | 2.5 | 60.0 |",
                         "| t1 | 0.002123 | a | 90.0 | stopped | 1.2 |  |"]


def test_a_grid_writes_no_trials_file(tmp_path) -> None:
    grid = Study(name="g", factors={"loss.beta_vicreg": [0.0]}, seeds=(0,))
    assert write_trials(tmp_path, [_row("t1", 1, "COMPLETED", 0.5)], grid) is None
    assert not (tmp_path / TRIALS_FILE).exists()
    text = write_trials(tmp_path, [_row("t1", 1, "COMPLETED", 0.5)], STUDY).read_text()
    assert text.splitlines()[-1] == "| **t1** | 0.002123 | a | 50.0 | completed | 1.2 |  |"
