"""Qualitative figures from the trials' checkpoints: sampled masks and last-block attention maps.

Attention (the paper's qualitative figures, I-JEPA beside C-JEPA): timm's ``Attention`` runs
``F.scaled_dot_product_attention`` (fused), which never materialises the attention matrix, so we
cannot read it off the module. A forward hook on the *last* block's ``attn`` receives the block's
normalised input ``x`` and recomputes, with the module's own weights,
``softmax(q_norm(q) · k_norm(k)ᵀ · scale)`` from ``attn.qkv(x)`` — the same matrix the fused
kernel used, without patching timm or switching ``fused_attn`` off. Each patch's score is the
attention it *receives*: mean over heads and over query tokens (the encoders have no CLS token
to take a row from), min-max scaled per image, upsampled bilinearly over the image.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from dashboards.arms import flatten, paper_arm  # noqa: E402
from dashboards.load import StudyData, checkpoint_file  # noqa: E402
from dashboards.table import paper_arm_of, titled  # noqa: E402


@dataclass
class Trial:
    """One trial's checkpoint, loaded: its config and both encoders (eval mode, CPU)."""

    arm: str
    seed: int
    cfg: Any  # cjepa.config.Config
    target: torch.nn.Module
    context: torch.nn.Module


def load_trial(arm: str, seed: int, path: Path) -> Trial:
    from cjepa.engine.trained import load_trained

    run = load_trained(path)
    return Trial(arm, seed, run.cfg, run.target, run.context)


def trial_config(data: StudyData, arm: str) -> dict[str, Any] | None:
    """The config (dotted key -> value) of the arm's first trial with a checkpoint (None when none
    is on disk): for results tables written before they carried ``config.*`` columns."""
    from cjepa.engine.checkpoint import load_checkpoint

    for path in data.final().loc[lambda d: d["arm"] == arm, "checkpoint_path"]:
        file = checkpoint_file(path)
        if file is not None:
            return flatten(load_checkpoint(file)["config"])
    return None


def pick_arms(data: StudyData) -> tuple[str, str] | None:
    """(I-JEPA-like arm, C-JEPA-like arm): the paper's arms when present, else the baseline and the
    non-baseline arm with the best final kNN accuracy."""
    arms = data.arms
    ijepa = next((a for a in arms if paper_arm_of(data, a) == "I-JEPA (EMA only)"), data.baseline)
    cjepa = next((a for a in arms if paper_arm_of(data, a) == "C-JEPA (var/cov + inv)"), None)
    if cjepa is None:
        rest = [a for a in arms if a != ijepa]
        if not rest:
            return None
        final = data.final()
        metric = "knn_target" if data.has("knn_target") else None
        cjepa = max(rest, key=lambda a: final.loc[final["arm"] == a, metric].mean()) if metric else rest[-1]
    return (ijepa, cjepa) if ijepa is not None else None


def trials_for(data: StudyData, arms: tuple[str, str]) -> list[Trial]:
    """Both arms' trials at the smallest seed for which both have a checkpoint on disk."""
    final = data.final()
    for seed in data.seeds:
        paths = [checkpoint_file(next(iter(final.loc[(final["arm"] == a) & (final["seed"] == seed),
                                                      "checkpoint_path"]), None)) for a in arms]
        if all(p is not None for p in paths):
            return [load_trial(a, seed, p) for a, p in zip(arms, paths)]
    return []


