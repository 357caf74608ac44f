"""A search study's summary names each trial as the console and MLflow do, and says what it selected."""

from __future__ import annotations

from cjepa.sweep import Space, Study
from cjepa.sweep.summary import summary_from_rows


def _row(arm: str, trial: str, epoch: int, status: str, knn: float, lr: float) -> dict:
    return {"arm": arm, "seed": 0, "trial_id": trial, "epoch": epoch, "status": status, "eval_split": "val",
            "knn_target": knn, "factor.optim.lr": lr, "factor.ema.schedule": "linear",
            "test_knn_target": knn - 0.01 if status == "COMPLETED" else None,
            "rand_knn_acc": 0.5, "test_rand_knn_acc": 0.49}


def test_a_search_summary_labels_trials_and_names_the_pick():
    study = Study(name="s", search="optuna", seeds=(0,), metric="knn_target",
                  space={"optim.lr": Space("loguniform", 1e-3, 1e-2)})
    rows = [_row("optuna-aaaa", "t1", 1, "COMPLETED", 0.55, 0.002),
            _row("optuna-aaaa", "t1", 2, "COMPLETED", 0.60, 0.002),
            _row("optuna-bbbb", "t2", 1, "STOPPED", 0.65, 0.004123456),  # best at its epoch, but stopped by ASHA
            _row("optuna-cccc", "t3", 2, "COMPLETED", 0.58, 0.003)]
    text = summary_from_rows(rows, study)
    assert "| optuna-aaaa (trial t1) | 1 | 60.0 |" in text and "| optuna-bbbb (trial t2) | 1 | 65.0 |" in text
    assert ("Selected on the validation split (knn_target at the last epoch, max, completed trials): "
            "optuna-aaaa (trial t1), knn_target 0.6: ema.schedule=linear, optim.lr=0.002") in text
    test_gains = text.split("per read-out (test split")[1]
    assert "optuna-bbbb" not in test_gains and "| optuna-cccc (trial t3) | 1 | 8.0 |" in test_gains  # 0.57 - 0.49


def test_a_grid_summary_keeps_its_arm_names_and_selects_nothing():
    study = Study(name="g", factors={"loss.beta_vicreg": [0.0]}, seeds=(0,))
    text = summary_from_rows([_row("beta_vicreg=0.0", "t1", 2, "COMPLETED", 0.6, 0.002)], study)
    assert "| beta_vicreg=0.0 | 1 | 60.0 |" in text and "(trial" not in text and "Selected" not in text
