"""The runner's values (cjepa/sweep/plan.py) and a Study never changed in place (issue 25, item 2).

No Ray: a plan is built and checked before Ray starts; a flag, a profile or a resumed study's runner
gives a new Study and leaves the one it was given as it was.
"""

from __future__ import annotations

import inspect
from dataclasses import FrozenInstanceError, replace
from pathlib import Path

import pytest

from cjepa.sweep import Space, Study
from cjepa.sweep.cli import apply_args, parse_args
from cjepa.sweep.plan import StudyPlan, Tracking, TrialPlan, keep_ray_train_runner, prepare_study
from cjepa.sweep.profiles import QUICK, study_at

TINY = str(Path(__file__).with_name("tiny_study.yaml"))


def _tiny(**kw: object) -> Study:
    return Study(name="tiny_vicreg", base=TINY, factors={"loss.beta_vicreg": [0.0, 0.01]},
                 baseline="beta_vicreg=0.0", seeds=(0,), **kw)


def test_a_study_and_its_space_are_frozen() -> None:
    study = _tiny()
    with pytest.raises(FrozenInstanceError):
        study.seeds = (0, 1)  # type: ignore[misc]
    with pytest.raises(FrozenInstanceError):
        Space("uniform", 0.0, 1.0).low = 0.5  # type: ignore[misc]
    assert replace(study, seeds=(0, 1)).seeds == (0, 1) and study.seeds == (0,)


def test_command_line_flags_give_a_new_study() -> None:
    study = study_at(QUICK, "tiny", base=TINY, factors={"loss.beta_vicreg": [0.0]})
    before = replace(study)
    argv = ["--name", "other", "--seeds", "3", "4", "--max-concurrent", "1", "--workers-per-trial", "2",
            "--use-gpu", "--trial-runner", "ray_train"]
    flagged = apply_args(study, parse_args("t", argv))
    assert study == before  # the script's study as it was
    assert (flagged.name, flagged.seeds, flagged.max_concurrent, flagged.workers_per_trial, flagged.use_gpu,
            flagged.trial_runner) == ("other", (3, 4), 1, 2, True, "ray_train")
    assert flagged.factors == study.factors and flagged.overrides == study.overrides
    assert apply_args(study, parse_args("t", [])) == study  # no flags: the same design


def test_a_plan_holds_the_study_that_runs(tmp_path: Path) -> None:
    study = _tiny()
    plan = prepare_study(study, str(tmp_path), False, ["eval.linear_epochs=3"])
    assert isinstance(plan, StudyPlan) and isinstance(plan.trials, TrialPlan)
    assert plan.study == study and plan.extra == ("eval.linear_epochs=3",) and plan.only is None
    assert plan.study_dir == tmp_path / "tiny_vicreg" and plan.trial_count() == 2
    assert sorted(plan.trials.configs) == [("beta_vicreg=0.0", 0), ("beta_vicreg=0.01", 0)]
    assert plan.trial_config("beta_vicreg=0.01", 0).eval.linear_epochs == 3
    with pytest.raises(FrozenInstanceError):
        plan.resume = True  # type: ignore[misc]


def test_a_resumed_ray_train_study_keeps_its_runner_in_a_new_study(tmp_path: Path, capsys) -> None:
    study = _tiny()
    assert keep_ray_train_runner(study, tmp_path) is study  # no train/ folder: as it is
    (tmp_path / "train").mkdir()
    kept = keep_ray_train_runner(study, tmp_path)
    assert kept.trial_runner == "ray_train" and study.trial_runner == "auto"
    assert "they continue there" in capsys.readouterr().out


def test_tracking_speaks_the_mlflow_reporters_arguments() -> None:
    from cjepa.tracking import MLflowReporter

    study = Tracking("sqlite:///m.db", "tiny_vicreg", "parent-1")
    trial = study.for_trial("0.01 s0 · beta_vicreg", {"arm": "beta_vicreg=0.01", "seed": "0"})
    assert study.run_name is None and dict(study.tags) == {}  # the study's own value is not changed
    kwargs = trial.reporter_kwargs()
    assert kwargs == {"tracking_uri": "sqlite:///m.db", "experiment": "tiny_vicreg", "parent_run_id": "parent-1",
                      "run_name": "0.01 s0 · beta_vicreg", "tags": {"arm": "beta_vicreg=0.01", "seed": "0"}}
    accepted = set(inspect.signature(MLflowReporter).parameters) - {"cfg"}
    assert set(kwargs) == accepted
