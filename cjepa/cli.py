"""``cjepa`` command line: ``cjepa train | config | ui | data convert | report``; ``cjepa --help`` lists them
with the presets, the studies and examples.

Config problems are reported before any model, dataset or worker is created. Every error the
user can fix (:class:`cjepa.errors.CJepaError`) prints one line and exits with status 2.
"""

from __future__ import annotations

import argparse
import ast
import shutil
import sys
import textwrap
from pathlib import Path

from cjepa.config import Config, check_data_source, check_output_dir, load_config
from cjepa.config.presets import DEFAULT_PRESET, PRESET_DIR, resolve_config_path
from cjepa.distributed.command import add_distributed_args, check_flags, use_ray_address
from cjepa.errors import OVERRIDES_METAVAR, ArgumentParser, CJepaError

STUDY_DIR = Path(__file__).resolve().parent.parent / "sweeps"
DATA_HELP = "data set tools (convert image folders to Parquet shards)"  # = cjepa.data.convert_cli's


def build_config(args: argparse.Namespace) -> Config:
    return load_config(resolve_config_path(args.config), args.overrides)


def _add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", "-c", metavar="FILE|PRESET",
                   help=f"YAML config or preset name in configs/ (default: {DEFAULT_PRESET})")
    p.add_argument("overrides", nargs="*", metavar=OVERRIDES_METAVAR,
                   help="dotted overrides, e.g. loss.beta_vicreg=0.01 run.epochs=5")


def cmd_train(args: argparse.Namespace) -> int:
    cfg = build_config(args)
    check_flags(args)  # the distributed flags' ranges: one line now, never a started Ray
    if args.workers is not None:
        use_ray_address(args)  # a cluster that is not there: one line in seconds, before any MLflow run
    tracking_uri = _check_tracking(args)  # before the engine is imported: a bad URI costs a second
    check_output_dir(cfg)  # an unusable run.output_dir: one line now, not an OSError after the data loaded
    check_data_source(cfg)  # no shards, or a 28 px set at 224 px: one line, before Ray
    if args.workers is not None:  # Ray Train workers; MLflow on rank 0
        from cjepa.distributed.command import train_distributed

        return train_distributed(cfg, args, tracking_uri)
    from cjepa.engine import ConsoleReporter, JsonlReporter, train  # heavy imports after validation

    reporters = [ConsoleReporter(), JsonlReporter()]
    mlflow_reporter = _mlflow_reporter(cfg, args, tracking_uri)
    if mlflow_reporter is not None:
        reporters.append(mlflow_reporter)
    try:
        result = train(cfg, reporters)
    except BaseException as exc:
        if mlflow_reporter is not None:
            mlflow_reporter.on_failure(exc)
        raise
    state = "finished" if result.completed else f"stopped at step {result.step} (run.max_steps)"
    print(f"[cjepa] {state}; metrics in {result.run_dir / 'metrics.jsonl'}")
    if mlflow_reporter is not None:
        print(f"[cjepa] MLflow run {mlflow_reporter.run_id} in {tracking_uri} (browse: cjepa ui)")
    return 0


# --------------------------------------------------------------------------- tracking (MLflow)


def _add_tracking_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("tracking (MLflow)")
    g.add_argument("--tracking-uri", metavar="URI",
                   help="MLflow store or server (default: $MLFLOW_TRACKING_URI, else sqlite:///<cwd>/mlflow.db)")
    g.add_argument("--experiment", default="cjepa", help="MLflow experiment name (default: cjepa)")
    g.add_argument("--run-name", help="MLflow run name (default: the name of run.output_dir)")
    g.add_argument("--no-mlflow", action="store_true", help="no MLflow: console and metrics.jsonl only")


def _check_tracking(args: argparse.Namespace) -> str | None:
    if args.no_mlflow:
        return None
    from cjepa.tracking.store import check_tracking_uri, resolve_tracking_uri

    uri = resolve_tracking_uri(args.tracking_uri)
    check_tracking_uri(uri)
    return uri


def _mlflow_reporter(cfg: Config, args: argparse.Namespace, tracking_uri: str | None):  # -> MLflowReporter | None
    if tracking_uri is None:
        return None
    from cjepa.tracking.reporter import MLflowReporter

    return MLflowReporter(cfg, tracking_uri, experiment=args.experiment, run_name=args.run_name)


def cmd_ui(args: argparse.Namespace) -> int:
    from cjepa.tracking.ui import serve_forever

    return serve_forever(args.tracking_uri, args.host, args.port, workers=args.workers)


def cmd_config(args: argparse.Namespace) -> int:
    cfg = build_config(args)
    print(cfg.to_yaml(), end="")
    print(f"# digest: {cfg.digest()}")
    return 0


def _first_comment(path: Path) -> str:
    """The first sentence of a preset's opening comment: each file in configs/ starts by saying what it is."""
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        text = line.lstrip("#").strip()
        if not line.startswith("#") or not text:
            break
        lines.append(text)
    head = " ".join(lines)
    end = head.find(". ")
    head = head if end < 0 else head[: end + 1]
    return head.split(": ")[0] if len(head) > 100 else head  # a listing line, not the whole story


