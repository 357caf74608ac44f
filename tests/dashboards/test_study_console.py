"""A console a person can watch (issue 27): the tiny study's own stdout, as its driver printed it.

By default a study prints Tune's table (arm, seed, epoch, probes), the study's ETA and one line per
finished trial; nothing per step (the engine's ``ep 0.50 step 12`` lines), no trial process's
forwarded output (``(run_trial pid=...)``) and no "Checkpoint successfully created" per epoch:
before, the main job printed ~50 such lines a minute. Uses the session's tiny study (conftest.py),
so no second study runs for it.
"""

from __future__ import annotations

import re

import pytest

from tests.dashboards.conftest import ARMS, TinyStudy

pytestmark = pytest.mark.integration  # reads the console of the tiny Ray study

#: What the quiet console must not show: per-step lines, forwarded worker output, checkpoint lines.
NOISE = (re.compile(r"^\s*ep \d+\.\d+ step \d+"), re.compile(r"^\[epoch \d+\]"), re.compile(r"pid=\d+"),
         re.compile(r"Checkpoint successfully created"))
TRIAL_LINE = re.compile(r"^trial (\S+) s(\d+) (finished|stopped early at) epoch (\d+)/2[:(]")


def test_the_default_console_has_a_line_per_trial_and_none_per_step(tiny_study: TinyStudy) -> None:
    if tiny_study.stdout is None:
        pytest.skip("CJEPA_TEST_STUDY reuses a finished study: its console was not captured")
    lines = tiny_study.stdout.splitlines()
    noise = [line for line in lines if any(p.search(line) for p in NOISE)]
    assert not noise, noise[:5]
    finished = [m.groups() for line in lines if (m := TRIAL_LINE.match(line))]
    assert sorted((arm, int(seed)) for arm, seed, *_ in finished) == sorted((a, s) for a in ARMS for s in (0, 1))
    assert any("kNN tgt" in line for line in lines)  # Tune's table, with the probe columns
    assert any(line.startswith("Study: ") and "trial-epochs" in line for line in lines)  # the ETA line
    print(f"{len(lines)} console lines; per trial: {[line for line in lines if TRIAL_LINE.match(line)]}")
