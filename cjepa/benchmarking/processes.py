"""Commands under a time limit, a limit for code in this process, and JSON written atomically.

Why: a benchmark that starts ``cjepa train``, a study script or pytest must time the command
as a user runs it (a fresh process) and must survive the command hanging: ``run_command`` runs
it in its own session and kills the whole process group at its limit (a hang becomes a record,
not a stuck benchmark). The children see the repository on ``PYTHONPATH``, so a copied working
tree without an installed cjepa (the lent GPU machine) runs the same commands.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from cjepa.atomic import atomic_write

REPO = Path(__file__).resolve().parents[2]


class TimeLimit(Exception):
    """Code or a command ran past its limit."""


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise ``TimeLimit`` in the main thread after ``seconds`` (SIGALRM: Unix, main thread only)."""
    def expire(signum: int, frame: Any) -> None:
        raise TimeLimit(f"ran past its {seconds:.0f} s limit")

    old = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def write_json(path: Path, obj: Any, indent: int | None = None) -> None:
    """Write-then-rename: a process killed mid-write leaves the previous file, never half a JSON."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(obj, indent=indent, default=str)
    atomic_write(path, lambda fh: fh.write(text), binary=False)


def _stop_group(proc: subprocess.Popen) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
            return


def run_command(cmd: Sequence[str], log: Path, limit: float | None = None, env: dict[str, str] | None = None,
                cwd: Path = REPO) -> dict[str, Any]:
    """Run ``cmd`` in its own session with its output in ``log``; at ``limit`` seconds kill its whole
    process group. Returns the exit code (None on timeout), ``timed_out``, the wall seconds and the
    log's last 3000 characters."""
    t0 = time.monotonic()
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": path, **(env or {})}
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as fh:
        proc = subprocess.Popen(list(cmd), cwd=cwd, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True,
                                env=full_env)
        try:
            rc: int | None = proc.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            rc = None
            _stop_group(proc)
        except BaseException:  # Ctrl-C: the command's group goes with the benchmark
            _stop_group(proc)
            raise
    return {"returncode": rc, "timed_out": rc is None, "seconds": time.monotonic() - t0,
            "log_tail": log.read_text(errors="replace")[-3000:]}
