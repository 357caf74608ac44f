"""User-facing errors.

Every problem a user can fix (a bad config value, a missing dataset, a corrupt checkpoint)
raises a subclass of :class:`CJepaError`. The CLI prints its message on one line and exits
with status 2 instead of showing a traceback from deep inside torch.
"""

from __future__ import annotations

import argparse
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


class ArgumentParser(argparse.ArgumentParser):
    """argparse with abbreviations off and usage errors on one line (exit status 2, as CJepaError).

    Why: with abbreviations on, ``--seed 3`` is silently taken as ``--seeds 3``; and argparse's
    default error prints the whole usage block before the one line that says what is wrong.
    Sub-parsers inherit this class (``add_subparsers`` builds them with ``type(parent)``).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")
