"""Evaluation of a run: kNN, linear probe and collapse telemetry, per epoch on the validation
split and once, at the end, on the test split.

The sets (:mod:`cjepa.engine.eval_sets`) are prepared once; so are the raw-pixel and the
random-initialised encoder's baselines (cached on disk, keyed on the images' ids and every
setting). Every ``eval.every`` epochs frozen, pooled features of the target and context encoders
are scored on the validation queries: these are the curves and the numbers every study selects
on. :meth:`Evaluator.evaluate_test` scores the test queries once, at the last epoch (``test_*``).

Cost: the forward passes are ~95 % of an evaluation, the probes and collapse figures the rest.
They run ``eval.batch_size`` images at a time (128: faster on CPU than 512, same fp32 features)
under ``eval.precision`` (:func:`cjepa.engine.precision.eval_autocast`; with bf16 on a CPU with native bf16 the quick
study's evaluation takes 1.8x less CPU and no probe moves beyond noise, docs/benchmarks.md
"Evaluation cost").
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import nn

from cjepa.config import Config
from cjepa.data import eval_view
from cjepa.data.build import normalization
from cjepa.engine.eval_sets import EvalImages, cache_key, data_identity, eval_images, query_split
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
from cjepa.metrics import baseline_name, probe_name, test_name
from cjepa.model.vit import LastLayers

PRED_PROBE_IMAGES = 512  # images used to measure the spread of predictor outputs


@dataclass
class ProbeSets:
    """Bank and queries as uint8 images (normalised batch by batch on the device, :meth:`Evaluator.view`)
    and labels, with the sets whose ids key their cached baselines."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor  # the queries: validation (per epoch) or test (at the end)
    test_y: torch.Tensor
    bank: EvalImages
    query: EvalImages


