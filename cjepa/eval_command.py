"""``cjepa eval``: evaluate finished runs off the training path (a checkpoint, a run directory or
a whole study), log the figures to each run's MLflow run and keep them beside the run.

What it computes: :mod:`cjepa.engine.offline_eval`. Where each number goes (only added to):
``<run dir>/eval.jsonl`` (one line per evaluation: the request and its figures), the run's MLflow
run as ``eval/<name>`` (its id travels in the checkpoint; ``--no-mlflow`` skips it), and for a study
``<study>/eval.parquet`` (one row per trial and request, beside results.parquet).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from cjepa.errors import ConfigError

MLFLOW_PREFIX = "eval/"  # the offline figures' keys in the run's MLflow run
ALLOWED_OVERRIDES = "eval."  # the evaluation's settings only: the model, data and split are the run's
ENCODERS = ("target", "context", "random")  # random: the run's network at its initialisation (its seed)


def add_eval_parser(sub: Any) -> None:
    p = sub.add_parser("eval", help="evaluate finished runs (whole-split kNN bank, the test split, I-JEPA's probe)",
                       description="Evaluate a checkpoint, a run directory or a study directory (every trial's "
                                   "final checkpoint). kNN with every training image as the bank and the linear "
                                   "probe on the test split, scored once; --protocol ijepa adds I-JEPA's linear "
                                   "protocol (lr x wd grid, chosen on the validation split).")
    p.add_argument("paths", nargs="+", metavar="PATH|key=value",
                   help="checkpoint.pt, a run directory or a study directory; then eval.* overrides "
                        "(e.g. eval.test_samples=10000; eval.last_layers=4: I-JEPA's last 4 blocks concatenated)")
    p.add_argument("--split", choices=("test", "val"), default="test", help="the queries (default: test)")
    p.add_argument("--bank", choices=("train", "eval"), default="train",
                   help="train: every training image (default); eval: the in-training bank (eval.train_samples)")
    p.add_argument("--protocol", choices=("cjepa", "ijepa"), default="cjepa",
                   help="cjepa: the trainer's kNN and probe (default); ijepa: also I-JEPA's linear protocol, "
                        "lr {0.01, 0.05, 0.001} x wd {5e-4, 0}, the head chosen on the validation split")
    p.add_argument("--encoders", default="target",
                   help="comma-separated: target, context, random (the network as this run initialised it, "
                        "its seed: the no-training reference under the same read-outs) (default: target)")
    p.add_argument("--workers", type=int, default=0, help="Ray tasks that encode each set (0: this process)")
    p.add_argument("--use-gpu", action="store_true", help="one GPU per Ray task; kNN and probes on this GPU")
    p.add_argument("--tracking-uri", metavar="URI", help="MLflow store (default: $MLFLOW_TRACKING_URI, ./mlflow.db)")
    p.add_argument("--no-mlflow", action="store_true", help="keep the figures beside the runs only")
    p.set_defaults(func=cmd_eval)


def _targets(paths: list[str]) -> tuple[list[dict[str, Any]], Path | None]:
    """(runs to evaluate, the study dir when one was given): checkpoints, run dirs or one study."""
    from cjepa.engine.trained import checkpoint_path

    runs: list[dict[str, Any]] = []
    study = None
    for text in paths:
        p = Path(text).expanduser()
        if (p / "results.parquet").is_file():
            study = p
            runs += _study_trials(p)
        else:
            runs.append({"checkpoint": checkpoint_path(p)})
    return runs, study


def _study_trials(study: Path) -> list[dict[str, Any]]:
    from cjepa.engine.trained import checkpoint_path
    from cjepa.sweep.results import read_rows

    last: dict[tuple[str, int], dict[str, Any]] = {}
    for row in read_rows(study / "results.parquet"):
        key = (row["arm"], int(row["seed"]))
        if key not in last or row["epoch"] >= last[key]["epoch"]:
            last[key] = row
    trials = []
    for (arm, seed), row in sorted(last.items()):
        where = row.get("checkpoint_path") or row.get("config.run.output_dir") or ""
        try:
            ckpt = checkpoint_path(where)
        except Exception:  # a trial that never checkpointed (stopped or failed in epoch 1)
            print(f"[cjepa eval] {arm} seed {seed}: no checkpoint ({where or 'none recorded'}), skipped")
            continue
        trials.append({"checkpoint": ckpt, "arm": arm, "seed": seed, "trial_id": row.get("trial_id", ""),
                       "mlflow_run_id": row.get("mlflow_run_id") or ""})
    return trials


def cmd_eval(args: argparse.Namespace) -> int:
    from cjepa.engine.offline_eval import EvalRequest

    overrides = [a for a in args.paths if "=" in a]
    bad = [o for o in overrides if not o.startswith(ALLOWED_OVERRIDES)]
    if bad:
        raise ConfigError(f"cjepa eval: {bad[0]}: only eval.* settings can change (the model, data and "
                          "validation split are the run's own)")
    encoders = tuple(e.strip() for e in args.encoders.split(",") if e.strip())
    if not encoders or set(encoders) - set(ENCODERS):
        raise ConfigError(f"--encoders {args.encoders!r}: expected one or more of {', '.join(ENCODERS)}")
    if args.workers < 0:
        raise ConfigError(f"--workers must be >= 0, got {args.workers}")
    runs, study = _targets([a for a in args.paths if "=" not in a])
    uri = _tracking(args)
    req = EvalRequest(split=args.split, bank=args.bank, protocol=args.protocol, encoders=encoders)
    extract, device = _extractor(args)
    rows = [_evaluate_one(trial, req, overrides, extract, device, uri) for trial in runs]
    if study is not None:
        _append_study_table(study, rows)
    return 0


def _tracking(args: argparse.Namespace) -> str | None:
    if args.no_mlflow:
        return None
    from cjepa.tracking.store import check_tracking_uri, resolve_tracking_uri

    uri = resolve_tracking_uri(args.tracking_uri)
    check_tracking_uri(uri)
    return uri


def _extractor(args: argparse.Namespace) -> tuple[Any, str]:
    import torch

    device = "cuda" if args.use_gpu and torch.cuda.is_available() else "cpu"
    if args.workers == 0:
        return None, device
    from cjepa.distributed.eval_ray import ray_extractor
    from cjepa.distributed.preflight import connect_ray

    print(f"[cjepa eval] encoding with {args.workers} Ray task(s) on {connect_ray(log_to_driver=False)}")
    return ray_extractor(args.workers, args.use_gpu), device


def _evaluate_one(trial: dict[str, Any], req: Any, overrides: list[str], extract: Any, device: str,
                  uri: str | None) -> dict[str, Any]:
    from dataclasses import asdict

    from cjepa.engine.offline_eval import evaluate_trained
    from cjepa.engine.trained import load_trained

    run = load_trained(trial["checkpoint"])
    if overrides:
        run.cfg = _with_overrides(run.cfg, overrides)
    t0 = time.perf_counter()
    figures = evaluate_trained(run, req, extract, device)
    record = {"checkpoint": str(run.path), "epoch": run.epoch, "step": run.step, **asdict(req),
              "eval": run.cfg.to_dict()["eval"], "seconds": round(time.perf_counter() - t0, 2), "figures": figures}
    with open(run.path.parent / "eval.jsonl", "a") as fh:
        fh.write(json.dumps(record, default=list) + "\n")
    shown = ", ".join(f"{k} {100 * v:.2f} %" for k, v in figures.items() if not k.endswith(("_lr", "_wd")))
    print(f"[cjepa eval] {trial.get('arm', run.path.parent.name)}: {shown}")
    if uri is not None:
        _log_mlflow(uri, trial.get("mlflow_run_id") or _run_id_in(run.path), figures, run.step)
    return {**{k: v for k, v in trial.items() if k != "checkpoint"}, "checkpoint": str(run.path),
            **{k: v for k, v in asdict(req).items() if k != "encoders"}, "overrides": " ".join(overrides), **figures}


def _with_overrides(cfg: Any, overrides: list[str]) -> Any:
    from cjepa.config.loading import apply_overrides
    from cjepa.config.validation import validate

    apply_overrides(cfg, overrides)
    validate(cfg)
    return cfg


def _run_id_in(checkpoint: Path) -> str:
    from cjepa.engine.checkpoint import load_checkpoint
    from cjepa.tracking.reporter import RUN_ID_KEY

    return str(load_checkpoint(checkpoint).get("extra", {}).get(RUN_ID_KEY) or "")


def _log_mlflow(uri: str, run_id: str, figures: dict[str, float], step: int) -> None:
    if not run_id:
        print("[cjepa eval] no MLflow run recorded for this checkpoint: figures kept in eval.jsonl only")
        return
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    now = int(time.time() * 1000)  # "eval/...": a section of its own beside the training's curves
    MlflowClient(uri).log_batch(run_id, metrics=[Metric(f"{MLFLOW_PREFIX}{k}", float(v), now, step)
                                                 for k, v in figures.items()])


def _append_study_table(study: Path, rows: list[dict[str, Any]]) -> None:
    """``<study>/eval.parquet``: earlier rows kept, these added (atomically)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from cjepa.atomic import atomic_write

    path = study / "eval.parquet"
    old = pq.read_table(path).to_pylist() if path.exists() else []
    allrows = old + rows
    keys = list(dict.fromkeys(k for r in allrows for k in r))
    table = pa.Table.from_pylist([{k: r.get(k) for k in keys} for r in allrows])
    atomic_write(path, lambda fh: pq.write_table(table, fh))
    print(f"[cjepa eval] {len(rows)} row(s) added to {path}")
