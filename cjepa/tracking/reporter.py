"""MLflow as one more :class:`~cjepa.engine.Reporter`: one MLflow run per training run, across resumes.

The engine knows nothing of MLflow; this reporter turns its callbacks into MLflow calls through an
explicit :class:`mlflow.tracking.MlflowClient`. Never the fluent ``mlflow.start_run`` API: its
global "active run" is per process, a set ``MLFLOW_RUN_ID`` env var silently overrides
``parent_run_id``, and Ray workers share neither.

One run, exactly one value per epoch, whatever happens in between:

* the MLflow run id is stored in the checkpoint's ``extra`` dict, so a restarted process (a
  ``cjepa train`` rerun, a Ray worker restarted by FailureConfig) continues the *same* run; one
  killed before its first checkpoint finds its RUNNING run by the run directory's tag;
* epochs are logged with ``step = epoch`` in ``on_epoch``, which the engine calls *before* it
  writes that epoch's checkpoint, and epochs MLflow already has are skipped on resume.
  See :meth:`MLflowReporter.on_epoch` for why that order makes the log exactly-once;
* a tracking *server* that stops answering does not stop training: the epoch is buffered, one
  warning line says so, and the buffer is sent, in order, once the server answers again (at the
  next epoch or at the end; see :meth:`MLflowReporter._flush`). A store that answers but rejects
  a call still raises :class:`TrackingError`.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import Any

from cjepa.config import Config
from cjepa.engine.reporting import Reporter, read_metrics
from cjepa.errors import TrackingError
from cjepa.tracking.plots import plot_curves
from cjepa.tracking.run_lookup import RUN_KEY_TAG, find_interrupted, run_tags
from cjepa.tracking.store import get_or_create_experiment, is_remote, redact, server_answers

RUN_ID_KEY = "mlflow_run_id"  # key in the checkpoint's ``extra`` dict
MARKER_METRIC = "loss"  # logged every epoch, last in its batch: its history says which epochs are in
MAX_METRICS_PER_BATCH = 1000  # MLflow's log_batch limit
MAX_PARAMS_PER_BATCH = 100  # params + tags per log_batch
MAX_PARAM_CHARS = 6000
CURVES_NAME = "curves.png"
FAILURE_TAG = "cjepa.failure"  # why the run ended FAILED/KILLED (first line of the error)


def _finite(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}


class MLflowReporter(Reporter):
    """Logs one training run to MLflow: params, tags, per-epoch metrics, config/masks/curves artifacts.

    Use it on rank 0 only. ``tracking_uri`` must be absolute (``resolve_tracking_uri``) when the
    reporter is built in another process than the driver. ``parent_run_id`` nests the run under a
    sweep's parent run; ``tags`` are added to the standard ones (e.g. ``{"arm": "vicreg_0.01"}``).
    """

    def __init__(self, cfg: Config, tracking_uri: str, experiment: str = "cjepa", run_name: str | None = None,
                 parent_run_id: str | None = None, tags: dict[str, str] | None = None) -> None:
        self.cfg = cfg
        self.tracking_uri = tracking_uri
        self.experiment = experiment
        self.run_name = run_name or Path(cfg.run.output_dir).name
        self.parent_run_id = parent_run_id
        self.tags = dict(tags or {})
        self.run_id: str | None = None
        self.run_dir: Path | None = None
        self.last_logged_epoch = 0  # epochs <= this are in MLflow already
        self.skipped_epochs: list[int] = []  # re-trained epochs not logged again (for tests/diagnostics)
        self.pending: list[tuple[int, list[Any]]] = []  # (epoch, metrics) not yet accepted by a server
        self._client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            from mlflow.tracking import MlflowClient

            self._client = MlflowClient(self.tracking_uri)
        return self._client

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Run one MLflow call; any failure becomes a TrackingError naming the run and the store."""
        try:
            return fn(*args, **kwargs)
        except TrackingError:
            raise
        except Exception as exc:
            text = redact(" ".join(str(exc).split()))[:400]
            where = redact(self.tracking_uri)
            raise TrackingError(f"MLflow {what} failed for run {self.run_id or '(new)'} at {where}: "
                                f"{type(exc).__name__}: {text}") from exc

    def on_start(self, run_dir: Path, start_epoch: int, extra: dict[str, Any]) -> None:
        """Continue the checkpoint's run (status back to RUNNING) or create one; log params/tags/artifacts."""
        self.run_dir = Path(run_dir)
        previous = extra.get(RUN_ID_KEY)
        run = self._find_run(previous) if previous else self._find_interrupted()
        if run is None:
            run = self._create_run(previous)
        else:
            self._call("update_run", self.client.update_run, run.info.run_id, status="RUNNING")
            if FAILURE_TAG in run.data.tags:  # running again: an earlier failure no longer describes it
                self._call("delete_tag", self.client.delete_tag, run.info.run_id, FAILURE_TAG)
        self.run_id = run.info.run_id
        extra[RUN_ID_KEY] = self.run_id
        history = self._call("get_metric_history", self.client.get_metric_history, self.run_id, MARKER_METRIC)
        self.last_logged_epoch = max((int(m.step) for m in history), default=0)
        self._log_params_and_tags(dict(run.data.params), start_epoch)
        if self.last_logged_epoch < start_epoch:  # a run created for a checkpoint trained without MLflow
            self._backfill(start_epoch)
        self._log_config_artifact()
        masks = self.run_dir / "masks.png"
        if masks.exists():
            self._call("log_artifact(masks.png)", self.client.log_artifact, self.run_id, str(masks))

    def _log_config_artifact(self) -> None:
        """config.yaml as an artifact, credentials masked (a data.root URI may carry user:password@)."""
        import tempfile

        assert self.run_dir is not None
        path = self.run_dir / "config.yaml"
        if not path.exists():
            return
        with tempfile.TemporaryDirectory() as tmp:
            text = path.read_text()
            if redact(text) != text:
                path = Path(tmp) / "config.yaml"
                path.write_text(redact(text))
            self._call("log_artifact(config.yaml)", self.client.log_artifact, self.run_id, str(path))

    def _find_run(self, run_id: str) -> Any:
        from mlflow.exceptions import MlflowException

        try:
            return self.client.get_run(run_id)
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_DOES_NOT_EXIST":  # e.g. a server hiccup: not a reason to fork
                raise TrackingError(f"MLflow get_run({run_id}) failed at {redact(self.tracking_uri)}: "
                                   f"{redact(str(exc))}") from exc
            print(f"[cjepa] warning: the checkpoint's MLflow run {run_id} is not in {redact(self.tracking_uri)}; "
                  "starting a new run (earlier epochs are copied from metrics.jsonl)", file=sys.stderr)
            return None

    def _run_key(self) -> str:
        return str(Path(self.cfg.run.output_dir).resolve())

    def _find_interrupted(self) -> Any:
        """The RUNNING run this directory opened before it was killed (``run_lookup``), or None."""
        if not self.cfg.run.resume:
            return None
        return self._call("search_runs", find_interrupted, self.client, self.experiment, self._run_key())

    def _create_run(self, previous: str | None) -> Any:
        exp_id = self._call("get_or_create_experiment", get_or_create_experiment, self.client, self.experiment)
        tags = {"mlflow.runName": self.run_name, RUN_KEY_TAG: self._run_key()}
        if self.parent_run_id:
            tags["mlflow.parentRunId"] = self.parent_run_id
        if previous:
            tags["cjepa.previous_run_id"] = previous
        return self._call("create_run", self.client.create_run, exp_id, tags=tags, run_name=self.run_name)

    def _log_params_and_tags(self, logged: dict[str, str], start_epoch: int) -> None:
        """Params are write-once in MLflow: on resume, a key whose value changed (e.g. run.max_steps,
        allowed to differ by the engine's resume check) keeps its first value and gets a
        ``param_changed.<key>`` tag with the new one. Tags always describe the latest start."""
        from mlflow.entities import Param, RunTag

        params, tags = [], {**run_tags(self.cfg, self.tags), "resumed_from_epoch": str(start_epoch)}
        for key, value in self.cfg.flat().items():
            text = redact(str(value))[:MAX_PARAM_CHARS]
            if key not in logged:
                params.append(Param(key, text))
            elif logged[key] != text:
                tags[f"param_changed.{key}"] = text
        items: list[Any] = params + [RunTag(k, redact(v)) for k, v in tags.items()]
        for i in range(0, len(items), MAX_PARAMS_PER_BATCH):
            chunk = items[i:i + MAX_PARAMS_PER_BATCH]
            self._call("log_batch(params, tags)", self.client.log_batch, self.run_id,
                       params=[p for p in chunk if isinstance(p, Param)],
                       tags=[t for t in chunk if isinstance(t, RunTag)], synchronous=True)

    def _backfill(self, start_epoch: int) -> None:
        for rec in read_metrics(self.run_dir):
            epoch = int(rec.get("epoch", 0))
            if self.last_logged_epoch < epoch <= start_epoch:
                self._send(epoch, self._epoch_batch(epoch, rec))

    def on_epoch(self, epoch: int, metrics: dict[str, float]) -> None:
        """Log every finite metric of ``epoch`` at ``step=epoch`` (skipping epochs MLflow already has).

        Why here, before the checkpoint, and why skipping is right:

        * crash after this log, before the checkpoint: the resume re-trains the epoch. Training is
          exactly reproducible (same weights, RNG, batches), so it yields bit-identical metrics;
          MLflow already holds them, and the epoch is skipped rather than logged twice.
        * crash after the checkpoint: the epoch was logged before it was written, so an epoch that
          will not be re-trained can never be missing from MLflow.
        * a store that refuses the call: TrackingError, training stops *before* the checkpoint, so
          after the fix a rerun re-trains and logs that epoch; a server that does not answer: the
          epoch is buffered (:meth:`_flush`). Nothing is dropped silently. (Where training is not
          bit-exact, MLflow keeps the first attempt's values of a re-trained epoch.)
        """
        if self.run_id is None:
            raise TrackingError("MLflowReporter.on_epoch called before on_start")
        if epoch <= self.last_logged_epoch or any(e == epoch for e, _ in self.pending):
            self.skipped_epochs.append(epoch)
            return
        self.pending.append((epoch, self._epoch_batch(epoch, metrics)))
        self._flush()

    def _flush(self, final: bool = False) -> None:
        """Send the buffered epochs in order; keep them while a tracking server does not answer.

        Why only servers, only while ``/health`` fails: a stopped server is an outage that ends; a
        store that answers and still refuses (a bad key, a deleted run) will refuse again, so that
        stays loud. A server found down is not called (MLflow's client would retry for minutes,
        ``MLFLOW_HTTP_REQUEST_MAX_RETRIES``). Re-sending is idempotent: metrics keep their epoch's
        timestamp and MLflow drops an identical (key, step, time, value) row. A process that dies
        with epochs buffered loses none: the next start copies every checkpointed epoch MLflow
        lacks from metrics.jsonl (``_backfill``); later epochs are re-trained and logged.
        """
        remote = is_remote(self.tracking_uri)
        while self.pending:
            try:
                if remote and not server_answers(self.tracking_uri):
                    raise TrackingError(f"MLflow server {redact(self.tracking_uri)} does not answer")
                self._send(*self.pending[0])
            except TrackingError as exc:
                if not remote or server_answers(self.tracking_uri):
                    raise
                epochs, line = [e for e, _ in self.pending], str(exc).splitlines()[0][:200]
                if final:
                    raise TrackingError(f"{line}; epochs {epochs} not logged (they are in metrics.jsonl): rerun "
                                        "the same command once it answers, nothing is re-trained") from None
                print(f"[cjepa] warning: {line}; epochs {epochs} kept, sent when it answers", file=sys.stderr)
                return
            self.pending.pop(0)

    def _epoch_batch(self, epoch: int, metrics: dict[str, Any]) -> list[Any]:
        from mlflow.entities import Metric

        values = _finite(metrics)
        marker = values.pop(MARKER_METRIC, None)
        now = int(time.time() * 1000)
        batch = [Metric(k, v, now, epoch) for k, v in sorted(values.items())]
        if marker is not None:  # last, so "loss at step e exists" implies the whole epoch is in
            batch.append(Metric(MARKER_METRIC, marker, now, epoch))
        return batch

    def _send(self, epoch: int, batch: list[Any]) -> None:
        for i in range(0, len(batch), MAX_METRICS_PER_BATCH):
            self._call(f"log_batch(epoch {epoch})", self.client.log_batch, self.run_id,
                       metrics=batch[i:i + MAX_METRICS_PER_BATCH], synchronous=True)
        self.last_logged_epoch = epoch

    def on_end(self, metrics: dict[str, float]) -> None:
        """Log the curves PNG and mark the run FINISHED (not called when run.max_steps stopped it)."""
        if self.run_id is None:
            raise TrackingError("MLflowReporter.on_end called before on_start")
        assert self.run_dir is not None
        self._flush(final=True)  # a server still down now: loud; a rerun copies the epochs from metrics.jsonl
        records = read_metrics(self.run_dir) or self._history_records()
        try:
            png = plot_curves(records, self.run_dir / CURVES_NAME,
                              title=f"{self.run_name} (regulariser {getattr(self.cfg.regularizer, 'name', 'off')}, "
                                    f"seed {self.cfg.run.seed})")
        except Exception as exc:  # a plot is a summary: never fail a finished run over it
            print(f"[cjepa] warning: curves plot failed ({type(exc).__name__}: {exc})", file=sys.stderr)
        else:
            self._call("log_artifact(curves)", self.client.log_artifact, self.run_id, str(png))
        self._call("set_terminated", self.client.set_terminated, self.run_id, "FINISHED")

    def _history_records(self) -> list[dict[str, Any]]:
        """Per-epoch records rebuilt from MLflow when there is no metrics.jsonl."""
        run = self._call("get_run", self.client.get_run, self.run_id)
        by_epoch: dict[int, dict[str, Any]] = {}
        for key in run.data.metrics:
            for m in self._call("get_metric_history", self.client.get_metric_history, self.run_id, key):
                by_epoch.setdefault(int(m.step), {"epoch": int(m.step)})[key] = m.value
        return [by_epoch[e] for e in sorted(by_epoch)]

    def on_failure(self, exc: BaseException | None = None) -> None:
        """Mark the run KILLED (Ctrl-C, a stopped trial) or FAILED; a resume sets it back to RUNNING.

        Best effort: called while another exception propagates, so it must not mask that one.
        """
        if self.run_id is None or isinstance(exc, TrackingError):  # the store itself is the problem:
            return  # another call would only sit through MLflow's HTTP retries (minutes) and fail too
        # SystemExit: told to stop from outside (a Tune trial that ASHA or the stopper ends exits in report)
        status = "KILLED" if isinstance(exc, (KeyboardInterrupt, SystemExit)) else "FAILED"
        reason = redact(" ".join(str(exc).split()))[:500] if exc is not None else ""
        try:
            self.client.set_tag(self.run_id, FAILURE_TAG, f"{type(exc).__name__}: {reason}" if exc else status)
            self.client.set_terminated(self.run_id, status)
        except Exception as err:
            print(f"[cjepa] warning: could not mark MLflow run {self.run_id} {status}: {err}", file=sys.stderr)
