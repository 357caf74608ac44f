"""One place that knows what each regulariser is: a torch-free table read by config validation,
the metric names, the data pipeline and the method's registry (``cjepa/method/regularizers.py``).

A row says what the config and the rest of the house need without building the networks: the
terms it logs, whether it needs a second augmented view, how many target blocks it needs.
Adding a regulariser: one row here, one class registered under the same name, and its test
(``register`` refuses a class without a row, and ``tests/method/test_cjepa.py`` checks that the
table and the registry name the same readings).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RegularizerSpec:
    name: str  # the value of loss.vicreg_mode
    terms: tuple[str, ...]  # its raw terms with every switch on: "inv", "var", "cov" or "sigreg"
    second_view: bool = False  # the data pipeline makes a second augmented view per image
    min_targets: int = 1  # mask.num_targets it needs ...
    why_targets: str = ""  # ... and why (for the one-line refusal)

    @property
    def is_vicreg(self) -> bool:
        return "sigreg" not in self.terms


SPECS: dict[str, RegularizerSpec] = {}


def active_terms(mode: str, invariance: bool, variance: bool, covariance: bool) -> tuple[str, ...]:
    """The terms a reading computes under the loss's on/off switches (SIGReg has none: always on)."""
    switch = {"inv": invariance, "var": variance, "cov": covariance, "sigreg": True}
    return tuple(t for t in SPECS[mode].terms if switch[t])


def add_spec(spec: RegularizerSpec) -> RegularizerSpec:
    """Add a row (a new reading; tests add one for an extension and remove it after)."""
    if spec.name in SPECS:
        raise ValueError(f"regulariser {spec.name!r} has a spec already")
    SPECS[spec.name] = spec
    return spec


for _spec in (
    RegularizerSpec("pred_blocks", ("inv", "var", "cov"), min_targets=2, why_targets="compares target blocks pairwise"),
    RegularizerSpec("context_target", ("inv", "var", "cov")),
    RegularizerSpec("two_views", ("inv", "var", "cov"), second_view=True),
    RegularizerSpec("pred_tokens", ("var", "cov")),  # tokens of one view: no pair, no invariance term
    RegularizerSpec("sigreg", ("sigreg",)),
):
    add_spec(_spec)

#: the built-in readings, in the table's order (the config's list of choices)
BUILTIN_MODES: tuple[str, ...] = tuple(SPECS)
