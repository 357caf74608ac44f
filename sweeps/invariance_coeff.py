"""beta_sim sweep: the weight of the invariance term (the paper's default 25, ViT-T/16 sweep).

Levels around 25, including 0 (variance + covariance only); the default 25 is the baseline arm.

    python sweeps/invariance_coeff.py [--full] [--resume]
"""

import sys

from cjepa.sweep import Study
from cjepa.sweep.cli import main
from cjepa.sweep.profiles import study_at


def make_study(full: bool) -> Study:
    levels = [0.0, 5.0, 10.0, 25.0, 50.0, 100.0] if full else [0.0, 5.0, 25.0, 100.0]
    return study_at(full, "invariance_coeff", factors={"loss.beta_sim": levels}, baseline="beta_sim=25.0",
                    **({} if full else {"seeds": (0, 1)}))


if __name__ == "__main__":
    sys.exit(main(make_study, __doc__))
