"""Nothing hangs, nothing confuses (issue 27), table-driven beside ``test_bad_input.py``: a Ray or
MLflow address with nothing behind it, ``--resume`` where there is no study, a damaged results
table under ``cjepa report``, ``eval.knn_k`` above the kNN bank: each is ONE line, exit status 2,
no traceback, and never reaches ``ray.init`` (a tripwire). Options and ``key=value`` overrides are
taken in any order. ``{d}`` is the scratch folder, ``{r}`` the case's run folder, ``{port}`` a local port
nothing listens on.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import TINY
from tests.test_bad_input import _one_line, _vicreg_coeff

ROOT = Path(__file__).resolve().parents[1]
TRAIN = ["train", "--no-mlflow", "run.output_dir={r}"]
CJEPA = [  # (id, env, argv of `cjepa`, words the one line must contain)
    ("ray-address-down", {"RAY_ADDRESS": "127.0.0.1:{port}"}, ["train", "--workers", "2", "--no-mlflow"],
     ["no Ray cluster answers at 127.0.0.1:", "Connection refused", "is a cluster running there?",
      "ray status --address 127.0.0.1:"]),
    ("ray-client-address-down", {"RAY_ADDRESS": "ray://127.0.0.1:{port}"}, ["train", "--workers", "1", "--no-mlflow"],
     ["no Ray cluster answers at ray://127.0.0.1:"]),
    ("address-flag-down", {}, ["train", "--workers", "2", "--address", "127.0.0.1:{port}", "--no-mlflow"],
     ["no Ray cluster answers at 127.0.0.1:", "RAY_ADDRESS / --address"]),
    ("address-without-workers", {}, [*TRAIN, "--address", "127.0.0.1:{port}"],
     ["--address names the Ray cluster of --workers N"]),
    ("mlflow-server-down", {}, ["train", "--tracking-uri", "http://127.0.0.1:{port}", "run.output_dir={r}"],
     ["tracking server http://127.0.0.1:", "cannot be reached", "is an mlflow server running there?"]),
    ("mlflow-env-server-down", {"MLFLOW_TRACKING_URI": "http://127.0.0.1:{port}"}, ["train", "run.output_dir={r}"],
     ["tracking server http://127.0.0.1:", "--no-mlflow"]),
    ("report-damaged-table", {}, ["report", "--study", "{d}/damaged", "--no-mlflow"],
     ["damaged/results.parquet cannot be read", "ArrowInvalid", "rerun the study with --resume"]),
    ("knn-k-above-train-samples", {}, ["config", "eval.train_samples=10", "eval.knn_k=20"],
     ["eval.knn_k=20 exceeds the kNN bank of 10 training images (eval.train_samples=10)", "eval.knn_k <= 10"]),
    ("knn-k-above-train-subset", {}, ["config", "data.train_subset=15", "eval.knn_k=20"],
     ["eval.knn_k=20 exceeds the kNN bank of 15 training images (data.train_subset=15)"]),
    ("knn-k-above-the-split", {}, [*TRAIN, *TINY, "eval.every=1", "eval.train_samples=5000", "eval.knn_k=1600"],
     ["eval.knn_k=1600 exceeds the kNN bank: the train split of digits gives 1500 images"]),
    ("overrides-anywhere-still-checked", {}, ["config", "run.epochs=2", "-c", "cjepa_fmnist_cpu", "oops"],
     ["'oops'", "expected key=value"]),
]
SWEEP = [  # (id, env, flags of `sweeps/vicreg_coeff.py --storage {d}/storage` (no --dry-run: a real start), words)
    ("resume-nothing-there", {}, ["--resume"],
     ["study 'vicreg_coeff': nothing to resume in", "/storage/vicreg_coeff", "check --storage and --name",
      "run it first without --resume (nothing was started)"]),
    ("resume-nothing-there-dry-run", {}, ["--resume", "--dry-run"], ["nothing to resume in"]),
    ("study-ray-address-down", {"RAY_ADDRESS": "127.0.0.1:{port}"}, ["--no-mlflow"],
     ["no Ray cluster answers at 127.0.0.1:", "ray status --address"]),
    ("study-address-flag-down", {}, ["--address", "127.0.0.1:{port}"], ["no Ray cluster answers at 127.0.0.1:"]),
    ("study-mlflow-server-down", {}, ["--tracking-uri", "http://127.0.0.1:{port}"],
     ["tracking server http://127.0.0.1:", "cannot be reached"]),
]


def closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(autouse=True)
def _no_ray(monkeypatch):
    import ray

    def tripwire(*args, **kwargs):
        raise AssertionError("this bad input reached ray.init()")

    monkeypatch.setattr(ray, "init", tripwire)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("hangs")
    (d / "damaged").mkdir()
    (d / "damaged" / "results.parquet").write_bytes(b"PAR1 half a table, cut off by a full disk")
    return d


def _fill(items: list[str], d: Path, port: int, run: Path | None = None) -> list[str]:
    return [a.replace("{d}", str(d)).replace("{r}", str(run)).replace("{port}", str(port)) for a in items]


SLOW = {"knn-k-above-the-split"}  # builds the model and loads the split (~10 s on a busy 2-core machine)


CASES = [pytest.param(*c[1:], id=c[0], marks=[pytest.mark.integration] * (c[0] in SLOW)) for c in CJEPA]


@pytest.mark.parametrize("env,argv,words", CASES)
def test_cjepa_command(env, argv, words, scratch, tmp_path, capsys, monkeypatch):
    from cjepa.cli import main

    port, run = closed_port(), tmp_path / "run"
    for key, value in env.items():
        monkeypatch.setenv(key, value.replace("{port}", str(port)))
    t0 = time.monotonic()
    try:
        code = main(_fill(argv, scratch, port, run))
    except SystemExit as exc:
        code = exc.code
    assert code == 2 and time.monotonic() - t0 < 30
    assert _one_line(capsys.readouterr().err, words).startswith("cjepa")
    assert not (run / "checkpoint.pt").exists() and not (run / "metrics.jsonl").exists()  # nothing trained


@pytest.mark.parametrize("env,flags,words", [c[1:] for c in SWEEP], ids=[c[0] for c in SWEEP])
def test_study_command(env, flags, words, scratch, capsys, monkeypatch):
    from cjepa.sweep.cli import main

    module, port = _vicreg_coeff(), closed_port()
    for key, value in env.items():
        monkeypatch.setenv(key, value.replace("{port}", str(port)))
    storage = scratch / "storage"
    assert main(module.make_study, module.__doc__, ["--storage", str(storage), *_fill(flags, scratch, port)]) == 2
    _one_line(capsys.readouterr().err, words)
    assert not (storage / "vicreg_coeff").exists()  # no study folder, no Tune state, no MLflow parent run


ORDER = [  # (id, argv, the overrides it must give, other attributes it must set)
    ("cjepa-option-between", ["train", "a.b=1", "--no-mlflow", "c.d=2"], ["a.b=1", "c.d=2"], {"no_mlflow": True}),
    ("cjepa-options-around", ["train", "--workers", "2", "a.b=1", "-c", "x", "c.d=2"], ["a.b=1", "c.d=2"],
     {"workers": 2, "config": "x"}),
    ("cjepa-option-value-kept", ["train", "--run-name", "lr=0.1", "a.b=1"], ["a.b=1"], {"run_name": "lr=0.1"}),
    ("cjepa-config", ["config", "a.b=1", "-c", "p", "c.d=2"], ["a.b=1", "c.d=2"], {"config": "p"}),
    ("sweep-seeds-then-override", ["--seeds", "0", "1", "run.epochs=2", "--no-mlflow", "optim.lr=0.1"],
     ["run.epochs=2", "optim.lr=0.1"], {"seeds": [0, 1], "no_mlflow": True}),
    ("sweep-name-value-kept", ["run.epochs=2", "--name", "a=b"], ["run.epochs=2"], {"name": "a=b"}),
]


@pytest.mark.parametrize("argv,overrides,attrs", [c[1:] for c in ORDER], ids=[c[0] for c in ORDER])
def test_options_and_overrides_in_any_order(argv, overrides, attrs):
    """Hydra-style: ``cjepa train a=b --no-mlflow c=d`` (was: ``unrecognized arguments: c=d``)."""
    if argv[0] in ("train", "config"):
        from cjepa.cli import make_parser

        args = make_parser(data_options=False).parse_args(argv)
    else:
        from cjepa.sweep.cli import parse_args

        args = parse_args("t", argv)
    assert args.overrides == overrides
    for key, value in attrs.items():
        assert getattr(args, key) == value, key


def test_overrides_anywhere_reach_the_config(capsys):
    from cjepa.cli import main

    assert main(["config", "run.epochs=3", "-c", "cjepa_fmnist_cpu", "loss.beta_vicreg=0.02"]) == 0
    out = capsys.readouterr().out
    assert "  epochs: 3\n" in out and "  beta_vicreg: 0.02\n" in out


@pytest.mark.integration
@pytest.mark.parametrize("argv", [["-m", "cjepa", "train", "--workers", "2", "--no-mlflow", "run.output_dir={r}"],
                                  ["sweeps/vicreg_coeff.py", "--no-mlflow", "--storage", "{d}/s"]],
                         ids=["cjepa-train-workers", "study-script"])
def test_unreachable_ray_in_a_real_process_is_one_line_in_seconds(argv, tmp_path):
    """The issue's command as a user types it: was still waiting after 2 minutes."""
    env = {**os.environ, "RAY_ADDRESS": f"127.0.0.1:{closed_port()}"}
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, *_fill(argv, tmp_path, 0, tmp_path / "r")], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    took = time.monotonic() - t0
    assert proc.returncode == 2 and took < 30, (took, proc.stderr[-2000:])
    _one_line(proc.stderr, ["no Ray cluster answers at " + env["RAY_ADDRESS"], "ray status --address"])
    assert not (tmp_path / "r").exists() and not (tmp_path / "s" / "vicreg_coeff").exists()
