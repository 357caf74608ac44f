"""The report reads arms from the results table's typed config columns, defaults from cjepa.config.

No Ray, no training: the results tables are written by the real writer (cjepa.sweep.results) from
Tune ``Result`` objects built by hand (what a ResultGrid iterates over), with the tests' tiny base
config, so every ``config.*`` column is the real resolved config of its trial. Arm names are
deliberately unlike the paper's: what an arm is must come from its config, not its label.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from ray.tune import Result

from cjepa.config import Config
from cjepa.sweep import Study
from cjepa.sweep.results import write_results
from cjepa.sweep.study import trial_config
from dashboards.arms import flatten, paper_arm, parts_of
from dashboards.load import load_study_dir
from dashboards.plots import config_default
from dashboards.report import build_report
from dashboards.table import build_rows, to_html, to_markdown

TINY = str(Path(__file__).resolve().parents[1] / "sweep" / "tiny_study.yaml")
ARMS = {"plain": {"loss.beta_vicreg": 0.0}, "no inv": {"loss.invariance": False},
        "inv only": {"loss.variance": False, "loss.covariance": False}, "full": {},
        "two views": {"loss.vicreg_mode": "two_views"}, "ema off": {"ema.enabled": False}}
LINEAR = {"plain": 0.50, "no inv": 0.52, "inv only": 0.51, "full": 0.55, "two views": 0.60, "ema off": 0.30}


def _result(arm: str, seed: int, linear: float) -> Result:
    frame = pd.DataFrame([{"epoch": e, "linear_target": linear + seed / 100 - (2 - e) / 10,
                           "knn_target": linear - 0.05 + seed / 100, "raw_knn_acc": 0.70, "raw_linear_acc": 0.72,
                           "rand_knn_acc": 0.40 + seed / 10, "rand_linear_acc": 0.45 + seed / 10,
                           "trial_id": f"t-{arm}-{seed}"} for e in (1, 2)])
    return Result(metrics={"config": {"arm": arm, "seed": seed}, "trial_id": f"t-{arm}-{seed}"}, checkpoint=None,
                  error=None, path="/nowhere", metrics_dataframe=frame)


def _write(tmp_path: Path, study: Study, linear: dict[str, float]) -> Path:
    grid = [_result(arm, s, linear[arm]) for arm in study.arm_settings() for s in study.seeds]
    write_results(study, study.arm_settings(), grid, tmp_path / study.name, None)
    return tmp_path / study.name


@pytest.fixture
def terms_dir(tmp_path: Path) -> Path:
    return _write(tmp_path, Study(name="terms", base=TINY, arms=ARMS, seeds=(0, 1)), LINEAR)


def test_parts_paper_arms_and_baseline_come_from_the_config(terms_dir):
    data = load_study_dir(terms_dir)
    assert data.baseline == "plain"  # not recorded: inferred as the arm whose config is I-JEPA's
    rows, metrics = build_rows(data)
    assert metrics == ["linear_target", "knn_target"]
    by_arm = {r.arm: r for r in rows}
    expected = {  # arm -> (EMA, var/cov, inv), the paper's number, the first cell
        "plain": ((True, False, False), 63.7, "I-JEPA (EMA only) [plain]"),
        "no inv": ((True, True, False), 68.3, "var/cov only [no inv]"),
        "inv only": ((True, False, True), 67.6, "EMA + invariance [inv only]"),
        "full": ((True, True, True), 69.5, "C-JEPA (var/cov + inv) [full]"),
        "two views": ((True, True, True), None, "two views"),  # another VICReg reading: not the paper's arm
        "ema off": ((False, True, True), None, "ema off"),
    }
    for arm, (parts, paper, title) in expected.items():
        row = by_arm[arm]
        assert (tuple(row.parts.values()), row.paper, row.title) == (parts, paper, title), arm
    # linear_target at the last epoch: 0.55 / 0.56 for "full" vs 0.50 / 0.51 for "plain": +5.0 points on both seeds
    assert by_arm["full"].values["linear_target"].fmt() == "55.5 ± 6.4"
    assert by_arm["full"].diffs["linear_target"].fmt() == "5.0 ± 0.0"


def test_raw_pixel_and_random_init_rows_under_the_arms(terms_dir):
    data = load_study_dir(terms_dir)
    rows, metrics = build_rows(data)
    assert [r.title for r in rows[-2:]] == ["raw pixels", "random-init encoder"]
    md = to_markdown(rows, metrics, data.baseline, data.name).splitlines()
    table = [line for line in md if line.startswith("| ")]
    # raw: one number; random init over seeds 0, 1: linear 45 / 55 % -> 50.0 ± 63.5 (t(0.975, 1) = 12.706)
    assert table[-2] == "| raw pixels |  |  |  |  | 1 | 72.0 |  | 70.0 |  |"
    assert table[-1] == "| random-init encoder |  |  |  |  | 2 | 50.0 ± 63.5 |  | 45.0 ± 63.5 |  |"
    assert table[1].startswith("| I-JEPA (EMA only) [plain] | ✓ | – | – | 63.7 | 2 |") and "(baseline)" in table[1]
    page = to_html(rows, metrics, data.baseline)
    assert page.count('<tr class="reference">') == 2 and page.count('<tr class="baseline">') == 1


def test_factor_levels_are_identified_by_value_and_the_default_line_by_cjepa_config(tmp_path):
    study = Study(name="vicreg", base=TINY, factors={"loss.beta_vicreg": [0.0, 1e-4, 1e-3]}, seeds=(0, 1))
    linear = {"beta_vicreg=0.0": 0.5, "beta_vicreg=0.0001": 0.52, "beta_vicreg=0.001": 0.55}
    data = load_study_dir(_write(tmp_path, study, linear))
    rows, _ = build_rows(data)
    assert [(r.arm, r.paper) for r in rows if not r.reference] == [
        ("beta_vicreg=0.0", 63.7), ("beta_vicreg=0.0001", None), ("beta_vicreg=0.001", 69.5)]
    assert data.baseline == "beta_vicreg=0.0"
    assert config_default("loss.beta_vicreg") == Config().loss.beta_vicreg == 0.001
    assert config_default("loss.beta_sim") == 25.0 and config_default("ema.enabled") is None
    assert config_default("loss.beta_nonexistent") is None


def test_an_older_table_without_config_columns_still_reports(terms_dir, tmp_path):
    """Tables written before the config columns: parts unknown (?) unless a config is found elsewhere
    (a checkpoint's, here given as the report would read it), then identified as before."""
    path = terms_dir / "results.parquet"
    table = pq.read_table(path)
    pq.write_table(table.drop([c for c in table.column_names if c.startswith("config.")]), path)
    data = load_study_dir(terms_dir)
    assert data.arm_config("plain") is None and data.baseline is None
    rows, metrics = build_rows(data)
    assert rows[0].parts == {"EMA": None, "var/cov": None, "inv": None} and rows[0].paper is None
    report = build_report(data, tmp_path / "report", images=False)
    assert "| plain | ? | ? | ? |" in report.table_md.read_text()
    study = Study(name="terms", base=TINY, arms=ARMS)
    data.configs["plain"] = flatten(trial_config(study, ARMS["plain"], 0).to_dict())  # what a checkpoint holds
    assert paper_arm(data.arm_config("plain")) == "I-JEPA (EMA only)"
    assert build_rows(data)[0][0].title == "I-JEPA (EMA only) [plain]"


def test_paper_arm_rules():
    """A term with weight 0 is off; coefficients, reading and EMA schedule must be cjepa.config's defaults."""
    assert paper_arm({}) == "C-JEPA (var/cov + inv)"  # every default: the paper's recipe
    assert paper_arm({"loss.beta_sim": 0.0}) == "var/cov only"
    assert paper_arm({"loss.beta_vicreg": 0.0, "loss.beta_sim": 3.0}) == "I-JEPA (EMA only)"  # terms off: no matter
    assert paper_arm({"loss.variance": False}) is None  # covariance without variance: not a paper arm
    assert paper_arm({"loss.beta_vicreg": 0.01}) is None and paper_arm({"ema.schedule": "cosine"}) is None
    assert paper_arm({"loss.beta_vicreg": 0.0, "ema.enabled": False}) is None
    assert paper_arm({"loss.beta_std": float("nan")}) == "C-JEPA (var/cov + inv)"  # a missing cell: the default
    assert paper_arm(None) is None
    assert paper_arm({"loss.vicreg_mode": "sigreg"}) is None  # SIGReg replaces the terms: no paper arm
    assert parts_of({"loss.vicreg_mode": "sigreg"}) == {"EMA": True, "var/cov": False, "inv": False}
    assert parts_of({"loss.vicreg_mode": "pred_tokens"}) == {"EMA": True, "var/cov": True, "inv": False}
    assert paper_arm({"loss.vicreg_mode": "sigreg", "loss.beta_vicreg": 0.0}) == "I-JEPA (EMA only)"  # weight 0


def test_logging_the_report_links_it_in_the_parent_runs_note(tmp_path):
    """Real sqlite store: open_parent writes the note, `cjepa report`'s logging step flips its report line."""
    from mlflow.tracking import MlflowClient

    from cjepa.sweep.note import NOTE_TAG, REPORT_PATH, REPORT_PENDING
    from cjepa.sweep.results import open_parent
    from dashboards.report import log_to_parent

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    study = Study(name="terms", base=TINY, arms=ARMS, seeds=(0, 1))
    run_id = open_parent(study, uri, tmp_path / "terms", resume=False)  # writes terms/study.json
    data = load_study_dir(_write(tmp_path, study, LINEAR))
    assert data.parent_run_id == run_id and data.tracking_uri == uri
    report = build_report(data, tmp_path / "report", images=False)
    assert log_to_parent(report, data) == run_id
    client = MlflowClient(uri)
    run = client.get_run(run_id)
    note = run.data.tags[NOTE_TAG]
    assert REPORT_PENDING not in note
    assert f"[{REPORT_PATH}](#/experiments/{run.info.experiment_id}/runs/{run_id}/artifacts/{REPORT_PATH})" in note
    assert REPORT_PATH in [a.path for a in client.list_artifacts(run_id, "report")]


def test_accuracy_per_cpu_minute_is_averaged_over_seeds_per_epoch(tmp_path):
    from dashboards.plots import cpu_minutes_curve, cpu_minutes_plot

    study = Study(name="budget", base=TINY, arms={"plain": {"loss.beta_vicreg": 0.0}}, seeds=(0, 1, 2))

    def result(seed: int) -> Result:
        frame = pd.DataFrame([{"epoch": e, "knn_target": 0.5 + e / 10 + seed / 100, "linear_target": 0.6,
                               "train_cpu_min": 4.0 * e + seed, "trial_id": f"t{seed}"} for e in (1, 2)])
        return Result(metrics={"config": {"arm": "plain", "seed": seed}, "trial_id": f"t{seed}"}, checkpoint=None,
                      error=None, path="/nowhere", metrics_dataframe=frame)

    write_results(study, study.arm_settings(), [result(s) for s in study.seeds], tmp_path / "budget", None)
    data = load_study_dir(tmp_path / "budget")
    xs, mean, low, high = cpu_minutes_curve(data, "plain", "knn_target")
    assert xs == pytest.approx([5.0, 9.0]) and mean == pytest.approx([0.61, 0.71])  # seeds 0, 1, 2: +1 min, +0.01
    # t(0.975, 2) = 4.303, std of (0, .01, .02) = .01 -> half-width .01 * 4.303 / sqrt(3)
    assert high[0] - mean[0] == pytest.approx(0.01 * 4.303 / 3 ** 0.5, rel=1e-3) and low[0] < mean[0]
    assert cpu_minutes_plot(data, tmp_path / "cpu.png").stat().st_size > 10_000
    data.df = data.df.drop(columns=["train_cpu_min"])
    assert cpu_minutes_plot(data, tmp_path / "none.png") is None