class Evaluator:
    def __init__(self, cfg: Config, device: torch.device, autocast_dtype: torch.dtype | None = None) -> None:
        self.cfg = cfg
        self.device = device
        ev, m = cfg.eval, cfg.model
        self.autocast_dtype = eval_autocast(ev.precision, device, autocast_dtype)
        self.mean, self.std = normalization(cfg.data)
        self.identity = data_identity(cfg)
        self._bank = eval_images(cfg, "bank")
        check_knn_bank(ev.knn_k, len(self._bank.labels), cfg.data.dataset)  # a split smaller than the bank
        self.split = query_split(cfg)
        self.sets = self._probe_sets(eval_images(cfg, self.split))
        self.train_x, self.train_y, self.test_x, self.test_y = (self.sets.train_x, self.sets.train_y,
                                                                self.sets.test_x, self.sets.test_y)
        self.baseline = self._baselines(self.sets)
        # one context view whatever mask.context_views is: the predictor's spread is read on the masks a
        # K = 1 run reads it on, so the figure compares across K
        one_view = replace(cfg.mask, context_views=1)
        mask_gen = MultiBlockMaskGenerator(m.img_size // m.patch_size, one_view, seed=cfg.run.seed)
        self.pred_masks = mask_gen(min(PRED_PROBE_IMAGES, len(self.test_y)), 0)  # fixed: drawn once

    def _probe_sets(self, query: EvalImages) -> ProbeSets:
        return ProbeSets(self._bank.images, self._bank.labels, query.images, query.labels, self._bank, query)

    def view(self, images_u8: torch.Tensor) -> torch.Tensor:
        """uint8 images -> the encoder's input (resize, normalise), where they are (the GPU in training)."""
        m = self.cfg.model
        return eval_view(images_u8, m.img_size, self.mean, self.std, m.in_chans)

    def _cache(self) -> Path:
        return Path(self.cfg.data.cache_dir).expanduser() / "raw_baselines.json"

    def _key(self, kind: str, sets: ProbeSets, **settings: object) -> str:
        ev = self.cfg.eval
        probe = {"k": ev.knn_k, "T": ev.knn_temperature, "lin_epochs": ev.linear_epochs, "lin_lr": ev.linear_lr,
                 "seed": self.cfg.run.seed}
        return cache_key(kind, self.cfg, sets.bank, sets.query, self.identity, {**probe, **settings})

    def _baselines(self, sets: ProbeSets) -> dict[str, float]:
        """Raw pixels and the random-initialised encoder on these sets (cached)."""
        ev, out = self.cfg.eval, {}
        if ev.raw_baseline:
            out = raw_pixel_baseline(self.view(sets.train_x), sets.train_y, self.view(sets.test_x), sets.test_y,
                                     k=ev.knn_k,
                                     temperature=ev.knn_temperature, linear_epochs=ev.linear_epochs,
                                     lr=ev.linear_lr, seed=self.cfg.run.seed, cache_file=self._cache(),
                                     cache_key=self._key("raw", sets))
        if ev.random_baseline:
            out.update(self._random_init_scores(sets))
        return out

    def _features(self, encoder: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
        k = self.cfg.eval.last_layers
        encoder = LastLayers(encoder, k) if k > 1 else encoder  # type: ignore[arg-type]
        return extract_pooled(encoder, x, batch_size=self.cfg.eval.batch_size, device=self.device,
                              autocast_dtype=self.autocast_dtype, poolings=tuple(self.cfg.eval.poolings),
                              prepare=self.view)

    def score(self, encoder: nn.Module, name: str, sets: ProbeSets | None = None) -> dict[str, float]:
        """kNN and linear probe per pooling (``mean`` unsuffixed), collapse metrics of the mean;
        on the per-epoch sets unless ``sets`` are given."""
        ev, sets = self.cfg.eval, sets or self.sets
        train_f, test_f = self._features(encoder, sets.train_x), self._features(encoder, sets.test_x)
        out: dict[str, float] = {}
        for pooling in ev.poolings:
            tr, te = train_f[pooling].to(self.device), test_f[pooling].to(self.device)  # probes on the GPU there
            out[probe_name("knn", name, pooling)] = knn_accuracy(tr, sets.train_y, te, sets.test_y, k=ev.knn_k,
                                                                 temperature=ev.knn_temperature)
            if ev.linear_epochs > 0:
                probe = linear_probe_accuracy(tr, sets.train_y, te, sets.test_y, epochs=ev.linear_epochs,
                                              lr=ev.linear_lr, seed=self.cfg.run.seed)
                out[probe_name("linear", name, pooling)] = probe["acc"]
        out.update(collapse_metrics(test_f["mean"], name))
        return out

    def _random_init_scores(self, sets: ProbeSets) -> dict[str, float]:
        """kNN / linear probe of the encoder exactly as this run initialised it (same seed, same
        construction order as the trainer), so every curve can be read against "no training".
        Cached like the raw-pixel baseline, keyed also on the model config, poolings and precision."""
        import json

        from cjepa.model import initial_encoder

        cfg, ev = self.cfg, self.cfg.eval
        dtype = "fp32" if self.autocast_dtype is None else str(self.autocast_dtype).removeprefix("torch.")
        key = self._key("init", sets, model=json.dumps(cfg.identity_dict()["model"], sort_keys=True),
                        poolings=list(ev.poolings), precision=dtype, last_layers=ev.last_layers)
        probes = [p for p in ("knn", "linear") if p == "knn" or ev.linear_epochs > 0]
        rename = {probe_name(p, "rand", pool): baseline_name("rand", p, pool) for p in probes for pool in ev.poolings}

        def compute() -> dict[str, float]:
            encoder = initial_encoder(cfg.model, cfg.run.seed).to(self.device)  # the run's RNG untouched
            scores = self.score(encoder, "rand", sets)
            return {rename[k]: v for k, v in scores.items() if k in rename}

        names = tuple(rename.values())
        params = {"k": ev.knn_k, "temperature": ev.knn_temperature, "linear_epochs": ev.linear_epochs}
        return cached_scores(self._cache(), key, params, names, compute)

    @torch.no_grad()
    def predictor_spread(self, model: CJEPA) -> dict[str, float]:
        """Collapse metrics of pooled predictor outputs on fixed images and fixed masks.

        Always in the networks' own precision, not ``eval.precision``: bf16 saved little here (the
        predictor is narrow) and moved ``pred_eff_rank`` of a nearly collapsed run by 4 %."""
        modes = (model.encoder.training, model.predictor.training)
        model.encoder.eval()
        model.predictor.eval()
        masks = self.pred_masks
        x = self.view(self.sets.test_x[:len(masks.context)].to(self.device))
        ctx_idx, tgt_idx = masks.context.to(self.device), masks.targets.to(self.device)
        pred = model.predictor(model.encoder(x, ctx_idx), ctx_idx, tgt_idx)
        model.encoder.train(modes[0])
        model.predictor.train(modes[1])
        return collapse_metrics(pred.float().mean(dim=2).flatten(0, 1).cpu(), "pred")

    def evaluate(self, model: CJEPA) -> dict[str, float]:
        """All evaluation metrics for one epoch (``model`` unwrapped from DDP), on the validation
        split (the test split when ``data.val_samples = 0``)."""
        metrics = dict(self.baseline)
        for name in self.cfg.eval.encoders:
            metrics.update(self.score(model.target if name == "target" else model.encoder, name))
        metrics.update(self.predictor_spread(model))
        return metrics


    def evaluate_test(self, model: CJEPA) -> dict[str, float]:
        """The test split, scored once at the end of a run: ``test_knn_target``, ``test_raw_knn_acc``,
        ... (probes and baselines; no collapse figures). Empty without a validation split (the
        per-epoch numbers are the test split's then)."""
        if self.split == "test":
            return {}
        sets = self._probe_sets(eval_images(self.cfg, "test"))
        scores = self._baselines(sets)
        for name in self.cfg.eval.encoders:
            probes = self.score(model.target if name == "target" else model.encoder, name, sets)
            scores.update({k: v for k, v in probes.items() if k.startswith(("knn_", "linear_"))})
        return {test_name(k): v for k, v in scores.items()}
