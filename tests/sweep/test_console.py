"""Tune's console for a study: one quiet table of arm, seed, epoch and the probe metrics; --verbose for all.

Built without Ray: constructing a ``tune.Tuner`` only pickles it into the storage folder; ``ray.init``
is replaced by a tripwire so a test fails instead of starting Ray if anything reaches it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import ray

from cjepa.sweep import Study
from cjepa.sweep.cli import parse_args
from cjepa.sweep.console import METRIC_COLUMNS, cluster_usage_line, console_options, true_usage
from cjepa.sweep.plan import prepare_study
from cjepa.sweep.runner import build_tuner
from cjepa.sweep.study import Space

TINY = str(Path(__file__).with_name("tiny_study.yaml"))


@pytest.fixture
def no_ray(monkeypatch):
    def tripwire(*args, **kwargs):
        raise AssertionError("Ray would start")

    monkeypatch.setattr(ray, "init", tripwire)
    monkeypatch.delenv("RAY_AIR_NEW_OUTPUT", raising=False)  # restored after the test
    monkeypatch.delenv("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", raising=False)
    assert not ray.is_initialized()


def _tiny() -> Study:
    return Study(name="tiny_vicreg", base=TINY, factors={"loss.beta_vicreg": [0.0, 0.01]},
                 baseline="beta_vicreg=0.0", seeds=(0, 1))


def test_quiet_by_default_with_readable_columns(no_ray):
    import os

    options = console_options(_tiny(), verbose=False)
    assert options["verbose"] == 1 and os.environ["RAY_AIR_NEW_OUTPUT"] == "0"  # the table reporter is used
    reporter = options["progress_reporter"]
    assert reporter._metric_columns == METRIC_COLUMNS
    assert METRIC_COLUMNS["knn_target"] == "kNN tgt" and METRIC_COLUMNS["linear_target"] == "lin tgt"
    assert reporter._parameter_columns == {"arm": "arm", "seed": "seed"}
    optuna = Study(name="o", search="optuna", space={"loss.beta_vicreg": Space("loguniform", 1e-5, 1e-2),
                                                      "ema.start": Space("uniform", 0.99, 0.999)})
    assert console_options(optuna, verbose=False)["progress_reporter"]._parameter_columns == {
        "loss.beta_vicreg": "beta_vicreg", "ema.start": "start", "seed": "seed"}


def test_the_eta_counts_epochs_trained_since_this_driver_started():
    from cjepa.sweep.console import StudyClock, duration

    clock = StudyClock(epochs=2, trials=4)  # 8 trial-epochs
    assert clock.epochs_done("RUNNING", {"epoch": 1}) == 1 and clock.epochs_done("TERMINATED", {"epoch": 1}) == 2
    assert clock.epochs_done("PENDING", None) == 0
    assert clock.line([2, 0], now=100.0) == "Study: 2/8 trial-epochs, ETA after the first epoch"  # resumed: 2 done
    assert clock.line([2, 1, 1], now=160.0) == "Study: 4/8 trial-epochs, ETA 2 min"  # 2 epochs a minute, 4 left
    assert clock.line([2, 2, 2, 2], now=400.0) == "Study: 8/8 trial-epochs, done"
    assert [duration(s) for s in (45, 89.6, 720, 7500)] == ["45 s", "90 s", "12 min", "2 h 05 min"]


def test_one_line_per_finished_trial():
    from cjepa.sweep.console import trial_label
    from cjepa.sweep.trial_lines import finished_line

    assert trial_label({"arm": "beta_vicreg=0.01", "seed": 1}) == "beta_vicreg=0.01 s1"
    assert trial_label({"trial": {"arm": "a", "seed": 3}}) == "a s3"  # an --extend trial
    assert trial_label({"optim.lr": 0.000123456, "data.crop_scale": 1, "seed": 0}) == "lr=0.000123, crop_scale=1 s0"
    result = {"epoch": 2, "loss": 0.5123, "knn_target": 0.4, "linear_target": 0.345, "time_total_s": 13.2}
    assert finished_line("a s0", result, 2, 1, 4) == ("trial a s0 finished epoch 2/2: loss 0.512, kNN tgt 0.4, "
                                                      "lin tgt 0.345 (in 13 s; 1/4 trials done)")
    assert finished_line("a s0", {"epoch": 1}, 3, 2, 4) == "trial a s0 stopped early at epoch 1/3 (2/4 trials done)"


def test_verbose_leaves_rays_console_as_it_is(no_ray):
    import os

    assert console_options(_tiny(), verbose=True) == {} and "RAY_AIR_NEW_OUTPUT" not in os.environ
    assert parse_args("t", ["--verbose"]).verbose and not parse_args("t", []).verbose


def test_an_exported_output_setting_wins(no_ray, monkeypatch):
    import os

    monkeypatch.setenv("RAY_AIR_NEW_OUTPUT", "1")
    console_options(_tiny(), verbose=False)
    assert os.environ["RAY_AIR_NEW_OUTPUT"] == "1"


def test_the_tuner_carries_the_reporter_and_ray_stays_off(no_ray, tmp_path):
    tuner = build_tuner(prepare_study(_tiny(), str(tmp_path), False, []))
    run_config = tuner._local_tuner.get_run_config()
    assert run_config.verbose == 1 and run_config.progress_reporter._metric_columns == METRIC_COLUMNS
    from cjepa.sweep.trial_lines import TrialLines

    lines = [c for c in run_config.callbacks if isinstance(c, TrialLines)]
    assert len(lines) == 1 and (lines[0].epochs, lines[0].trials) == (2, 4)  # tiny_study.yaml: 2 epochs; 2 x 2
    assert not ray.is_initialized()
    loud = build_tuner(prepare_study(_tiny(), str(tmp_path / "loud"), False, []), verbose=True)
    assert loud._local_tuner.get_run_config().progress_reporter is None and not ray.is_initialized()


def test_the_cpu_line_is_the_clusters_not_tunes():
    """Two trials' workers on 2 cores: Tune says 0/2 (trials reserve none); the line says 2/2."""
    usage = cluster_usage_line({"CPU": 2.0, "memory": 1e9}, {"CPU": 0.0, "memory": 5e8})
    assert usage == "Resources in use (trial workers): 2/2 CPUs, 0/0 GPUs"
    tune_info = ("Current time: now\nLogical resource usage: 0/2 CPUs, 0/0 GPUs\nResult logdir: x", "more")
    fixed = true_usage(tune_info, usage)
    assert fixed == [f"Current time: now\n{usage}\nResult logdir: x", "more"]
    assert true_usage(tune_info, None) == list(tune_info)  # unknown: Tune's line is kept


def test_index_sampled_choices_are_headed_as_indices(no_ray):
    space = {"data.crop_scale": Space("choice", choices=((0.3, 1.0), (0.6, 1.0))),
             "optim.batch_size": Space("choice", choices=(64, 128))}
    study = Study(name="o", search="optuna", space=space)
    columns = console_options(study, verbose=False)["progress_reporter"]._parameter_columns
    assert columns == {"data.crop_scale": "crop_scale#", "optim.batch_size": "batch_size", "seed": "seed"}


def test_a_local_cluster_gets_no_preemption_watcher(monkeypatch):
    from cjepa.distributed.preflight import PREEMPTION_WATCHER_ENV, quiet_local_cluster

    monkeypatch.delenv(PREEMPTION_WATCHER_ENV, raising=False)
    quiet_local_cluster()
    import os

    assert os.environ[PREEMPTION_WATCHER_ENV] == "0"
    monkeypatch.setenv(PREEMPTION_WATCHER_ENV, "1")  # the user's choice wins
    quiet_local_cluster()
    assert os.environ[PREEMPTION_WATCHER_ENV] == "1"
