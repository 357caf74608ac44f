"""The read-out of the last k layers (issue 26, item 2), on a finished study's checkpoints.

No training lever: a trained encoder read through its last k blocks concatenated (I-JEPA's linear
protocol reads 4) instead of its last one. Every trial's final checkpoint of STUDY is evaluated by
``cjepa eval`` at each k (``--k``, default 1 and 4), on the validation split with the in-training
bank (the trials' ``eval.train_samples``), each read-out for the trained encoder and for the same
network at its initialisation (``--encoders target,random``: the reference read the same way, its
last k blocks too). The table (written to ``STUDY/last_layers.md``) gives, per arm and k, each
read-out's gain over the initialisation and, for k > 1, the trained score's paired change from
k = 1; the test split is not read. Evaluations already in ``STUDY/eval.parquet`` are not redone.

    python -m cjepa.sweep.last_layers ray_results/fair_winners                # every arm, k = 1 and 4
    python -m cjepa.sweep.last_layers ray_results/fair_winners --arms context_target ijepa --k 1 2 4

Runs in this process (no Ray); a read-out list other than the trials' own: ``--poolings``. A module,
not a script in sweeps/ (those each define a study): it reads a study another command ran.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cjepa.sweep.readout_gains import format_gains_by_setting, gains_by_setting

SPLIT = "val"
POOLINGS = "mean,grid2,grid4,grid7"  # the laptop grid: 28 px / patch 4 = 7x7 tokens


def setting(k: int, poolings: str) -> str:
    """The overrides string ``cjepa eval`` records for one request (its study row's ``overrides``)."""
    return f"eval.last_layers={k} eval.poolings=[{poolings}]"


def evaluate_missing(study: Path, ks: list[int], poolings: str, arms: list[str] | None) -> list[dict]:
    """Run ``cjepa eval`` for each k whose rows are missing; return the study's eval rows."""
    from cjepa.cli import main

    done = {(r.get("arm"), r.get("overrides")) for r in _rows(study)}
    chosen = arms or sorted(_arms(study))
    for k in ks:
        if all((a, setting(k, poolings)) in done for a in chosen):
            continue
        code = main(["eval", "--split", SPLIT, "--bank", "eval", "--encoders", "target,random", "--no-mlflow",
                     str(study), *setting(k, poolings).split(" ")])
        if code:
            raise SystemExit(code)
    return [r for r in _rows(study) if arms is None or r.get("arm") in arms]


def _rows(study: Path) -> list[dict]:
    import pyarrow.parquet as pq

    path = study / "eval.parquet"
    return pq.read_table(path).to_pylist() if path.exists() else []


def _arms(study: Path) -> set[str]:
    import pyarrow.parquet as pq

    return set(pq.read_table(study / "results.parquet", columns=["arm"]).column("arm").to_pylist())


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m cjepa.sweep.last_layers", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("study", type=Path, help="a study directory (its results.parquet and trial checkpoints)")
    p.add_argument("--k", type=int, nargs="+", default=[1, 4], help="last-k read-outs; the first is the reference")
    p.add_argument("--arms", nargs="+", help="only these arms (default: all)")
    p.add_argument("--poolings", default=POOLINGS, help=f"comma-separated read-outs (default: {POOLINGS})")
    args = p.parse_args(argv)
    if not (args.study / "results.parquet").is_file():
        p.error(f"{args.study}: no results.parquet; expected a study directory")
    if any(k < 1 for k in args.k):
        p.error(f"--k {args.k}: expected integers >= 1")
    return args


def main(argv: list[str]) -> int:
    args = parse(argv)
    rows = evaluate_missing(args.study, args.k, args.poolings, args.arms)
    settings = [setting(k, args.poolings) for k in args.k]
    rows = [r for r in rows if r.get("overrides") in settings and r.get("split") == SPLIT]
    text = format_gains_by_setting(gains_by_setting(rows, SPLIT, settings), SPLIT, settings)
    (args.study / "last_layers.md").write_text(f"# Last-k read-outs of {args.study.name}\n\n{text}\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
