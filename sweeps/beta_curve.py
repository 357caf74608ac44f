"""The beta_vicreg curve on the recipe: C-JEPA's accuracy against the weight of its VICReg terms.

Finer and with more seeds than the main job (`vicreg_coeff.py`, 3 levels x 3 seeds, <= 10 min):
six levels from 0 (= I-JEPA, the baseline of the paired differences) to 1, three paired seeds.
The laptop reading is the CPU recipe's context_target; `--full` runs the paper's ViT-T/16 levels.

    python sweeps/beta_curve.py            # laptop: 18 trials, 22 min on 2 cores (measured 2026-12-02)
    python sweeps/beta_curve.py --full     # cluster: ViT-T/16 at 224 px, 100 epochs
"""

import sys

from cjepa.sweep import Study
from cjepa.sweep.cli import main
from cjepa.sweep.profiles import study_at


def make_study(full: bool) -> Study:
    levels = [0.0, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2] if full else [0.0, 0.01, 0.03, 0.1, 0.3, 1.0]
    return study_at(full, "beta_curve", factors={"loss.beta_vicreg": levels}, baseline="beta_vicreg=0.0")


if __name__ == "__main__":
    sys.exit(main(make_study, __doc__))
