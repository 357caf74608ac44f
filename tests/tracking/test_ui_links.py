"""The link that opens a study's runs in MLflow 3.17's "Model training" view (issue 27).

Why a link: the UI opens an experiment on its GenAI overview (a per-browser choice, default GenAI)
and reads the view from the URL (``?workflowType=machine_learning``); the experiment tag alone does
not change it. ``cjepa ui``, a study's last line and its parent run's note give this link; the
real-browser test (tests/dashboards/test_mlflow_ui_browser.py) opens it and finds the runs table.
"""

from __future__ import annotations

from pathlib import Path

from cjepa.sweep.note import parent_note
from cjepa.tracking.ui import experiment_links, runs_url, study_link_line


def test_the_link_and_its_in_app_form():
    assert runs_url("http://127.0.0.1:5000/", "7") == "http://127.0.0.1:5000/#/experiments/7?workflowType=machine_learning"
    assert runs_url("", "7") == "#/experiments/7?workflowType=machine_learning"  # markdown inside the UI


def test_a_studys_last_line(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    local = f"sqlite:///{tmp_path.resolve()}/mlflow.db"  # the default store: plain `cjepa ui` serves it
    assert study_link_line(local, "3") == (
        "MLflow: `cjepa ui`, then open http://127.0.0.1:5000/#/experiments/3?workflowType=machine_learning "
        "(the study's runs in the Model training view)")
    assert "`cjepa ui --tracking-uri sqlite:////data/m.db`" in study_link_line("sqlite:////data/m.db", "3")
    assert study_link_line("http://head:5000", "3").endswith("http://head:5000/#/experiments/3?workflowType="
                                                              "machine_learning")


def test_cjepa_ui_lists_each_experiments_link(tmp_path: Path):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    assert experiment_links(uri, "http://h:1") == [
        "  (no experiments yet: a study's runs will open at http://h:1/#/experiments/<id>?workflowType=machine_learning)"]
    ids = [MlflowClient(uri).create_experiment(name) for name in ("vicreg_coeff", "term_ablation")]
    lines = experiment_links(uri, "http://h:1")
    assert sorted(lines) == sorted([f"  vicreg_coeff   http://h:1/#/experiments/{ids[0]}?workflowType=machine_learning",
                                    f"  term_ablation  http://h:1/#/experiments/{ids[1]}?workflowType=machine_learning"])


def test_the_parent_runs_note_links_the_runs():
    note = parent_note("s", 2, 3, "a", experiment_id="5")
    assert "[the study's runs](#/experiments/5?workflowType=machine_learning)" in note
    assert "click **Model training**" in parent_note("s", 2, 3, "a")  # no id known: the manual way
