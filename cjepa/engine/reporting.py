"""How the engine reports progress, without knowing about Ray or MLflow.

The training loop calls a list of :class:`Reporter` objects. Here live the two the plain CLI
uses (console progress and ``metrics.jsonl``); the Ray layer adds one that forwards to
``ray.train.report`` and the tracking layer one that logs to MLflow, both outside the engine.
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path
from typing import Any, TextIO


class Reporter:
    """Callbacks of the training loop; every method is optional.

    The loop calls them in every process of a distributed run (``rank`` says which); the caller
    chooses which reporters each rank gets (console, files and MLflow on rank 0 only; the Ray
    reporter on every rank, since ``ray.train.report`` is collective). Per epoch, ``on_epoch``
    comes *before* the checkpoint is written and ``on_checkpoint`` after it: a durable log
    written in ``on_epoch`` can never miss an epoch that a resume will not train again, and on
    resume it sees ``start_epoch`` to drop epochs that will be trained again.
    """

    def on_start(self, run_dir: Path, start_epoch: int, extra: dict[str, Any]) -> None:
        """Once before training. ``extra`` is the reporter state kept in the checkpoint: mutate it
        (e.g. store an MLflow run id) and it is saved with every later checkpoint."""

    def on_step(self, step: int, metrics: dict[str, float]) -> None:
        """Every ``run.log_every`` steps, with running means of the epoch."""

    def on_epoch(self, epoch: int, metrics: dict[str, float]) -> None:
        """After each epoch (1-based) with its metrics, before its checkpoint is written.
        Metrics are global means on every rank; evaluation metrics exist on rank 0 only."""

    def on_checkpoint(self, epoch: int, metrics: dict[str, float], checkpoint: Path | None) -> None:
        """After each epoch's checkpoint (``None`` where none was written or on ranks > 0)."""

    def on_end(self, metrics: dict[str, float]) -> None:
        """Once when training has finished (not when it was stopped by run.max_steps)."""


