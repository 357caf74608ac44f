"""The study's MLflow parent run on a real sqlite store, for every study script in sweeps/."""

import importlib.util
import json
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from cjepa.sweep.results import open_parent, param_key

SWEEPS = sorted((Path(__file__).resolve().parents[2] / "sweeps").glob("*.py"))


def test_param_key_keeps_what_mlflow_allows():
    assert param_key("arm.I-JEPA (EMA only)") == "arm.I-JEPA _EMA only_"
    assert param_key("arm.EMA + invariance") == "arm.EMA _ invariance"
    assert param_key("arm.var/cov only") == "arm.var/cov only"
    assert param_key("arm.0.996->1 linear") == "arm.0.996-_1 linear"


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    uri = f"sqlite:///{tmp_path_factory.mktemp('parent') / 'mlflow.db'}"
    MlflowClient(uri).search_experiments()  # create the tables once
    return uri


@pytest.mark.parametrize("script", SWEEPS, ids=[s.stem for s in SWEEPS])
def test_every_study_opens_its_parent_run(script, store, tmp_path):
    """Arm names with spaces, parentheses, '+' or '>' must not break the parent run's params."""
    spec = importlib.util.spec_from_file_location(script.stem, script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    study = module.make_study(False)
    run_id = open_parent(study, store, tmp_path / study.name, resume=False)
    run = MlflowClient(store).get_run(run_id)
    assert run.data.tags["cjepa.role"] == "study" and run.data.params["base"] == study.base
    for arm, settings in study.arms.items():
        assert json.loads(run.data.params[param_key(f"arm.{arm}")]) == settings
    assert open_parent(study, store, tmp_path / study.name, resume=True) == run_id  # --resume reuses it
