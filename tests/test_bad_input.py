"""Bad input, table-driven: config files, dotted overrides, study definitions, every sweep flag, data
folders and Parquet shards, the CLI. Each case exits with status 2 and ONE line naming what is wrong
and what is expected, no traceback, and never reaches Ray (a tripwire on ``ray.init`` fails the test).

``tests/test_cli_errors.py`` holds the first 25 ``cjepa train`` / ``cjepa config`` cases; none is
repeated here. ``{d}`` in an argument is the case's scratch folder (files made by ``scratch``).
"""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cjepa.sweep import Space, Study

ROOT = Path(__file__).resolve().parents[1]

CONVERT = ["data", "convert", "{d}/imgs", "{d}/o"]
PARQUET = ["train", "--no-mlflow", "data.dataset=parquet", "run.output_dir={d}/r"]
WORKERS = ["train", "--workers", "1", "--no-mlflow", "run.output_dir={d}/w"]  # Ray Train flags, checked before Ray
CJEPA = [  # (id, argv of `cjepa`, words the one line must contain)
    ("yaml-section-not-mapping", ["config", "-c", "{d}/section.yaml"], ["section 'loss'", "mapping of keys"]),
    ("yaml-top-level-list", ["config", "-c", "{d}/list.yaml"], ["expected a mapping of sections, got list"]),
    ("yaml-base-loop", ["config", "-c", "{d}/loop.yaml"], ["'base' chain loops back to itself"]),
    ("yaml-base-not-a-name", ["config", "-c", "{d}/basenum.yaml"], ["'base' must be a file name, got 3"]),
    ("yaml-base-missing", ["config", "-c", "{d}/basemiss.yaml"], ["nothere.yaml: not found"]),
    ("yaml-nan", ["config", "-c", "{d}/nan.yaml"], ["loss.beta_vicreg: expected a finite number, got nan"]),
    ("yaml-inf", ["config", "-c", "{d}/inf.yaml"], ["optim.lr: expected a finite number, got inf"]),
    ("yaml-binary", ["config", "-c", "{d}/binary.yaml"], ["binary.yaml", "cannot be read as UTF-8 YAML text"]),
    ("yaml-is-a-folder", ["config", "-c", "{d}"], ["is a folder; expected a YAML file or a preset name"]),
    ("unknown-preset", ["config", "-c", "nopreset"], ["--config nopreset", "presets are", "cjepa_fmnist_cpu"]),
    ("override-nan", ["config", "loss.beta_vicreg=nan"], ["loss.beta_vicreg: expected a finite number, got 'nan'"]),
    ("override-minus-inf", ["config", "optim.lr=-inf"], ["optim.lr: expected a finite number"]),
    ("override-overflow", ["config", "optim.lr=1e309"], ["optim.lr: expected a finite number, got '1e309'"]),
    ("override-nan-in-list", ["config", "mask.target_scale=[0.1,.nan]"], ["mask.target_scale", "finite number"]),
    ("override-inf-int", ["config", "run.epochs=.inf"], ["run.epochs: expected an integer"]),
    ("override-fraction-int", ["config", "model.depth=2.5"], ["model.depth: expected an integer, got 2.5"]),
    ("override-hflip-range", ["config", "data.hflip=1.5"], ["data.hflip", "[0.0, 1.0]", "1.5"]),
    ("override-zero-epochs", ["config", "run.epochs=0"], ["run.epochs: expected a positive value, got 0"]),
    ("override-attention", ["config", "run.attention=flash"], ["run.attention", "auto, sdpa, math", "'flash'"]),
    ("override-encoder", ["config", "eval.encoders=[student]"], ["eval.encoders", "target, context", "'student'"]),
    ("override-pooling", ["config", "eval.poolings=[mean,grid99]"], ["'grid99'", "1 <= K <= 7"]),
    ("override-betas-length", ["config", "optim.betas=[0.9]"], ["optim.betas: expected 2 values"]),
    ("override-no-key", ["config", "=3"], ["'=3'", "expected key=value"]),
    ("override-three-parts", ["config", "loss.a.b=1"], ["'loss.a.b'", "section.key"]),
    ("override-empty-output", ["config", "run.output_dir="], ["run.output_dir: expected a string"]),
    ("abbrev-config", ["config", "--conf", "x"], ["unrecognized arguments: --conf"]),
    ("abbrev-workers", ["train", "--work", "2"], ["unrecognized arguments: --work"]),
    ("unknown-command", ["frobnicate"], ["invalid choice: 'frobnicate'"]),
    ("unknown-data-command", ["data", "conv", "a", "b"], ["invalid choice: 'conv'", "convert"]),
    ("output-dir-uncreatable", ["train", "--no-mlflow", "run.output_dir=/proc/cjepa/run"],
     ["run.output_dir=/proc/cjepa/run: cannot be created or written", "expected a writable directory"]),
    ("output-dir-is-a-file", ["train", "--no-mlflow", "run.output_dir={d}/list.yaml/run"],
     ["run.output_dir=", "cannot be created or written (Not a directory)"]),
    ("tracking-file-store", ["train", "--tracking-uri", "file:./mlruns"], ["unsupported scheme 'file'", "sqlite"]),
    ("ui-port-range", ["ui", "--port", "99999"], ["--port must be in 1..65535, got 99999"]),
    ("ui-workers", ["ui", "--workers", "0"], ["--workers must be >= 1", "got 0"]),
    ("ui-on-a-server", ["ui", "--tracking-uri", "http://127.0.0.1:1"], ["is already a server", "sqlite"]),
    ("convert-shard-size", [*CONVERT, "--shard-size", "0"], ["--shard-size must be >= 1"]),
    ("convert-jpeg-quality", [*CONVERT, "--format", "jpeg", "--jpeg-quality", "0"],
     ["--jpeg-quality must be in 1..100", "got 0"]),
    ("convert-resize", [*CONVERT, "--resize", "0"], ["--resize must be", ">= 1", "got 0"]),
    ("convert-seed", [*CONVERT, "--seed", "-1"], ["--seed must be >= 0, got -1"]),
    ("convert-format", [*CONVERT, "--format", "gif"], ["invalid choice: 'gif'"]),
    ("convert-keep-resize", [*CONVERT, "--format", "keep", "--resize", "8"],
     ["--resize needs --format png or jpeg"]),
    ("convert-out-uncreatable", ["data", "convert", "{d}/imgs", "/proc/cjepa/out"],
     ["/proc/cjepa", "expected a readable SRC and a writable OUT folder"]),
    ("convert-out-is-a-file", ["data", "convert", "{d}/imgs", "{d}/list.yaml"], ["list.yaml: File exists"]),
    ("convert-src-missing", ["data", "convert", "{d}/nothere", "{d}/o"], ["nothere: not a folder", "sub-folder"]),
    ("convert-src-empty", ["data", "convert", "{d}/empty", "{d}/o"], ["no .png/.jpg/.jpeg files in class sub-folders"]),
    ("convert-corrupt-image", ["data", "convert", "{d}/badimgs", "{d}/o"], ["bad.png: not a readable image"]),
    ("convert-unknown-builtin", ["data", "convert", "builtin:cifar", "{d}/o"], ["builtin:cifar: unknown", "digits"]),
    ("convert-out-holds-shards", [*CONVERT[:3], "{d}/shards"], ["already holds shards", "--overwrite"]),
    ("shards-no-root", PARQUET, ["data.dataset=parquet needs data.root", "cjepa data convert"]),
    ("shards-no-manifest", [*PARQUET, "data.root={d}/empty"], ["cannot read manifest.json", "cjepa data convert"]),
    ("shards-checksum", [*PARQUET, "data.root={d}/tampered", "optim.batch_size=4", "data.val_samples=0"],  # 4 images
     ["shard-00000.parquet is corrupt", "sha256"]),
    ("train-workers-zero", [*WORKERS[:2], "0", *WORKERS[3:]], ["--workers must be >= 1, got 0"]),
    ("train-max-failures", [*WORKERS, "--max-failures", "-2"], ["--max-failures must be >= 0 (or -1", "got -2"]),
    ("train-gpus-negative", [*WORKERS, "--gpus-per-worker", "-1"], ["--gpus-per-worker must be a finite number > 0",
                                                                    "got -1"]),
    ("train-gpus-nan", [*WORKERS, "--gpus-per-worker", "nan"], ["--gpus-per-worker", "got nan"]),
]

