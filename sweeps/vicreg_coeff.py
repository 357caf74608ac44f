"""beta_vicreg sweep: how much VICReg does C-JEPA need?

The paper sweeps beta_vicreg on ViT-T/16 around its default 0.001 (values not recovered).
Levels: 0 (the baseline arm: the recipe with VICReg off, an EMA-only I-JEPA at C-JEPA's settings)
and a log range; every level runs with the same seeds, so differences from it are paired by seed.
On the laptop: 0, the CPU recipe's 0.0368 (its reading, context_target, needs a weight ~40x the
paper's at this scale; docs/results/fair_search.md) and the old recipe's 0.1. I-JEPA tuned on its
own is `python sweeps/fair_search.py --winners`' baseline.

    python sweeps/vicreg_coeff.py              # laptop: Fashion-MNIST, 9 trials, 6.8 min on 2 cores (fp32)
    python sweeps/vicreg_coeff.py --full       # cluster: ViT-T/16 at 224 px, 100 epochs, 8 GPUs/trial
    python sweeps/vicreg_coeff.py --resume     # continue an interrupted study
"""

import sys

from cjepa.sweep import Study
from cjepa.sweep.cli import main
from cjepa.sweep.profiles import study_at


def make_study(full: bool) -> Study:
    levels = [0.0, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2] if full else [0.0, 0.0368, 0.1]
    return study_at(full, "vicreg_coeff", factors={"loss.beta_vicreg": levels}, baseline="beta_vicreg=0.0")


if __name__ == "__main__":
    sys.exit(main(make_study, __doc__))
