"""Levers that may change the laptop picture (issue 26, item 2), each against the recipe, on validation.

The recipe is a family's pick from the fair search (``docs/results/fair_search_<family>/pick.yaml``:
its fixed settings plus the pick's searched values; ``--family``, default ``context_target``, the
best family so far; ``--picks DIR`` reads picks elsewhere). Each arm turns on one switch that is off
in the recipe, with everything else the recipe's, at the fair search's budget (3 epochs of the
training split at one thread per trial, ``data.val_samples=2000`` held out, the same read-outs); the
recipe itself is the baseline of the seed-paired differences. Selection reads the validation split
only (``knn_target`` and the pooled/grid read-outs of ``eval.poolings``); the test split is scored
once, at the last epoch.

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

Screen with one seed, then confirm what wins with paired seeds (``--extend`` adds them); seeds 1-3,
not 0, the seed the pick was selected on (its seed-0 run is the best of eight, biased upward):

    python sweeps/levers.py --seeds 1                  # ~1.5 h on 2 cores; --family F: on F's pick
    python sweeps/levers.py --seeds 1 2 3 --extend     # the paired confirmation of every arm
    python sweeps/levers.py --seeds 1 2 3 --extend --arms "patch 2"   # of the recipe and what won only
    python sweeps/levers.py --dry-run                  # validate and list
"""

import importlib.util
import sys
from pathlib import Path

from cjepa.sweep import Study
from cjepa.sweep.cli import main
from cjepa.sweep.profiles import study_at

_spec = importlib.util.spec_from_file_location("fair_search", Path(__file__).with_name("fair_search.py"))
FAIR = importlib.util.module_from_spec(_spec)  # the script beside this one: its families, picks and budget
_spec.loader.exec_module(FAIR)

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
ARMS_OPTION = {"--arms": {"nargs": "+", "choices": tuple(ARMS), "default": ()}}  # a confirmation's subset
FAMILY = "context_target"  # the best family on validation so far (docs/results/fair_search.md)


def make_study(full: bool, family: str = FAMILY, picks: Path = FAIR.PICKS, only: tuple[str, ...] = ()) -> Study:
    """The levers on the family's picked recipe. ``--full``: on the paper profile's preset, the levers
    that are switches there (the tokenizer, the context views); its sizes are its presets' (ViT-T/S/B/L),
    and patch 2 at 224 px would be 12,544 tokens an image."""
    if full:
        kept = (BASELINE, "overlapping patches", "conv stem", "2 context views")
        return study_at(full, "levers", arms={k: ARMS[k] for k in kept}, baseline=BASELINE)
    recipe = FAIR.pick_of(family, picks)
    if recipe is None:
        raise SystemExit(f"levers: family {family!r} has no pick in {picks}/fair_search_{family}/ "
                         f"(run python sweeps/fair_search.py --family {family} first, or pass --picks DIR)")
    kept = {BASELINE, *only} if only else set(ARMS)  # the recipe always: the baseline of the differences
    arms = {name: {**recipe, **switch} for name, switch in ARMS.items() if name in kept}
    return study_at(full, f"levers_{family}", base="cjepa_fmnist_cpu", overrides=FAIR.BUDGET, arms=arms,
                    baseline=BASELINE, seeds=FAIR.FRESH_SEEDS)


if __name__ == "__main__":
    if {"-h", "--help"} & set(sys.argv[1:]):
        sys.exit(main(make_study, __doc__))
    chosen, rest = FAIR.split_family(sys.argv[1:]) if "--family" in sys.argv[1:] else (FAMILY, sys.argv[1:])
    own, rest = FAIR.script_options(rest, **FAIR.PICKS_OPTION, **ARMS_OPTION)
    sys.exit(main(lambda full: make_study(full, chosen, own.picks, tuple(own.arms)), __doc__, argv=rest))
