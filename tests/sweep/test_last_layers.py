"""cjepa/sweep/last_layers.py end to end on a real tiny run in a one-trial study: both settings
evaluated once, recorded with their overrides, the table from them; a rerun evaluates nothing."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cjepa.config import load_config
from cjepa.engine.trainer import train
from cjepa.sweep import last_layers as LAST  # noqa: N812 (the module under test, one short name)
from tests.conftest import tiny_overrides

EVAL = ["data.val_samples=300", "eval.every=1", "eval.train_samples=400", "eval.test_samples=200",
        "eval.linear_epochs=5", "eval.poolings=[mean,grid2]", "eval.precision=fp32", "run.epochs=1"]


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> tuple[Path, dict[str, float]]:
    root = tmp_path_factory.mktemp("lastk")
    final = train(load_config(None, tiny_overrides(root / "trial", *EVAL))).history[-1]
    pq.write_table(pa.Table.from_pylist([{"arm": "recipe", "seed": 0, "epoch": 1,
                                          "checkpoint_path": str(root / "trial")}]), root / "results.parquet")
    return root, final


def test_each_setting_once_with_its_reference_and_the_table(study, capsys) -> None:
    root, final = study
    argv = [str(root), "--k", "1", "2", "--poolings", "mean,grid2"]
    assert LAST.main(argv) == 0
    rows = pq.read_table(root / "eval.parquet").to_pylist()
    assert [r["overrides"] for r in rows] == [LAST.setting(1, "mean,grid2"), LAST.setting(2, "mean,grid2")]
    k1 = rows[0]
    assert k1["val_knn_target"] == final["knn_target"] and k1["val_knn_random"] == final["rand_knn_acc"]
    assert rows[1]["val_linear_random"] != k1["val_linear_random"]  # the last 2 blocks, read for both
    gain = round(100 * (k1["val_knn_target"] - k1["val_knn_random"]), 1)
    table = (root / "last_layers.md").read_text()
    assert f"| recipe | `{LAST.setting(1, 'mean,grid2')}` | 1 | {gain} |" in table
    assert "(Δ " in table.splitlines()[-1] and table.split("\n\n", 1)[1].strip() in capsys.readouterr().out
    assert LAST.main(argv) == 0  # nothing missing: nothing evaluated again
    assert len(pq.read_table(root / "eval.parquet")) == 2


def test_a_directory_that_is_no_study_is_one_line(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit):
        LAST.main([str(tmp_path)])
    assert f"{tmp_path}: no results.parquet; expected a study directory" in capsys.readouterr().err
