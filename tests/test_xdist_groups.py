"""The parallel run's one safety rule holds: every Ray test shares one xdist worker (tests/conftest.py).

A second local Ray beside the first makes Ray Train V2 hang, so the suite runs in parallel only because
xdist's ``--dist loadgroup`` sends the serial group to one worker. That grouping once stopped silently
(pytest 9.2 with pytest-xdist 3.8, pytest-xdist#1386: tests ran round-robin and two Rays raced); this
test fails if it stops again.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import RAY_FREE, SERIAL_GROUP

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.integration
def test_an_integration_test_runs_in_the_serial_group(request: pytest.FixtureRequest) -> None:
    mark = request.node.get_closest_marker("xdist_group")
    if request.config.pluginmanager.hasplugin("xdist"):
        assert mark is not None and mark.args[0] == SERIAL_GROUP
    if os.environ.get("PYTEST_XDIST_WORKER"):  # the scheduler saw the group: xdist suffixes the test's id
        assert request.node.nodeid.endswith(f"@{SERIAL_GROUP}"), "xdist's loadgroup did not group (pytest-xdist#1386)"


def test_every_ray_free_module_exists() -> None:
    """A renamed module would silently leave the list and fall back to the serial group; a typo would too."""
    assert sorted(m for m in RAY_FREE if not (ROOT / m).is_file()) == []
