"""Evaluation off the training path (``cjepa eval``): a finished run's encoders, a bank of every
training image, the test split scored once, optionally I-JEPA's linear protocol.

During training the evaluator stays cheap (a bank of ``eval.train_samples`` images, the
validation split); the paper's numbers need more: kNN with the whole training split as the bank,
and I-JEPA's linear protocol (lr {0.01, 0.05, 0.001} x wd {5e-4, 0}, chosen here on the validation
split, :mod:`cjepa.eval.probe_grid`). Feature extraction is a function handed in: this process
(:func:`local_extractor`), or Ray workers that each read and encode their own slice of a set
(:mod:`cjepa.distributed.eval_ray`). kNN and the probes run on ``device`` (the GPU when there).

Names: ``<split>_<probe>_<encoder>[_gridK]`` with the in-training bank (``bank="eval"``: the very
numbers the trainer reports, ``test_knn_target`` at the last epoch); ``..._fullbank`` with every
training image as the bank; ``..._ijepa`` for the linear protocol's chosen head.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from cjepa.data import eval_view
from cjepa.data.build import normalization
from cjepa.engine.eval_sets import eval_images
from cjepa.engine.precision import eval_autocast, resolve_autocast
from cjepa.engine.trained import Trained
from cjepa.eval import extract_pooled, knn_accuracy, linear_probe_accuracy
from cjepa.eval.probe_grid import linear_probe_select
from cjepa.metrics import probe_name
from cjepa.model.vit import LastLayers

#: (run, encoder name, set) -> (pooling -> features (N, D), labels (N,))
Extract = Callable[[Trained, str, str], tuple[dict[str, torch.Tensor], torch.Tensor]]
SPLITS, BANKS, PROTOCOLS = ("test", "val"), ("train", "eval"), ("cjepa", "ijepa")


@dataclass(frozen=True)
class EvalRequest:
    split: str = "test"  # the queries: the test split (scored once), or the validation split
    bank: str = "train"  # "train": every training image; "eval": the in-training bank (eval.train_samples)
    protocol: str = "cjepa"  # "cjepa": the trainer's probes; "ijepa": also I-JEPA's lr x wd grid, chosen on val
    encoders: tuple[str, ...] = ("target",)

    def suffix(self) -> str:
        return "_fullbank" if self.bank == "train" else ""


def encode_set(run: Trained, encoder: str, which: str, lo: int = 0, hi: int | None = None,
               device: torch.device | str = "cpu") -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Pooled features (``eval.poolings``) of images ``[lo, hi)`` of a set, as the trainer's evaluator
    computes them (same views, normalisation, batch size, ``eval.precision``)."""
    cfg, m = run.cfg, run.cfg.model
    mean, std = normalization(cfg.data)
    images = eval_images(cfg, which, lo, hi)
    device = torch.device(device)
    dtype = eval_autocast(cfg.eval.precision, device, resolve_autocast(cfg, device))  # as the trainer
    net = run.encoder(encoder).to(device)
    net = LastLayers(net, cfg.eval.last_layers) if cfg.eval.last_layers > 1 else net  # type: ignore[arg-type]
    feats = extract_pooled(net, images.images, batch_size=cfg.eval.batch_size, device=device, autocast_dtype=dtype,
                           poolings=tuple(cfg.eval.poolings),
                           prepare=lambda u8: eval_view(u8, m.img_size, mean, std, m.in_chans))
    return feats, images.labels


def local_extractor(device: torch.device | str = "cpu") -> Extract:
    """Extraction in this process, on ``device``."""
    return lambda run, encoder, which: encode_set(run, encoder, which, device=device)


def evaluate_trained(run: Trained, req: EvalRequest, extract: Extract | None = None,
                     device: torch.device | str = "cpu") -> dict[str, float]:
    """Every probe of ``req`` on ``run``: kNN and the linear probe per encoder and pooling."""
    extract = extract or local_extractor(device)
    ev, out = run.cfg.eval, {}
    for enc in req.encoders:
        bank_f, bank_y = extract(run, enc, "train" if req.bank == "train" else "bank")
        query_f, query_y = extract(run, enc, req.split)
        val = extract(run, enc, "val") if req.protocol == "ijepa" and req.split != "val" else (query_f, query_y)
        for pooling in ev.poolings:
            def on(f: dict[str, torch.Tensor], p: str = pooling) -> torch.Tensor:
                return f[p].to(device)

            name = f"{req.split}_" + probe_name("{probe}", enc, pooling) + req.suffix()
            out[name.format(probe="knn")] = knn_accuracy(on(bank_f), bank_y, on(query_f), query_y,
                                                         k=ev.knn_k, temperature=ev.knn_temperature)
            if ev.linear_epochs > 0:
                out[name.format(probe="linear")] = linear_probe_accuracy(
                    on(bank_f), bank_y, on(query_f), query_y, epochs=ev.linear_epochs, lr=ev.linear_lr,
                    seed=run.cfg.run.seed)["acc"]
            if req.protocol == "ijepa":
                best = linear_probe_select((on(bank_f), bank_y), (on(val[0]), val[1]), (on(query_f), query_y),
                                           epochs=max(ev.linear_epochs, 1), seed=run.cfg.run.seed)
                out[name.format(probe="linear") + "_ijepa"] = best["acc"]
                out[name.format(probe="linear") + "_ijepa_lr"] = best["lr"]
                out[name.format(probe="linear") + "_ijepa_wd"] = best["weight_decay"]
    return out
