"""LeJEPA's SIGReg in C-JEPA's place: accuracy against its weight, under the same harness.

SIGReg (Balestriero & LeCun 2025; cjepa/losses/sigreg.py) replaces the VICReg terms on the pooled
context representation: its own section, on when `sigreg.weight > 0` (the VICReg weight of the base
preset is set to 0: one regulariser per run). Level 0 is I-JEPA, the baseline of the paired
differences. With and without EMA at one weight is an arm pair of `term_ablation.py`; this is the
weight curve, with EMA, three paired seeds. Before SIGReg had its own section this study swept
`loss.beta_vicreg` under `loss.vicreg_mode=sigreg` (arms `beta_vicreg=W`); those results still read
(cjepa/config/aliases.py), and the same levels now run as arms `weight=W`.

    python sweeps/sigreg_coeff.py          # laptop: 12 trials, 12 min on 2 cores (measured 2026-12-02)
    python sweeps/sigreg_coeff.py --full   # cluster: ViT-T/16 at 224 px, 100 epochs
"""

import sys

from cjepa.sweep import Study
from cjepa.sweep.cli import main
from cjepa.sweep.profiles import study_at


def make_study(full: bool) -> Study:
    levels = [0.0, 1e-3, 1e-2, 5e-2, 1e-1] if full else [0.0, 0.01, 0.1, 1.0]
    return study_at(full, "sigreg_coeff", overrides=("loss.beta_vicreg=0",),
                    factors={"sigreg.weight": levels}, baseline="weight=0.0")


if __name__ == "__main__":
    sys.exit(main(make_study, __doc__))
