"""sweeps/fair_search.py: every family gets the same budget, space, first point and selection rule."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from cjepa.metrics import split_of
from cjepa.sweep.pick import write_pick
from cjepa.sweep.study import trial_config, validate_study

SCRIPT = Path(__file__).resolve().parents[2] / "sweeps" / "fair_search.py"


def _module():
    spec = importlib.util.spec_from_file_location("fair_search", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


FAIR = _module()


def _shared(study) -> tuple:
    """What must not differ between families: everything but the name, the fixed reading and the weight."""
    budget = tuple(o for o in study.overrides if o.split("=")[0] in {b.split("=")[0] for b in FAIR.BUDGET})
    space = {k: v for k, v in study.space.items() if k not in (FAIR.VICREG_WEIGHT, FAIR.SIGREG_WEIGHT)}
    first = {k: v for k, v in study.initial_points[0].items() if k not in (FAIR.VICREG_WEIGHT, FAIR.SIGREG_WEIGHT)}
    return (study.base, budget, sorted(space), first, study.num_samples, study.scheduler, study.grace_period,
            study.metric, study.seeds)


def test_every_family_gets_the_same_budget_space_and_first_point() -> None:
    studies = {family: FAIR.make_study(False, family) for family in FAIR.FAMILIES}
    assert len({repr(_shared(s)) for s in studies.values()}) == 1
    assert len({s.name for s in studies.values()}) == len(FAIR.FAMILIES)  # one folder and experiment each


@pytest.mark.parametrize("family", list(FAIR.FAMILIES))
def test_each_family_runs_its_regulariser_and_selects_on_validation(family: str) -> None:
    study = FAIR.make_study(False, family)
    validate_study(study)
    cfg = trial_config(study, study.initial_points[0], study.seeds[0])
    assert split_of(cfg, study.metric) == "val" and cfg.data.val_samples == 2000
    regularizer = cfg.regularizer
    if family == "ijepa":
        assert regularizer is None and cfg.loss.beta_vicreg == 0 and cfg.sigreg.weight == 0
    elif family == "sigreg":  # weighted by its own key, VICReg off
        assert regularizer.name == "sigreg" and (cfg.sigreg.weight, cfg.loss.beta_vicreg) == (0.1, 0.0)
    else:
        assert regularizer.name == family and (cfg.loss.beta_vicreg, cfg.sigreg.weight) == (0.1, 0.0)


def test_the_family_comes_from_the_command_line() -> None:
    assert FAIR.split_family(["--dry-run", "--family", "sigreg", "--resume"]) == ("sigreg", ["--dry-run", "--resume"])
    with pytest.raises(SystemExit, match="--family is required"):
        FAIR.split_family(["--dry-run"])
    with pytest.raises(SystemExit, match="'vicreg'"):
        FAIR.split_family(["--family", "vicreg"])


def _search_rows() -> list[dict]:
    """A finished search's rows as the runner writes them: the first point completed at 59.6 %, a
    better trial completed at 60.7 %, a stopped trial at a higher epoch-1 score (ASHA stopped it)."""
    def row(arm, trial, epoch, status, knn, lr, crop):
        return {"arm": arm, "seed": 0, "trial_id": trial, "epoch": epoch, "status": status, "knn_target": knn,
                "factor.optim.lr": lr, "factor.ema.schedule": "linear", "factor.data.crop_scale": crop}

    return [row("optuna-a", "t1", 3, "COMPLETED", 0.596, 0.002, "(0.3, 1.0)"),
            row("optuna-b", "t2", 3, "COMPLETED", 0.607, 0.004, "(0.6, 1.0)"),
            row("optuna-c", "t3", 1, "STOPPED", 0.70, 0.005, "(0.6, 1.0)")]


IJEPA_PICK = {"loss.beta_vicreg": 0.0, "data.crop_scale": [0.6, 1.0], "ema.schedule": "linear", "optim.lr": 0.004}


def test_winners_are_each_familys_validation_pick_with_paired_seeds(tmp_path) -> None:
    """The completed trial best on validation kNN (not the first point, not a stopped trial), read from the
    pick.yaml its search wrote, with the family's fixed settings; families with no pick are left out."""
    write_pick(tmp_path / "fair_search_ijepa", _search_rows(), FAIR.make_study(False, "ijepa"))
    assert FAIR.pick_of("ijepa", tmp_path) == IJEPA_PICK
    assert FAIR.pick_of("sigreg", tmp_path) is None  # not searched: left out
    study = FAIR.winners_study(False, tmp_path)
    assert list(study.arms) == ["ijepa"] and study.baseline == "ijepa" and study.seeds == (1, 2, 3)
    assert set(FAIR.BUDGET) <= set(study.overrides)
    validate_study(study)
    cfg = trial_config(study, study.arms["ijepa"], 0)
    assert (cfg.optim.lr, cfg.data.crop_scale, cfg.loss.beta_vicreg, cfg.run.epochs) == (0.004, (0.6, 1.0), 0.0, 3)
    with pytest.raises(SystemExit, match="no family's pick"):
        FAIR.winners_study(False, tmp_path / "empty")


def test_a_search_without_a_pick_file_is_read_from_its_table(tmp_path) -> None:
    """Searches run before pick.yaml existed: the same pick from results.parquet."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "fair_search_ijepa").mkdir()
    pq.write_table(pa.Table.from_pylist(_search_rows()), tmp_path / "fair_search_ijepa" / "results.parquet")
    assert FAIR.pick_of("ijepa", tmp_path) == IJEPA_PICK


def test_the_committed_picks_are_valid_arms() -> None:
    """docs/results' picks (the default --picks): every one builds a valid winners study."""
    study = FAIR.winners_study(False)
    validate_study(study)
    assert {"ijepa", "context_target"} <= set(study.arms)


def test_picks_option_comes_out_of_the_command_line() -> None:
    own, rest = FAIR.script_options(["--picks", "d", "--dry-run", "--seeds", "1"], **FAIR.PICKS_OPTION)
    assert (own.picks, rest) == (Path("d"), ["--dry-run", "--seeds", "1"])
    assert FAIR.script_options(["--dry-run"], **FAIR.PICKS_OPTION)[0].picks == FAIR.PICKS
