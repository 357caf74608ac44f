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
from dataclasses import replace
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


@pytest.mark.integration
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


# --------------------------------------------------------------------------- typed config columns, references


def test_every_row_carries_the_trials_typed_config(tmp_path):
    """config.<section>.<key> columns: the resolved config of each trial, Parquet types kept, tuples as lists."""
    study, study_dir = _tiny(), tmp_path / "tiny_vicreg"
    path, _ = write_results(study, ARMS, [_result("beta_vicreg=0.0", [1, 2]), _result("beta_vicreg=0.01", [1])],
                            study_dir, None)
    table = pq.read_table(path)
    types = {name: str(table.schema.field(name).type) for name in table.schema.names}
    assert types["config.loss.beta_vicreg"] == "double" and types["config.ema.enabled"] == "bool"
    assert types["config.model.depth"] == "int64" and types["config.loss.vicreg_mode"] == "string"
    assert types["config.mask.target_scale"] == "list<element: double>"
    assert types["factor.loss.beta_vicreg"] == "double"  # the factor columns stay
    rows = table.to_pylist()
    assert [(r["arm"], r["config.loss.beta_vicreg"]) for r in rows] == [
        ("beta_vicreg=0.0", 0.0), ("beta_vicreg=0.0", 0.0), ("beta_vicreg=0.01", 0.01)]
    first = rows[0]
    assert first["config.model.embed_dim"] == 32 and first["config.data.dataset"] == "digits"  # tiny_study.yaml
    assert first["config.mask.target_scale"] == [0.1, 0.15] and first["config.run.seed"] == 0
    assert first["config.loss.beta_sim"] == 25.0 and first["config.ema.enabled"] is True  # defaults
    assert first["config.run.output_dir"] == str(study_dir / "runs" / "tiny_vicreg-beta_vicreg=0.0-s0")


def _probed(arm: str, seed: int, knn: float, rand_knn: float) -> Result:
    """A finished trial whose epochs also carry the raw-pixel and random-init scores, as the engine reports them."""
    frame = pd.DataFrame([{"epoch": e, "knn_target": knn, "linear_target": knn + 0.1, "raw_knn_acc": 0.8,
                           "raw_linear_acc": 0.75, "rand_knn_acc": rand_knn, "rand_linear_acc": rand_knn + 0.05,
                           "trial_id": f"t-{arm}-{seed}"} for e in (1, 2)])
    return Result(metrics={"config": {"arm": arm, "seed": seed}, "trial_id": f"t-{arm}-{seed}"}, checkpoint=None,
                  error=None, path="/nowhere", metrics_dataframe=frame)


def test_summary_has_raw_pixel_and_random_init_rows(tmp_path):
    study = replace(_tiny(), seeds=(0, 1))
    grid = [_probed(a, s, k, r) for a, k in (("beta_vicreg=0.0", 0.5), ("beta_vicreg=0.01", 0.6))
            for s, r in ((0, 0.2), (1, 0.3))]
    _, summary = write_results(study, ARMS, grid, tmp_path / "tiny_vicreg", None)
    rows = {line.split(" | ")[0].strip("| "): line for line in summary.splitlines() if line.startswith("| ")}
    # raw pixels: one number (no seed involved); random init: mean ± t-interval over 2 seeds:
    # 0.25 ± t(0.975, 1) * sd / sqrt(2) = 12.706 * 0.0707 / 1.414 = 0.635 -> "25.0 ± 63.5"
    assert rows["raw pixels"] == "| raw pixels | 1 | 80.0 | 75.0 |  |  |"
    assert rows["random-init encoder"] == "| random-init encoder | 2 | 25.0 ± 63.5 | 30.0 ± 63.5 |  |  |"
    main, _, gains = summary.partition("Gain over the random-initialised encoder, per read-out (validation split")
    arm_lines = [line for line in main.splitlines() if line.startswith("| beta_vicreg")]
    assert len(arm_lines) == 2 and list(rows).index("raw pixels") > list(rows).index("beta_vicreg=0.01")
    # each arm against its own seed's untrained network: knn 0.5 - (0.2, 0.3), linear 0.6 - (0.25, 0.35)
    assert "| knn_target − random init (pp) | linear_target − random init (pp) |" in gains
    assert "| beta_vicreg=0.0 | 2 | 25.0 ± 63.5 | 30.0 ± 63.5 |" in gains
    assert "| beta_vicreg=0.01 | 2 | 35.0 ± 63.5 | 40.0 ± 63.5 |" in gains


