"""beta_sim sweep: the weight of the invariance term (the paper's default 25, ViT-T/16 sweep).

Levels around 25, including 0 (variance + covariance only); the default 25 is the baseline arm.

    python sweeps/invariance_coeff.py [--full] [--resume]
"""

import sys

from cjepa.sweep import Study
from cjepa.sweep.cli import main


def make_study(full: bool) -> Study:
    if full:
        return Study(name="invariance_coeff_full", base="cjepa_vit_t16", overrides=("run.epochs=100",),
                     factors={"loss.beta_sim": [0.0, 5.0, 10.0, 25.0, 50.0, 100.0]},
                     baseline="beta_sim=25.0", seeds=(0, 1, 2), max_concurrent=4, workers_per_trial=8,
                     use_gpu=True)
    return Study(name="invariance_coeff", base="cjepa_fmnist_quick",
                 factors={"loss.beta_sim": [0.0, 5.0, 25.0, 100.0]},
                 baseline="beta_sim=25.0", seeds=(0, 1), max_concurrent=2)


if __name__ == "__main__":
    sys.exit(main(make_study, __doc__))
