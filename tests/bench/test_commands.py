"""The benchmark commands the docs quote still run: each script exists, and its ``--help`` lists every
option a doc passes it.

Why: docs/benchmarks.md records every number with the command that produced it, and README.md and
bench/README.md tell a reader how to rerun them. A script that is renamed, folded into
``cjepa.benchmarking`` or loses an option leaves those commands quietly wrong; this reads every
``python bench/<script>.py ...`` those docs and the pages of two benchmarks (docs/stream_candidates.md,
docs/study_load.md) quote, in fenced blocks, indented blocks and inline code (a command may go on
over lines ending in ``\\`` and, inside inline code, over a line break), and checks them against
the scripts.

Every script in bench/ builds an ``argparse`` parser (so ``--help`` prints its options and exits 0);
``test_every_script_has_a_parser`` keeps it that way, since test B would otherwise read nothing.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# where benchmark commands are quoted: the READMEs, and the pages the results go to (bench/README.md)
DOCS = ("README.md", "bench/README.md", "docs/benchmarks.md", "docs/stream_candidates.md", "docs/study_load.md")
_SCRIPT = re.compile(r"\bpython3?\s+bench/(\w+)\.py\b")
_FENCE = re.compile(r"^\s*(```|~~~)")
_OPTION = re.compile(r"--[A-Za-z][\w-]*|-[A-Za-z]")
_COMMENT = re.compile(r"(^|\s)#.*$", re.MULTILINE)


def _options(args: str) -> list[str]:
    """The options in a command's arguments: up to a standalone ``--`` (what follows goes to the study
    script or is a config override, not to the benchmark), without ``=value`` and shell comments."""
    found = []
    for token in _COMMENT.sub(" ", args).split():
        if token == "--":
            break
        if _OPTION.fullmatch(token.split("=", 1)[0]):
            found.append(token.split("=", 1)[0])
    return found


def _commands_in(text: str) -> list[tuple[str, str]]:
    """``(script, arguments)`` of every quoted command in a markdown text."""
    found: list[tuple[str, str]] = []
    lines = text.splitlines()
    prose: list[str] = []
    fenced, indented, i = False, False, 0
    while i < len(lines):
        line = lines[i]
        # an indented code block starts after a blank line (a list item's continuation does not)
        indented = line.startswith("    ") and (indented or i == 0 or not lines[i - 1].strip())
        if _FENCE.match(line):
            fenced = not fenced
            prose.append("")
        elif fenced or indented:  # a fenced or an indented code block: one command a line
            command = line
            while command.rstrip().endswith("\\") and i + 1 < len(lines):
                i += 1
                command = command.rstrip()[:-1] + " " + lines[i]
            found += [(m.group(1), command[m.end():]) for m in _SCRIPT.finditer(command)]
            prose.append("")
        else:
            prose.append(line)
        i += 1
    # inline code in the prose: `python bench/x.py ...` up to its closing backtick, across line breaks
    for span in re.findall(r"`([^`]+)`", "\n".join(prose)):
        found += [(m.group(1), span[m.end():].replace("\\\n", " ")) for m in _SCRIPT.finditer(span)]
    return found


def quoted_commands() -> dict[str, dict[str, set[str]]]:
    """Script -> doc -> the options quoted with it there."""
    scripts: dict[str, dict[str, set[str]]] = {}
    for doc in DOCS:
        for script, args in _commands_in((ROOT / doc).read_text()):
            scripts.setdefault(script, {}).setdefault(doc, set()).update(_options(args))
    return scripts


COMMANDS = quoted_commands()


def test_the_docs_quote_commands():
    """The reader found the commands (an empty list would make the tests below vacuous)."""
    assert {"step_throughput", "sweep_utilisation", "gpu_check", "eval_flops"} <= set(COMMANDS)
    assert "--ijepa-src" in COMMANDS["step_throughput"]["bench/README.md"]
    assert "--train-images" in COMMANDS["eval_flops"]["docs/benchmarks.md"]
    # after `--`: the study script's options, not the benchmark's
    assert "--max-concurrent" not in set().union(*COMMANDS["sweep_utilisation"].values())


def test_reader_handles_continuations_and_inline_code():
    text = ("run `python bench/a.py --x 1\n--y 2` and\n\n```bash\npython bench/b.py --p \\\n    --q  # --not\n"
            "python bench/b.py -- --after\n```\n\n    python bench/c.py --z\n")
    assert _commands_in(text) == [("b", " --p      --q  # --not"), ("b", " -- --after"), ("c", " --z"),
                                  ("a", " --x 1\n--y 2")]
    assert [_options(args) for _, args in _commands_in(text)] == [["--p", "--q"], [], ["--z"], ["--x", "--y"]]


@pytest.mark.parametrize("script", sorted(COMMANDS))
def test_quoted_script_exists(script):
    """Test A: every script a doc quotes is a file in bench/ (not one folded into cjepa.benchmarking)."""
    assert (ROOT / "bench" / f"{script}.py").is_file(), (
        f"bench/{script}.py is quoted in {', '.join(sorted(COMMANDS[script]))} but does not exist")


@pytest.mark.parametrize("script", sorted(p.stem for p in (ROOT / "bench").glob("*.py")))
def test_every_script_has_a_parser(script):
    """Each script's options come from argparse, so ``--help`` lists them (test B reads that)."""
    assert "argparse.ArgumentParser(" in (ROOT / "bench" / f"{script}.py").read_text()


@pytest.mark.integration
@pytest.mark.parametrize("script", sorted(COMMANDS))
def test_quoted_options_are_in_help(script):
    """Test B: ``bench/<script>.py --help`` runs (imports, parser) and lists every option the docs quote."""
    if not (ROOT / "bench" / f"{script}.py").is_file():
        pytest.fail(f"bench/{script}.py does not exist (quoted in {', '.join(sorted(COMMANDS[script]))})")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run([sys.executable, f"bench/{script}.py", "--help"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"bench/{script}.py --help exited {proc.returncode}:\n{proc.stderr[-3000:]}"
    listed = set(re.findall(r"(?<![\w-])(--?[A-Za-z][\w-]*)", proc.stdout))
    missing = {doc: sorted(opts - listed) for doc, opts in COMMANDS[script].items() if opts - listed}
    assert not missing, f"bench/{script}.py --help does not list options quoted in the docs: {missing}"
