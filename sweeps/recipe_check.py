"""Recipe check (issue 10): does the laptop recipe beat raw pixels within 30 CPU-minutes?

The CPU preset (``cjepa_fmnist_cpu``: the recipe sweeps/recipe_search.py found) against the same
recipe without VICReg (I-JEPA), 3 paired seeds, all 60k training images for 5 epochs at one
thread per trial (~26 CPU-minutes of training; each epoch reports ``train_cpu_min``), evaluated
after every epoch with the raw-pixel baseline's protocol: kNN (k=20, cosine, T=0.07) with all
60k training images as the bank and the full 10k test set, plus the linear probe, on the target
encoder's mean-pooled tokens; raw pixels and the random-initialised encoder (same seeds) are rows
of the report. ``cjepa report --study ray_results/recipe_check`` draws accuracy per CPU-minute.

    python sweeps/recipe_check.py             # ~2 h on 2 cores (two trials at a time); --resume continues
    python sweeps/recipe_check.py --dry-run   # validate and list
    python sweeps/recipe_check.py --full      # the same at 30 epochs (~12 h): where the recipe goes with time
"""

import sys

from cjepa.sweep import Study
from cjepa.sweep.cli import main
from cjepa.sweep.profiles import QUICK, study_at

ARMS = {"C-JEPA (recipe)": {}, "I-JEPA (same recipe)": {"loss.beta_vicreg": 0.0}}
PROTOCOL = ("eval.train_samples=50000", "eval.test_samples=10000", "eval.encoders=[target]", "run.threads=1",
            "run.log_every=200")


def make_study(full: bool) -> Study:
    # its own scale at both sizes (the CPU recipe on all images, 2 trials at a time); --full: 6x the
    # epochs, how far the recipe goes when the CPU-minutes are there
    return study_at(QUICK, "recipe_check_full" if full else "recipe_check", base="cjepa_fmnist_cpu",
                    overrides=(*PROTOCOL, *(("run.epochs=30",) if full else ())), arms=ARMS,
                    baseline="I-JEPA (same recipe)")


if __name__ == "__main__":
    sys.exit(main(make_study, __doc__))
