"""The machine a benchmark ran on: one dict, written the same way by every script in ``bench/``.

Why one: numbers from a shared 2-core VM mean little without the CPU model, the load average at
the start, the torch build and the thread count beside them, and comparing two JSONs needs the
same keys in both. Versions come from the installed distributions (no import: a driver that never
imports torch does not pay for it here); the torch threads and the GPU are read only when the
benchmark has imported torch itself.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("torch", "timm", "ray", "mlflow")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages (None where the OS has none)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def git_commit() -> str | None:
    """The repository's HEAD (None outside a checkout or without git)."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def _versions(names: tuple[str, ...]) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def _torch_state() -> dict[str, Any]:
    torch = sys.modules.get("torch")
    if torch is None:
        return {}
    cuda = torch.cuda.is_available()
    return {"torch_threads": torch.get_num_threads(), "cuda": torch.version.cuda if cuda else None,
            "gpu": torch.cuda.get_device_name(0) if cuda else None,
            "gpu_count": torch.cuda.device_count() if cuda else 0}


def machine_info(packages: tuple[str, ...] = ()) -> dict[str, Any]:
    """Date, host, CPU, cores, load average, Python, the versions of ``PACKAGES`` and ``packages``
    (None: not installed), torch threads, GPU, commit."""
    return {"date_utc": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
            "host": platform.node(), "cpu": _cpu_model(), "logical_cpus": os.cpu_count(),
            "load_avg": load_average(), "python": platform.python_version(), "platform": platform.platform(),
            **_versions(PACKAGES + tuple(packages)), **_torch_state(), "git_commit": git_commit()}


def machine_line(info: dict[str, Any]) -> str:
    """One line for a printout: ``2026-12-08 07:10:00 UTC, AMD EPYC ..., 2 CPUs, load 1.7 1.6 1.7, torch ...``."""
    load = " ".join(f"{x:.1f}" for x in info["load_avg"]) if info.get("load_avg") else "unknown"
    parts = [info["date_utc"], info["cpu"], f"{info['logical_cpus']} CPUs", f"load {load}"]
    parts += [f"{k} {info[k]}" for k in PACKAGES if info.get(k)]  # the headline ones
    if info.get("torch_threads"):
        parts.append(f"torch threads {info['torch_threads']}")
    if info.get("gpu"):
        parts.append(f"{info['gpu_count']}x {info['gpu']} (CUDA {info['cuda']})")
    return ", ".join(parts)
