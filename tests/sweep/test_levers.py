"""sweeps/levers.py: each lever is one switch on a family's picked recipe, at the fair search's budget."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from cjepa.sweep.study import trial_config, validate_study

SCRIPT = Path(__file__).resolve().parents[2] / "sweeps" / "levers.py"
spec = importlib.util.spec_from_file_location("levers", SCRIPT)
LEVERS = importlib.util.module_from_spec(spec)
spec.loader.exec_module(LEVERS)


@pytest.mark.parametrize("family", ["context_target", "ijepa"])
def test_every_arm_is_the_pick_plus_one_switch(family: str) -> None:
    study = LEVERS.make_study(False, family)
    validate_study(study)
    pick = LEVERS.FAIR.pick_of(family, LEVERS.FAIR.PICKS)
    assert study.name == f"levers_{family}" and study.arms[LEVERS.BASELINE] == pick
    assert set(LEVERS.FAIR.BUDGET) <= set(study.overrides) and study.seeds == (1, 2, 3)
    for name, arm in study.arms.items():
        assert {k: v for k, v in arm.items() if k not in LEVERS.ARMS[name]} == pick  # nothing else moved
    recipe = trial_config(study, study.arms[LEVERS.BASELINE], 0)
    views = trial_config(study, study.arms["2 context views"], 0)
    assert (recipe.optim.lr, recipe.mask.context_views, views.mask.context_views) == (pick["optim.lr"], 1, 2)
    assert recipe.model.patch_embed == "linear" and views.optim.lr == pick["optim.lr"]


def test_a_family_without_a_pick_is_refused(tmp_path) -> None:
    with pytest.raises(SystemExit, match="family 'sigreg' has no pick in"):
        LEVERS.make_study(False, "sigreg", tmp_path)


def test_a_confirmation_of_some_arms_keeps_the_recipe() -> None:
    study = LEVERS.make_study(False, "context_target", only=("patch 2",))
    assert list(study.arms) == [LEVERS.BASELINE, "patch 2"] and study.baseline == LEVERS.BASELINE
    assert study.arms["patch 2"] == LEVERS.make_study(False, "context_target").arms["patch 2"]
