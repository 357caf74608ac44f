"""Weighted k-nearest-neighbour classification on frozen features (dinov2 ``eval/knn.py`` style).

Why kNN: it has no hyper-parameters to train and no optimisation noise, so it is the cheapest
per-epoch signal of representation quality, and it is what the SSL literature reports next to
the linear probe. The vote follows DINO/dinov2: cosine similarity on L2-normalised features, the
k most similar training samples, each voting for its label with weight ``exp(sim / T)``. A small
T (0.07) lets a very close neighbour outvote several distant ones; ``T = math.inf`` gives every
neighbour weight 1, i.e. a plain majority vote (ties go to the smaller class index).

Memory: the similarity matrix is built ``chunk`` test samples at a time, so a 10k x 60k problem
needs ``chunk x N_train`` floats at once instead of 600M.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def knn_predict(
    train_feats: Tensor,
    train_labels: Tensor,
    test_feats: Tensor,
    k: int = 20,
    temperature: float = 0.07,
    num_classes: int | None = None,
    chunk: int = 1024,
) -> Tensor:
    """Predicted labels (N_test,) int64 for ``test_feats`` by a weighted vote of the k nearest
    (cosine) training samples. ``k`` larger than the bank is refused, not clipped (a different probe)."""
    _check(train_feats, train_labels, test_feats)
    if not 1 <= k <= train_feats.shape[0]:
        raise ValueError(f"k: expected 1 <= k <= {train_feats.shape[0]} (the training bank), got {k}")
    if not temperature > 0:
        raise ValueError(f"temperature: expected > 0, got {temperature}")
    if chunk < 1:
        raise ValueError(f"chunk: expected >= 1, got {chunk}")
    labels = train_labels.long().cpu()
    if num_classes is None:
        num_classes = int(labels.max()) + 1
    bank = F.normalize(train_feats.float(), dim=1)
    labels = labels.to(bank.device)
    preds = []
    for start in range(0, test_feats.shape[0], chunk):
        query = F.normalize(test_feats[start:start + chunk].float().to(bank.device), dim=1)
        sims, idx = (query @ bank.T).topk(k, dim=1)
        # softmax over the k neighbours = exp(sim / T) up to a per-row constant: same argmax, but
        # no float32 overflow when T is small (exp(1 / 0.01) = 2.7e43 > float32 max).
        weights = torch.softmax(sims / temperature, dim=1)
        scores = torch.zeros(query.shape[0], num_classes, device=bank.device)
        scores.scatter_add_(1, labels[idx], weights)
        preds.append(scores.argmax(dim=1).cpu())
    if not preds:
        return torch.empty(0, dtype=torch.long)
    return torch.cat(preds)


def check_knn_bank(k: int, bank: int, dataset: str) -> None:
    """Refuse ``eval.knn_k`` above the bank the evaluator really has (the train split can be smaller
    than ``eval.train_samples``, which config validation checks): before any training, one line."""
    if k > bank:
        from cjepa.errors import ConfigError

        raise ConfigError(f"eval.knn_k={k} exceeds the kNN bank: the train split of {dataset} gives {bank} images "
                          f"(eval.train_samples or the split, whichever is smaller); choose eval.knn_k <= {bank}")


def knn_accuracy(
    train_feats: Tensor,
    train_labels: Tensor,
    test_feats: Tensor,
    test_labels: Tensor,
    k: int = 20,
    temperature: float = 0.07,
) -> float:
    """Fraction of ``test_feats`` whose kNN prediction equals ``test_labels``, in [0, 1]."""
    if test_labels.shape[0] != test_feats.shape[0]:
        raise ValueError(f"test_labels has {test_labels.shape[0]} entries for {test_feats.shape[0]} "
                         "test samples")
    if test_feats.shape[0] == 0:
        raise ValueError("knn_accuracy: empty test set")
    num_classes = int(max(int(train_labels.max()), int(test_labels.max()))) + 1
    preds = knn_predict(train_feats, train_labels, test_feats, k=k, temperature=temperature,
                        num_classes=num_classes)
    return float((preds == test_labels.long().cpu()).float().mean())


def _check(train_feats: Tensor, train_labels: Tensor, test_feats: Tensor) -> None:
    if train_feats.dim() != 2 or test_feats.dim() != 2:
        raise ValueError(f"features: expected 2-D (N, D), got train {tuple(train_feats.shape)} and "
                         f"test {tuple(test_feats.shape)}")
    if train_feats.shape[1] != test_feats.shape[1]:
        raise ValueError(f"feature widths differ: train D={train_feats.shape[1]}, "
                         f"test D={test_feats.shape[1]}")
    if train_feats.shape[0] == 0:
        raise ValueError("knn: empty training bank")
    if train_labels.shape[0] != train_feats.shape[0]:
        raise ValueError(f"train_labels has {train_labels.shape[0]} entries for "
                         f"{train_feats.shape[0]} training samples")