# --------------------------------------------------------------------------- the MLflow UI without hunting


def test_child_run_names_start_with_what_differs():
    from cjepa.sweep.naming import child_run_name, trial_dir_name

    grid = _tiny()
    assert child_run_name(grid, "beta_vicreg=0.001", {"loss.beta_vicreg": 0.001}, 0) == "0.001 s0 · beta_vicreg"
    two = Study(name="x", factors={"loss.beta_vicreg": [0.0], "loss.beta_sim": [25.0]})
    assert child_run_name(two, "beta_vicreg=0.0,beta_sim=25.0", {"loss.beta_vicreg": 0.0, "loss.beta_sim": 25.0},
                          2) == "0.0,25.0 s2 · beta_vicreg,beta_sim"
    named = Study(name="t", arms={"I-JEPA (EMA only)": {"loss.beta_vicreg": 0.0}})
    assert child_run_name(named, "I-JEPA (EMA only)", {"loss.beta_vicreg": 0.0}, 1) == "I-JEPA (EMA only) s1"
    optuna = Study(name="o", search="optuna")
    sampled = {"loss.vicreg_mode": "two_views", "loss.beta_vicreg": 0.0012345, "loss.beta_sim": 17.25}
    assert child_run_name(optuna, "optuna-1a2b3c4d", sampled, 0, "5f3e2_00003") == \
        "#3 · vicreg_mode=two_views beta_vicreg=0.0012 beta_sim=17"
    assert child_run_name(optuna, "optuna-1a2b3c4d", sampled, 0, "").startswith("optuna-1a2b3c4d · ")
    assert trial_dir_name("tiny", "I-JEPA (EMA only)", 0) == "tiny-I-JEPA_EMA_only_-s0"  # the folder: unchanged


def test_parent_run_note_says_how_to_browse_and_where_the_report_is(store, tmp_path):
    from cjepa.sweep.note import NOTE_TAG, REPORT_PATH, REPORT_PENDING, mark_report_logged
    from cjepa.sweep.results import finish_parent

    study, study_dir = _tiny(), tmp_path / "tiny_vicreg"
    run_id = open_parent(study, store, study_dir, resume=False)
    client = MlflowClient(store)
    note = client.get_run(run_id).data.tags[NOTE_TAG]
    assert note.startswith("**Study `tiny_vicreg`**: 2 arms × 1 seed; baseline arm: `beta_vicreg=0.0`.")
    assert "**Chart view**" in note and "**Group by → tags → arm**" in note and REPORT_PENDING in note
    table, summary = write_results(study, ARMS, [_result("beta_vicreg=0.0", [1, 2])], study_dir, None)
    finish_parent(store, run_id, study_dir, table, summary, study)
    run = client.get_run(run_id)
    final = run.data.tags[NOTE_TAG]
    assert final.endswith(summary) and "**Summary** (final epoch):" in final and run.info.status == "FINISHED"
    assert sorted(a.path for a in client.list_artifacts(run_id)) == ["results.parquet", "summary.md"]
    logged = mark_report_logged(final, run.info.experiment_id, run_id)
    link = f"[{REPORT_PATH}](#/experiments/{run.info.experiment_id}/runs/{run_id}/artifacts/{REPORT_PATH})"
    assert REPORT_PENDING not in logged and link in logged and logged.endswith(summary)
    assert mark_report_logged(logged, run.info.experiment_id, run_id) == logged  # a second report: unchanged
    assert open_parent(study, store, study_dir, resume=True) == run_id  # resume rewrites the guide
    assert client.get_run(run_id).data.tags[NOTE_TAG] == note
