"""The scripts of bench/ as modules for a test, loaded from their files (bench/ is no package and is
never put on ``sys.path``: a script imports only ``cjepa``, so it loads alone)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

BENCH = Path(__file__).resolve().parents[2] / "bench"


def load_script(name: str) -> ModuleType:
    """``bench/<name>.py`` as the module ``bench_<name>`` (its ``__main__`` block does not run)."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None, name
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
