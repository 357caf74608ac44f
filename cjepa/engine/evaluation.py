"""Per-epoch evaluation of a run: kNN, linear probe and collapse telemetry.

Prepares the evaluation subsets once (deterministic: the first ``eval.train_samples`` of a
seed-0 permutation of the train split, the first ``eval.test_samples`` of the test split) and
the raw-pixel baseline once per dataset (cached on disk), then scores frozen, average-pooled
features of the target and context encoders every ``eval.every`` epochs.

Cost: the forward passes are ~95 % of an evaluation, the probes and collapse figures the rest.
They run ``eval.batch_size`` images at a time (128: faster on CPU than 512, same fp32 features)
under ``eval.precision`` (:func:`cjepa.engine.precision.eval_autocast`; with bf16 on a CPU with native bf16 the quick
study's evaluation takes 1.8x less CPU and no probe moves beyond noise, docs/benchmarks.md
"Evaluation cost").
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from cjepa.config import Config
from cjepa.data import eval_view, load_split
from cjepa.data.build import normalization
from cjepa.engine.precision import eval_autocast
from cjepa.eval import (
    cached_scores,
    check_knn_bank,
    collapse_metrics,
    extract_pooled,
    knn_accuracy,
    linear_probe_accuracy,
    raw_pixel_baseline,
)
from cjepa.masks import MultiBlockMaskGenerator
from cjepa.method import CJEPA
from cjepa.metrics import baseline_name, probe_name

PRED_PROBE_IMAGES = 512  # images used to measure the spread of predictor outputs


def _eval_sets(cfg: Config) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """(uint8 images, labels) of the kNN bank / probe training set and of the test set.

    In-memory sets: the first ``eval.train_samples`` of a seed-0 permutation of the train split.
    Parquet shards: the split's first rows (shuffled across classes at import), read shard by
    shard: a permutation of a large split would read every shard for a few thousand images."""
    ev, img = cfg.eval, cfg.model.img_size
    if cfg.data.dataset == "parquet":
        from cjepa.data.shards import split_root
        from cjepa.data.stream import ShardSplit, eval_images

        return tuple(eval_images(ShardSplit(split_root(cfg.data.root, s)), n, img)  # type: ignore[return-value]
                     for s, n in (("train", ev.train_samples), ("test", ev.test_samples)))
    train, test = load_split(cfg.data, "train"), load_split(cfg.data, "test")
    idx = torch.randperm(len(train.labels), generator=torch.Generator().manual_seed(0))[: ev.train_samples]
    return (train.images[idx], train.labels[idx]), (test.images[: ev.test_samples], test.labels[: ev.test_samples])


class Evaluator:
    def __init__(self, cfg: Config, device: torch.device, autocast_dtype: torch.dtype | None = None) -> None:
        self.cfg = cfg
        self.device = device
        ev, m = cfg.eval, cfg.model
        self.autocast_dtype = eval_autocast(ev.precision, device, autocast_dtype)
        mean, std = normalization(cfg.data)
        (train_u8, self.train_y), (test_u8, self.test_y) = _eval_sets(cfg)
        self.train_x = eval_view(train_u8, m.img_size, mean, std, m.in_chans)
        self.test_x = eval_view(test_u8, m.img_size, mean, std, m.in_chans)
        check_knn_bank(ev.knn_k, len(self.train_y), cfg.data.dataset)  # a split smaller than eval.train_samples
        self.baseline: dict[str, float] = {}
        key = (f"{cfg.data.dataset}:{cfg.data.root}:train{len(self.train_y)}:test{len(self.test_y)}:img{m.img_size}"
               f":k{ev.knn_k}:T{ev.knn_temperature}:lin{ev.linear_epochs}")
        if cfg.data.dataset == "parquet":  # the bank is the split's prefix since the shard stream (not a permutation)
            key += ":bank=prefix"
        cache = Path(cfg.data.cache_dir).expanduser() / "raw_baselines.json"
        if ev.raw_baseline:
            self.baseline = raw_pixel_baseline(self.train_x, self.train_y, self.test_x, self.test_y,
                                               k=ev.knn_k, temperature=ev.knn_temperature,
                                               linear_epochs=ev.linear_epochs, cache_file=cache,
                                               cache_key=key)
        if ev.random_baseline:
            self.baseline.update(self._random_init_scores(cache, key))
        mask_gen = MultiBlockMaskGenerator(m.img_size // m.patch_size, cfg.mask, seed=cfg.run.seed)
        self.pred_masks = mask_gen(min(PRED_PROBE_IMAGES, len(self.test_y)), 0)  # fixed: drawn once

    def _features(self, encoder: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return extract_pooled(encoder, x, batch_size=self.cfg.eval.batch_size, device=self.device,
                              autocast_dtype=self.autocast_dtype, poolings=tuple(self.cfg.eval.poolings))

    def score(self, encoder: nn.Module, name: str) -> dict[str, float]:
        """kNN and linear probe per pooling (``mean`` unsuffixed), collapse metrics of the mean."""
        ev = self.cfg.eval
        train_f, test_f = self._features(encoder, self.train_x), self._features(encoder, self.test_x)
        out: dict[str, float] = {}
        for pooling in ev.poolings:
            tr, te = train_f[pooling], test_f[pooling]
            out[probe_name("knn", name, pooling)] = knn_accuracy(tr, self.train_y, te, self.test_y, k=ev.knn_k,
                                                                 temperature=ev.knn_temperature)
            if ev.linear_epochs > 0:
                probe = linear_probe_accuracy(tr, self.train_y, te, self.test_y, epochs=ev.linear_epochs,
                                              lr=ev.linear_lr, seed=self.cfg.run.seed)
                out[probe_name("linear", name, pooling)] = probe["acc"]
        out.update(collapse_metrics(test_f["mean"], name))
        return out

    def _random_init_scores(self, cache: Path, data_key: str) -> dict[str, float]:
        """kNN / linear probe of the encoder exactly as this run initialised it (same seed, same
        construction order as the trainer), so every curve can be read against "no training".
        Cached like the raw-pixel baseline: it depends on the model config and seed, not the run."""
        import json

        from cjepa.model import build_encoder

        cfg = self.cfg
        model_key = json.dumps(cfg.to_dict()["model"], sort_keys=True)
        key = f"{data_key}:init:{model_key}:seed{cfg.run.seed}:pool{','.join(cfg.eval.poolings)}"
        if self.autocast_dtype is not None:  # other features than fp32's; fp32 keeps its old key
            key += f":{str(self.autocast_dtype).removeprefix('torch.')}"

        ev = cfg.eval
        probes = [p for p in ("knn", "linear") if p == "knn" or ev.linear_epochs > 0]
        rename = {probe_name(p, "rand", pool): baseline_name("rand", p, pool) for p in probes for pool in ev.poolings}

        def compute() -> dict[str, float]:
            with torch.random.fork_rng(devices=[]):  # the run's own RNG stream is untouched
                torch.manual_seed(cfg.run.seed)
                encoder = build_encoder(cfg.model).to(self.device)  # drawn first, as in CJEPA
            scores = self.score(encoder, "rand")
            return {rename[k]: v for k, v in scores.items() if k in rename}

        names = tuple(rename.values())
        params = {"k": ev.knn_k, "temperature": ev.knn_temperature, "linear_epochs": ev.linear_epochs}
        return cached_scores(cache, key, params, names, compute)

    @torch.no_grad()
    def predictor_spread(self, model: CJEPA) -> dict[str, float]:
        """Collapse metrics of pooled predictor outputs on fixed images and fixed masks.

        Always in the networks' own precision, not ``eval.precision``: bf16 saved little here (the
        predictor is narrow) and moved ``pred_eff_rank`` of a nearly collapsed run by 4 %."""
        modes = (model.encoder.training, model.predictor.training)
        model.encoder.eval()
        model.predictor.eval()
        masks = self.pred_masks
        x = self.test_x[:len(masks.context)].to(self.device)
        ctx_idx, tgt_idx = masks.context.to(self.device), masks.targets.to(self.device)
        pred = model.predictor(model.encoder(x, ctx_idx), ctx_idx, tgt_idx)
        model.encoder.train(modes[0])
        model.predictor.train(modes[1])
        return collapse_metrics(pred.float().mean(dim=2).flatten(0, 1).cpu(), "pred")

    def evaluate(self, model: CJEPA) -> dict[str, float]:
        """All evaluation metrics for one epoch (``model`` unwrapped from DDP)."""
        metrics = dict(self.baseline)
        for name in self.cfg.eval.encoders:
            metrics.update(self.score(model.target if name == "target" else model.encoder, name))
        metrics.update(self.predictor_spread(model))
        return metrics

