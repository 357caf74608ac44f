"""The names of every metric the engine reports, defined once.

The engine's logs, the sweep layer (ASHA and the collapse stopper need a metric that exists), the
results table and the dashboards all use these names; tests/test_metrics.py checks them against
the keys a real run reports. Plain Python: the study layer checks names before torch is imported.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cjepa.config import Config

#: loss_vicreg: the regulariser's combined terms before its weight (the name predates SIGReg; kept for old results)
LOSS, LOSS_JEPA, LOSS_VICREG = "loss", "loss_jepa", "loss_vicreg"
#: VICReg term -> its log name (the raw, unweighted term)
VICREG_TERMS = {"inv": "vicreg_inv", "var": "vicreg_var", "cov": "vicreg_cov"}
SIGREG = "sigreg"  # LeJEPA's statistic, when the regulariser is SIGReg
TERM_NAMES = {**VICREG_TERMS, "sigreg": SIGREG}
OPTIM = ("lr", "weight_decay", "ema_momentum", "grad_norm")
PROGRESS = ("epoch", "step")
TIMING = ("img_per_s", "epoch_time_s", "train_cpu_min")
EVAL_TIME = "eval_time_s"
ENCODERS = ("target", "context")
PROBES = ("knn", "linear")
COLLAPSE_SUFFIXES = ("std_min", "std_mean", "std_mean_normalized", "eff_rank", "offdiag_corr")
#: the headline figures of a study's summary: the paper evaluates the target encoder; in short runs
#: the EMA target is still mostly its initialisation, so the context encoder shows differences first
SUMMARY = ("knn_target", "linear_target", "knn_context", "linear_context")
#: per-epoch probes score the validation split (``data.val_samples > 0``); the test split is scored
#: once, at the last epoch, under the same name with this prefix (cjepa/engine/evaluation.py)
TEST_PREFIX = "test_"


def probe_name(probe: str, encoder: str, pooling: str = "mean") -> str:
    """``knn_target``; other poolings get a suffix: ``knn_target_grid2``."""
    return f"{probe}_{encoder}" + ("" if pooling == "mean" else f"_{pooling}")


def test_name(name: str) -> str:
    """The test split's figure of a per-epoch metric, scored once at the end: ``test_knn_target``."""
    return f"{TEST_PREFIX}{name}"


def baseline_name(kind: str, probe: str, pooling: str = "mean") -> str:
    """``raw_knn_acc`` (pixels), ``rand_linear_acc_grid2`` (the encoder as initialised)."""
    return f"{kind}_{probe}_acc" + ("" if pooling == "mean" else f"_{pooling}")


def reported_metrics(cfg: Config) -> set[str]:
    """Every name this config makes the engine report at the end of an evaluated epoch."""
    names = {LOSS, LOSS_JEPA, *OPTIM, *PROGRESS, *TIMING}
    spec = cfg.regularizer
    if spec is not None:
        names.update({LOSS_VICREG, *(TERM_NAMES[t] for t in spec.terms_of(cfg))})
    if cfg.eval.every <= 0:
        return names
    ev = cfg.eval
    probes = [p for p in PROBES if p == "knn" or ev.linear_epochs > 0]
    for enc in ev.encoders:
        names.update(probe_name(p, enc, pool) for p in probes for pool in ev.poolings)
        names.update(f"{enc}_{s}" for s in COLLAPSE_SUFFIXES)
    names.update(f"pred_{s}" for s in COLLAPSE_SUFFIXES)
    names.add(EVAL_TIME)
    if ev.raw_baseline:
        names.update(baseline_name("raw", p) for p in PROBES)  # raw_linear_acc is NaN without a probe
    if ev.random_baseline:
        names.update(baseline_name("rand", p, pool) for p in probes for pool in ev.poolings)
    return names


def final_metrics(cfg: Config) -> set[str]:
    """The test split's figures, reported once, with the last epoch (none without a validation
    split: the per-epoch figures are the test split's then). Never a selection metric."""
    if cfg.eval.every <= 0 or cfg.data.val_samples <= 0:
        return set()
    ev = cfg.eval
    probes = [p for p in PROBES if p == "knn" or ev.linear_epochs > 0]
    names = {probe_name(p, enc, pool) for enc in ev.encoders for p in probes for pool in ev.poolings}
    if ev.raw_baseline:
        names.update(baseline_name("raw", p) for p in PROBES)
    if ev.random_baseline:
        names.update(baseline_name("rand", p, pool) for p in probes for pool in ev.poolings)
    return {test_name(n) for n in names}


def split_of(cfg: Config, name: str) -> str:
    """Which split a metric's number comes from: ``test`` for ``test_*``; the per-epoch probes and
    baselines read ``val`` (``test`` without a validation split); training figures ``train``."""
    if name.startswith(TEST_PREFIX):
        return "test"
    evaluated = name.startswith(tuple(f"{p}_" for p in PROBES)) or name.startswith(("raw_", "rand_"))
    if evaluated or name.endswith(COLLAPSE_SUFFIXES):
        return "val" if cfg.data.val_samples > 0 else "test"
    return "train"
