"""sweeps/goal_check.py: the committed picks at the goal's budget, every read-out, test scored once."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from cjepa.metrics import split_of
from cjepa.sweep.study import trial_config, validate_study

SCRIPT = Path(__file__).resolve().parents[2] / "sweeps" / "goal_check.py"
spec = importlib.util.spec_from_file_location("goal_check", SCRIPT)
GOAL = importlib.util.module_from_spec(spec)
spec.loader.exec_module(GOAL)


def test_each_arm_is_its_familys_pick_at_the_goal_budget() -> None:
    study = GOAL.make_study(False)
    validate_study(study)
    assert list(study.arms) == ["ijepa", "context_target"] and study.baseline == "ijepa"
    assert study.seeds == (1, 2, 3)
    cfg = trial_config(study, study.arms["context_target"], 1)
    pick = GOAL.FAIR.pick_of("context_target", GOAL.FAIR.PICKS)
    assert (cfg.optim.lr, cfg.optim.batch_size, cfg.ema.schedule) == (pick["optim.lr"], 64, "constant")
    assert cfg.loss.vicreg_mode == "context_target" and cfg.loss.beta_vicreg == pick["loss.beta_vicreg"]
    assert trial_config(study, study.arms["ijepa"], 0).loss.beta_vicreg == 0.0
    assert (cfg.run.epochs, cfg.run.threads, cfg.data.val_samples) == (5, 1, 2000)
    assert cfg.eval.poolings == ("mean", "grid2", "grid4", "grid7") and cfg.eval.test_samples == 10000
    assert cfg.eval.train_samples == 50000 and split_of(cfg, "knn_target") == "val"  # the curve reads validation


def _options(argv):
    return GOAL.FAIR.script_options(argv, **GOAL.FAMILIES_OPTION, **GOAL.FAIR.PICKS_OPTION)


def test_families_come_from_the_command_line_and_unknown_or_unpicked_ones_are_refused(tmp_path, capsys) -> None:
    own, rest = _options(["--families", "ijepa", "two_views", "--dry-run"])
    assert (tuple(own.families), rest) == (("ijepa", "two_views"), ["--dry-run"])
    assert tuple(_options(["--dry-run"])[0].families) == GOAL.FAMILIES
    with pytest.raises(SystemExit) as exit_:
        _options(["--families", "vicreg"])
    assert exit_.value.code == 2 and "invalid choice: 'vicreg'" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="family 'ijepa' has no pick in"):
        GOAL.make_study(False, ("ijepa",), tmp_path)
