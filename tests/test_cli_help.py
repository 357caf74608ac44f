"""``--help`` is where a new user starts: it must list what exists, explain every option, and be fast.

Fast means no torch: ``cjepa --help``, ``cjepa train --help`` and a config error used to import
torch while the parser was built (``cjepa data``'s options), seconds before anything was printed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from cjepa import cli
from cjepa.sweep import cli as sweep_cli

ROOT = Path(__file__).resolve().parent.parent
PRESETS = sorted(p.stem for p in (ROOT / "configs").glob("*.yaml"))
STUDIES = sorted(p.name for p in (ROOT / "sweeps").glob("*.py"))
SUBCOMMANDS = [["train"], ["config"], ["ui"], ["report"], ["data"], ["data", "convert"]]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=300)


def _parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """``parser`` and every sub-command parser under it, depth first."""
    found = [parser]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):  # aliases map to the same parser once
                found += _parsers(sub)
    return found


def _missing_help(parser: argparse.ArgumentParser) -> list[str]:
    """Options, positionals and sub-commands of ``parser`` that ``--help`` would show without text."""
    missing = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            missing += [f"{parser.prog} {c.dest}" for c in action._get_subactions() if not (c.help or "").strip()]
        elif action.help != argparse.SUPPRESS and not (action.help or "").strip():
            missing.append(f"{parser.prog} {'/'.join(action.option_strings) or action.dest}")
    return missing


def _sweep_parser() -> argparse.ArgumentParser:
    """The parser the study scripts share, caught as it parses (``parse_args`` builds and uses it)."""

    class Caught(Exception):
        pass

    def catch(self: argparse.ArgumentParser, *args: object, **kwargs: object) -> argparse.Namespace:
        raise Caught(self)

    original = argparse.ArgumentParser.parse_args
    argparse.ArgumentParser.parse_args = catch  # type: ignore[method-assign]
    try:
        sweep_cli.parse_args("a study", [])
    except Caught as caught:
        return caught.args[0]
    finally:
        argparse.ArgumentParser.parse_args = original  # type: ignore[method-assign]
    raise AssertionError("cjepa.sweep.cli.parse_args never parsed")


@pytest.mark.integration
def test_top_level_help_lists_subcommands_presets_studies_and_examples() -> None:
    proc = _run("-m", "cjepa", "--help")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for name in ["train", "config", "ui", "data", "report"]:
        assert f"    {name} " in out, name  # the sub-command list, each with its help line
    assert PRESETS and STUDIES
    for preset in PRESETS:
        assert f"  {preset} " in out, preset
    for study in STUDIES:
        assert f"sweeps/{study}" in out, study
    assert "examples:" in out and "cjepa train -c ijepa_fmnist_cpu" in out


@pytest.mark.integration
@pytest.mark.parametrize("command", SUBCOMMANDS, ids=" ".join)
def test_subcommand_help(command: list[str]) -> None:
    proc = _run("-m", "cjepa", *command, "--help")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"usage: cjepa {' '.join(command)} "), proc.stdout[:200]


def test_every_cjepa_option_has_help() -> None:
    parsers = _parsers(cli.make_parser())
    progs = {p.prog for p in parsers}
    assert {"cjepa train", "cjepa config", "cjepa ui", "cjepa report", "cjepa data convert"} <= progs, progs
    assert [m for p in parsers for m in _missing_help(p)] == []


def test_every_study_option_has_help() -> None:
    parser = _sweep_parser()
    assert {"--resume", "--dry-run", "--seeds"} <= set(parser._option_string_actions)
    assert _missing_help(parser) == []
    assert "examples" in (parser.epilog or "")


def test_data_stub_matches_the_real_data_parser() -> None:
    """Without ``data`` on the command line the parser registers a stub; ``cjepa --help`` shows its line."""

    def data_help(parser: argparse.ArgumentParser) -> str | None:
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        return next(c.help for c in sub._get_subactions() if c.dest == "data")

    assert data_help(cli.make_parser(data_options=False)) == data_help(cli.make_parser()) == cli.DATA_HELP


@pytest.mark.integration
def test_help_and_config_errors_do_not_import_torch() -> None:
    """In a fresh interpreter: help of every command but ``data``, and a config mistake, leave torch unloaded."""
    code = """if True:
        import contextlib, io, json, sys
        from cjepa.cli import main
        codes = {}
        for argv in (["--help"], ["train", "--help"], ["config", "--help"], ["ui", "--help"], ["report", "--help"],
                     ["config", "loss.beta_vicregg=1"], ["train", "loss.beta_vicregg=1"]):
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                try:
                    codes[" ".join(argv)] = main(argv)
                except SystemExit as exit:
                    codes[" ".join(argv)] = exit.code
        heavy = sorted(m for m in ("torch", "ray", "mlflow", "pandas", "matplotlib") if m in sys.modules)
        print(json.dumps({"codes": codes, "heavy": heavy}))
    """
    proc = _run("-c", code)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.splitlines()[-1])
    assert result["heavy"] == [], result
    assert result["codes"] == {"--help": 0, "train --help": 0, "config --help": 0, "ui --help": 0,
                               "report --help": 0, "config loss.beta_vicregg=1": 2,
                               "train loss.beta_vicregg=1": 2}, result


@pytest.mark.integration
@pytest.mark.parametrize("study", STUDIES)
def test_study_script_help(study: str) -> None:
    proc = _run(f"sweeps/{study}", "--help")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage:") and "--dry-run" in proc.stdout and "examples" in proc.stdout
