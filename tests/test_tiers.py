"""The tier guard of tests/conftest.py, run in a pytester session: an unmarked test slower than
CJEPA_UNIT_MAX_S fails with a message saying what to do; a marked one (integration, or its old name
slow) passes; a fast unmarked one passes; and `-m "not integration"` deselects slow-marked tests."""

from __future__ import annotations

from pathlib import Path

import pytest

CONFTEST = Path(__file__).with_name("conftest.py")
SLEEPERS = """
import time

import pytest


def test_fast_unmarked():
    pass


def test_slow_unmarked():
    time.sleep(0.3)


@pytest.mark.integration
def test_slow_integration():
    time.sleep(0.3)


@pytest.mark.slow
def test_slow_old_name():
    time.sleep(0.3)


@pytest.fixture
def slow_fixture():
    time.sleep(0.3)


def test_slow_fixture_unmarked(slow_fixture):
    pass
"""


@pytest.fixture
def sleepers(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    pytester.makeconftest(CONFTEST.read_text())  # the real guard, as the suite loads it
    pytester.makeini("[pytest]\nmarkers =\n    integration: x\n    slow: x\n    gpu: x\n    ray_pending: x\n")
    pytester.makepyfile(test_sleepers=SLEEPERS)
    monkeypatch.setenv("CJEPA_UNIT_MAX_S", "0.1")
    return pytester


def test_an_unmarked_slow_test_fails_and_a_marked_one_passes(sleepers: pytest.Pytester) -> None:
    result = sleepers.runpytest("-p", "no:cacheprovider", "--strict-markers")
    result.assert_outcomes(passed=3, failed=2)
    outcomes = {r.head_line: r.outcome for r in result.reprec.getreports("pytest_runtest_logreport")
                if r.when == "call"}
    assert outcomes == {"test_fast_unmarked": "passed", "test_slow_unmarked": "failed",
                        "test_slow_integration": "passed", "test_slow_old_name": "passed",
                        "test_slow_fixture_unmarked": "failed"}
    result.stdout.fnmatch_lines(["*test_sleepers.py::test_slow_unmarked is unmarked but took 0.* s (setup + call), "
                                 "over the unit-test limit of 0.1 s (env CJEPA_UNIT_MAX_S): mark it "
                                 "@pytest.mark.integration*or make it faster*"])


def test_the_inner_loop_deselects_integration_and_its_old_name(sleepers: pytest.Pytester) -> None:
    result = sleepers.runpytest("-p", "no:cacheprovider", "-m", "not integration", "-k", "not slow_unmarked")
    result.assert_outcomes(passed=1, failed=1, deselected=3)  # the slow fixture still fails unmarked


def test_a_generous_limit_passes_everything(sleepers: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CJEPA_UNIT_MAX_S", "30")
    sleepers.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=5)
