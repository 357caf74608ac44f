"""A study script for the tests (same shape as sweeps/*.py), on the tiny digits config."""

import sys
from pathlib import Path

from cjepa.sweep import Study
from cjepa.sweep.cli import main

TINY = str(Path(__file__).with_name("tiny_study.yaml"))


def make_study(full: bool) -> Study:
    return Study(name="tiny_vicreg", base=TINY, factors={"loss.beta_vicreg": [0.0, 0.01]}, baseline="beta_vicreg=0.0",
                 seeds=(0,), max_concurrent=1, cpus_per_worker=1.0)


if __name__ == "__main__":
    sys.exit(main(make_study, __doc__))
