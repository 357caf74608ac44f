"""Load: a study of N tiny trials, 2 at a time, on local Ray with a real MLflow store (issue 27, item 4).

Why: a study of hundreds of trials must end with every trial in ``results.parquet`` and in MLflow
exactly once, also after its driver is SIGKILLed and ``--resume``d, and nothing in the driver may
grow faster than the number of trials (Tune's state, the console, the results table, MLflow
look-ups). This runs such a study as a user would (a driver process of its own, a sqlite MLflow
store and the storage in a work dir), samples the driver's RSS (``/proc``, every 0.5 s) against
the trials finished (their MLflow child runs FINISHED: ``cjepa.benchmarking.trials``), and
afterwards counts rows, trials, MLflow runs, metric values and trial starts.

A trial is the tests' tiny digits ViT (``tests/sweep/tiny_study.yaml``), 1 epoch of 256 images,
a 100-image evaluation, no random-init baseline, the raw-pixel baseline cached: 2 arms x N/2 seeds.

    python bench/study_load.py --trials 200 --json runs/bench/load200.json
    python bench/study_load.py --trials 50 --kill-seed 1   # SIGKILL the driver's group at a seeded point, --resume
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from cjepa.benchmarking.machine import machine_info
from cjepa.benchmarking.trials import TrialEnds, trial_starts

REPO = Path(__file__).resolve().parents[1]
TINY = str(REPO / "tests" / "sweep" / "tiny_study.yaml")
NAME = "load"
ARMS = [0.0, 0.01]  # loss.beta_vicreg
OVERRIDES = ("run.epochs=1", "data.train_subset=256", "eval.train_samples=100", "eval.test_samples=100",
             "eval.linear_epochs=2", "eval.random_baseline=false")
PAGE = os.sysconf("SC_PAGE_SIZE")


def make_study(trials: int) -> Any:
    """2 arms x trials/2 seeds of the tiny config, 2 trials at a time (one CPU each)."""
    from cjepa.sweep import Study

    return Study(name=NAME, base=TINY, overrides=OVERRIDES, factors={"loss.beta_vicreg": ARMS},
                 baseline="beta_vicreg=0.0", seeds=tuple(range(trials // len(ARMS))), max_concurrent=2)


def proc(pid: int, name: str) -> str:
    """``/proc/PID/NAME`` as text ("" once the process is gone)."""
    try:
        return Path(f"/proc/{pid}/{name}").read_bytes().decode(errors="replace")
    except OSError:
        return ""


def rss(pid: int) -> int:
    """Resident bytes of one process (0 once it is gone)."""
    fields = proc(pid, "statm").split()
    return int(fields[1]) * PAGE if len(fields) > 1 else 0


def stat(pid: int, field: int) -> str:
    """A field of ``/proc/PID/stat`` after the name (0: state, 1: ppid, 19: start time; "" once gone)."""
    rest = proc(pid, "stat").rsplit(")", 1)
    return rest[1].split()[field] if len(rest) == 2 else ""


def tree(pid: int) -> list[int]:
    """The process and every live descendant (Ray's daemons; the trial actors, children of the raylet
    in sessions of their own, which a ``killpg`` of the driver's group does not reach)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (ppid := stat(int(entry.name), 1)):
            children.setdefault(int(ppid), []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        out.append(todo.pop())
        todo += children.get(out[-1], [])
    return [p for p in out if rss(p)]


class Sampler(threading.Thread):
    """(seconds, driver RSS MiB, its tree's RSS MiB, processes in the tree, trial ends, load average) every 0.5 s."""

    def __init__(self, pid: int, ends: TrialEnds, t0: float) -> None:
        super().__init__(daemon=True)
        self.pid, self.ends, self.t0, self.rows = pid, ends, t0, []
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.5):
            pids = tree(self.pid)
            self.rows.append((round(time.time() - self.t0, 1), rss(self.pid) / 2**20,
                              sum(rss(p) for p in pids) / 2**20, len(pids), self.ends.count(),
                              float(Path("/proc/loadavg").read_text().split()[0])))


def run_driver(work: Path, trials: int, resume: bool, kill_at: tuple[int, float] | None, t0: float
               ) -> tuple[int, Sampler, dict[str, Any]]:
    """One driver process (its own process group); SIGKILL the group after ``kill_at`` = (trials ended,
    extra seconds). Returns its exit code, its samples and what outlived the kill: the seconds until its
    whole process tree was gone, or the processes still alive 5 s after it (``pid cmdline``; then killed)."""
    ends = TrialEnds(f"sqlite:///{work / 'mlflow.db'}", NAME)
    cmd = [sys.executable, __file__, "--driver", str(trials), "--storage", str(work / "results"),
           "--tracking-uri", f"sqlite:///{work / 'mlflow.db'}", f"data.cache_dir={work / 'cache'}",
           *(["--resume"] if resume else [])]
    with (work / f"driver{'-resume' if resume else ''}.log").open("w") as log:
        driver = subprocess.Popen(cmd, cwd=work, env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        sampler = Sampler(driver.pid, ends, t0)
        sampler.start()
        after: dict[str, Any] = {}
        if kill_at is not None:
            while driver.poll() is None and ends.count() < kill_at[0]:
                time.sleep(0.2)
            time.sleep(kill_at[1])
            alive = {p: start for p in tree(driver.pid) if (start := stat(p, 19))}  # a reused pid starts later
            if driver.poll() is None:
                os.killpg(driver.pid, signal.SIGKILL)  # the driver and its group (Ray's daemons), as a crash would
            killed = time.time()
            while alive and time.time() - killed < 5:
                time.sleep(0.25)
                alive = {p: start for p, start in alive.items() if stat(p, 19) == start and stat(p, 0) != "Z"}
            after["gone_after_s"] = round(time.time() - killed, 1)  # pid and process title, or python and script:
            after["alive_after_5s"] = [f"{p} {' '.join(proc(p, 'cmdline').split(chr(0))[:2])}" for p in alive]
            for pid in alive:  # ours, by id (a worker the raylet was still starting took ~26 s to leave by itself)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        rc = driver.wait()
        sampler.done.set()
        sampler.join()
    return rc, sampler, after


def tune_status(study_dir: Path) -> dict[str, str]:
    """Trial name (``<study>-<arm>-s<seed>``) -> status in Tune's newest saved experiment state."""
    from cjepa.sweep.naming import trial_dir_name

    states = sorted(study_dir.glob("experiment_state-*.json"))
    trials = [json.loads(t) for t, _ in json.loads(states[-1].read_text())["trial_data"]] if states else []
    return {trial_dir_name(NAME, t["config"]["arm"], int(t["config"]["seed"])): t["status"] for t in trials}


def count(work: Path, trials: int, finished_at_kill: set[str]) -> dict[str, Any]:
    """Rows, trials, MLflow runs and metric values, trial starts: each must be exactly once."""
    import pyarrow.parquet as pq
    from mlflow.tracking import MlflowClient

    from cjepa.sweep.naming import trial_dir_name

    expected = {(f"beta_vicreg={a}", s) for a in ARMS for s in range(trials // len(ARMS))}
    study_dir = work / "results" / NAME
    rows = pq.read_table(study_dir / "results.parquet").to_pylist()
    keys, client = [(r["arm"], r["seed"], r["epoch"]) for r in rows], MlflowClient(f"sqlite:///{work / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name(NAME).experiment_id], max_results=50000)
    parents = [r for r in runs if r.data.tags.get("cjepa.role") == "study"]
    children = [r for r in runs if "arm" in r.data.tags]
    per_child = [(r.data.tags["arm"], int(r.data.tags["seed"])) for r in children]
    steps = [[m.step for m in client.get_metric_history(r.info.run_id, "loss")] for r in children]
    starts = [s["trial"] for s in trial_starts(study_dir)]
    ended_once = {trial_dir_name(NAME, a, s) for a, s in expected}
    return {
        "rows": len(rows), "distinct_trials": len({k[:2] for k in keys}),
        "duplicate_rows": len(keys) - len(set(keys)), "missing_trials": len(expected - {k[:2] for k in keys}),
        "not_completed": sum(r["status"] != "COMPLETED" for r in rows),
        "rows_without_mlflow_id": sum(not r["mlflow_run_id"] for r in rows),
        "mlflow_parents": len(parents), "parent_finished": all(p.info.status == "FINISHED" for p in parents),
        "mlflow_children": len(children), "mlflow_duplicate_children": len(per_child) - len(set(per_child)),
        "mlflow_missing_children": len(expected - set(per_child)),
        "mlflow_children_not_finished": sum(r.info.status != "FINISHED" for r in children),
        "children_not_one_value_per_epoch": sum(s != [1] for s in steps),
        "trial_starts": len(starts), "trials_started_twice": sum(starts.count(t) > 1 for t in ended_once),
        "finished_at_kill": len(finished_at_kill),
        "finished_at_kill_started_again": sum(starts.count(t) > 1 for t in finished_at_kill),
    }


def slope(xs: list[float], ys: list[float]) -> float | None:
    """Least-squares slope of ys on xs (None for fewer than 2 distinct xs)."""
    return statistics.linear_regression(xs, ys).slope if len(set(xs)) > 1 else None


def memory(samples: list[tuple]) -> dict[str, Any]:
    """One driver's RSS: at its first and last trial end (after imports and Tune's start, before the
    results table), its peak, and its growth per 100 trials ended in between (least squares)."""
    live = [s for s in samples if s[1] > 0]
    if not live or live[0][4] == live[-1][4]:
        return {}
    first, last = live[0][4] + 1, live[-1][4]
    mid = [s for s in live if first <= s[4] < last] + [s for s in live if s[4] == last][:1]
    grow = slope([s[4] for s in mid], [s[1] for s in mid])
    return {"rss_mib_first_end": round(mid[0][1], 1), "rss_mib_last_end": round(mid[-1][1], 1),
            "rss_mib_peak": round(max(s[1] for s in live), 1),
            "rss_mib_per_100_trials": None if grow is None else round(100 * grow, 1)}


def growth(work: Path, samples: list[tuple], t0: float, t_end: float) -> dict[str, Any]:
    """Per-trial times against trials finished (means by quarter, least-squares growth per 100 trials);
    ``after_last_trial_s``: the driver's results table, summary and MLflow parent."""
    ends = sorted(TrialEnds(f"sqlite:///{work / 'mlflow.db'}", NAME).ends().items(), key=lambda e: e[1])
    starts = trial_starts(work / "results" / NAME)
    per_trial, gaps = [], []
    for trial, end in ends:
        per_trial.append(end - max(s["time"] for s in starts if s["trial"] == trial and s["time"] <= end))
    end_times = [end for _, end in ends]
    for s in sorted(x["time"] for x in starts):
        earlier = [t for t in end_times if t < s]
        if earlier:
            gaps.append(s - max(earlier))
    q = max(len(per_trial) // 4, 1)

    def quarters(values: list[float]) -> list[float]:
        return [round(sum(v) / len(v), 2) for v in (values[i * q:(i + 1) * q] for i in range(4)) if v]

    def per_100(values: list[float]) -> float | None:
        grow = slope(list(range(len(values))), values)
        return None if grow is None else round(100 * grow, 2)

    between = [b - a for a, b in zip(end_times, end_times[1:])]
    n = len(per_trial)
    return {"wall_s": round(t_end - t0, 1), "trial_end_records": n, "wall_per_trial_s": round((t_end - t0) / n, 2),
            "trial_s_by_quarter": quarters(per_trial), "trial_s_per_100_trials": per_100(per_trial),
            "between_trial_ends_s_by_quarter": quarters(between), "between_ends_s_per_100_trials": per_100(between),
            "launch_gap_s_by_quarter": quarters(gaps), "launch_gap_s_per_100_trials": per_100(gaps),
            "tree_peak_rss_mib": round(max((s[2] for s in samples), default=0), 1),
            "tree_processes_max": max((s[3] for s in samples), default=0),
            "load_average_mean": round(sum(s[5] for s in samples) / max(len(samples), 1), 2),
            "after_last_trial_s": round(t_end - end_times[-1], 1) if end_times else None}


def main() -> int:
    if sys.argv[1:2] == ["--driver"]:  # the study's own driver process (what `python sweeps/X.py` is)
        from cjepa.sweep.cli import main as study_main

        return study_main(lambda full: make_study(int(sys.argv[2])), __doc__, sys.argv[3:])
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--trials", type=int, default=200, help="trials (even: 2 arms x trials/2 seeds)")
    p.add_argument("--kill-seed", type=int, help="SIGKILL the driver's group after a seeded number of trials")
    p.add_argument("--keep", help="work dir (storage, MLflow store, logs); default a temp dir")
    p.add_argument("--json", help="write the figures here")
    a = p.parse_args()
    if a.trials < 2 or a.trials % 2:
        p.error("--trials must be an even number >= 2")
    work = Path(a.keep or tempfile.mkdtemp(prefix="cjepa-load-")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    from mlflow.tracking import MlflowClient

    MlflowClient(f"sqlite:///{work / 'mlflow.db'}").search_experiments()  # one process migrates the store
    machine = machine_info(("pyarrow",))
    kill_at = None
    if a.kill_seed is not None:
        rng = random.Random(a.kill_seed)
        kill_at = (rng.randint(max(a.trials // 4, 1), max(3 * a.trials // 4, 1)), round(rng.uniform(0, 3), 2))
    t0 = time.time()
    rc, first, left = run_driver(work, a.trials, False, kill_at, t0)
    samples, finished_at_kill = list(first.rows), set()
    drivers = [{"rc": rc, "wall_s": round(time.time() - t0, 1), **memory(first.rows)}]
    if kill_at is not None:
        status = tune_status(work / "results" / NAME)
        finished_at_kill = {t for t, s in status.items() if s == "TERMINATED"}
        drivers[0].update(killed_after_trials=kill_at[0], extra_s=kill_at[1], **left,
                          ended_at_kill=TrialEnds(f"sqlite:///{work / 'mlflow.db'}", NAME).count(),
                          terminated_in_tune_state=len(finished_at_kill))
        t1 = time.time()
        rc, second, _ = run_driver(work, a.trials, True, None, t0)
        samples += second.rows
        drivers.append({"rc": rc, "wall_s": round(time.time() - t1, 1), **memory(second.rows)})
    t_end = time.time()
    if rc != 0:
        print(f"driver failed with exit code {rc}; log in {work}")
        return rc
    figures = {"trials": a.trials, "work": str(work), "load_before": machine["load_avg"], "drivers": drivers,
               **growth(work, samples, t0, t_end), **count(work, a.trials, finished_at_kill)}
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps({**figures, "machine": machine, "samples": samples}, indent=1))
    width = max(len(k) for k in figures)
    for key, value in figures.items():
        print(f"{key:<{width}}  {value}")
    bad = [k for k in ("duplicate_rows", "missing_trials", "not_completed", "rows_without_mlflow_id",
                       "mlflow_duplicate_children", "mlflow_missing_children", "mlflow_children_not_finished",
                       "children_not_one_value_per_epoch", "finished_at_kill_started_again") if figures[k]]
    bad += [] if figures["mlflow_parents"] == 1 and figures["parent_finished"] else ["mlflow_parents"]
    print("every trial once: " + ("yes" if not bad else f"NO ({', '.join(bad)})"))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