SWEEP = [  # (id, flags after `sweeps/vicreg_coeff.py --dry-run --storage {d}/results`, words)
    ("abbrev-seed", ["--seed", "3"], ["unrecognized arguments: --seed"]),
    ("abbrev-max", ["--max-conc", "2"], ["unrecognized arguments: --max-conc"]),
    ("seeds-negative", ["--seeds", "-1"], ["seeds must be integers >= 0, got [-1]"]),
    ("seeds-repeated", ["--seeds", "0", "0"], ["seeds must be distinct", "[0, 0]"]),
    ("seeds-none", ["--seeds"], ["--seeds: expected at least one argument"]),
    ("seeds-not-int", ["--seeds", "x"], ["--seeds: invalid int value: 'x'"]),
    ("max-concurrent-zero", ["--max-concurrent", "0"], ["max_concurrent (--max-concurrent) must be an integer >= 1"]),
    ("max-concurrent-negative", ["--max-concurrent", "-2"], ["(--max-concurrent) must be an integer >= 1, got -2"]),
    ("workers-zero", ["--workers-per-trial", "0"], ["workers_per_trial (--workers-per-trial) must be an integer >= 1"]),
    ("trial-runner-unknown", ["--trial-runner", "fork"], ["--trial-runner: invalid choice: 'fork'"]),
    ("trial-runner-actor-ddp", ["--trial-runner", "actor", "--workers-per-trial", "2"],
     ["trial_runner 'actor' trains one CPU worker", "workers_per_trial=2", "'ray_train'"]),
    ("storage-empty", ["--storage", ""], ["--storage: must not be empty"]),
    ("storage-unwritable", ["--storage", "/proc/cjepa"], ["storage path /proc/cjepa cannot be written", "--storage"]),
    ("tracking-empty", ["--tracking-uri", " "], ["--tracking-uri: must not be empty"]),
    ("tracking-and-no-mlflow", ["--no-mlflow", "--tracking-uri", "sqlite:///x.db"], ["contradict each other"]),
    ("name-with-slash", ["--name", "a/b"], ["name must be 1-100 letters, digits"]),
    ("quick-and-full", ["--quick", "--full"], ["not allowed with argument"]),
    ("override-swept-key", ["loss.beta_vicreg=0.5"], ["loss.beta_vicreg is a factor of the study", "dropped"]),
    ("override-seed", ["run.seed=3"], ["run.seed=3", "--seeds"]),
    ("override-output-dir", ["run.output_dir=/tmp/x"], ["run.output_dir", "--storage"]),
    ("override-unknown", ["loss.beta_vicregg=1"], ["unknown key 'loss.beta_vicregg'"]),
    ("override-nan", ["optim.lr=nan"], ["optim.lr: expected a finite number"]),
    ("study-exists", [], ["already has results", "--resume", "--name NEW"]),
]

