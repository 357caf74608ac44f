"""One console line per finished trial: what a person watching a study wants between two tables.

Why a Tune callback: the trial's own output (step lines, checkpoint lines) stays in Ray's logs
unless ``--verbose``, so the driver says when a trial ends, how far it got, its probe accuracies
and where a failed trial's error is. A module of its own because it imports Ray: the console
options are built (and the dry run imports them) without it. Module-level, so a Tuner pickles it
and a restored study keeps printing these lines.
"""

from __future__ import annotations

from typing import Any

from ray.tune import Callback

from cjepa.sweep.console import FINISHED, METRIC_COLUMNS, trial_label


def finished_line(label: str, result: dict[str, Any], epochs: int, done: int, total: int) -> str:
    """``trial beta_vicreg=0.01 s0 finished epoch 2/2: loss 0.41, kNN tgt 0.412 (in 53 s; 3/4 trials done)``."""
    epoch = int(result.get("epoch") or 0)
    state = "finished" if epoch >= epochs else "stopped early at"
    shown = ", ".join(f"{short} {result[key]:.3g}" for key, short in METRIC_COLUMNS.items()
                      if key != "epoch" and isinstance(result.get(key), (int, float)))
    took = result.get("time_total_s")
    when = f"in {took:.0f} s; " if isinstance(took, (int, float)) else ""
    metrics = f": {shown}" if shown else ""
    return f"trial {label} {state} epoch {epoch}/{epochs}{metrics} ({when}{done}/{total} trials done)"


class TrialLines(Callback):
    """Prints :func:`finished_line` when a trial completes or is stopped, one line when one fails."""

    def __init__(self, epochs: int, trials: int) -> None:
        self.epochs, self.trials = epochs, trials

    def _done(self, trials: list, trial: Any) -> tuple[int, int]:
        done = {t.trial_id for t in trials if t.status in FINISHED} | {trial.trial_id}
        return len(done), max(self.trials, len(trials))

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        done, total = self._done(trials, trial)
        print(finished_line(trial_label(trial.config), trial.last_result or {}, self.epochs, done, total), flush=True)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        done, total = self._done(trials, trial)
        epoch = int((trial.last_result or {}).get("epoch") or 0)
        where = getattr(trial, "error_file", None) or getattr(trial, "path", "")
        print(f"trial {trial_label(trial.config)} FAILED after epoch {epoch}/{self.epochs}; the error is in "
              f"{where} ({done}/{total} trials done)", flush=True)
