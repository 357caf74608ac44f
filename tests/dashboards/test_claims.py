"""The paper's claims checked against a study (dashboards.claims) and the page over studies
(``cjepa report --study ... --page``), on a hand-made results table whose verdicts are worked out
by hand below. Ray-free: the table has the columns the sweep layer writes (cjepa.sweep.results)."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from cjepa.sweep.stats import Interval
from dashboards.claims import convergence_claim, ordering_claims, per_epoch, table3_arms, verdict
from dashboards.load import StudyData

REPO = Path(__file__).resolve().parents[2]
RECIPE = {"config.loss.vicreg_mode": "context_target", "config.loss.beta_vicreg": 0.1, "config.ema.enabled": True,
          "config.loss.invariance": True, "config.loss.variance": True, "config.loss.covariance": True,
          "config.ema.start": 0.99}
ARMS = {  # arm -> (config changes, linear_target at epoch 1 and 2 per seed 0, 1, 2)
    "I-JEPA": ({"config.loss.beta_vicreg": 0.0}, [0.50, 0.52, 0.54], [0.45, 0.47, 0.49]),
    "C-JEPA": ({}, [0.60, 0.61, 0.65], [0.62, 0.65, 0.66]),
    "var/cov": ({"config.loss.invariance": False}, [0.50, 0.50, 0.50], [0.46, 0.46, 0.51]),
    "EMA+inv": ({"config.loss.variance": False, "config.loss.covariance": False}, [0.4, 0.4, 0.4],
                [0.40, 0.41, 0.45]),
    "EMA off": ({"config.ema.enabled": False}, [0.3, 0.3, 0.3], [0.3, 0.3, 0.3]),  # not a Table 3 arm
    "two_views": ({"config.loss.vicreg_mode": "two_views"}, [0.7, 0.7, 0.7], [0.7, 0.7, 0.7]),  # other reading
    "SIGReg": ({"config.loss.vicreg_mode": "sigreg"}, [0.5, 0.5, 0.5], [0.5, 0.5, 0.5]),  # no VICReg term: not I-JEPA
}


def table() -> pd.DataFrame:
    rows = []
    for arm, (changes, ep1, ep2) in ARMS.items():
        for seed in range(3):
            for epoch, values in ((1, ep1), (2, ep2)):
                rows.append({"study": "toy", "arm": arm, "seed": seed, "epoch": epoch, **RECIPE, **changes,
                             "config.run.seed": seed, "linear_target": values[seed], "knn_target": values[seed],
                             "train_cpu_min": 1.5 * epoch, "target_eff_rank": 10.0 + seed,
                             "raw_knn_acc": 0.8, "raw_linear_acc": 0.82, "status": "TERMINATED"})
    return pd.DataFrame(rows)


@pytest.fixture
def data() -> StudyData:
    return StudyData("toy", table(), baseline="I-JEPA")


def test_table3_arms_are_found_by_config_at_the_studys_recipe(data: StudyData) -> None:
    assert table3_arms(data) == {"I-JEPA (EMA only)": "I-JEPA", "C-JEPA (var/cov + inv)": "C-JEPA",
                                 "var/cov only": "var/cov", "EMA + invariance": "EMA+inv"}


def test_verdict_is_decided_by_the_interval_alone() -> None:
    assert verdict(Interval(0.02, 0.001, 0.04, 3)) == "reproduces"
    assert verdict(Interval(0.02, -0.001, 0.04, 3)) == "not resolved"
    assert verdict(Interval(-0.02, -0.04, -0.001, 3)) == "reversed"
    assert verdict(Interval(0.02, 0.02, 0.02, 1)).startswith("not measured")


def test_ordering_claims_hand_computed(data: StudyData) -> None:
    claims = {(c.text.split(" (paper")[0], c.metric): c for c in ordering_claims(data)}
    head = claims[("C-JEPA (var/cov + inv) > I-JEPA (EMA only)", "linear_target")]
    # paired differences 0.17, 0.18, 0.17: mean 0.17333, sd 0.0057735, t(0.975, 2) = 4.302653
    half = 4.302653 * 0.0057735 / math.sqrt(3)
    assert head.diff.mean == pytest.approx(0.173333, abs=1e-6)
    assert (head.diff.low, head.diff.high) == (pytest.approx(0.173333 - half, abs=1e-5),
                                               pytest.approx(0.173333 + half, abs=1e-5))
    assert head.verdict == "reproduces" and "+5.8" in head.text  # 69.5 - 63.7
    # var/cov only: +0.01, -0.01, +0.02; EMA + invariance: -0.05, -0.06, -0.04
    assert claims[("var/cov only > I-JEPA (EMA only)", "linear_target")].verdict == "not resolved"
    assert claims[("EMA + invariance > I-JEPA (EMA only)", "linear_target")].verdict == "reversed"
    assert len(claims) == 12  # 6 orderings x 2 metrics


def test_with_a_test_split_the_orderings_read_it(data: StudyData) -> None:
    """A study with a validation split has test_* columns at each trial's last epoch: the verdicts read
    those (reported once), here the validation numbers with C-JEPA and I-JEPA swapped on the test split."""
    df = table()
    last = df["epoch"] == 2
    df["test_linear_target"] = df["test_knn_target"] = None
    swap = {"I-JEPA": "C-JEPA", "C-JEPA": "I-JEPA"}
    for arm in ARMS:
        for seed in range(3):
            value = ARMS[swap.get(arm, arm)][2][seed]
            df.loc[last & (df["arm"] == arm) & (df["seed"] == seed), ["test_linear_target", "test_knn_target"]] = value
    claims = {(c.text.split(" (paper")[0], c.metric): c for c in ordering_claims(StudyData("toy", df, "I-JEPA"))}
    assert {m for _, m in claims} == {"test_linear_target", "test_knn_target"}
    head = claims[("C-JEPA (var/cov + inv) > I-JEPA (EMA only)", "test_linear_target")]
    assert head.diff.mean == pytest.approx(-0.173333, abs=1e-6) and head.verdict == "reversed"


def test_convergence_claim_and_reach(data: StudyData) -> None:
    claim, rows = convergence_claim(data)
    assert claim.diff.mean == pytest.approx(0.10, abs=1e-9)  # first epoch: 0.10, 0.09, 0.11
    assert claim.verdict == "reproduces"
    reach = {r.arm: r for r in rows}  # level: I-JEPA's final mean, 0.47
    assert (reach["C-JEPA"].epoch, reach["C-JEPA"].cpu_min) == (1, 1.5)
    assert reach["I-JEPA"].epoch == 1  # 0.52 >= 0.47: I-JEPA itself was there after epoch 1
    assert reach["EMA+inv"].epoch is None and reach["EMA off"].epoch is None
    assert "0.47" not in claim.text and "47.0 %" in claim.text
    # a lead at epoch 1 is labelled as such, and I-JEPA's falling curve (0.52 -> 0.47) is said
    assert claim.text.startswith("C-JEPA ahead of I-JEPA at the first evaluation (epoch 1), a lead at one epoch")
    assert "I-JEPA's curve falls: its best, 52.0 %, was at epoch 1" in claim.text


def test_per_epoch_differences_are_paired_per_epoch(data: StudyData) -> None:
    cells = per_epoch(data, "linear_target")
    (ep1, d1), (ep2, d2) = cells["C-JEPA"]
    assert ep1.mean == pytest.approx(0.62) and d1.mean == pytest.approx(0.10)
    assert ep2.mean == pytest.approx(0.643333, abs=1e-6) and d2.mean == pytest.approx(0.173333, abs=1e-6)
    assert cells["I-JEPA"][0][1] is None


@pytest.mark.integration
def test_page_over_two_studies_from_the_cli(tmp_path: Path) -> None:
    dirs = []
    for name in ("toy_a", "toy_b"):
        d = tmp_path / "ray_results" / name
        d.mkdir(parents=True)
        df = table()
        df["study"] = name
        df.to_parquet(d / "results.parquet")
        dirs.append(str(d))
    page = tmp_path / "docs" / "results.md"
    proc = subprocess.run([sys.executable, "-m", "cjepa", "report", "--study", *dirs, "--page", str(page),
                           "--no-images", "--no-mlflow", "--baseline", "I-JEPA"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    text = page.read_text()
    assert text.count("## Study `toy_") == 2
    assert "**reproduces** (toy_a, linear_target): C-JEPA (var/cov + inv) > I-JEPA (EMA only)" in text
    assert "| C-JEPA | 62.0 ± " in text  # the per-epoch table: epoch 1 mean in %
    assert "| raw pixels |" in text  # the ablation table's reference rows
    # Table 3's arms at the study's own recipe carry the paper's numbers; the other reading does not
    assert "| C-JEPA (var/cov + inv) [C-JEPA] | ✓ | ✓ | ✓ | 69.5 |" in text
    assert "| EMA + invariance [EMA+inv] | ✓ | – | ✓ | 67.6 |" in text and "| two_views | ✓ | ✓ | ✓ |  |" in text
    assert (tmp_path / "docs" / "results" / "toy_b" / "ablation_table.md").is_file()
    assert "(results/toy_a/report.html)" in text  # links relative to the page


@pytest.mark.integration
def test_several_studies_without_a_page_is_one_clear_line(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "cjepa", "report", "--study", str(tmp_path), str(tmp_path),
                           "--no-mlflow"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "several study directories need --page" in proc.stderr.strip().splitlines()[-1]


def test_convergence_figure_draws_the_terms_a_study_logged(data: StudyData, tmp_path: Path) -> None:
    """A SIGReg study logs ``sigreg`` and no VICReg term: the figure has the panels it can fill
    (it failed with KeyError 'vicreg_inv' on the SIGReg weight study)."""
    from dashboards import plots

    data.df["sigreg"] = 0.5
    out = plots.convergence_plot(data, tmp_path / "convergence.png")
    assert out.is_file() and out.stat().st_size > 10_000


def test_the_baseline_is_inferred_at_the_studys_recipe(tmp_path: Path) -> None:
    """A results table without study.json (or whose MLflow store is gone): the baseline is the one
    arm with EMA and no regulariser, even when the recipe is not the paper's."""
    from dashboards.load import load_study_dir

    table().to_parquet(tmp_path / "results.parquet")
    assert load_study_dir(tmp_path).baseline == "I-JEPA"


