"""Fair recipe search (issue 26): every arm family tuned on the validation split with the same budget.

The laptop recipe (``cjepa_fmnist_cpu``) came from a search that scored on the test split and held
only C-JEPA arms; I-JEPA and the other readings then ran at C-JEPA's settings. Here each family
gets its own Optuna TPE search with **the same budget**: the same number of trials, each 3 epochs
of the training split at one thread (~20 CPU-minutes), the same ASHA rule (after epoch 1, stop a
trial below the 75th percentile of the earlier trials' epoch-1 scores), the same first point (the
current recipe's settings), and the same space over the knobs every family shares (EMA start and
shape, lr, batch, crops, target-block size), plus the regulariser's weight where the family has
one. With 8 trials the TPE sampler (seeded, 10 random start-up trials) never leaves its random
phase: every family with a weight is scored on the same seven random points plus the first one, a
random search with shared candidates (I-JEPA's smaller space draws other points after its second).
Selection reads ``knn_target`` from the validation split
(``data.val_samples=2000``, carved from the training images); the test split is scored once, at the
last epoch of each completed trial, and is never read by the search.

Families: ``ijepa`` (no regulariser), C-JEPA per reading (``context_target``, ``pred_blocks``,
``two_views``, ``pred_tokens``) and ``sigreg`` (LeJEPA's SIGReg on the pooled context
representation). ``two_views`` gets VICReg's augmentations that apply to greyscale images (crops,
flips, blur, solarisation); every projector reading runs its batch norm per branch.

One study per family (``fair_search_<family>``), run in turn (``--resume`` continues an interrupted one):

    for f in ijepa context_target pred_blocks two_views pred_tokens sigreg; do
        python sweeps/fair_search.py --family $f; done              # ~40 min each on 2 cores
    python sweeps/fair_search.py --family ijepa --dry-run              # validate and list

Then ``--winners`` (study ``fair_winners``): each searched family's pick (the completed trial best on
validation ``knn_target``, which a search writes as ``pick.yaml`` beside its summary; read from
``--picks DIR``/fair_search_<family>/, default ``docs/results``, where each family's pick is
committed) as one arm, the family's fixed settings plus the pick's searched values, all at the
search's budget on 3 paired seeds, 1-3: not seed 0, the seed each pick was selected on (its
seed-0 run is the search's maximum over eight, biased upward); tuned I-JEPA is the baseline of the
paired differences.
Families not searched yet are left out (``--winners --dry-run`` lists the arms).

    python sweeps/fair_search.py --winners              # ~20 CPU-min a trial, two at a time
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import yaml

from cjepa.sweep import Space, Study
from cjepa.sweep.cli import main
from cjepa.sweep.pick import PICK_FILE, pick_record, read_pick
from cjepa.sweep.profiles import study_at

SHARED = {
    "ema.start": Space("uniform", 0.98, 0.998),
    "ema.schedule": Space("choice", choices=("linear", "constant")),
    "optim.lr": Space("loguniform", 1e-3, 6e-3),
    "optim.batch_size": Space("choice", choices=(64, 128)),
    "data.crop_scale": Space("choice", choices=((0.3, 1.0), (0.6, 1.0))),
    "mask.target_scale": Space("choice", choices=((0.1, 0.15), (0.15, 0.2))),
}
# The regulariser's weight where the family has one: VICReg's readings share beta_vicreg, SIGReg has its own.
VICREG_WEIGHT, SIGREG_WEIGHT = "loss.beta_vicreg", "sigreg.weight"
# The recipe's settings: every family's first trial, so each search starts where the old recipe stood.
ANCHOR = {"ema.start": 0.99, "ema.schedule": "linear", "optim.lr": 2e-3, "optim.batch_size": 128,
          "data.crop_scale": (0.3, 1.0), "mask.target_scale": (0.1, 0.15)}
ANCHOR_WEIGHT = 0.1
# name -> (fixed overrides, the searched weight's key or None)
FAMILIES: dict[str, tuple[tuple[str, ...], str | None]] = {
    "ijepa": (("loss.beta_vicreg=0.0",), None),
    "context_target": (("loss.vicreg_mode=context_target",), VICREG_WEIGHT),
    "pred_blocks": (("loss.vicreg_mode=pred_blocks",), VICREG_WEIGHT),
    "two_views": (("loss.vicreg_mode=two_views", "data.blur=[1.0,0.1]", "data.solarize=[0.0,0.2]"), VICREG_WEIGHT),
    "pred_tokens": (("loss.vicreg_mode=pred_tokens",), VICREG_WEIGHT),
    "sigreg": (("loss.beta_vicreg=0.0",), SIGREG_WEIGHT),
}
TRIALS_PER_FAMILY = 8
# The picks' re-runs: fresh seeds, since seed 0 is the one each pick was selected on (winner's curse).
FRESH_SEEDS = (1, 2, 3)
# ~20 CPU-minutes per trial: the training split (58k after the validation split) for 3 epochs at one thread.
BUDGET = ("run.epochs=3", "optim.warmup_epochs=0.3", "data.val_samples=2000", "eval.train_samples=5000",
          "eval.test_samples=2000", "eval.linear_epochs=30", "eval.poolings=[mean,grid2,grid7]",
          "eval.encoders=[target]", "run.threads=1", "run.log_every=100")


def make_study(full: bool, family: str = "ijepa") -> Study:
    """The search of one family. ``--full``: the same design on the paper profile (its preset,
    budget and workers; ASHA's grace 10 epochs), for a cluster; the laptop budget otherwise."""
    fixed, weight = FAMILIES[family]
    space = {**SHARED, **({weight: Space("loguniform", 0.01, 1.0)} if weight else {})}
    first = {**ANCHOR, **({weight: ANCHOR_WEIGHT} if weight else {})}
    design = {"search": "optuna", "space": space, "initial_points": (first,), "num_samples": TRIALS_PER_FAMILY,
              "scheduler": "asha", "metric": "knn_target", "seeds": (0,)}
    if full:
        return study_at(full, f"fair_search_{family}", overrides=fixed, grace_period=10, **design)
    return study_at(full, f"fair_search_{family}", base="cjepa_fmnist_cpu", overrides=(*BUDGET, *fixed),
                    grace_period=1, **design)


PICKS = Path(__file__).resolve().parents[1] / "docs" / "results"  # each family's committed pick.yaml (--picks DIR)


def pick_of(family: str, results: Path) -> dict[str, Any] | None:
    """The settings of the family's selected trial (its fixed overrides, then the searched values),
    from ``results/fair_search_<family>/pick.yaml`` (what a search writes and docs/results keeps), else
    from the results table there (a search run before picks were written); None when neither exists
    or no trial completed."""
    folder = results / f"fair_search_{family}"
    if (folder / PICK_FILE).is_file():
        searched = read_pick(folder / PICK_FILE)
    elif (folder / "results.parquet").is_file():
        record = pick_record(pq.read_table(folder / "results.parquet").to_pylist(), make_study(False, family))
        if record is None:
            return None
        searched = record["settings"]
    else:
        return None
    return {**fixed_settings(family), **searched}


def fixed_settings(family: str) -> dict[str, Any]:
    """The family's fixed overrides (``key=value`` strings) as settings."""
    return {k: yaml.safe_load(v) for k, v in (o.split("=", 1) for o in FAMILIES[family][0])}


def winners_study(full: bool, results: Path = PICKS) -> Study:
    """The picks with 3 paired seeds at the search's budget (laptop scale only: the picks are)."""
    if full:
        raise SystemExit("fair_search --winners: the picks are laptop-scale (run --full searches per family first)")
    arms = {f: s for f in FAMILIES if (s := pick_of(f, results)) is not None}
    if not arms:
        raise SystemExit(f"fair_search --winners: no family's pick in {results}/fair_search_<family>/ "
                         f"({PICK_FILE} or results.parquet); pass --picks DIR")
    return study_at(full, "fair_winners", base="cjepa_fmnist_cpu", overrides=BUDGET, arms=arms,
                    baseline="ijepa" if "ijepa" in arms else next(iter(arms)), seeds=FRESH_SEEDS)


def script_options(argv: list[str], **options: dict[str, Any]) -> tuple[argparse.Namespace, list[str]]:
    """This script family's own options (``--picks``, ``--families``) out of the command line with
    argparse (one line and exit 2 on a bad value); the shared study options take the rest."""
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    for name, spec in options.items():
        parser.add_argument(name, **spec)
    return parser.parse_known_args(argv)


PICKS_OPTION = {"--picks": {"type": Path, "default": PICKS, "metavar": "DIR"}}


def split_family(argv: list[str]) -> tuple[str, list[str]]:
    """``--family NAME`` out of the command line (the shared study options take the rest)."""
    if "--family" not in argv or argv.index("--family") + 1 >= len(argv):
        raise SystemExit(f"fair_search: --family is required, one of {', '.join(FAMILIES)}")
    at = argv.index("--family")
    family = argv[at + 1]
    if family not in FAMILIES:
        raise SystemExit(f"fair_search: --family {family!r}: expected one of {', '.join(FAMILIES)}")
    return family, argv[:at] + argv[at + 2:]


if __name__ == "__main__":
    if {"-h", "--help"} & set(sys.argv[1:]):
        sys.exit(main(make_study, __doc__))
    if "--winners" in sys.argv[1:]:
        own, rest = script_options([a for a in sys.argv[1:] if a != "--winners"], **PICKS_OPTION)
        sys.exit(main(lambda full: winners_study(full, own.picks), __doc__, argv=rest))
    chosen, rest = split_family(sys.argv[1:])
    sys.exit(main(lambda full: make_study(full, chosen), __doc__, argv=rest))
