"""Optuna TPE over the C-JEPA coefficients and the EMA start momentum, with ASHA on kNN accuracy.

ASHA stops weak trials after `grace_period` epochs on the probe metric (not the loss, which
falls under collapse too); the collapse stopper ends trials whose features stop spreading.

    python sweeps/optuna_search.py [--full] [--resume]
"""

import sys

from cjepa.sweep import Space, Study
from cjepa.sweep.cli import main
from cjepa.sweep.profiles import study_at

SPACE = {
    "loss.beta_vicreg": Space("loguniform", 1e-5, 1e-1),
    "loss.beta_sim": Space("uniform", 0.0, 50.0),
    "loss.beta_std": Space("uniform", 0.0, 50.0),
    "loss.beta_cov": Space("uniform", 0.0, 5.0),
    "ema.start": Space("uniform", 0.99, 0.9999),
}


def make_study(full: bool) -> Study:
    return study_at(full, "optuna_search", search="optuna", space=SPACE, num_samples=64 if full else 6,
                    scheduler="asha", grace_period=10 if full else 1, metric="knn_target", seeds=(0,),
                    collapse_std=0.02, collapse_patience=5 if full else 2)


if __name__ == "__main__":
    sys.exit(main(make_study, __doc__))
