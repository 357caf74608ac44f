"""Levers that may change the laptop picture (issue 26, item 2), each against the recipe, on validation.

Each arm turns on one switch that is off in the recipe (``cjepa_fmnist_cpu``), with everything
else the recipe's, at the fair search's budget (3 epochs of the training split at one thread per
trial, ``data.val_samples=2000`` held out, the same read-outs); the recipe itself is the baseline
of the seed-paired differences. Selection reads the validation split only (``knn_target`` and the
pooled/grid read-outs of ``eval.poolings``); the test split is scored once, at the last epoch.

- ``model.patch_embed=overlap`` / ``conv_stem``: what each token sees (cjepa/model/patch_embed.py).
  Both let a context token see a few pixels beyond its patch (overlap: p-1 rows/columns of the
  patches above and left; the stem: its 3x3 convs' receptive field), so a context token beside a
  target block sees part of it: the prediction task gets easier, which a win on kNN must outweigh
  (read the JEPA loss beside the accuracy);
- ``model.patch_size=2``: a 14x14 grid, 4x the tokens (and ~4x the CPU: read the CPU-minute curves);
- a wider / a deeper encoder, a wider-and-deeper predictor;
- ``mask.context_views=2``: two context masks per image, each predicting the same targets.
The read-out of the last k layers (``eval.last_layers``) is no training lever: every arm is read with
it by ``cjepa eval --last-layers`` or a study override (``eval.last_layers=4``).

Screen with one seed, then confirm what wins with paired seeds (``--extend`` adds them):

    python sweeps/levers.py --seeds 0                  # ~1 h on 2 cores
    python sweeps/levers.py --seeds 0 1 2 --extend     # the paired confirmation
    python sweeps/levers.py --dry-run                  # validate and list
"""

import sys

from cjepa.sweep import Study
from cjepa.sweep.cli import main
from cjepa.sweep.profiles import study_at

BASELINE = "recipe"
ARMS = {
    BASELINE: {},
    "overlapping patches": {"model.patch_embed": "overlap"},
    "conv stem": {"model.patch_embed": "conv_stem"},
    "patch 2": {"model.patch_size": 2},
    "wider encoder (192)": {"model.embed_dim": 192},
    "deeper encoder (6)": {"model.depth": 6},
    "predictor 128 x 4": {"model.pred_embed_dim": 128, "model.pred_depth": 4},
    "2 context views": {"mask.context_views": 2},
}
# The fair search's budget (sweeps/fair_search.py), so the levers read on the same scale as its trials.
BUDGET = ("run.epochs=3", "optim.warmup_epochs=0.3", "data.val_samples=2000", "eval.train_samples=5000",
          "eval.test_samples=2000", "eval.linear_epochs=30", "eval.poolings=[mean,grid2,grid7]",
          "eval.encoders=[target]", "run.threads=1", "run.log_every=100")


def make_study(full: bool) -> Study:
    """The levers on the laptop recipe. ``--full``: on the paper profile's preset, the levers that are
    switches there (the tokenizer, the context views); its sizes are its presets' (ViT-T/S/B/L), and
    patch 2 at 224 px would be 12,544 tokens an image."""
    if full:
        kept = (BASELINE, "overlapping patches", "conv stem", "2 context views")
        return study_at(full, "levers", arms={k: ARMS[k] for k in kept}, baseline=BASELINE)
    return study_at(full, "levers", base="cjepa_fmnist_cpu", overrides=BUDGET, arms=ARMS, baseline=BASELINE)

if __name__ == "__main__":
    sys.exit(main(make_study, __doc__))
