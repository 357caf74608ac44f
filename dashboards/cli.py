"""``cjepa report`` options, kept free of heavy imports: ``cjepa --help`` must stay fast, so
pandas, matplotlib, torch and MLflow are imported only when the command runs (dashboards.report)."""

from __future__ import annotations

import argparse


def add_report_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("report", help="write a study's HTML report (tables, curves, masks, attention maps)",
                       description="Report over one study, from its directory or its MLflow experiment: "
                                   "report.html, ablation_table.md and PNGs, also logged on the study's parent run.")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--study", metavar="DIR", nargs="+",
                     help="study directory <storage>/<study> (results.parquet, study.json); several with --page")
    src.add_argument("--experiment", metavar="NAME", help="MLflow experiment of the study (= the study name)")
    p.add_argument("--tracking-uri", metavar="URI", help="MLflow store (default: study.json's, else "
                                                         "$MLFLOW_TRACKING_URI, else sqlite:///<cwd>/mlflow.db)")
    p.add_argument("--out", metavar="DIR", help="output folder (default: <study dir>/report, or ./report-<NAME>; "
                                                "with --page: <page's folder>/results, one subfolder per study)")
    p.add_argument("--page", metavar="FILE.md", help="also write one markdown page over all the --study dirs: "
                                                     "the paper's claims with verdicts, per-epoch tables, "
                                                     "convergence, collapse (e.g. docs/results.md)")
    p.add_argument("--baseline", metavar="ARM", help="arm for the paired differences (default: the study's)")
    p.add_argument("--attention-arms", nargs=2, metavar=("IJEPA_ARM", "CJEPA_ARM"),
                   help="the two arms of the attention figure (default: the paper's I-JEPA and C-JEPA arms)")
    p.add_argument("--no-images", action="store_true", help="skip masks and attention maps (no checkpoints needed)")
    p.add_argument("--no-mlflow", action="store_true", help="do not log the report to the parent MLflow run")
    p.set_defaults(func=run_report)
    return p


def run_report(args: argparse.Namespace) -> int:
    from dashboards.report import cmd_report

    return cmd_report(args)
