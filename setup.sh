#!/usr/bin/env bash
# Installs cjepa and everything it needs on a fresh Debian/Ubuntu machine (Python >= 3.10):
# the Fashion-MNIST Debian package (when apt is available) and the project with its dev extras.
# Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
FMNIST=/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz

if [ ! -f "$FMNIST" ]; then
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO="sudo -n"
  if command -v apt-get >/dev/null 2>&1 && { [ -z "$SUDO" ] || sudo -n true 2>/dev/null; }; then
    echo "[setup] installing Fashion-MNIST (Debian package dataset-fashion-mnist)"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq dataset-fashion-mnist >/dev/null
  else
    echo "[setup] Fashion-MNIST not installed and apt-get unavailable: train with data.download=true" \
         "or data.root=DIR (see README)" >&2
  fi
fi

# Headless Chromium + chromedriver (Debian packages; selenium is a dev extra): the MLflow UI browser test
# (tests/dashboards/test_mlflow_ui_browser.py); it skips without them unless CI is set.
if ! { command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; }; then
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO="sudo -n"
  if command -v apt-get >/dev/null 2>&1 && { [ -z "$SUDO" ] || sudo -n true 2>/dev/null; }; then
    echo "[setup] installing chromium and chromium-driver (Debian packages, for the browser test)"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium chromium-driver >/dev/null
  else
    echo "[setup] chromium/chromedriver missing and apt-get unavailable: the MLflow UI browser test will skip" >&2
  fi
fi

echo "[setup] installing cjepa and its dependencies (pip)"
$PY -m pip install -q --disable-pip-version-check -e ".[dev]"
echo "[setup] done"
