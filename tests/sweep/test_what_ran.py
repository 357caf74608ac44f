"""The results table records what each trial ran, not what the study script says now (issue 25, item 2).

A trial's rows are rebuilt from the config.yaml in its run folder: the runner writes it before the trial
trains (so a trial that ASHA stops or that fails has one too), and the trainer's own copy replaces it
when the trial finishes. The last test edits a real study script between its run and an ``--extend``; both
runs load the script and call its ``main`` in this process, on one local Ray (a driver subprocess each would
pay an interpreter's imports and a Ray start, and the rows come from the trials' config.yaml either way).
"""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pyarrow.parquet as pq
import pytest

from cjepa.sweep.results import write_results
from cjepa.sweep.study import trial_config
from tests.sweep.in_process import driver_process_state, run_script_main
from tests.sweep.test_results import ARMS, TINY, _result, _tiny


def test_rows_record_what_each_trial_ran_not_what_the_script_says_now(tmp_path: Path) -> None:
    """A trial's row is read from the config.yaml it wrote at its start: a study script edited before
    --resume (here: another linear-probe budget) changes no row of a trial that already ran; a trial
    that never started is described by the script; an older config.yaml (no data.val_samples) reads as
    a run without a validation split."""
    study, study_dir = _tiny(), tmp_path / "tiny_vicreg"
    ran = trial_config(study, ARMS["beta_vicreg=0.0"], 0)
    ran.eval.linear_epochs = 7  # what the script said when this trial started
    run_dir = study_dir / "runs" / "tiny_vicreg-beta_vicreg=0.0-s0"
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text(ran.to_yaml())
    path, _ = write_results(study, ARMS, [_result("beta_vicreg=0.0", [1]), _result("beta_vicreg=0.01", [1])],
                            study_dir, None)
    rows = {r["arm"]: r for r in pq.read_table(path).to_pylist()}
    assert rows["beta_vicreg=0.0"]["config.eval.linear_epochs"] == 7  # what ran
    assert rows["beta_vicreg=0.01"]["config.eval.linear_epochs"] == 10  # never started: the script's (tiny_study)
    old = ran.to_dict()
    del old["data"]["val_samples"]
    import yaml

    (run_dir / "config.yaml").write_text(yaml.safe_dump(old))
    path.unlink()
    path, _ = write_results(study, ARMS, [_result("beta_vicreg=0.0", [1])], study_dir, None)
    row = pq.read_table(path).to_pylist()[0]
    assert row["config.data.val_samples"] == 0 and row["eval_split"] == "test"


def test_a_trial_is_complete_by_its_own_epochs(tmp_path: Path) -> None:
    """A trial that ran its own 1 epoch is COMPLETED although the script now says 2 (tiny_study.yaml);
    one with no config.yaml of its own is measured by the script's, and is STOPPED after 1 of 2."""
    study, study_dir = _tiny(), tmp_path / "tiny_vicreg"
    ran = trial_config(study, ARMS["beta_vicreg=0.0"], 0)
    ran.run.epochs = 1
    run_dir = study_dir / "runs" / "tiny_vicreg-beta_vicreg=0.0-s0"
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text(ran.to_yaml())
    path, _ = write_results(study, ARMS, [_result("beta_vicreg=0.0", [1]), _result("beta_vicreg=0.01", [1])],
                            study_dir, None)
    status = {r["arm"]: (r["status"], r["config.run.epochs"]) for r in pq.read_table(path).to_pylist()}
    assert status == {"beta_vicreg=0.0": ("COMPLETED", 1), "beta_vicreg=0.01": ("STOPPED", 2)}


def test_the_runner_records_a_trials_config_before_it_trains(tmp_path: Path) -> None:
    """record_config writes the Config a trial is about to run, once: a retry keeps its first start's."""
    from cjepa.config import from_saved, read_yaml
    from cjepa.sweep.runner import record_config

    cfg = trial_config(_tiny(), ARMS["beta_vicreg=0.0"], 0, ["eval.linear_epochs=3"])
    cfg.run.output_dir = str(tmp_path / "runs" / "trial")
    record_config(cfg)
    cfg.eval.linear_epochs = 5
    record_config(cfg)
    written = from_saved(read_yaml(tmp_path / "runs" / "trial" / "config.yaml"))
    assert written.eval.linear_epochs == 3 and written.run.seed == 0 and written.loss.beta_vicreg == 0.0


SCRIPT = '''"""A study script the test edits between its run and its --extend."""
import sys

from cjepa.sweep import Study
from cjepa.sweep.cli import main


def make_study(full: bool) -> Study:
    return Study(name="edited", base={tiny!r}, overrides=("run.epochs=1", "eval.linear_epochs=10"),
                 factors={{"loss.beta_vicreg": [0.01]}}, seeds=(0,), max_concurrent=1)


if __name__ == "__main__":
    sys.exit(main(make_study, __doc__))
'''


@pytest.fixture
def in_process_driver(monkeypatch) -> Iterator[None]:
    """The study script runs in this process (see driver_process_state). No bytecode is written: the edited
    script must be compiled afresh, never read from a stale .pyc."""
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    with driver_process_state():
        yield


def _load(script: Path, module: str) -> ModuleType:
    """The script loaded as a new module ``module`` (a fresh name each time, so an edited script is
    executed again, never taken from sys.modules)."""
    spec = importlib.util.spec_from_file_location(module, script)
    assert spec is not None and spec.loader is not None
    loaded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loaded)
    return loaded


@pytest.mark.integration
@pytest.mark.usefixtures("in_process_driver")
def test_editing_the_script_before_extend_leaves_the_old_rows(tmp_path: Path, capsys, monkeypatch) -> None:
    """Run a one-trial study, edit a setting in its script (the linear probe's epochs: not an arm),
    ``--extend`` it with a second seed: the first trial's rows are as they were and say what it ran
    (10 epochs), the new trial's rows say what it ran (4)."""
    monkeypatch.chdir(tmp_path)  # anything the driver writes beside its storage stays in tmp_path
    script = tmp_path / "edited_study.py"
    script.write_text(SCRIPT.format(tiny=TINY))
    base = ["--storage", str(tmp_path), "--no-mlflow"]
    run_script_main(_load(script, "edited_study_before"), capsys, *base)
    table = tmp_path / "edited" / "results.parquet"
    first = pq.read_table(table).to_pylist()
    assert first and {r["config.eval.linear_epochs"] for r in first} == {10}

    script.write_text(script.read_text().replace('"eval.linear_epochs=10"', '"eval.linear_epochs=4"'))
    run_script_main(_load(script, "edited_study_after"), capsys, *base, "--extend", "--seeds", "0", "1")  # same Ray
    rows = pq.read_table(table).to_pylist()
    old = [r for r in rows if r["seed"] == 0]
    assert [{k: r[k] for k in was} for r, was in zip(old, first, strict=True)] == first  # unchanged, key by key
    new = [r for r in rows if r["seed"] == 1]
    assert new and {(r["config.eval.linear_epochs"], r["status"]) for r in new} == {(4, "COMPLETED")}
    assert {r["config.run.epochs"] for r in rows} == {1}
    starts = (tmp_path / "edited" / "trial_starts.jsonl").read_text().splitlines()
    assert [json.loads(line)["trial"] for line in starts] == [f"edited-beta_vicreg=0.01-s{s}" for s in (0, 1)]
