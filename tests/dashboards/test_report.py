"""`cjepa report` on a real tiny study: files, table content, figures, MLflow artifacts; and the attention hook."""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

import pytest

from tests.dashboards.conftest import ARMS, TinyStudy, artifact_dir

FIGURES = ("convergence.png", "cpu_minutes.png", "collapse.png", "coefficient.png", "masks.png", "attention.png")


def _png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", head[16:24])


@pytest.fixture(scope="module")
def report_dir(tiny_study: TinyStudy) -> Path:
    from cjepa.cli import main

    assert main(["report", "--study", str(tiny_study.study_dir)]) == 0
    out = tiny_study.study_dir / "report"
    if (dest := artifact_dir()) is not None:
        shutil.copytree(out, dest / "report", dirs_exist_ok=True)
    return out


@pytest.mark.integration
def test_report_files_and_table(report_dir: Path) -> None:
    table, _, gains = (report_dir / "ablation_table.md").read_text().partition("Gain over the random-initialised")
    assert "knn_target − random init (pp)" in gains  # each arm against its own untrained network
    rows = [line for line in table.splitlines() if line.startswith("| ") and "---" not in line][1:]
    references = [row for row in rows if row.startswith(("| raw pixels", "| random-init encoder"))]
    rows = [row for row in rows if row not in references]
    assert len(rows) == 2 and all(any(arm in row for row in rows) for arm in ARMS)
    assert len(references) == 2  # raw pixels and the random-initialised encoder close the table
    assert "I-JEPA (EMA only) [beta_vicreg=0.0]" in rows[0] and "63.7" in rows[0]  # the paper's number beside ours
    assert "(baseline)" in rows[0]
    cells = [c.strip() for c in rows[1].strip("|").split("|")]
    assert sum("±" in c for c in cells) == 8  # kNN + linear of target and context: mean ± CI, paired Δ ± CI
    assert any(c.startswith(("+", "-")) and "±" in c for c in cells)  # a signed paired difference
    assert "ImageNet" in table and "Δ" in table
    page = (report_dir / "report.html").read_text()
    assert page.count("data:image/png;base64,") == len(FIGURES)
    for name in FIGURES:
        width, height = _png_size(report_dir / name)
        assert min(width, height) >= 300 and (report_dir / name).stat().st_size > 15_000, name
        assert f'href="{name}"' in page, name
    assert '<table class="ablation">' in page and "Not drawn" not in page


@pytest.mark.integration
def test_report_logged_on_parent_run(report_dir: Path, tiny_study: TinyStudy) -> None:
    import json

    from mlflow.tracking import MlflowClient

    parent = json.loads((tiny_study.study_dir / "study.json").read_text())["parent_run_id"]
    listed = {f.path for f in MlflowClient(tiny_study.tracking_uri).list_artifacts(parent, "report")}
    assert {"report/report.html", "report/ablation_table.md"} | {f"report/{n}" for n in FIGURES} <= listed


@pytest.mark.integration
def test_report_from_experiment_matches_table(report_dir: Path, tiny_study: TinyStudy, tmp_path: Path) -> None:
    """The MLflow experiment alone gives the same table as the Parquet results (two sources, one truth)."""
    from cjepa.cli import main

    out = tmp_path / "from_mlflow"
    assert main(["report", "--experiment", tiny_study.name, "--tracking-uri", tiny_study.tracking_uri,
                 "--out", str(out), "--no-images", "--no-mlflow"]) == 0

    def numbers(path: Path) -> list[list[str]]:  # metric cells only: the config check marks need checkpoints
        rows = [r for r in path.read_text().splitlines() if r.startswith("| ") and "---" not in r][1:]
        return [[c.strip() for c in r.strip("|").split("|")][5:] for r in rows]

    assert numbers(out / "ablation_table.md") == numbers(report_dir / "ablation_table.md")
    assert (out / "convergence.png").is_file() and (out / "coefficient.png").is_file()


def test_attention_hook_is_the_matrix_timm_used() -> None:
    """The hook's recomputed softmax(q·kᵀ) reproduces the attention module's own output."""
    import torch

    from cjepa.model.vit import ViTEncoder
    from dashboards.attention import AttentionCapture, received_attention

    torch.manual_seed(0)
    enc = ViTEncoder(16, 4, 1, 32, 2, 2).eval()
    attn = enc.blocks[-1].attn
    seen: dict[str, torch.Tensor] = {}
    handle = attn.register_forward_hook(lambda m, a, o: seen.update(x=a[0], out=o))
    cap = AttentionCapture(attn)
    with torch.no_grad():
        enc(torch.randn(3, 1, 16, 16))
        x = seen["x"]
        b, n, c = x.shape
        v = attn.qkv(x).reshape(b, n, 3, attn.num_heads, attn.head_dim).permute(2, 0, 3, 1, 4)[2]
        redone = attn.proj((cap.maps @ v).transpose(1, 2).reshape(b, n, c))
    handle.remove()
    cap.remove()
    torch.testing.assert_close(cap.maps.sum(-1), torch.ones(3, attn.num_heads, n))
    torch.testing.assert_close(redone, seen["out"], rtol=1e-4, atol=1e-5)
    maps = received_attention(enc, torch.randn(2, 1, 16, 16))
    assert maps.shape == (2, 4, 4) and float(maps.min()) == 0.0 and float(maps.max()) == 1.0
