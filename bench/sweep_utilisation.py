"""How well a study uses the machine: wall time, CPU utilisation and per-trial start-up share.

Why: on a 2-core laptop a quick study is mostly fixed costs unless trials overlap well. This
runs one study script exactly as a user would (``python sweeps/<study>.py`` in a fresh process,
its own storage and sqlite MLflow store in a temporary directory), samples the machine's CPU
counters once a second, and afterwards splits every trial's wall time (from its start in the
runner's ``trial_starts.jsonl`` to its end, the finish of its MLflow child run:
``cjepa.benchmarking.trials``) into

- training steps (the engine's ``epoch_time_s``, summed over epochs),
- evaluation (``eval_time_s``: kNN + linear probe + collapse metrics),
- everything else = start-up, waiting for resources and tear-down (Tune launching the trial function, the Ray Train
  controller, worker processes importing torch, data and model set-up, the gloo group,
  checkpoint copies into storage, reports) -- the "start-up share".

CPU utilisation comes from ``/proc/stat`` (all processes on the machine, so run it on a quiet
machine; psutil is not a dependency of ours, and on Linux the counters are one file read).

    python bench/sweep_utilisation.py                                   # the quick vicreg_coeff study
    python bench/sweep_utilisation.py --study vicreg_coeff -- --max-concurrent 1 --workers-per-trial 2
    python bench/sweep_utilisation.py --study term_ablation -- --seeds 0 run.epochs=2
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

from cjepa.benchmarking.machine import machine_info, machine_line
from cjepa.benchmarking.processes import run_command
from cjepa.benchmarking.timing import spread
from cjepa.benchmarking.trials import TrialEnds, trial_starts

REPO = Path(__file__).resolve().parents[1]


def cpu_counters() -> tuple[float, float]:
    """(busy, total) jiffies of all cores since boot (``/proc/stat``'s aggregate ``cpu`` line)."""
    fields = [float(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)  # idle + iowait
    total = sum(fields[:8])  # guest time is already counted in user
    return total - idle, total


class CpuSampler(threading.Thread):
    """Samples utilisation once a second; ``timeline`` holds (seconds since start, percent)."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.timeline: list[tuple[float, float]] = []
        self._done = threading.Event()
        self.start_counters = cpu_counters()

    def run(self) -> None:
        t0, prev = time.time(), self.start_counters
        while not self._done.wait(1.0):
            now = cpu_counters()
            busy, total = now[0] - prev[0], now[1] - prev[1]
            self.timeline.append((time.time() - t0, 100.0 * busy / total if total else 0.0))
            prev = now

    def stop(self) -> float:
        """Stop sampling; return utilisation over the whole run in percent of all cores."""
        self._done.set()
        self.join()
        end = cpu_counters()
        busy, total = end[0] - self.start_counters[0], end[1] - self.start_counters[1]
        return 100.0 * busy / total if total else 0.0


def study_name(study: str, full: bool) -> str:
    path = REPO / "sweeps" / f"{study}.py"
    spec = importlib.util.spec_from_file_location(f"sweep_{study}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.make_study(full).name


def per_trial(study_dir: Path, tracking_uri: str) -> list[dict[str, float | str]]:
    """Wall time of each finished trial and how it splits into training, evaluation, the rest."""
    import pyarrow.parquet as pq

    starts = {r["trial"]: (r["time"], r["trial_id"]) for r in trial_starts(study_dir)}  # a restart: the last
    ends = TrialEnds(tracking_uri, study_dir.name).ends()
    rows = pq.read_table(study_dir / "results.parquet").to_pylist()
    out = []
    for name, (start, trial_id) in sorted(starts.items(), key=lambda kv: kv[1][0]):
        if name not in ends:
            continue
        mine = [r for r in rows if r["trial_id"] == trial_id]  # trial names are slugs of the arm names
        train = sum(r.get("epoch_time_s") or 0.0 for r in mine)
        evaluation = sum(r.get("eval_time_s") or 0.0 for r in mine)
        wall = ends[name] - start
        out.append({"trial": name, "start": start, "wall": wall, "train": train, "eval": evaluation,
                    "other": wall - train - evaluation})
    return out


def report(trials: list[dict]) -> int:
    """Print the per-trial table and the start-up share; 1 when no trial finished."""
    if not trials:
        print("no finished trial")
        return 1
    print("\n| trial | wall s | training s | evaluation s | rest: start-up, waiting, tear-down s | rest share |")
    print("|---|---:|---:|---:|---:|---:|")
    for t in trials:
        print(f"| {t['trial']} | {t['wall']:.0f} | {t['train']:.0f} | {t['eval']:.0f} | {t['other']:.0f} "
              f"| {100 * t['other'] / t['wall']:.0f} % |")
    shares = spread([100 * t["other"] / t["wall"] for t in trials])
    total = {k: sum(t[k] for t in trials) for k in ("wall", "train", "eval", "other")}
    print(f"\nstart-up share per trial, median [min-max]: {shares.fmt()} %; of all trial time: "
          f"start-up {100 * total['other'] / total['wall']:.0f} %, "
          f"training {100 * total['train'] / total['wall']:.0f} %, "
          f"evaluation {100 * total['eval'] / total['wall']:.0f} %")
    gaps = launch_gaps(trials)
    if gaps:
        print(f"launch gap (a trial's training ends -> Tune's next trial function starts), median [min-max]: "
              f"{spread(gaps).fmt(1)} s; a trial's start-up end to end is this plus its own start-up inside the "
              "function (part of 'rest')")
    return 0


def launch_gaps(trials: list[dict]) -> list[float]:
    """Per trial that waited for a slot: its start minus the latest trial end before it. The
    per-trial 'rest' starts when the trial function runs, so it misses the time Tune takes to
    start the trial's process; this is that time (plus any wait for a free slot)."""
    ends = sorted(float(t["start"]) + float(t["wall"]) for t in trials)
    gaps = []
    for t in trials:
        earlier = [e for e in ends if e < float(t["start"])]
        if earlier:
            gaps.append(float(t["start"]) - max(earlier))
    return gaps


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--study", default="vicreg_coeff", help="a script in sweeps/ (without .py)")
    p.add_argument("--keep", help="keep storage and MLflow store in this directory (default: a temp dir)")
    p.add_argument("args", nargs="*", help="passed to the study script after `--` (flags, key=value)")
    p.add_argument("--analyse", metavar="DIR", help="only print the per-trial split of an earlier --keep DIR")
    a = p.parse_args()
    if a.analyse:
        kept = Path(a.analyse)
        return report(per_trial(kept / "results" / study_name(a.study, "--full" in a.args),
                                f"sqlite:///{kept / 'mlflow.db'}"))
    work = Path(a.keep or tempfile.mkdtemp(prefix="cjepa-sweep-bench-")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    name = study_name(a.study, "--full" in a.args)
    cmd = [sys.executable, str(REPO / "sweeps" / f"{a.study}.py"), "--storage", str(work / "results"),
           "--tracking-uri", f"sqlite:///{work / 'mlflow.db'}", *a.args]
    print("$", " ".join(cmd), flush=True)
    machine = machine_info()
    sampler = CpuSampler()
    sampler.start()
    t0 = time.time()
    log = work / "study.log"
    rc = run_command(cmd, log, cwd=work)["returncode"]
    wall = time.time() - t0
    util = sampler.stop()
    if rc != 0:
        print(log.read_text()[-3000:])
        print(f"study failed with exit code {rc} (log: {log})")
        return rc
    trials = per_trial(work / "results" / name, f"sqlite:///{work / 'mlflow.db'}")
    print(f"\n{machine_line(machine)}")
    print(f"study {name}: {len(trials)} trials, wall {wall:.0f} s, CPU utilisation {util:.0f} % of "
          f"{machine['logical_cpus']} cores (load average before: {machine['load_avg']})")
    if trials:
        first, last = min(t["start"] for t in trials), max(t["start"] + t["wall"] for t in trials)
        print(f"driver before the first trial: {first - t0:.1f} s; after the last: {t0 + wall - last:.1f} s")
    report(trials)
    timeline = work / "cpu_timeline.json"
    timeline.write_text(json.dumps(sampler.timeline))
    print(f"CPU timeline: {timeline}; study log: {log}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
