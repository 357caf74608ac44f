"""``cjepa`` command line: ``cjepa train [--config FILE] [key=value ...]``.

Config problems are reported before any model, dataset or worker is created. Every error the
user can fix (:class:`cjepa.errors.CJepaError`) prints one line and exits with status 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cjepa.config import Config, load_config
from cjepa.errors import CJepaError, ConfigError

PRESET_DIR = Path(__file__).resolve().parent.parent / "configs"
DEFAULT_PRESET = "cjepa_fmnist_cpu"


def resolve_config_path(name: str | None) -> Path:
    """A YAML path, or the name of a preset in ``configs/`` (e.g. ``ijepa_fmnist_cpu``)."""
    name = name or DEFAULT_PRESET
    path = Path(name)
    if path.suffix in (".yaml", ".yml") or path.exists():
        return path
    preset = PRESET_DIR / f"{name}.yaml"
    if not preset.exists():
        known = ", ".join(sorted(p.stem for p in PRESET_DIR.glob("*.yaml")))
        raise ConfigError(f"--config {name}: no such file or preset; presets are {known}")
    return preset


def build_config(args: argparse.Namespace) -> Config:
    return load_config(resolve_config_path(args.config), args.overrides)


def _add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", "-c", metavar="FILE|PRESET",
                   help=f"YAML config or preset name in configs/ (default: {DEFAULT_PRESET})")
    p.add_argument("overrides", nargs="*", metavar="key=value",
                   help="dotted overrides, e.g. loss.beta_vicreg=0.01 run.epochs=5")


def cmd_train(args: argparse.Namespace) -> int:
    cfg = build_config(args)
    from cjepa.engine import ConsoleReporter, JsonlReporter, train  # heavy imports after validation

    result = train(cfg, [ConsoleReporter(), JsonlReporter()])
    state = "finished" if result.completed else f"stopped at step {result.step} (run.max_steps)"
    print(f"[cjepa] {state}; metrics in {result.run_dir / 'metrics.jsonl'}")
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    cfg = build_config(args)
    print(cfg.to_yaml(), end="")
    print(f"# digest: {cfg.digest()}")
    return 0


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cjepa", description="C-JEPA (I-JEPA + VICReg) pretraining and ablations.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("train", help="pretrain (or resume) one run in this process",
                       description="Pretrain one run; resumes from run.output_dir/checkpoint.pt when present.")
    _add_config_args(p)
    p.set_defaults(func=cmd_train)
    p = sub.add_parser("config", help="print the resolved config (defaults + file + overrides)")
    _add_config_args(p)
    p.set_defaults(func=cmd_config)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
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