_QUICK = dict(name="t", base="cjepa_fmnist_quick", factors={"loss.beta_vicreg": [0.0, 0.001]}, seeds=(0,))
STUDIES = [  # (id, Study fields that differ from a valid study, words)
    ("name-space", {"name": "my study"}, ["name must be"]),
    ("seeds-bool", {"seeds": (True,)}, ["seeds must be integers >= 0"]),
    ("grace-period", {"grace_period": 0}, ["grace_period must be an integer >= 1, got 0"]),
    ("collapse-std-nan", {"collapse_std": math.nan}, ["collapse_std must be a finite number >= 0"]),
    ("cpus-zero", {"cpus_per_worker": 0.0}, ["cpus_per_worker must be a finite number > 0"]),
    ("max-failures-negative", {"max_failures": -1}, ["max_failures must be an integer >= 0, got -1"]),
    ("trial-runner-unknown", {"trial_runner": "thread"}, ["trial_runner (--trial-runner) must be one of auto, actor, "
                                                           "ray_train, got 'thread'"]),
    ("space-inf", {"search": "optuna", "factors": {}, "space": {"optim.lr": Space("loguniform", 1e-4, math.inf)}},
     ["space 'optim.lr'", "0 < low < high"]),
    ("overrides-fix-a-factor", {"overrides": ("loss.beta_vicreg=0.1",)}, ["the study's overrides", "is a factor"]),
    ("seed-as-factor", {"factors": {"run.seed": [1, 2]}}, ["run.seed cannot be a factor", "--seeds"]),
]


