"""End to end: a real study's runs in the real MLflow UI, in headless Chromium (Selenium + chromedriver).

What a user does after a study: `cjepa ui`, open the experiment, expand the study's parent run to
see one child run per (arm, seed), switch to the chart view and find a metric's chart. The page
is a React app, so only a browser can tell whether that works; the screenshot is kept
(``tmp_path`` and, with ``CJEPA_ARTIFACTS`` set, a copy there).

Skips only when Chromium/chromedriver/selenium are missing *and* ``CI`` is unset: CI installs them
(setup.sh), so there a missing browser fails the test instead of hiding it.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from pathlib import Path

import pytest

from tests.dashboards.conftest import ARMS, TinyStudy, artifact_dir

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--window-size=1700,1000")
WAIT_S = 60


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


def test_study_runs_and_chart_in_mlflow_ui(tiny_study: TinyStudy, tmp_path: Path) -> None:
    chromium, driver_path = _browser()
    from mlflow.tracking import MlflowClient
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    from cjepa.tracking.ui import start_server

    exp = MlflowClient(tiny_study.tracking_uri).get_experiment_by_name(tiny_study.name)
    # run names put the level first: "0.0 s0 · beta_vicreg" (cjepa.sweep.naming.child_run_name)
    children = [f"{arm.split('=')[1]} s{seed} · beta_vicreg" for arm in ARMS for seed in (0, 1)]
    shot = tmp_path / "mlflow_ui_study.png"
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tempfile.mkdtemp(dir=tmp_path)}"):
        opts.add_argument(flag)
    with start_server(tiny_study.tracking_uri, host="127.0.0.1", port=_free_port()) as server:
        browser = webdriver.Chrome(service=Service(driver_path), options=opts)
        try:
            wait = WebDriverWait(browser, WAIT_S)
            # The runs table of the experiment, in the "Model training" view (3.17 opens GenAI otherwise).
            browser.get(f"{server.url}/#/experiments/{exp.experiment_id}/runs?workflowType=machine_learning")
            parent = "//div[@role='gridcell'][.//a[normalize-space()='{}']]"
            try:
                cell = wait.until(EC.presence_of_element_located((By.XPATH, parent.format(tiny_study.name))))
            except Exception:
                browser.find_element(By.XPATH, "//*[normalize-space(text())='Model training']").click()
                cell = wait.until(EC.presence_of_element_located((By.XPATH, parent.format(tiny_study.name))))
            for close in browser.find_elements(By.XPATH, "//button[@aria-label='Close']"):  # the assistant panel
                if close.is_displayed():  # takes a third of the width; closing it is cosmetic
                    close.click()
            # Child runs are nested under the parent row: expand it (the +/- button in its name cell).
            cell.find_element(By.TAG_NAME, "button").click()
            for name in children:
                wait.until(EC.visibility_of_element_located((By.XPATH, f"//a[normalize-space()='{name}']")))
            # Chart view: one chart per metric; search for the study's metric and wait for its plot.
            radio = browser.find_element(By.XPATH, "//input[@type='radio' and @value='CHART']")
            browser.execute_script("arguments[0].click();", radio)
            search = wait.until(EC.element_to_be_clickable(
                (By.XPATH, "//input[contains(@placeholder, 'Search metric charts')]")))
            search.send_keys("knn_target")
            wait.until(EC.visibility_of_element_located(
                (By.XPATH, "//*[normalize-space(text())='knn_target' or normalize-space(text())='knn_target ']")))
            plots = wait.until(lambda b: [p for p in b.find_elements(By.CSS_SELECTOR, ".js-plotly-plot")
                                          if p.is_displayed()])
            assert plots, "no metric chart drawn"
            for name in [tiny_study.name, *children]:  # still listed beside the charts
                assert browser.find_elements(By.XPATH, f"//*[contains(normalize-space(), '{name[:12]}')]")
            browser.save_screenshot(str(shot))
        except Exception:
            browser.save_screenshot(str(shot))  # the state the UI was in, for the failure report
            raise
        finally:
            browser.quit()
            if (dest := artifact_dir()) is not None and shot.exists():
                shutil.copy2(shot, dest / shot.name)
    assert shot.stat().st_size > 20_000
    print(f"screenshot: {shot}")
