"""End to end: a real study's runs in the real MLflow UI, in headless Chromium (Selenium + chromedriver).

What a user does after a study: `cjepa ui`, open the link the study printed last (also in `cjepa ui`'s
list and the parent run's note: ``#/experiments/<id>?workflowType=machine_learning``), which must show the
runs table at once with nothing clicked (MLflow 3.17 opens its GenAI overview otherwise), expand the
study's parent run to see one child run per (arm, seed), switch to the chart view and find a metric's chart, then follow
the parent run's description (cjepa.sweep.note) to the seed-averaged curves: **Group by → Tags →
arm**. Grouped, the runs list shows one group row per arm and the chart draws one mean line (with
a min-max band) per arm instead of one line per run; the test checks those lines against the seed
means computed from MLflow's metric histories. The page is a React app, so only a browser can tell
whether that works; both screenshots are kept (``tmp_path`` and, with ``CJEPA_ARTIFACTS`` set, a
copy there).

Skips only when Chromium/chromedriver/selenium are missing *and* ``CI`` is unset: CI installs them
(setup.sh), so there a missing browser fails the test instead of hiding it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Any

import pytest

from tests.dashboards.conftest import ARMS, TinyStudy, artifact_dir

pytestmark = pytest.mark.integration  # a browser, an mlflow server and the tiny Ray study

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--window-size=1700,1000")
WAIT_S = 60
METRIC = "knn_target"


def _browser() -> tuple[str, str]:
    """(chromium, chromedriver) paths; skip or fail as the module docstring says."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    try:
        import selenium  # noqa: F401
        has_selenium = True
    except ImportError:
        has_selenium = False
    if chromium and driver and has_selenium:
        return chromium, driver
    missing = [n for n, ok in (("chromium", chromium), ("chromedriver", driver), ("selenium", has_selenium)) if not ok]
    if os.environ.get("CI"):
        pytest.fail(f"CI: {', '.join(missing)} missing (setup.sh installs chromium, chromium-driver and selenium)")
    pytest.skip(f"{', '.join(missing)} not installed (./setup.sh installs them)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _seed_stats(tracking_uri: str, experiment_id: str, study: str) -> dict[str, dict[str, list[float]]]:
    """Per arm, from the child runs' METRIC histories: what a grouped chart must draw.

    ``mean``: the seeds' mean at each step, as x, y pairs flattened ([step1, mean1, step2, ...]);
    ``band``: the seeds' min and max at every step, sorted (the min-max band's y values).
    """
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    steps: dict[str, dict[int, list[float]]] = {}
    for run in client.search_runs([experiment_id], f"tags.study = '{study}'", max_results=1000):
        if "arm" in run.data.tags:  # the parent run has none
            for m in client.get_metric_history(run.info.run_id, METRIC):
                steps.setdefault(run.data.tags["arm"], {}).setdefault(m.step, []).append(m.value)
    return {arm: {"mean": [v for s, ys in sorted(by_step.items()) for v in (s, sum(ys) / len(ys))],
                  "band": sorted(v for ys in by_step.values() for v in (min(ys), max(ys)))}
            for arm, by_step in steps.items()}


def _drawn(traces: list[dict[str, Any]]) -> dict[str, list[list[float]]]:
    """The chart's distinct lines (MLflow draws each twice, once with markers) and its bands, as _seed_stats."""
    lines = {tuple(v for xy in zip(t["x"], t["y"]) for v in xy) for t in traces
             if not t["fill"] and "lines" in (t["mode"] or "") and t["x"]}
    bands = [sorted(y for y in t["y"] if y is not None) for t in traces if t["fill"]]
    return {"mean": sorted(map(list, lines)), "band": sorted(b for b in bands if b)}


def _distinct(series: list[list[float]]) -> list[list[float]]:
    """Two arms of a tiny study can tie (barely trained targets): their lines then coincide."""
    return sorted(map(list, {tuple(s) for s in series}))


def _same(drawn: list[list[float]], expected: list[list[float]]) -> bool:
    """Same series, in any order, up to float rounding (the UI averages in JavaScript)."""
    return len(drawn) == len(expected) and all(
        d == pytest.approx(e, rel=1e-6) for d, e in zip(sorted(drawn), sorted(expected)))


def _check_grouped(page: Any, expected: dict[str, dict[str, list[float]]]) -> None:
    """Group by -> Tags -> arm, then: one group row, one legend entry, one mean line and band per arm."""
    from selenium.common.exceptions import TimeoutException

    assert page.group_by_tag("arm") == "Group by: arm"
    want = sorted(f"{arm} ({METRIC})" for arm in ARMS)
    with contextlib.suppress(TimeoutException):  # the assertions below say what was drawn instead
        page.wait.until(lambda _: sorted(e for e in page.legend(METRIC) if e.startswith("beta_")) == want)
    legend = page.legend(METRIC)
    # Ungrouped, the legend names the runs; grouped only the arms and the parent's "Unassigned" group.
    assert sorted(e for e in legend if not e.startswith("Unassigned ")) == want, legend
    assert sorted(page.group_rows()) == sorted(f"Group: {arm}" for arm in ARMS)
    drawn = _drawn(page.traces(METRIC))
    assert sorted(expected) == sorted(ARMS), expected
    # one mean line per arm (not one per run; the legend above counts them), with the seeds' means
    assert _same(drawn["mean"], _distinct([stats["mean"] for stats in expected.values()])), (drawn, expected)
    # and one min-max band per arm, with the seeds' lowest and highest values
    assert _same(drawn["band"], [stats["band"] for stats in expected.values()]), (drawn, expected)


def _check_links(study: TinyStudy, experiment_id: str) -> None:
    """The link the page opens is the one the study printed last and wrote into its parent run's note."""
    from mlflow.tracking import MlflowClient

    from cjepa.sweep.note import NOTE_TAG
    from cjepa.tracking.ui import runs_url

    if study.stdout is not None:
        last = study.stdout.strip().splitlines()[-1]
        assert last.startswith("MLflow: ") and runs_url("http://127.0.0.1:5000", experiment_id) in last, last
    client = MlflowClient(study.tracking_uri)
    parent = [r for r in client.search_runs([experiment_id]) if r.data.tags.get("cjepa.role") == "study"]
    assert len(parent) == 1 and f"]({runs_url('', experiment_id)})" in parent[0].data.tags[NOTE_TAG]


def test_study_runs_and_chart_in_mlflow_ui(tiny_study: TinyStudy, tmp_path: Path) -> None:
    """The user's path of the module docstring; a screenshot before and after grouping."""
    chromium, driver_path = _browser()
    from mlflow.tracking import MlflowClient
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    from cjepa.tracking.ui import start_server
    from tests.dashboards.mlflow_ui_page import RunsPage

    exp = MlflowClient(tiny_study.tracking_uri).get_experiment_by_name(tiny_study.name)
    _check_links(tiny_study, exp.experiment_id)
    expected = _seed_stats(tiny_study.tracking_uri, exp.experiment_id, tiny_study.name)
    # run names put the level first: "0.0 s0 · beta_vicreg" (cjepa.sweep.naming.child_run_name)
    children = [f"{arm.split('=')[1]} s{seed} · beta_vicreg" for arm in ARMS for seed in (0, 1)]
    shots = [tmp_path / "mlflow_ui_study.png", tmp_path / "mlflow_ui_grouped.png"]
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tempfile.mkdtemp(dir=tmp_path)}"):
        opts.add_argument(flag)
    with start_server(tiny_study.tracking_uri, host="127.0.0.1", port=_free_port()) as server:
        browser = webdriver.Chrome(service=Service(driver_path), options=opts)
        page = RunsPage(browser, WAIT_S)
        shot = shots[0]
        try:
            page.expand(page.open(server.url, exp.experiment_id, tiny_study.name), children)
            page.chart_view(METRIC)
            per_run = {f"{name} ({METRIC})" for name in children}  # ungrouped: one series per run
            page.wait.until(lambda _: per_run <= set(page.legend(METRIC)), f"no legend entry per run in {METRIC}")
            browser.save_screenshot(str(shot))
            shot = shots[1]
            _check_grouped(page, expected)
            browser.save_screenshot(str(shot))
        except Exception:
            browser.save_screenshot(str(shot))  # the state the UI was in, for the failure report
            raise
        finally:
            browser.quit()
            if (dest := artifact_dir()) is not None:
                for done in (s for s in shots if s.exists()):
                    shutil.copy2(done, dest / done.name)
    for done in shots:
        assert done.stat().st_size > 20_000, done
        print(f"screenshot: {done}")
