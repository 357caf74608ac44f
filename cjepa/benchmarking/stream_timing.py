"""The streaming-library comparison's counters and img/s rounds: bytes read and CPU seconds of a process tree.

Why a process tree: Ray Data runs its reads and decodes in worker processes, so neither the driver's
``/proc/self/io`` nor its ``process_time`` sees them; ``tree_rchar`` and ``tree_cpu`` sum every living
descendant of this process instead. The other libraries read and decode in this process
(``num_workers=0``), where ``proc_io`` and ``time.process_time`` are exact.

``throughput`` times every library's loader (read + PIL decode + crop + flip to a uint8 batch, one
torch thread) in interleaved rounds (``cjepa.benchmarking.timing.interleaved``) and reports the one
spread statistic of img/s and the median images per CPU-second.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict
from pathlib import Path

import torch

from cjepa.benchmarking import timing
from cjepa.benchmarking.stream_formats import BATCH, cjepa_epochs, litdata_loader, mosaic_loader, ray_dataset, wds_epoch


def proc_io() -> dict[str, int]:
    """This process's I/O counters (``/proc/self/io``: rchar, wchar, read_bytes, ...)."""
    with open("/proc/self/io") as f:
        return {k: int(v) for k, v in (line.split(": ") for line in f)}


def _proc_stats() -> dict[int, list[str]]:
    """Each living process's ``/proc/PID/stat`` fields after its name (split there: a name may hold spaces)."""
    stats = {}
    for p in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{p}/stat") as f:
                stats[int(p)] = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
    return stats


def _tree(stats: dict[int, list[str]]) -> list[int]:
    """This process and its living descendants, among ``stats``' processes."""
    me, parents = os.getpid(), {pid: int(fields[1]) for pid, fields in stats.items()}
    found = []
    for pid in parents:
        q = pid
        while q > 1 and q != me:
            q = parents.get(q, 0)
        if q == me:
            found.append(pid)
    return found


def tree_rchar() -> int:
    """Bytes read through read syscalls by every descendant of this process (Ray's workers)."""
    me, total = os.getpid(), 0
    for pid in _tree(_proc_stats()):
        if pid == me:
            continue
        try:
            with open(f"/proc/{pid}/io") as f:
                total += int(f.readline().split(": ")[1])
        except OSError:
            continue
    return total


def tree_cpu() -> float:
    """CPU seconds (user + system) of this process and every living descendant."""
    tick = os.sysconf("SC_CLK_TCK")
    stats = _proc_stats()
    return sum((int(stats[pid][11]) + int(stats[pid][12])) / tick for pid in _tree(stats))


class Timed:
    """A loader timed over k batches after one untimed batch; CPU: this process (tree: and its
    descendants, for Ray, whose tasks run in other processes)."""

    def __init__(self, name: str, epoch: Callable[[], Iterable], tree: bool = False) -> None:
        self.name, self.epoch, self.tree = name, epoch, tree
        self.rates: list[float] = []
        self.cpu_rates: list[float] = []
        self.it: Iterator | None = None if tree else iter(epoch())

    def next(self) -> tuple:
        """The next batch; a new epoch when this one is spent."""
        try:
            return next(self.it)
        except StopIteration:
            self.it = iter(self.epoch())
            return next(self.it)

    def run(self, steps: int) -> float:
        """One round: ``steps`` timed batches; records img/s and img per CPU-second, returns img/s."""
        if self.tree:  # Ray: a fresh iterator per round, else its workers decode ahead between rounds
            self.it = iter(self.epoch())
        self.next()
        cpu_s = tree_cpu if self.tree else (lambda: time.process_time())
        c, t, n = cpu_s(), time.perf_counter(), 0
        for _ in range(steps):
            n += len(self.next()[0])
        wall, cpu = time.perf_counter() - t, cpu_s() - c
        self.rates.append(n / wall)
        self.cpu_rates.append(n / max(cpu, 1e-9))
        if self.tree:
            self.it = None
        return n / wall


def _loaders(d: Path, libs: list[str], seed: int) -> list[Timed]:
    """A decoding loader per library asked for (cjepa twice: its own decode, and its order with ``tv``)."""
    loaders = []
    if "cjepa" in libs:
        loaders.append(Timed("cjepa ShardStream (own decode)", lambda: cjepa_epochs(d, seed, 0, 1, True, native=True)))
        loaders.append(Timed("cjepa order + tv decode", lambda: (x[:2] for x in cjepa_epochs(d, seed, 0, 1, True))))
    if "webdataset" in libs:
        os.environ.update(RANK="0", WORLD_SIZE="1")
        loaders.append(Timed("webdataset", lambda: wds_epoch(d, seed, True)))
    if "litdata" in libs:
        dl = litdata_loader(d, seed, 0, 1, True)
        loaders.append(Timed("litdata", lambda: dl))
    if "mosaic" in libs:
        ml = mosaic_loader(d, seed, True)
        loaders.append(Timed("mosaic", lambda: ml))
    if "ray" in libs:
        ds = ray_dataset(d, seed, True)
        ds = ds.drop_columns(["key"])
        loaders.append(Timed("ray", lambda: ((b["image"], None) for b in ds.iter_torch_batches(
            batch_size=BATCH, local_shuffle_buffer_size=512, local_shuffle_seed=seed)), tree=True))
    return loaders


def throughput(info: dict, libs: list[str], seed: int, steps: int, rounds: int) -> dict:
    """img/s (the spread over rounds) and img per CPU-second of each library's loader, interleaved rounds."""
    d = Path(info["dir"])
    torch.set_num_threads(1)
    loaders = _loaders(d, libs, seed)
    timing.interleaved({ld.name: (lambda r, ld=ld: ld.run(steps)) for ld in loaders}, rounds,
                       lambda s: print(s, flush=True), " img/s")
    return {ld.name: {**asdict(timing.spread(ld.rates)), "img_per_cpu_s": statistics.median(ld.cpu_rates)}
            for ld in loaders}
