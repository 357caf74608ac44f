"""Extending a finished study (issue 16): only the new (arm, seed) trials run, under the same MLflow parent.

The planning is checked without Ray on a hand-made results table; the real extension runs a tiny
study on a local Ray, one Ray at a time (as tests/sweep/test_sweep_ray.py). Both of its driver runs call
the study script's ``main`` in this process, on one local Ray: a driver subprocess would pay an
interpreter's imports and a Ray start each, and what is checked (planning, merge, MLflow parent) is the
same code either way.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from mlflow.tracking import MlflowClient

from cjepa.errors import StudyError
from cjepa.sweep import Space, Study
from cjepa.sweep.plan import prepare_study
from cjepa.sweep.runner import extension_name
from tests.sweep import study_driver
from tests.sweep.in_process import driver_process_state, run_script_main

TINY = str(Path(__file__).with_name("tiny_study.yaml"))


def _study(seeds: tuple[int, ...] = (0, 1), levels: tuple[float, ...] = (0.0, 0.01)) -> Study:
    return Study(name="tiny_vicreg", base=TINY, factors={"loss.beta_vicreg": list(levels)}, seeds=seeds)


def _table(path: Path, trials: list[tuple[str, int]]) -> None:
    path.mkdir(parents=True, exist_ok=True)
    rows = [{"study": "tiny_vicreg", "arm": a, "seed": s, "epoch": 1, "status": "COMPLETED", "knn_target": 0.5}
            for a, s in trials]
    pq.write_table(pa.Table.from_pylist(rows), path / "results.parquet")


def test_extend_plans_only_the_missing_trials(tmp_path: Path) -> None:
    _table(tmp_path / "tiny_vicreg", [("beta_vicreg=0.0", 0), ("beta_vicreg=0.01", 0)])
    only = prepare_study(_study(levels=(0.0, 0.01, 0.1)), str(tmp_path), False, [], extend=True).only
    assert only == (("beta_vicreg=0.0", 1), ("beta_vicreg=0.01", 1), ("beta_vicreg=0.1", 0), ("beta_vicreg=0.1", 1))
    assert extension_name("tiny_vicreg", only) == extension_name("tiny_vicreg", list(reversed(only)))
    assert prepare_study(_study(seeds=(0,)), str(tmp_path), False, [], extend=True).only == ()
    with pytest.raises(StudyError, match="already has results"):  # without --extend: still refused
        prepare_study(_study(), str(tmp_path), False, [])


def test_extend_refuses_what_it_cannot_extend(tmp_path: Path) -> None:
    with pytest.raises(StudyError, match="nothing to extend"):
        prepare_study(_study(), str(tmp_path), False, [], extend=True)
    optuna = Study(name="tiny_opt", base=TINY, search="optuna", seeds=(0,),
                   space={"loss.beta_vicreg": Space("loguniform", 1e-4, 1e-2)})
    with pytest.raises(StudyError, match="grid study"):
        prepare_study(optuna, str(tmp_path), False, [], extend=True)


@pytest.fixture
def in_process_driver() -> Iterator[None]:
    with driver_process_state():
        yield


@pytest.mark.integration
@pytest.mark.usefixtures("in_process_driver")
def test_extending_a_finished_study_runs_only_new_trials(tmp_path: Path, capsys, monkeypatch) -> None:
    import ray

    monkeypatch.chdir(tmp_path)  # anything the driver writes beside its storage stays in tmp_path
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    base = ["--storage", str(tmp_path), "--tracking-uri", uri]
    run_script_main(study_driver, capsys, *base)
    first = pq.read_table(tmp_path / "tiny_vicreg" / "results.parquet").to_pylist()
    stdout = run_script_main(study_driver, capsys, *base, "--extend", "--seeds", "0", "1")  # the first run's Ray
    starts = [json.loads(line) for line in (tmp_path / "tiny_vicreg" / "trial_starts.jsonl").read_text().splitlines()]
    assert len(starts) == 4 and sorted(s["trial"] for s in starts[2:]) == [
        "tiny_vicreg-beta_vicreg=0.0-s1", "tiny_vicreg-beta_vicreg=0.01-s1"]  # the first two did not run again
    rows = pq.read_table(tmp_path / "tiny_vicreg" / "results.parquet").to_pylist()
    assert {(r["arm"], r["seed"]) for r in rows} == {(a, s) for a in ("beta_vicreg=0.0", "beta_vicreg=0.01")
                                                     for s in (0, 1)}
    kept = [r for r in rows if r["seed"] == 0]
    assert [{k: r[k] for k in old} for r, old in zip(kept, first, strict=True)] == first  # earlier rows as they were
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("tiny_vicreg")
    parents = client.search_runs([exp.experiment_id], "tags.`cjepa.role` = 'study'")
    children = client.search_runs([exp.experiment_id], "tags.arm != ''")
    assert len(parents) == 1 and len(children) == 4
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parents[0].info.run_id}
    summary = stdout.split("Study tiny_vicreg")[-1]
    assert "4 trials" in summary and "| beta_vicreg=0.01 | 2 |" in summary  # the summary covers both seeds
    assert "On the test split, scored once" in summary and "Gain over the random-initialised encoder" in summary
    ray.shutdown()  # cjepa eval starts no Ray (the fixture shuts it down again if an assertion above fails)
    # cjepa eval over the whole study: every trial's final checkpoint, the trainer's test numbers exactly
    from cjepa.cli import main

    assert main(["eval", str(tmp_path / "tiny_vicreg"), "--bank", "eval", "--tracking-uri", uri]) == 0
    evals = pq.read_table(tmp_path / "tiny_vicreg" / "eval.parquet").to_pylist()
    final = {(r["arm"], r["seed"]): r for r in rows if r["epoch"] == 2}
    assert sorted((e["arm"], e["seed"]) for e in evals) == sorted(final)
    assert all(e["test_knn_target"] == final[(e["arm"], e["seed"])]["test_knn_target"] for e in evals)
    logged = client.get_run(evals[0]["mlflow_run_id"]).data.metrics
    assert logged["eval/test_knn_target"] == evals[0]["test_knn_target"]
