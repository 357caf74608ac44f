"""A study's durable outputs: its MLflow parent run (real sqlite store, every study script in sweeps/),
and the results table, summary and study.json, which a second run never overwrites.

Real files, real Tune ``Result`` objects (built without Ray: what a ResultGrid iterates over) and the
real pre-Ray checks; ``connect_ray`` is replaced only by a tripwire that fails a test if it is reached.
"""

import importlib.util
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from mlflow.tracking import MlflowClient
from ray.tune import Result

from cjepa.errors import StudyError
from cjepa.sweep import Study
from cjepa.sweep.results import check_not_overwriting, merge_rows, open_parent, param_key, read_rows, write_results

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


# --------------------------------------------------------------------------- a study is never overwritten

TINY = str(Path(__file__).with_name("tiny_study.yaml"))
ARMS = {"beta_vicreg=0.0": {"loss.beta_vicreg": 0.0}, "beta_vicreg=0.01": {"loss.beta_vicreg": 0.01}}


def _tiny() -> Study:
    return Study(name="tiny_vicreg", base=TINY, factors={"loss.beta_vicreg": [0.0, 0.01]},
                 baseline="beta_vicreg=0.0", seeds=(0,))


def _result(arm: str, epochs: list[int], knn: float = 0.5) -> Result:
    """A trial's Tune result: per-epoch metrics, or (``epochs=[]``) what a restore that lost the
    trial's history gives back: a config and no metrics at all."""
    frame = pd.DataFrame([{"epoch": e, "knn_target": knn + e / 100, "trial_id": f"t-{arm}"} for e in epochs]) \
        if epochs else None
    metrics = {"config": {"arm": arm, "seed": 0}, "trial_id": f"t-{arm}" if epochs else ""}
    return Result(metrics=metrics, checkpoint=None, error=None, path="/nowhere", metrics_dataframe=frame)


@pytest.fixture
def tripwire(monkeypatch):
    """Any path that reaches connect_ray() fails the test instead of starting Ray."""
    import cjepa.distributed.preflight as preflight

    def no_ray() -> str:
        raise AssertionError("Ray would start")

    monkeypatch.setattr(preflight, "connect_ray", no_ray)


@pytest.mark.parametrize("existing", ["study.json", "results.parquet", "summary.md", "tuner.pkl",
                                      "experiment_state-2026-01-01_00-00-00.json"])
def test_a_second_run_is_refused_before_ray(existing, tmp_path, tripwire):
    from cjepa.sweep.runner import run_study

    study_dir = tmp_path / "tiny_vicreg"
    study_dir.mkdir()
    (study_dir / existing).write_bytes(b"earlier results")
    with pytest.raises(StudyError) as err:
        run_study(_tiny(), storage=str(tmp_path), mlflow=False)
    assert str(err.value) == (f"study 'tiny_vicreg' already has results in {study_dir} ({existing}); pass --resume "
                              "to continue it, or --name NEW to start a new study beside it (nothing was changed)")
    assert (study_dir / existing).read_bytes() == b"earlier results"
    assert sorted(p.name for p in study_dir.iterdir()) == [existing]


