"""Re-record ``tests/golden/golden_losses.json`` (see ``test_golden_losses.py`` for when).

    python -m tests.golden.record            # write the file
    python -m tests.golden.record --check    # record in memory, compare bit for bit, write nothing
    python tests/golden/record.py            # the same, as a script

``--check`` is the determinism check: a second recording must reproduce every stored float
exactly (not merely to the test's 1e-5), or the golden file guards nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make ``tests`` and ``cjepa`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import torch  # noqa: E402

from tests.conftest import TINY  # noqa: E402
from tests.golden.driver import CONFIGS, GOLDEN_PATH, STEPS, run_config  # noqa: E402

ABOUT = ("Golden values for tests/golden/test_golden_losses.py, written by `python -m tests.golden.record`. "
         "Per step: each step's own logged value (recovered from Reporter.on_step's running means). "
         "weights: float64 checksums of the online network and target encoder after the last step. "
         "Re-record only for an intended behaviour change, and say why in the commit message.")


def record() -> dict[str, Any]:
    """Run every golden configuration in a throw-away directory; return the golden document."""
    with tempfile.TemporaryDirectory(prefix="cjepa-golden-") as tmp:
        configs = {name: run_config(name, Path(tmp)) for name in CONFIGS}
    return {"about": ABOUT, "torch": torch.__version__, "steps": STEPS, "tiny": list(TINY), "configs": configs}


def exact_differences(old: Any, new: Any, path: str = "") -> list[str]:
    """Every leaf where two golden documents differ at all (floats compared with ==)."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = [f"{path}.{k}: only in {'old' if k in old else 'new'}" for k in sorted(old.keys() ^ new.keys())]
        for k in sorted(old.keys() & new.keys()):
            out += exact_differences(old[k], new[k], f"{path}.{k}")
        return out
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return [d for i, (a, b) in enumerate(zip(old, new)) for d in exact_differences(a, b, f"{path}[{i}]")]
    return [] if old == new else [f"{path}: {old!r} -> {new!r}"]


def dumps(doc: dict[str, Any]) -> str:
    """JSON with one line per step, so that a re-recording's diff reads step by step."""
    text = json.dumps(doc, indent=1)
    for cfg in doc["configs"].values():
        for row in cfg["steps"]:
            text = text.replace(json.dumps(row, indent=1).replace("\n", "\n    "), json.dumps(row), 1)
    return text + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare a fresh recording with the file, write nothing")
    args = parser.parse_args(argv)
    doc = record()
    if args.check:
        old = json.loads(GOLDEN_PATH.read_text())
        diffs = [d for d in exact_differences(old, doc) if not d.startswith(".torch")]
        for line in diffs:
            print(line)
        print(f"{len(diffs)} differences from {GOLDEN_PATH}")
        return 1 if diffs else 0
    GOLDEN_PATH.write_text(dumps(doc))
    print(f"wrote {GOLDEN_PATH} ({len(CONFIGS)} configurations x {STEPS} steps)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
