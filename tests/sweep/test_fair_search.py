"""sweeps/fair_search.py: every family gets the same budget, space, first point and selection rule."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from cjepa.metrics import split_of
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


def _search_table(storage, family: str) -> None:
    """A finished search's results.parquet as the runner writes it: the first point completed at 59.6 %, a
    better trial completed at 60.7 %, a stopped trial at a higher epoch-1 score (ASHA stopped it)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    def row(arm, trial, epoch, status, knn, lr, crop):
        return {"arm": arm, "seed": 0, "trial_id": trial, "epoch": epoch, "status": status, "knn_target": knn,
                "factor.optim.lr": lr, "factor.ema.schedule": "linear", "factor.data.crop_scale": crop}

    rows = [row("optuna-a", "t1", 3, "COMPLETED", 0.596, 0.002, "(0.3, 1.0)"),
            row("optuna-b", "t2", 3, "COMPLETED", 0.607, 0.004, "(0.6, 1.0)"),
            row("optuna-c", "t3", 1, "STOPPED", 0.70, 0.005, "(0.6, 1.0)")]
    (storage / f"fair_search_{family}").mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows), storage / f"fair_search_{family}" / "results.parquet")


def test_winners_are_each_familys_validation_pick_with_paired_seeds(tmp_path) -> None:
    """The completed trial best on validation kNN (not the first point, not a stopped trial), with the
    family's fixed settings; families with no search table are left out."""
    _search_table(tmp_path, "ijepa")
    assert FAIR.pick_of("ijepa", tmp_path) == {"loss.beta_vicreg": 0.0, "optim.lr": 0.004, "ema.schedule": "linear",
                                               "data.crop_scale": [0.6, 1.0]}
    assert FAIR.pick_of("sigreg", tmp_path) is None  # not searched: left out
    study = FAIR.winners_study(False, tmp_path)
    assert list(study.arms) == ["ijepa"] and study.baseline == "ijepa" and study.seeds == (0, 1, 2)
    assert set(FAIR.BUDGET) <= set(study.overrides)
    validate_study(study)
    cfg = trial_config(study, study.arms["ijepa"], 0)
    assert (cfg.optim.lr, cfg.data.crop_scale, cfg.loss.beta_vicreg, cfg.run.epochs) == (0.004, (0.6, 1.0), 0.0, 3)
    with pytest.raises(SystemExit, match="no family's search table"):
        FAIR.winners_study(False, tmp_path / "empty")