@pytest.mark.integration
def test_a_page_that_cannot_be_written_is_one_clear_line(tmp_path: Path) -> None:
    d = tmp_path / "study"
    d.mkdir()
    table().to_parquet(d / "results.parquet")
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    proc = subprocess.run([sys.executable, "-m", "cjepa", "report", "--study", str(d), "--page",
                           str(blocker / "results.md"), "--no-images", "--no-mlflow"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith(f"cjepa: error: --page: cannot create the folder {blocker}")


def test_gains_over_random_init_per_readout() -> None:
    """The ablation table's gain block: each arm minus its own seed's untrained network, per read-out."""
    from dashboards.table import gains_markdown

    df = table()
    df["knn_target_grid2"] = df["knn_target"] + 0.01
    df["rand_knn_acc"] = 0.40 + 0.01 * df["seed"]  # seeds 0, 1, 2 -> 0.40, 0.41, 0.42
    df["rand_knn_acc_grid2"] = 0.60
    text = gains_markdown(StudyData("toy", df, baseline="I-JEPA"))
    assert "| knn_target − random init (pp) | knn_target_grid2 − random init (pp) |" in text
    assert "linear_target −" not in text  # no rand_linear_acc in these rows: no gain to give
    # C-JEPA at epoch 2: 0.62, 0.65, 0.66 minus 0.40, 0.41, 0.42 = 0.22, 0.24, 0.24 -> mean 23.3
    line = next(x for x in text.splitlines() if "C-JEPA" in x and x.startswith("|"))
    assert "| 3 | 23.3 ± " in line and "| 5.3 ± " in line  # grid2: 0.63, 0.66, 0.67 - 0.60 = 0.03, 0.06, 0.07
    assert gains_markdown(StudyData("toy", table(), baseline="I-JEPA")) == ""
