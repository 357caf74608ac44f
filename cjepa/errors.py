"""User-facing errors.

Every problem a user can fix (a bad config value, a missing dataset, a corrupt checkpoint)
raises a subclass of :class:`CJepaError`. The CLI prints its message on one line and exits
with status 2 instead of showing a traceback from deep inside torch.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, NoReturn


class CJepaError(Exception):
    """Base class for errors caused by input the user controls."""


class ConfigError(CJepaError, ValueError):
    """A config key is unknown, has the wrong type or an impossible value."""


class DataError(CJepaError):
    """A dataset file is missing, unreadable or corrupt."""


class CheckpointError(CJepaError):
    """A checkpoint cannot be read or does not match the config."""


class TrainingError(CJepaError):
    """Training cannot continue (e.g. the loss became NaN or infinite)."""


class TrackingError(CJepaError):
    """The MLflow store or server cannot be used, or logging to it failed (metrics are never dropped)."""


class DistributedError(CJepaError):
    """A distributed run cannot start or failed: workers the cluster cannot place, storage that
    cannot be written, a global batch that does not split evenly, or a worker error."""


class StudyError(CJepaError):
    """A study cannot start as asked, e.g. its storage already holds the results of an earlier run."""


#: The metavar of the positional that takes ``key=value`` config overrides (cjepa train/config, studies).
OVERRIDES_METAVAR = "key=value"


class ArgumentParser(argparse.ArgumentParser):
    """argparse with abbreviations off, usage errors on one line (exit status 2, as CJepaError), and
    ``key=value`` overrides accepted anywhere among the options.

    Why: with abbreviations on, ``--seed 3`` is silently taken as ``--seeds 3``; argparse's
    default error prints the whole usage block before the one line that says what is wrong; and
    plain argparse refuses ``cjepa train a=b --no-mlflow c=d`` (``unrecognized arguments: c=d``)
    or reads ``--seeds 0 run.epochs=2`` as two seeds, while Hydra-style command lines take options
    and overrides in any order. Sub-parsers inherit this class (``add_subparsers`` builds them
    with ``type(parent)``).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> tuple[argparse.Namespace, list[str]]:
        """Pull every ``key=value`` word that is no option's value out first; it joins the overrides."""
        overrides = [a for a in self._actions if not a.option_strings and a.metavar == OVERRIDES_METAVAR]
        if not overrides:
            return super().parse_known_args(args, namespace)
        pulled, rest = self._pull_overrides(list(sys.argv[1:] if args is None else args))
        ns, extras = super().parse_known_args(rest, namespace)
        dest = overrides[0].dest
        setattr(ns, dest, [*pulled, *(getattr(ns, dest, None) or [])])
        return ns, extras

    def _pull_overrides(self, argv: list[str]) -> tuple[list[str], list[str]]:
        """(the ``key=value`` words, the rest); the words after an option that takes N values are its
        own (``--name a=b`` stays a name), ``--`` ends the options as in argparse."""
        pulled: list[str] = []
        rest: list[str] = []
        skip = 0
        for i, word in enumerate(argv):
            if word == "--":
                return pulled, rest + argv[i:]
            if skip:
                skip -= 1
                rest.append(word)
                continue
            action = self._option_string_actions.get(word)
            if action is not None:
                skip = action.nargs if isinstance(action.nargs, int) else (1 if action.nargs is None else 0)
                rest.append(word)
            elif not word.startswith("-") and "=" in word:
                pulled.append(word)
            else:
                rest.append(word)
        return pulled, rest

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")
