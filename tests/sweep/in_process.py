"""A study script's driver run in the test's own process, as ``python script.py ARGS`` would run it.

Why: a driver subprocess pays an interpreter's imports (~12 s of torch/timm/MLflow) and a Ray start
each; what tests/sweep/test_extend.py, test_what_ran.py and test_sweep_ray.py check (planning, merge,
the MLflow parent, the rows of each trial's config.yaml, a resume) is the same code in either. A kill
that must hit a real driver (test_sweep_ray.py) still runs a subprocess.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

import pytest


@contextmanager
def driver_process_state() -> Iterator[None]:
    """No earlier in-process Ray before the driver (one local Ray at a time), and at the end its
    local Ray shut down and what a driver process dropped at exit put back for the tests after it:
    the environment (what ``main`` sets with ``setdefault`` for Tune's console and the local cluster,
    Ray's PYTHONBREAKPOINT) and Tune's SIGINT/SIGUSR1 handlers."""
    import ray

    ray.shutdown()
    env, handlers = dict(os.environ), {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGUSR1)}
    try:
        yield
    finally:
        ray.shutdown()
        for key in set(os.environ) - set(env):
            del os.environ[key]
        os.environ.update(env)
        for sig, handler in handlers.items():
            if handler is not None:  # None: a handler not set from Python, which cannot be put back
                signal.signal(sig, handler)


def run_script_main(script: ModuleType, capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """What a study script's ``__main__`` block does, ``sys.exit(main(make_study, __doc__))``, with
    ``argv`` in this process; its return code must be 0. Returns this run's stdout (Tune's table and
    the summary)."""
    capsys.readouterr()  # this run's output only
    code = script.main(script.make_study, script.__doc__, list(argv))
    out, err = capsys.readouterr()
    assert code == 0, err[-3000:]
    return out