class AttentionCapture:
    """Forward hook on a timm ``Attention``: keeps ``softmax(q·kᵀ·scale)`` (B, heads, N, N) of the last call."""

    def __init__(self, attn: torch.nn.Module) -> None:
        self.maps: torch.Tensor | None = None
        self.handle = attn.register_forward_hook(self._hook)

    def _hook(self, module: Any, args: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        x = args[0]
        b, n, _ = x.shape
        qkv = module.qkv(x).reshape(b, n, 3, module.num_heads, module.head_dim).permute(2, 0, 3, 1, 4)
        q, k, _ = qkv.unbind(0)
        q, k = module.q_norm(q), module.k_norm(k)
        self.maps = ((q * module.scale) @ k.transpose(-2, -1)).softmax(dim=-1)

    def remove(self) -> None:
        self.handle.remove()


@torch.no_grad()
def received_attention(encoder: Any, images: torch.Tensor) -> torch.Tensor:
    """(B, H, W) attention received per patch in the last block, each image scaled to [0, 1]."""
    cap = AttentionCapture(encoder.blocks[-1].attn)
    try:
        encoder(images)
    finally:
        cap.remove()
    assert cap.maps is not None
    score = cap.maps.mean(dim=1).mean(dim=1)  # heads, then queries -> (B, N)
    lo, hi = score.amin(dim=1, keepdim=True), score.amax(dim=1, keepdim=True)
    score = (score - lo) / (hi - lo).clamp(min=1e-12)
    return score.view(-1, *encoder.grid)


def sample_images(cfg: Any, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(uint8 images, normalised eval views) of ``n`` test images of different classes where possible."""
    from cjepa.data import eval_view, load_split
    from cjepa.data.build import normalization

    if cfg.data.dataset == "parquet":  # images of any size: the evaluator's views of the first rows
        from cjepa.data.shards import split_root
        from cjepa.data.stream import ShardSplit, eval_images

        images, labels = eval_images(ShardSplit(split_root(cfg.data.root, "test")), 200, cfg.model.img_size)
    else:
        split = load_split(cfg.data, "test")
        images, labels = split.images, split.labels[:2000]
    picks: list[int] = []
    for c in labels.unique().tolist():
        picks.append(int((labels == c).nonzero()[0]))
    picks = (sorted(picks) + [i for i in range(len(labels)) if i not in picks])[:n]
    raw = images[torch.tensor(picks)]
    mean, std = normalization(cfg.data)
    return raw, eval_view(raw, cfg.model.img_size, mean, std, cfg.model.in_chans)


def attention_figure(trials: list[Trial], path: Path, n_images: int = 4, size: int = 112) -> Path:
    """Rows: test images; columns: the image, then target and context encoder maps of each trial."""
    raw, views = sample_images(trials[0].cfg, n_images)
    shown = F.interpolate(raw.float() / 255.0, size=(size, size), mode="bilinear", align_corners=False)
    columns = [("test image", None)]
    for t in trials:
        for enc in ("target", "context"):
            maps = received_attention(getattr(t, enc), views)
            up = F.interpolate(maps[:, None], size=(size, size), mode="bilinear", align_corners=False)[:, 0]
            name = titled(t.arm, paper_arm(t.cfg.flat())).replace(" [", "\n[")  # paper name and arm on two lines
            columns.append((f"{name}\n{enc} encoder, seed {t.seed}", up))
    fig, axes = plt.subplots(len(raw), len(columns), figsize=(2.6 * len(columns) + 1, 2.4 * len(raw) + 1.2),
                             squeeze=False, layout="constrained")
    try:
        for r in range(len(raw)):
            gray = shown[r].mean(dim=0).numpy()
            for c, (title, maps) in enumerate(columns):
                ax = axes[r, c]
                ax.imshow(gray, cmap="gray", vmin=0, vmax=1)
                if maps is not None:
                    im = ax.imshow(maps[r].numpy(), cmap="inferno", alpha=0.6, vmin=0, vmax=1)
                ax.set_xticks([])
                ax.set_yticks([])
                if r == 0:
                    ax.set_title(title, fontsize=8)
        fig.colorbar(im, ax=axes, fraction=0.025, pad=0.02, label="attention received (min-max per image)")
        fig.suptitle("Last-block attention received per patch (mean over heads and queries), final checkpoints",
                     fontsize=10)
        fig.savefig(path, dpi=110)
    finally:
        plt.close(fig)
    return path


def masks_figure(trial: Trial, path: Path, n_images: int = 6) -> Path:
    """The trial's multi-block masks (its config and seed, step 0) over test images: context blue,
    each target block its own colour (cjepa.masks.save_mask_png)."""
    from cjepa.masks import MultiBlockMaskGenerator, save_mask_png

    cfg = trial.cfg
    gen = MultiBlockMaskGenerator(cfg.model.img_size // cfg.model.patch_size, cfg.mask, seed=cfg.run.seed)
    _, views = sample_images(cfg, n_images)
    scale = max(4, 192 // max(gen.grid))  # ~200 px panels whatever the grid
    return save_mask_png(gen(len(views), 0), gen.grid, path, max_images=len(views), images=views, scale=scale)
