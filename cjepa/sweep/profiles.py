"""Scale profiles: what ``--quick`` (the default) and ``--full`` mean, defined once.

A study script holds its design (factors or named arms, the baseline, the search) and calls
:func:`study_at` with the profile the command line chose; the profile brings the base preset,
the budget overrides, the seeds, the trials run at once and each trial's workers and GPUs. A
script passes a field only where its budget truly differs from the profile (e.g. the recipe
check's own preset and protocol, a two-seed study, the ViT-B term ablation).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from cjepa.sweep.study import Study


@dataclass(frozen=True)
class Profile:
    name: str
    suffix: str  # appended to the study's name: a full study never shares a folder with its quick one
    base: str  # the preset its trials start from
    overrides: tuple[str, ...]  # the budget (epochs, ...); a study's own overrides are appended
    seeds: tuple[int, ...]
    max_concurrent: int
    workers_per_trial: int = 1
    use_gpu: bool = False


#: laptop scale: the CPU recipe on 10k Fashion-MNIST images (cjepa_fmnist_quick), two trials at a time
QUICK = Profile("quick", "", "cjepa_fmnist_quick", (), seeds=(0, 1, 2), max_concurrent=2)
#: paper scale, for a GPU cluster: ViT-T/16 at 224 px on Parquet shards, 100 epochs, 8 GPU workers per trial
FULL = Profile("full", "_full", "cjepa_vit_t16", ("run.epochs=100",), seeds=(0, 1, 2), max_concurrent=4,
               workers_per_trial=8, use_gpu=True)
PROFILES = {p.name: p for p in (QUICK, FULL)}
_STUDY_FIELDS = {f.name for f in fields(Study)}


def profile(full: bool) -> Profile:
    return FULL if full else QUICK


def study_at(scale: Profile | bool, name: str, overrides: tuple[str, ...] = (), **design: Any) -> Study:
    """The study ``name`` (+ the profile's suffix) at ``scale``: the profile's base, budget, seeds and
    resources, then ``design`` (factors/arms, baseline, search, ... and any field that differs);
    ``overrides`` are appended to the profile's."""
    p = profile(scale) if isinstance(scale, bool) else scale
    unknown = set(design) - _STUDY_FIELDS
    if unknown:
        raise TypeError(f"study_at: not a Study field: {', '.join(sorted(unknown))}")
    at_scale = {"base": p.base, "seeds": p.seeds, "max_concurrent": p.max_concurrent,
                "workers_per_trial": p.workers_per_trial, "use_gpu": p.use_gpu}
    return Study(name=name + p.suffix, overrides=(*p.overrides, *overrides), **{**at_scale, **design})
