"""The benchmark harness: what every script in ``bench/`` measures with, written once.

- :mod:`~cjepa.benchmarking.machine`: the one machine-info dict a benchmark records and prints.
- :mod:`~cjepa.benchmarking.timing`: device sync, the interleaved-rounds loop, and the one spread
  statistic (median with the min-max range over rounds) with per-round ratios and their CI.
- :mod:`~cjepa.benchmarking.flops`: the one FLOP counter (torch's, attention forced onto counted
  matmuls), the closed-form ViT step it is checked against, chip peaks and MFU.
- :mod:`~cjepa.benchmarking.steps`: the prepared batches and our training step, as the trainer
  builds it, on any device; :mod:`~cjepa.benchmarking.breakdown` where a step's time goes (the
  VICReg parts alone, profiler op tables).
- :mod:`~cjepa.benchmarking.official_ijepa` and :mod:`~cjepa.benchmarking.lightly_ijepa`: the
  reference steps (the official I-JEPA code from a local clone, lightly's), imported only when asked for.
- :mod:`~cjepa.benchmarking.data`: photo JPEG trees and their shards, the data pipeline's images/s.
- :mod:`~cjepa.benchmarking.gpu_stages`: the stages of ``bench/gpu_check.py``.
- :mod:`~cjepa.benchmarking.trials`: when a study's trials started and ended (its audit file and MLflow runs).
- :mod:`~cjepa.benchmarking.processes`: commands under a time limit, in their own process group.
- :mod:`~cjepa.benchmarking.stream_formats`, :mod:`~cjepa.benchmarking.stream_checks` and
  :mod:`~cjepa.benchmarking.stream_timing`: ``bench/stream_candidates.py``'s streaming libraries: the
  same bytes in every format and a loader per library; reads, determinism, resume and ranks, each key
  run in a fresh process; the CPU and reads of a process tree and the img/s rounds.

A script in ``bench/`` is one file: its arguments, its flow, its printout. It imports from here
and from the rest of ``cjepa``, never from another script (bench/README.md: how to add one).
Nothing in the method, the engine or the sweep layer imports this package.
"""