def _docstring_line(path: Path) -> str:
    """A study script's docstring summary, read with ``ast`` so that listing studies imports nothing."""
    try:
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
    except (OSError, SyntaxError, ValueError):
        return ""
    return doc.splitlines()[0].strip() if doc else ""


def _listing(rows: list[tuple[str, str]], width: int) -> list[str]:
    """``  name  text`` rows, text wrapped under itself (the epilog is raw text: argparse won't wrap it)."""
    col = max((len(name) for name, _ in rows), default=0) + 4
    out = []
    for name, text in rows:
        lines = textwrap.wrap(text, max(width - col, 30)) or [""]
        out.append(f"  {name:<{col - 2}}{lines[0]}".rstrip())
        out += [" " * col + line for line in lines[1:]]
    return out


def epilog() -> str:
    """The presets and studies found on disk, and examples: what a new user needs to start.

    Read from ``configs/`` and ``sweeps/`` each time so a new preset or study is listed without
    touching this file; wrapped to the terminal like argparse's own text.
    """
    width = max(min(shutil.get_terminal_size().columns - 2, 120), 60)
    presets = [(p.stem, _first_comment(p)) for p in sorted(PRESET_DIR.glob("*.yaml"))]
    studies = [(f"sweeps/{p.name}", _docstring_line(p)) for p in sorted(STUDY_DIR.glob("*.py"))]
    examples = [
        (f"C-JEPA, {DEFAULT_PRESET} (run it again to resume)", "cjepa train"),
        ("the I-JEPA baseline for 3 epochs", "cjepa train -c ijepa_fmnist_cpu run.epochs=3"),
        ("print a resolved preset and its digest", "cjepa config -c cjepa_vit_b16"),
        ("data-parallel on Ray Train (a local Ray, or the cluster at $RAY_ADDRESS)", "cjepa train --workers 2"),
        ("list a study's trials without starting Ray, then run it (local Ray + MLflow)",
         "python sweeps/vicreg_coeff.py --dry-run\n  python sweeps/vicreg_coeff.py"),
        ("its HTML report and ablation table", "cjepa report --study ray_results/vicreg_coeff"),
        ("browse runs and studies at http://127.0.0.1:5000", "cjepa ui"),
    ]
    parts = [f"presets (configs/; -c NAME, default {DEFAULT_PRESET}):", *(_listing(presets, width) or ["  (none)"]),
             "", "studies (sweeps/; each takes --help, --dry-run, --resume, --full):",
             *(_listing(studies, width) or ["  (none)"]),
             "", "examples:", *(f"  # {what}\n  {command}" for what, command in examples),
             "", "Each command has its own --help, e.g. cjepa train --help."]
    return "\n".join(parts)


def make_parser(data_options: bool = True) -> argparse.ArgumentParser:
    """The ``cjepa`` parser.

    ``data_options=False`` registers ``cjepa data`` by name only: its options live in
    :mod:`cjepa.data.convert_cli`, whose import runs ``cjepa/data/__init__.py`` and with it torch
    (seconds), which ``cjepa --help`` and a config error must not pay; :func:`main` asks for them
    only when ``data`` is on the command line.
    """
    parser = ArgumentParser(prog="cjepa", description="C-JEPA (I-JEPA + VICReg) pretraining and ablations.",
                            epilog=epilog(), formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("train", help="pretrain (or resume) one run in this process",
                       description="Pretrain one run; resumes from run.output_dir/checkpoint.pt when present.")
    _add_config_args(p)
    _add_tracking_args(p)
    add_distributed_args(p)
    p.set_defaults(func=cmd_train)
    p = sub.add_parser("config", help="print the resolved config (defaults + file + overrides)",
                       description="Validate and print the resolved config (defaults, then the preset or file, "
                                   "then key=value overrides) and its digest; nothing is trained.")
    _add_config_args(p)
    p.set_defaults(func=cmd_config)
    p = sub.add_parser("ui", help="serve the MLflow UI for the tracking store (Ctrl-C stops it)",
                       description="Start `mlflow server` on the tracking store and wait; Ctrl-C stops it.")
    p.add_argument("--tracking-uri", metavar="URI",
                   help="store to serve (default: $MLFLOW_TRACKING_URI, else sqlite:///<cwd>/mlflow.db)")
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=5000, help="port to serve on (default: 5000)")
    p.add_argument("--workers", type=int, default=2, help="server worker processes (default: 2)")
    p.set_defaults(func=cmd_ui)
    if data_options:
        from cjepa.data.convert_cli import add_data_parser  # `cjepa data convert` (imports torch via cjepa.data)
        add_data_parser(sub)
    else:
        sub.add_parser("data", help=DATA_HELP)
    from cjepa.eval_command import add_eval_parser  # `cjepa eval` (torch, Ray, MLflow only when it runs)

    add_eval_parser(sub)
    from dashboards.cli import add_report_parser  # `cjepa report` (heavy imports only when it runs)
    add_report_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = make_parser(data_options="data" in argv).parse_args(argv)
    try:
        return args.func(args)
    except CJepaError as exc:
        print(f"cjepa: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("cjepa: interrupted; rerun the same command to resume from the last checkpoint", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
