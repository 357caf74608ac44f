"""One place that knows what each regulariser is: a torch-free table read by config validation,
the config loader's aliases, the metric names, the data pipeline and the method's registry
(``cjepa/method/regularizers.py``).

A row says what the config and the rest of the house need without building the networks: the
terms it logs, which config key weights it, whether it needs a second augmented view, how many
target blocks it needs. Two kinds of row:

* a **VICReg reading** (weight ``loss.beta_vicreg``): which tensors the VICReg terms act on,
  chosen by ``loss.vicreg_mode=<name>``, with the loss section's coefficients and switches;
* a regulariser with **its own section** (weight ``<name>.weight``, e.g. ``sigreg.weight``), on
  when that weight is > 0, as dinov2 gives each loss its own section and ``loss_weight``.

At most one regulariser acts in a run (:func:`the_regularizer` refuses two: the objective adds
one weighted term, and a regulariser's parts sit under fixed checkpoint keys). Adding one: a row
here, a class registered under the same name, and its test (``register`` refuses a class
without a row; ``tests/method/test_cjepa.py`` checks that the table and the registry agree); a
regulariser with its own section also gets a dataclass in ``schema.py`` holding ``weight``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cjepa.errors import ConfigError

VICREG_WEIGHT = "loss.beta_vicreg"


@dataclass(frozen=True)
class RegularizerSpec:
    name: str  # a VICReg reading: its loss.vicreg_mode; otherwise the name of its config section
    terms: tuple[str, ...]  # its raw terms with every switch on: "inv", "var", "cov" or "sigreg"
    weight: str = VICREG_WEIGHT  # the dotted key of its weight: it acts when that weight is > 0
    second_view: bool = False  # the data pipeline makes a second augmented view per image
    min_targets: int = 1  # mask.num_targets it needs ...
    why_targets: str = ""  # ... and why (for the one-line refusal)

    @property
    def is_vicreg(self) -> bool:
        """A reading of the VICReg terms: chosen by ``loss.vicreg_mode``, weighted by ``loss.beta_vicreg``."""
        return self.weight == VICREG_WEIGHT

    def weight_of(self, cfg: Any) -> float:
        """Its weight in ``cfg`` (a :class:`~cjepa.config.Config`; duck-typed: this module imports no schema)."""
        section, key = self.weight.split(".")
        return float(getattr(getattr(cfg, section), key))

    def terms_of(self, cfg: Any) -> tuple[str, ...]:
        """Its terms under ``cfg``'s on/off switches (the loss section's; a term they do not name is always on)."""
        loss = cfg.loss
        return active_terms(self.name, loss.invariance, loss.variance, loss.covariance)

    def acts(self, cfg: Any) -> bool:
        """Whether it adds a term to ``cfg``'s objective: chosen (a reading), weighted > 0, some term on."""
        chosen = not self.is_vicreg or cfg.loss.vicreg_mode == self.name
        return chosen and self.weight_of(cfg) > 0 and bool(self.terms_of(cfg))


SPECS: dict[str, RegularizerSpec] = {}


def active_terms(name: str, invariance: bool, variance: bool, covariance: bool) -> tuple[str, ...]:
    """The terms a regulariser computes under the loss's VICReg switches (SIGReg's is always on)."""
    switch = {"inv": invariance, "var": variance, "cov": covariance}
    return tuple(t for t in SPECS[name].terms if switch.get(t, True))


def add_spec(spec: RegularizerSpec) -> RegularizerSpec:
    """Add a row (a new reading; tests add one for an extension and remove it after)."""
    if spec.name in SPECS:
        raise ValueError(f"regulariser {spec.name!r} has a spec already")
    SPECS[spec.name] = spec
    return spec


def vicreg_readings() -> tuple[str, ...]:
    """The values ``loss.vicreg_mode`` accepts, in the table's order."""
    return tuple(name for name, spec in SPECS.items() if spec.is_vicreg)


def the_regularizer(cfg: Any) -> RegularizerSpec | None:
    """The one regulariser ``cfg`` adds to the JEPA loss, or None (plain I-JEPA). Two at once is a
    ConfigError naming both weights: one line, the same in validation and in the method."""
    on = [spec for spec in SPECS.values() if spec.acts(cfg)]
    if len(on) > 1:
        names = " and ".join(f"{s.weight}={s.weight_of(cfg)}" + (f" (VICReg, loss.vicreg_mode={s.name})"
                                                                  if s.is_vicreg else "") for s in on)
        raise ConfigError(f"{names} are both > 0: one regulariser per run; set the other's weight to 0")
    return on[0] if on else None


for _spec in (
    RegularizerSpec("pred_blocks", ("inv", "var", "cov"), min_targets=2, why_targets="compares target blocks pairwise"),
    RegularizerSpec("context_target", ("inv", "var", "cov")),
    RegularizerSpec("two_views", ("inv", "var", "cov"), second_view=True),
    RegularizerSpec("pred_tokens", ("var", "cov")),  # tokens of one view: no pair, no invariance term
    RegularizerSpec("sigreg", ("sigreg",), weight="sigreg.weight"),  # LeJEPA; its own section (schema.SigregConfig)
):
    add_spec(_spec)

#: the built-in VICReg readings, in the table's order (the config's choices for loss.vicreg_mode)
BUILTIN_MODES: tuple[str, ...] = vicreg_readings()
