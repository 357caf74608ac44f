"""The goal of issue 26, item 3: does a trained encoder beat its own random initialisation under
every read-out, within 30 CPU-minutes of training on 2 cores?

Each arm is a family's recipe as the fair search picked it on the validation split
(``docs/results/fair_search_<family>/pick.yaml``, the family's fixed settings plus the pick's
searched values; ``--picks DIR`` reads them elsewhere), trained for 5 epochs of the training split
(58k images: 2,000 held out as the validation split) at one thread per trial, ~25 CPU-minutes of
training estimated from the picks' 3-epoch search trials (15.2 and 15.3 CPU-minutes on the VM that
ran them; each epoch reports ``train_cpu_min``: the budget is read, not assumed). Read-outs of the
target encoder: mean-pooled tokens, 2x2 and 4x4 cells and the full 7x7 token grid, each under kNN
(k=20, cosine, T=0.07, a 50k bank) and the linear probe; raw pixels and the same network at its
random initialisation (same seed) are read the same way. The validation split is scored after every
epoch (the curve); the test split (all 10k images) once, at the end of each trial, and nothing
selects on it. 3 paired seeds, 1-3 (the picks were selected on seed 0); the summary prints each
read-out's gain over the random-initialised encoder, mean ± 95 % CI over seeds, on both splits.

    python sweeps/goal_check.py                                   # the picks of ijepa and context_target
    python sweeps/goal_check.py --families context_target two_views   # other searched families
    python sweeps/goal_check.py --dry-run                         # validate and list
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from cjepa.sweep import Study
from cjepa.sweep.cli import main
from cjepa.sweep.profiles import study_at

_spec = importlib.util.spec_from_file_location("fair_search", Path(__file__).with_name("fair_search.py"))
FAIR = importlib.util.module_from_spec(_spec)  # the script beside this one: its families, picks and budget
_spec.loader.exec_module(FAIR)
FAMILIES = ("ijepa", "context_target")  # the default arms: tuned I-JEPA and the best C-JEPA reading so far
READOUTS = ("eval.poolings=[mean,grid2,grid4,grid7]", "eval.encoders=[target]")  # grid7: all 7x7 tokens
FULL_READOUTS = ("eval.poolings=[mean,grid2,grid4,grid14]", "eval.encoders=[target]")  # 224 px / 16
# The fair search's split and thread count; the recipe check's protocol (a 50k bank, the whole test set).
PROTOCOL = ("run.epochs=5", "optim.warmup_epochs=0.5", "data.val_samples=2000", "eval.train_samples=50000",
            "eval.test_samples=10000", "eval.linear_epochs=30", "run.threads=1", "run.log_every=200")


def make_study(full: bool, families: tuple[str, ...] = FAMILIES, picks: Path = FAIR.PICKS) -> Study:
    """One arm per family's pick, 3 paired seeds; the first family is the baseline of the differences.
    ``--full``: the same question at paper scale (the paper profile: ViT-T/16 at 224 px, a 14x14 grid),
    each family with its fixed settings only (the picks are laptop-scale values), read the same ways."""
    if full:
        arms = {f: FAIR.fixed_settings(f) for f in families}
        return study_at(full, "goal_check", overrides=FULL_READOUTS, arms=arms, baseline=families[0])
    arms = {}
    for family in families:
        pick = FAIR.pick_of(family, picks)
        if pick is None:
            raise SystemExit(f"goal_check: family {family!r} has no pick in {picks}/fair_search_{family}/ "
                             f"(run python sweeps/fair_search.py --family {family} first, or pass --picks DIR)")
        arms[family] = pick
    return study_at(full, "goal_check", base="cjepa_fmnist_cpu", overrides=(*PROTOCOL, *READOUTS), arms=arms,
                    baseline=families[0], seeds=FAIR.FRESH_SEEDS)


FAMILIES_OPTION = {"--families": {"nargs": "+", "choices": tuple(FAIR.FAMILIES), "default": FAMILIES}}


if __name__ == "__main__":
    if {"-h", "--help"} & set(sys.argv[1:]):
        sys.exit(main(make_study, __doc__))
    own, rest = FAIR.script_options(sys.argv[1:], **FAMILIES_OPTION, **FAIR.PICKS_OPTION)
    sys.exit(main(lambda full: make_study(full, tuple(own.families), own.picks), __doc__, argv=rest))