def _fmt(value: float) -> str:
    if isinstance(value, float) and (abs(value) >= 1e4 or (0 < abs(value) < 1e-3)):
        return f"{value:.3e}"
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def clock(seconds: float) -> str:
    """``1:02:03`` from 1 h on, else ``2:03``: what a console line has room for."""
    whole = max(0, int(round(seconds)))
    hours, rest = divmod(whole, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def eta_seconds(step: int, epoch: float, img_per_s: float, batch_size: int, epochs: int, max_steps: int = 0,
                eval_s: float = 0.0, eval_every: int = 0) -> tuple[float, float] | None:
    """(seconds left in this epoch, seconds left in the run) at the running throughput.

    Steps per epoch come from the step line itself (``epoch = step / steps_per_epoch``); a step
    takes ``batch_size / img_per_s`` (both global). The run's figure adds the last evaluation's
    duration for every evaluated epoch still to come. None when the rate is not known yet."""
    if step <= 0 or epoch <= 0 or img_per_s <= 0 or batch_size <= 0:
        return None
    per_epoch = max(1, round(step / epoch))
    total = epochs * per_epoch if max_steps <= 0 else min(epochs * per_epoch, max_steps)
    per_step = batch_size / img_per_s
    epoch_left = ((-step) % per_epoch) * per_step
    done_epochs = step // per_epoch
    evals_left = sum(1 for e in range(done_epochs + 1, math.ceil(total / per_epoch) + 1)
                     if eval_every > 0 and (e % eval_every == 0 or e == epochs))
    return epoch_left, max(0, total - step) * per_step + eval_s * evals_left


class ConsoleReporter(Reporter):
    """One line every ``log_every`` steps (with the epoch's and the run's ETA) and a summary per epoch.

    ``destination``: where the run's files end up when that is not the engine's run dir (a Ray
    Train worker trains in a scratch dir; the driver copies the final checkpoint's files to
    ``run.output_dir``), so the printed path is where the user will find them."""

    STEP_KEYS = ("loss", "loss_jepa", "vicreg_inv", "vicreg_var", "vicreg_cov", "lr", "img_per_s")
    EPOCH_KEYS = ("loss", "loss_jepa", "vicreg_inv", "vicreg_var", "vicreg_cov", "knn_target",
                  "linear_target", "knn_context", "raw_knn_acc", "target_std_mean_normalized",
                  "target_eff_rank", "img_per_s", "epoch_time_s")

    def __init__(self, stream: TextIO | None = None, destination: str | Path | None = None) -> None:
        self.stream = stream or sys.stdout
        self.destination = destination
        self.plan: dict[str, int] = {}  # epochs, batch_size, max_steps, eval_every (from config.yaml)
        self.eval_s = 0.0  # the last evaluation's duration, for the run's ETA

    def _print(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    def on_start(self, run_dir: Path, start_epoch: int, extra: dict[str, Any]) -> None:
        self.plan = _plan(run_dir / "config.yaml")
        where = f"resuming after epoch {start_epoch}" if start_epoch else "starting"
        if self.destination is None:
            self._print(f"[cjepa] {where}; run dir {run_dir}")
        else:
            self._print(f"[cjepa] {where}; run dir {self.destination} (files copied there when training ends)")

    def on_step(self, step: int, metrics: dict[str, float]) -> None:
        parts = [f"{k}={_fmt(metrics[k])}" for k in self.STEP_KEYS if k in metrics]
        eta = None
        if self.plan:
            eta = eta_seconds(step, float(metrics.get("epoch", 0)), float(metrics.get("img_per_s", 0)),
                              self.plan["batch_size"], self.plan["epochs"], self.plan["max_steps"], self.eval_s,
                              self.plan["eval_every"])
        if eta is not None:
            parts.append(f"eta epoch {clock(eta[0])} run {clock(eta[1])}")
        self._print(f"  ep {metrics.get('epoch', 0):.2f} step {step}  " + "  ".join(parts))

    def on_epoch(self, epoch: int, metrics: dict[str, float]) -> None:
        if "eval_time_s" in metrics:
            self.eval_s = float(metrics["eval_time_s"])
        parts = [f"{k}={_fmt(metrics[k])}" for k in self.EPOCH_KEYS if k in metrics]
        self._print(f"[epoch {epoch}] " + "  ".join(parts))


def _plan(path: Path) -> dict[str, int]:
    """Epochs, global batch, max_steps and eval.every from the run's config.yaml, which the trainer
    writes next to the checkpoint before ``on_start``; empty (no ETA) where it cannot be read."""
    import yaml

    try:
        cfg = yaml.safe_load(path.read_text())
        return {"epochs": int(cfg["run"]["epochs"]), "batch_size": int(cfg["optim"]["batch_size"]),
                "max_steps": int(cfg["run"].get("max_steps", 0)), "eval_every": int(cfg["eval"].get("every", 0))}
    except (OSError, KeyError, TypeError, ValueError, yaml.YAMLError):
        return {}


class JsonlReporter(Reporter):
    """Appends one JSON line per epoch to ``run_dir/metrics.jsonl``.

    On resume, lines of epochs that will be trained again are dropped first, so the file never
    holds two values for one epoch.
    """

    def __init__(self, filename: str = "metrics.jsonl") -> None:
        self.filename = filename
        self.path: Path | None = None

    def on_start(self, run_dir: Path, start_epoch: int, extra: dict[str, Any]) -> None:
        self.path = run_dir / self.filename
        if self.path.exists():
            kept = [line for line in self.path.read_text().splitlines()
                    if line.strip() and _epoch_of(line) is not None and _epoch_of(line) <= start_epoch]
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text("".join(line + "\n" for line in kept))
            os.replace(tmp, self.path)

    def on_epoch(self, epoch: int, metrics: dict[str, float]) -> None:
        assert self.path is not None, "on_start was not called"
        clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in metrics.items()}
        with self.path.open("a") as fh:
            fh.write(json.dumps({"epoch": epoch, **clean}) + "\n")


def _epoch_of(line: str) -> int | None:
    try:
        return int(json.loads(line)["epoch"])
    except (ValueError, KeyError, TypeError):
        return None


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """The per-epoch records of a run, in order."""
    path = Path(run_dir) / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
