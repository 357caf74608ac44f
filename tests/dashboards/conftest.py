"""One real tiny study (2 arms x 2 seeds on digits, ~2 min on 2 cores) shared by the report and browser tests.

Run once per session through tests/sweep/study_driver.py in a subprocess (its own local Ray, as a
user runs a study), into a temporary storage folder with a temporary SQLite MLflow store: every
number the tests look at comes from real trainings. Two seeds, so intervals and paired
differences exist.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DRIVER = REPO / "tests" / "sweep" / "study_driver.py"
STUDY = "tiny_vicreg"  # the driver's study name
ARMS = ("beta_vicreg=0.0", "beta_vicreg=0.01")


@dataclass
class TinyStudy:
    study_dir: Path
    tracking_uri: str
    name: str = STUDY
    stdout: str | None = None  # the driver's console (None when reused via CJEPA_TEST_STUDY)


@pytest.fixture(scope="session")
def tiny_study(tmp_path_factory: pytest.TempPathFactory) -> TinyStudy:
    reuse = os.environ.get("CJEPA_TEST_STUDY")  # developer shortcut: "<study dir>" of a finished driver run
    if reuse:
        import json

        return TinyStudy(Path(reuse), json.loads((Path(reuse) / "study.json").read_text())["tracking_uri"])
    root = tmp_path_factory.mktemp("dash_study")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "MLFLOW_RUN_ID")}
    cmd = [sys.executable, str(DRIVER), "--storage", str(root / "storage"), "--tracking-uri", uri,
           "--seeds", "0", "1", "--max-concurrent", "2"]
    proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        pytest.fail(f"tiny study failed (rc {proc.returncode}):\n{(proc.stdout + proc.stderr)[-4000:]}")
    study_dir = root / "storage" / STUDY
    assert (study_dir / "results.parquet").is_file() and (study_dir / "study.json").is_file()
    return TinyStudy(study_dir, uri, stdout=proc.stdout)


def artifact_dir() -> Path | None:
    """Where CI collects screenshots and reports (env CJEPA_ARTIFACTS), if set."""
    where = os.environ.get("CJEPA_ARTIFACTS")
    if not where:
        return None
    path = Path(where)
    path.mkdir(parents=True, exist_ok=True)
    return path
