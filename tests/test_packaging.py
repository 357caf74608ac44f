"""The presets ship inside the package: a wheel installed outside the checkout knows them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration  # builds a wheel and runs cjepa from it in a subprocess

ROOT = Path(__file__).resolve().parents[1]


def test_a_wheel_installed_elsewhere_has_the_presets(tmp_path: Path) -> None:
    wheels, target = tmp_path / "wheels", tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(wheels), str(ROOT)], check=True, cwd=tmp_path, timeout=300)
    wheel = next(wheels.glob("cjepa-*.whl"))
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True, timeout=300)
    assert (target / "cjepa" / "configs" / "cjepa_fmnist_cpu.yaml").is_file()
    env = {**os.environ, "PYTHONPATH": str(target)}  # the wheel's cjepa before the checkout's
    out = subprocess.run([sys.executable, "-m", "cjepa", "config", "-c", "cjepa_vit_b16"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "img_size: 224" in out.stdout and "# digest:" in out.stdout
    probe = "import cjepa.config.presets as p; print(p.PRESET_DIR)"
    where = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True,
                           timeout=60).stdout.strip()
    assert where == str(target / "cjepa" / "configs")
