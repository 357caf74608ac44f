"""beta_vicreg sweep: how much VICReg does C-JEPA need?

The paper sweeps beta_vicreg on ViT-T/16 around its default 0.001 (values not recovered).
Levels: 0 (= I-JEPA, the baseline arm) and a log range; every level runs with the same seeds,
so differences from I-JEPA are paired by seed. On the laptop the levels sit around the CPU
recipe's 0.1 (its reading, context_target, needs a weight ~100x the paper's to learn at all
in a few hundred steps: docs/results/recipe_search.md).

    python sweeps/vicreg_coeff.py              # laptop: Fashion-MNIST, 9 trials, ~8 min on 2 cores
    python sweeps/vicreg_coeff.py --full       # cluster: ViT-T/16 at 224 px, 100 epochs, 8 GPUs/trial
    python sweeps/vicreg_coeff.py --resume     # continue an interrupted study
"""

import sys

from cjepa.sweep import Study
from cjepa.sweep.cli import main


def make_study(full: bool) -> Study:
    if full:
        return Study(name="vicreg_coeff_full", base="cjepa_vit_t16", overrides=("run.epochs=100",),
                     factors={"loss.beta_vicreg": [0.0, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2]},
                     baseline="beta_vicreg=0.0", seeds=(0, 1, 2), max_concurrent=4, workers_per_trial=8,
                     use_gpu=True)
    return Study(name="vicreg_coeff", base="cjepa_fmnist_quick",
                 factors={"loss.beta_vicreg": [0.0, 0.01, 0.1]},
                 baseline="beta_vicreg=0.0", seeds=(0, 1, 2), max_concurrent=2)  # >= 3 paired seeds per claim


if __name__ == "__main__":
    sys.exit(main(make_study, __doc__))
