"""Per-epoch comparison of finished runs (e.g. C-JEPA vs I-JEPA) as a markdown table.

    python bench/compare_runs.py runs/cjepa_fmnist_cpu runs/ijepa_fmnist_cpu

Reads each run's ``metrics.jsonl`` (written by the engine) and prints, per epoch, the kNN and
linear-probe accuracies of the target and context encoders, the JEPA loss and the collapse
figures, with the raw-pixel baselines of the same evaluation subsets.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cjepa.engine import read_metrics

COLUMNS = [("knn_target", "kNN target %", 100), ("knn_context", "kNN context %", 100),
           ("linear_target", "linear target %", 100), ("linear_context", "linear context %", 100),
           ("loss_jepa", "JEPA loss", 1), ("vicreg_var", "var term", 1),
           ("target_std_mean_normalized", "target std (norm.)", 1), ("target_eff_rank", "RankMe", 1),
           ("img_per_s", "img/s", 1)]


def table(runs: list[Path]) -> str:
    head = ["run", "epoch"] + [title for _, title, _ in COLUMNS]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    raw = None
    for run in runs:
        for rec in read_metrics(run):
            raw = raw or (rec.get("raw_knn_acc"), rec.get("raw_linear_acc"))
            cells = [run.name, str(int(rec["epoch"]))]
            for key, _, scale in COLUMNS:
                v = rec.get(key)
                cells.append("" if v is None else f"{v * scale:.1f}" if scale == 100 else f"{v:.3g}")
            lines.append("| " + " | ".join(cells) + " |")
    if raw and raw[0] is not None:
        lines.append(f"\nRaw pixels on the same subsets: kNN {raw[0] * 100:.1f} %, linear probe "
                     f"{(raw[1] or float('nan')) * 100:.1f} %.")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", type=Path, help="run directories (run.output_dir)")
    print(table(p.parse_args().runs))


if __name__ == "__main__":
    main()