def test_refusal_on_the_command_line_and_the_way_out(tmp_path, capsys, tripwire):
    from cjepa.sweep.cli import main

    (tmp_path / "tiny_vicreg").mkdir()
    (tmp_path / "tiny_vicreg" / "results.parquet").write_bytes(b"x")
    assert main(lambda full: _tiny(), "t", ["--storage", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--resume" in err[0] and "--name NEW" in err[0] and "results.parquet" in err[0]
    assert main(lambda full: _tiny(), "t", ["--storage", str(tmp_path), "--resume", "--dry-run"]) == 0
    assert main(lambda full: _tiny(), "t", ["--storage", str(tmp_path), "--name", "tiny2", "--dry-run"]) == 0
    assert f"study tiny2: 2 arms x 1 seeds (grid, scheduler none) in {tmp_path / 'tiny2'}" in capsys.readouterr().out


def test_empty_or_missing_study_dir_is_not_refused(tmp_path):
    check_not_overwriting(tmp_path / "absent", resume=False, name="x")
    (tmp_path / "empty").mkdir()
    check_not_overwriting(tmp_path / "empty", resume=False, name="x")


def test_results_are_only_added_to(tmp_path):
    """A resumed study whose Tune state lost a finished trial's history must not replace its rows
    with a metric-less one; a trial that has only now reported is added; the summary uses both."""
    study, study_dir = _tiny(), tmp_path / "tiny_vicreg"
    path, _ = write_results(study, ARMS, [_result("beta_vicreg=0.0", [1, 2]), _result("beta_vicreg=0.01", [1])],
                            study_dir, None)
    first = read_rows(path)
    assert [(r["arm"], r["epoch"], r["knn_target"]) for r in first] == [
        ("beta_vicreg=0.0", 1, 0.51), ("beta_vicreg=0.0", 2, 0.52), ("beta_vicreg=0.01", 1, 0.51)]
    _, summary = write_results(study, ARMS, [_result("beta_vicreg=0.0", []), _result("beta_vicreg=0.01", [1, 2], 0.6)],
                               study_dir, None)
    second = read_rows(path)
    assert [(r["arm"], r["epoch"], r["knn_target"], r["status"]) for r in second] == [
        ("beta_vicreg=0.0", 1, 0.51, "COMPLETED"), ("beta_vicreg=0.0", 2, 0.52, "COMPLETED"),
        ("beta_vicreg=0.01", 1, 0.61, "COMPLETED"), ("beta_vicreg=0.01", 2, 0.62, "COMPLETED")]
    assert "2 trials (2 completed)" in summary and "n/a" not in summary.split("\n", 3)[3]
    assert (study_dir / "summary.md").read_text() == summary + "\n"


def test_merge_rows_rules():
    base = {"study": "s", "seed": 0, "status": "COMPLETED", "factor.loss.beta_vicreg": 0.0}
    old = [{**base, "arm": "a", "epoch": 1, "knn_target": 0.5}, {**base, "arm": "b", "epoch": 0, "knn_target": None}]
    new = [{**base, "arm": "a", "epoch": 0, "knn_target": None}, {**base, "arm": "a", "epoch": 1, "knn_target": None},
           {**base, "arm": "b", "epoch": 1, "knn_target": 0.7}]
    merged = merge_rows(old, new)
    assert [(r["arm"], r["epoch"], r["knn_target"]) for r in merged] == [("a", 1, 0.5), ("b", 1, 0.7)]
    assert merge_rows([], old[1:]) == old[1:]  # a trial with no metrics at all keeps its placeholder row


def test_a_damaged_table_is_not_overwritten(tmp_path):
    study_dir = tmp_path / "tiny_vicreg"
    study_dir.mkdir()
    (study_dir / "results.parquet").write_bytes(b"PAR1 truncated")
    with pytest.raises(StudyError, match="cannot be read .*move it away and rerun with --resume"):
        write_results(_tiny(), ARMS, [_result("beta_vicreg=0.0", [1])], study_dir, None)
    assert (study_dir / "results.parquet").read_bytes() == b"PAR1 truncated"


WRITER = """
import sys, time
from cjepa.atomic import atomic_write
def slow(fh):
    fh.write(b"half of a new table"); fh.flush()
    print("writing", flush=True); time.sleep(60)
atomic_write(sys.argv[1], slow)
"""


def test_killed_mid_write_leaves_the_previous_table(tmp_path):
    """SIGKILL while results.parquet is being replaced: the previous table stays readable as it was,
    and the next write (the rerun) succeeds."""
    study, study_dir = _tiny(), tmp_path / "tiny_vicreg"
    path, _ = write_results(study, ARMS, [_result("beta_vicreg=0.0", [1, 2])], study_dir, None)
    before = pq.read_table(path).to_pylist()
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    assert proc.stdout.readline().strip() == "writing"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert pq.read_table(path).to_pylist() == before
    assert [p.name.startswith(".results.parquet.") for p in study_dir.iterdir() if p.suffix == ".tmp"] == [True]
    write_results(study, ARMS, [_result("beta_vicreg=0.01", [1, 2])], study_dir, None)
    assert len(pq.read_table(path).to_pylist()) == 4