@pytest.fixture(autouse=True)
def _no_ray(monkeypatch):
    import ray

    def tripwire(*args, **kwargs):
        raise AssertionError("this bad input reached ray.init()")

    monkeypatch.setattr(ray, "init", tripwire)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("bad")
    files = {"section.yaml": "loss: 3\n", "list.yaml": "- a\n- b\n", "loop.yaml": "base: loop.yaml\n",
             "basenum.yaml": "base: 3\n", "basemiss.yaml": "base: nothere.yaml\n",
             "nan.yaml": "loss:\n  beta_vicreg: .nan\n", "inf.yaml": "optim:\n  lr: .inf\n"}
    for name, text in files.items():
        (d / name).write_text(text)
    (d / "binary.yaml").write_bytes(b"\xff\xfe\x00bad")
    for folder, names in (("imgs/a", ["0", "1"]), ("imgs/b", ["0", "1"]), ("badimgs/a", ["0"]), ("empty/a", [])):
        (d / folder).mkdir(parents=True)
        for n in names:
            Image.fromarray(np.full((8, 8), 40 * int(n), np.uint8)).save(d / folder / f"{n}.png")
    (d / "badimgs" / "a" / "bad.png").write_bytes(b"not a png")
    from cjepa.data.convert import convert

    convert(str(d / "imgs"), d / "shards")
    for split in ("train", "test"):  # shards whose bytes no longer match the manifest's sha256
        convert(str(d / "imgs"), d / "tampered" / split)
        shard = d / "tampered" / split / "shard-00000.parquet"
        data = bytearray(shard.read_bytes())
        data[len(data) // 2] ^= 0xFF
        shard.write_bytes(bytes(data))
    (d / "results" / "vicreg_coeff").mkdir(parents=True)
    (d / "results" / "vicreg_coeff" / "summary.md").write_text("an earlier study\n")
    return d


def _one_line(err: str, words: list[str]) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and ": error: " in lines[0] and "Traceback" not in err, err
    for word in words:
        assert word in lines[0], (word, lines[0])
    return lines[0]


@pytest.mark.parametrize("argv,words", [c[1:] for c in CJEPA], ids=[c[0] for c in CJEPA])
def test_cjepa_command(argv, words, scratch, capsys):
    from cjepa.cli import main

    try:
        code = main([a.replace("{d}", str(scratch)) for a in argv])
    except SystemExit as exc:  # argparse usage errors
        code = exc.code
    assert code == 2
    assert _one_line(capsys.readouterr().err, words).startswith("cjepa")


def _vicreg_coeff():
    import importlib.util

    spec = importlib.util.spec_from_file_location("vicreg_coeff", ROOT / "sweeps" / "vicreg_coeff.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("flags,words", [c[1:] for c in SWEEP], ids=[c[0] for c in SWEEP])
def test_sweep_flag(flags, words, scratch, capsys):
    from cjepa.sweep.cli import main

    module = _vicreg_coeff()
    argv = ["--dry-run", "--storage", str(scratch / "results"), *flags]
    if flags:
        argv += ["--name", "vicreg_fresh"] if "--name" not in flags else []
    try:
        code = main(module.make_study, module.__doc__, argv)
    except SystemExit as exc:
        code = exc.code
    assert code == 2
    _one_line(capsys.readouterr().err, words)


@pytest.mark.parametrize("fields,words", [c[1:] for c in STUDIES], ids=[c[0] for c in STUDIES])
def test_study_definition(fields, words, scratch, capsys):
    from cjepa.sweep.cli import main

    assert main(lambda full: Study(**{**_QUICK, **fields}), "t", ["--dry-run", "--storage", str(scratch)]) == 2
    _one_line(capsys.readouterr().err, words)


@pytest.mark.integration
@pytest.mark.parametrize("argv,words", [
    (["sweeps/vicreg_coeff.py", "--dry-run", "--seeds", "-1"], ["seeds must be integers >= 0"]),
    (["-m", "cjepa", "config", "loss.beta_vicreg=.inf"], ["loss.beta_vicreg: expected a finite number"]),
], ids=["sweep-script", "cjepa-module"])
def test_the_real_commands_print_one_line(argv, words, tmp_path):
    proc = subprocess.run([sys.executable, *argv], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""
    _one_line(proc.stderr, words)


CLUSTER = [  # (id, change to docs/cluster-local.yaml, first line of Ray's schema error)
    ("idle-timeout-negative", {"idle_timeout_minutes": -1}, "-1 is less than the minimum of 0"),
    ("cluster-name-type", {"cluster_name": 3}, "3 is not of type 'string'"),
    ("head-ip-missing", {"provider": {"type": "local", "head_ip": None, "worker_ips": []}},
     "None is not of type 'string'"),
]


@pytest.mark.parametrize("change,first_line", [c[1:] for c in CLUSTER], ids=[c[0] for c in CLUSTER])
def test_cluster_yaml(change, first_line):
    """No cjepa command reads the cluster file (``ray up`` does): these pin what Ray's own offline
    validation (the one ``ray up`` runs, see test_cluster_yaml.py) says about a bad value."""
    import jsonschema
    import yaml
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = {**yaml.safe_load((ROOT / "docs" / "cluster-local.yaml").read_text()), **change}
    with pytest.raises(jsonschema.ValidationError) as err:
        validate_config(prepare_config(config))
    assert str(err.value).splitlines()[0] == first_line
