"""Golden-loss regression tests: the guard that a refactor (or speed work) changes no behaviour.

For I-JEPA and each C-JEPA reading (``pred_blocks``, ``context_target``, ``two_views``, plus EMA
off, the L2 JEPA loss and horizontal flips; see ``driver.CONFIGS``) the tiny digits model of
``tests/conftest.py`` is trained for ``driver.STEPS`` seeded steps in this process (no Ray, CPU,
fp32, ``run.threads=1``) through the public engine API only: a Config, ``cjepa.engine.train``
with ``run.max_steps``, a ``Reporter.on_step`` hook with ``run.log_every=1`` and the checkpoint
written at the stop. Every step's loss, loss_jepa, vicreg_inv/var/cov, loss_vicreg, grad_norm,
lr, weight decay and EMA momentum, and float64 checksums (element count, sum, L1, sum of squares)
of the final online network and target encoder, must equal ``golden_losses.json`` to a relative
1e-5. Keys logged now but missing later fail; keys added later are ignored.

When to re-record (``python -m tests.golden.record``, then ``--check`` to confirm determinism):
only for an *intended* behaviour change (a fixed bug in the loss, a new default, a changed
initialisation, a torch upgrade that moves fp32 results beyond 1e-5), and say in the commit
message what changed and why. Never re-record to make a refactor pass: a refactor that moves
these numbers has changed the method. Changing ``driver.CONFIGS``, ``driver.STEPS`` or
``TINY`` in ``tests/conftest.py`` also needs a re-record (``test_recording_matches_the_driver``
says so).

Exact resume is not repeated here: ``tests/engine/test_resume.py`` already stops a run at step 17
with ``run.max_steps``, resumes it in a fresh process and asserts the online and target weights,
the optimizer state, the RNG state and every per-epoch metric equal the uninterrupted run's, bit
for bit.
"""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.conftest import TINY
from tests.golden.driver import CONFIGS, GOLDEN_PATH, STEPS, overrides_for, run_config

RTOL = 1e-5  # relative; fp32 on one CPU thread reproduces bit for bit, this leaves room for reordered sums
ATOL = 1e-8  # only matters for values that are (nearly) zero
MAX_LINES = 30  # of a failure message: the first mismatches say where behaviour changed
RERECORD = ("If this change of behaviour is intended, re-record with `python -m tests.golden.record` "
            "and give the reason in the commit message (module docstring of tests/golden/test_golden_losses.py).")


@pytest.fixture(scope="module")
def golden() -> dict[str, Any]:
    if not GOLDEN_PATH.exists():
        pytest.fail(f"{GOLDEN_PATH} is missing; record it with `python -m tests.golden.record`")
    return json.loads(GOLDEN_PATH.read_text())


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One directory for all configurations (a sub-directory each), so they share the digits cache."""
    return tmp_path_factory.mktemp("golden")


def _mismatch(where: str, expected: float, got: float, scale: float | None = None) -> str | None:
    """A readable line when ``got`` is not ``expected`` to RTOL (relative to ``scale`` if given)."""
    allowed = max(RTOL * abs(expected if scale is None else scale), ATOL)
    if math.isfinite(got) and abs(got - expected) <= allowed:
        return None
    return f"{where}: expected {expected!r}, got {got!r} (diff {got - expected:+.3e}, allowed {allowed:.1e})"


def compare(name: str, expected: dict[str, Any], got: dict[str, Any]) -> list[str]:
    """Every recorded value of configuration ``name`` that ``got`` does not reproduce, step by step."""
    problems: list[str] = []
    if len(got["steps"]) != len(expected["steps"]):
        problems.append(f"{name}: {len(got['steps'])} steps reported, {len(expected['steps'])} recorded")
    for i, (exp_row, got_row) in enumerate(zip(expected["steps"], got["steps"]), start=1):
        for key, value in exp_row.items():
            if key not in got_row:
                problems.append(f"{name} step {i} {key}: recorded {value!r}, no longer reported")
            elif (line := _mismatch(f"{name} step {i} {key}", value, got_row[key])) is not None:
                problems.append(line)
    for net, stats in expected["weights"].items():
        new = got["weights"][net]
        if new["numel"] != stats["numel"]:
            problems.append(f"{name} {net} weights: {new['numel']:.0f} elements, {stats['numel']:.0f} recorded")
        for key in ("sum", "abs_sum", "sum_sq"):
            # The plain sum cancels: judge it relative to the L1 norm, the size of what is summed.
            scale = stats["abs_sum"] if key == "sum" else None
            if (line := _mismatch(f"{name} {net} weights {key}", stats[key], new[key], scale)) is not None:
                problems.append(line)
    return problems


def _changed(recorded: list[str], now: list[str]) -> str:
    gone, added = [o for o in recorded if o not in now], [o for o in now if o not in recorded]
    return f"removed {gone}, added {added}" if gone or added else f"reordered: recorded {recorded}, now {now}"


def test_recording_matches_the_driver(golden: dict[str, Any]) -> None:
    """The file was recorded from exactly these configurations; otherwise the values below mean nothing."""
    problems = []
    if golden["steps"] != STEPS:
        problems.append(f"golden file has {golden['steps']} steps, driver.STEPS is {STEPS}")
    if golden["tiny"] != list(TINY):
        problems.append(f"TINY in tests/conftest.py changed: {_changed(golden['tiny'], list(TINY))}")
    if set(golden["configs"]) != set(CONFIGS):
        problems.append(f"configurations recorded {sorted(golden['configs'])}, in driver.CONFIGS {sorted(CONFIGS)}")
    for name in set(CONFIGS) & set(golden["configs"]):
        recorded, now = [*golden["tiny"], *golden["configs"][name]["overrides"]], overrides_for(name)
        if recorded != now:
            problems.append(f"{name}: overrides changed since the recording: {_changed(recorded, now)}")
    if problems:
        pytest.fail("\n".join(["the golden file was recorded from other settings:", *problems, RERECORD]),
                    pytrace=False)


def test_every_configuration_is_recorded_differently(golden: dict[str, Any]) -> None:
    """Each switch really reaches training: no two configurations share their last-step loss or
    final weights (an override that were silently ignored would make its arm a copy of another)."""
    rows = golden["configs"]
    for a, b in itertools.combinations(rows, 2):
        same_loss = rows[a]["steps"][-1]["loss"] == rows[b]["steps"][-1]["loss"]
        same_weights = rows[a]["weights"]["online"] == rows[b]["weights"]["online"]
        assert not (same_loss or same_weights), f"{a} and {b} recorded the same training"


@pytest.mark.parametrize("name", list(CONFIGS))
def test_losses_and_weights_match_the_recording(name: str, golden: dict[str, Any], workdir: Path) -> None:
    """STEPS seeded steps of configuration ``name`` reproduce every recorded metric and checksum."""
    if name not in golden["configs"]:
        pytest.fail(f"{name} is not in {GOLDEN_PATH.name}. {RERECORD}")
    problems = compare(name, golden["configs"][name], run_config(name, workdir))
    if problems:
        shown = problems[:MAX_LINES] + ([f"... and {len(problems) - MAX_LINES} more"] if len(problems) > MAX_LINES
                                        else [])
        header = (f"golden values of {name!r} changed ({len(problems)} mismatches; overrides "
                  f"{list(CONFIGS[name])}; recorded with torch {golden['torch']}, running {torch.__version__}):")
        pytest.fail("\n".join([header, *("  " + line for line in shown), RERECORD]), pytrace=False)
