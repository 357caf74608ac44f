"""Read-outs compared after training: each trained encoder against the same network at its
initialisation, and one evaluation setting against another, over paired seeds.

The rows are a study's ``eval.parquet`` (``cjepa eval`` over a study, one row per trial and
request; ``overrides`` says which ``eval.*`` settings the request changed, e.g.
``eval.last_layers=4``). With ``--encoders target,random`` a row holds both the trained encoder's
figures (``val_knn_target_grid7``) and its initialisation's (``val_knn_random_grid7``) on the same
bank and queries, so the gain is paired twice: same seed, same read-out.
"""

from __future__ import annotations

from collections.abc import Sequence

from cjepa.sweep.stats import Interval, mean_ci, paired_difference

TRAINED, INITIAL = "target", "random"


def readouts(rows: Sequence[dict], split: str) -> list[str]:
    """The trained encoder's read-outs in the rows (``knn_target``, ``linear_target_grid7``, ...),
    kNN first, then by pooling as the rows list them."""
    prefix = f"{split}_"
    found = [k.removeprefix(prefix) for r in rows for k in r
             if k.startswith(prefix) and f"_{TRAINED}" in k and not k.endswith(("_lr", "_wd"))]
    unique = list(dict.fromkeys(found))
    return sorted(unique, key=lambda m: (not m.startswith("knn"), unique.index(m)))


def _by_setting(rows: Sequence[dict], arm: str) -> dict[str, dict[int, dict]]:
    """{overrides: {seed: row}} of one arm; a later row of the same trial and setting wins."""
    out: dict[str, dict[int, dict]] = {}
    for r in rows:
        if r.get("arm") == arm:
            out.setdefault(r.get("overrides") or "", {})[int(r["seed"])] = r
    return out


def gains_by_setting(rows: Sequence[dict], split: str, settings: Sequence[str]) -> list[dict]:
    """Per arm and setting: each read-out's gain over the initial network, mean ± CI over seeds,
    and (for every setting after the first) the trained score's paired change from the first
    setting. ``{arm, setting, n, gain: {readout: Interval}, change: {readout: Interval}}``."""
    out = []
    arms = list(dict.fromkeys(r["arm"] for r in rows))
    for arm in arms:
        per = _by_setting(rows, arm)
        first = per.get(settings[0], {})
        for setting in settings:
            by_seed = per.get(setting, {})
            gain, change = {}, {}
            for m in readouts(rows, split):
                name, init = f"{split}_{m}", f"{split}_{m.replace(f'_{TRAINED}', f'_{INITIAL}', 1)}"
                gain[m] = mean_ci(r[name] - r[init] for r in by_seed.values()
                                  if r.get(name) is not None and r.get(init) is not None)
                if setting != settings[0]:
                    change[m] = paired_difference({s: r[name] for s, r in by_seed.items() if r.get(name) is not None},
                                                  {s: r[name] for s, r in first.items() if r.get(name) is not None})
            out.append({"arm": arm, "setting": setting, "n": len(by_seed), "gain": gain, "change": change})
    return out


def format_gains_by_setting(table: list[dict], split: str, settings: Sequence[str]) -> str:
    """Markdown: one row per arm and setting, a column per read-out: ``gain`` over the initial network
    (pp, mean ± 95 % CI), and under a later setting its change from the first as ``Δ``."""
    if not table:
        return "(no rows)"
    metrics = list(table[0]["gain"])
    head = ["arm", "setting", "seeds"] + [f"{m} − init" for m in metrics]
    lines = [f"Split: {split}. Each cell: the trained encoder's gain over the same network at its initialisation "
             f"(pp, mean ± 95 % CI over paired seeds); under `{'`, `'.join(settings[1:])}` also Δ, the trained "
             f"score's paired change from `{settings[0] or 'the default'}`.", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for e in table:
        cells = [_cell(e["gain"][m], e["change"].get(m)) for m in metrics]
        lines.append("| " + " | ".join([e["arm"], f"`{e['setting']}`" if e["setting"] else "default", str(e["n"]),
                                        *cells]) + " |")
    return "\n".join(lines)


def _cell(gain: Interval, change: Interval | None) -> str:
    return gain.fmt() + ("" if change is None else f" (Δ {change.fmt()})")
