"""Recipe search: which settings make the laptop-scale C-JEPA learn? (issue 10)

The quick studies' arms all ended ~30 kNN points below raw pixels: with EMA 0.996 -> 1 over
~100 steps the target stays near its initialisation. This study asks the platform itself which
knobs decide learning at this scale: Optuna TPE through Tune over the VICReg reading and weight,
the EMA horizon, lr and batch size (more steps per CPU-minute), crop scale and flips, the number
of target blocks and the predictor depth; ASHA on ``epoch`` stops weak trials after one epoch.

Budget per trial: 4 epochs of a 20k-image subset (80k images, ~7 CPU-minutes at one thread;
each trial reports ``train_cpu_min``). One seed per trial: the search ranks settings; the winners
are then re-run at the recipe's full budget with paired seeds (``sweeps/recipe_check.py``).
Probes: kNN and linear on the target encoder's mean-pooled tokens (I-JEPA's protocol, the
search metric) and, beside it, a 2x2 spatial read-out (``knn_target_grid2``).

    python sweeps/recipe_search.py             # hours on 2 cores; --resume continues it
    python sweeps/recipe_search.py --dry-run   # validate and list
"""

import sys

from cjepa.sweep import Space, Study
from cjepa.sweep.cli import main

SPACE = {
    "loss.vicreg_mode": Space("choice", choices=("pred_blocks", "context_target", "two_views")),
    "loss.beta_vicreg": Space("loguniform", 1e-4, 0.3),
    "ema.start": Space("uniform", 0.95, 0.999),
    "ema.end": Space("choice", choices=(0.999, 1.0)),
    "optim.lr": Space("loguniform", 3e-4, 5e-3),
    "optim.batch_size": Space("choice", choices=(128, 256)),
    "data.crop_scale": Space("choice", choices=((0.3, 1.0), (0.5, 1.0), (0.8, 1.0))),
    "data.hflip": Space("choice", choices=(0.0, 0.5)),
    "mask.num_targets": Space("choice", choices=(2, 4)),
    "model.pred_depth": Space("choice", choices=(2, 4)),
}


def _point(mode: str, beta: float, ema: float, ema_end: float, lr: float, batch: int, crop: tuple, flip: float,
           targets: int = 4, pred_depth: int = 2) -> dict:
    return {"loss.vicreg_mode": mode, "loss.beta_vicreg": beta, "ema.start": ema, "ema.end": ema_end,
            "optim.lr": lr, "optim.batch_size": batch, "data.crop_scale": crop, "data.hflip": flip,
            "mask.num_targets": targets, "model.pred_depth": pred_depth}


# Tried first: the current preset, then one guess per reading with a faster-moving target.
INITIAL = (
    _point("pred_blocks", 1e-3, 0.996, 1.0, 1e-3, 256, (0.3, 1.0), 0.0),
    _point("two_views", 1e-2, 0.99, 1.0, 2e-3, 128, (0.3, 1.0), 0.5),
    _point("context_target", 1e-2, 0.99, 0.999, 2e-3, 128, (0.3, 1.0), 0.5),
    _point("pred_blocks", 1e-2, 0.99, 0.999, 2e-3, 128, (0.3, 1.0), 0.5),
)

BUDGET = ("data.train_subset=20000", "run.epochs=4", "optim.warmup_epochs=0.5",
          "eval.train_samples=5000", "eval.test_samples=2000", "eval.linear_epochs=30",
          "eval.poolings=[mean,grid2]", "run.threads=1", "run.log_every=50")


def make_study(full: bool) -> Study:
    if full:
        return Study(name="recipe_search_full", base="cjepa_vit_t16", overrides=("run.epochs=100",), search="optuna",
                     space=SPACE, initial_points=INITIAL, num_samples=48, scheduler="asha", grace_period=10,
                     metric="knn_target", seeds=(0,), max_concurrent=4, workers_per_trial=8, use_gpu=True)
    return Study(name="recipe_search", base="cjepa_fmnist_cpu", overrides=BUDGET, search="optuna", space=SPACE,
                 initial_points=INITIAL, num_samples=40, scheduler="asha", grace_period=1, metric="knn_target",
                 seeds=(0,), max_concurrent=2)


if __name__ == "__main__":
    sys.exit(main(make_study, __doc__))
