#!/usr/bin/env bash
# Installs cjepa and everything it needs on a fresh Debian/Ubuntu machine (Python >= 3.10):
# the Fashion-MNIST Debian package and Chromium + chromedriver (when apt is available), then a
# virtual environment .venv in this checkout with the project and its dev extras (pip install -e).
#
# Why a venv: Debian's own /usr/bin/python3 refuses `pip install` into the system (PEP 668,
# externally-managed-environment), so the project always goes into .venv; use it with
# `. .venv/bin/activate` (or .venv/bin/python). PYTHON=/path/to/python picks the interpreter the
# venv is made from (default: python3 on PATH). Debian's python3-venv package is installed with apt
# when that interpreter cannot make a venv.
#
# Safe to run again: it only installs what is missing, and skips pip (a second or two) when .venv
# already holds this checkout installed from the same pyproject.toml.
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
VENV=.venv
FMNIST=/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
STAMP=$VENV/.cjepa-setup   # sha256 of pyproject.toml at the last successful install
APT_UPDATED=""

# can_apt: apt-get is there and we may use it (root, or passwordless sudo like CI images have).
can_apt() {
  command -v apt-get >/dev/null 2>&1 && { [ "$(id -u)" = 0 ] || sudo -n true 2>/dev/null; }
}

# apt_install PKG...: install Debian packages (status 1, nothing done, where can_apt says no).
apt_install() {
  can_apt || return 1
  local sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo -n"
  if [ -z "$APT_UPDATED" ]; then
    $sudo apt-get update -qq
    APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
}

if [ ! -f "$FMNIST" ]; then
  if can_apt; then
    echo "[setup] installing Fashion-MNIST (Debian package dataset-fashion-mnist)"
    apt_install dataset-fashion-mnist
  else
    echo "[setup] Fashion-MNIST not installed and apt-get unavailable: train with data.download=true" \
         "or data.root=DIR (see README)" >&2
  fi
fi

# Headless Chromium + chromedriver (Debian packages; selenium is a dev extra): the MLflow UI browser test
# (tests/dashboards/test_mlflow_ui_browser.py); it skips without them unless CI is set.
if ! { command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; }; then
  if can_apt; then
    echo "[setup] installing chromium and chromium-driver (Debian packages, for the browser test)"
    apt_install chromium chromium-driver
  else
    echo "[setup] chromium/chromedriver missing and apt-get unavailable: the MLflow UI browser test will skip" >&2
  fi
fi

# sshd, rsync and nc (Debian packages): `ray up` against Ray's local provider over SSH to 127.0.0.1
# (tests/cluster/test_ray_up_local.py, which runs in CI and starts its own private sshd).
if ! { [ -x /usr/sbin/sshd ] && command -v rsync >/dev/null 2>&1 && command -v nc >/dev/null 2>&1; }; then
  if can_apt; then
    echo "[setup] installing openssh-server, rsync and netcat-openbsd (Debian packages, for the ray up test)"
    apt_install openssh-server rsync netcat-openbsd
  else
    echo "[setup] sshd/rsync/nc missing and apt-get unavailable: the ray up test will skip" >&2
  fi
fi

# ---------------------------------------------------------------------------------------- .venv
# A venv whose python runs and has pip; a half-made one (venv failed at ensurepip) is made again.
if ! "$VENV/bin/python" -I -c "import pip" 2>/dev/null; then
  command -v "$PY" >/dev/null 2>&1 || { echo "[setup] $PY not found: install Python >= 3.10 or set PYTHON=" >&2; exit 1; }
  if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 10))'; then
    echo "[setup] $PY is Python $("$PY" -c 'import platform; print(platform.python_version())'); cjepa needs >= 3.10:" \
         "set PYTHON=/path/to/python3.10+" >&2
    exit 1
  fi
  # Debian/Ubuntu ship venv's ensurepip in python3.X-venv; without it `python3 -m venv` fails half-way.
  if ! "$PY" -c "import ensurepip, venv" 2>/dev/null; then
    ver=$("$PY" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
    echo "[setup] $PY cannot make a virtual environment: installing Debian's python$ver-venv"
    apt_install "python$ver-venv" || apt_install python3-venv || {
      why="no apt-get, or not root and no passwordless sudo"
      can_apt && why="apt-get install failed"
      echo "[setup] cannot install python$ver-venv ($why): run 'sudo apt install python$ver-venv'," \
           "or set PYTHON= to a Python that has venv" >&2
      exit 1
    }
  fi
  echo "[setup] making the virtual environment $VENV ($("$PY" -c 'import sys; print(sys.executable, sys.version.split()[0])'))"
  "$PY" -m venv --clear "$VENV"
elif [ -n "${PYTHON:-}" ]; then
  pyver() { "$1" -c 'import sys; print(sys.version.split()[0])'; }
  if [ "$(pyver "$VENV/bin/python")" != "$(pyver "$PY")" ]; then
    echo "[setup] keeping the existing $VENV (Python $(pyver "$VENV/bin/python")): remove it to rebuild it" \
         "from PYTHON=$PYTHON (Python $(pyver "$PY"))" >&2
  fi
fi

# pip reads the same global/user config inside the venv (/etc/xdg/pip/pip.conf, /etc/pip.conf,
# ~/.config/pip/pip.conf, PIP_* variables): local wheel folders and constraints keep applying.
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
installed_here() {  # this checkout's cjepa is what the venv imports (-I: not via the cwd), same pyproject.toml
  [ "$(cat "$STAMP" 2>/dev/null)" = "$want" ] &&
    "$VENV/bin/python" -I -c 'import os, sys, cjepa
sys.exit(os.path.realpath(os.path.dirname(os.path.dirname(cjepa.__file__))) != os.path.realpath(sys.argv[1]))' . \
      2>/dev/null
}
if installed_here; then
  echo "[setup] cjepa already installed in $VENV (pyproject.toml unchanged)"
else
  echo "[setup] installing cjepa and its dependencies into $VENV (pip; full log in $VENV/pip-install.log)"
  rm -f "$STAMP"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check --log "$VENV/pip-install.log" -e ".[dev]"
  echo "$want" >"$STAMP"
fi
echo "[setup] done; activate with: . $VENV/bin/activate"
