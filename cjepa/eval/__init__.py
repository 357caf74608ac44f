"""Frozen-feature evaluation (kNN, linear probe, raw-pixel baseline) and collapse telemetry.

Everything here works on plain tensors of pooled features, so it is shared by the training loop,
the CLI and the sweep layer; no tracking or orchestration imports.
"""

from cjepa.eval.baseline import cached_scores, raw_pixel_baseline
from cjepa.eval.collapse import collapse_metrics, effective_rank, feature_std, mean_abs_offdiag_corr
from cjepa.eval.features import check_pooling, extract_features, extract_pooled, pool_tokens
from cjepa.eval.knn import check_knn_bank, knn_accuracy, knn_predict
from cjepa.eval.linear_probe import linear_probe_accuracy

__all__ = [
    "cached_scores",
    "collapse_metrics",
    "effective_rank",
    "check_knn_bank",
    "check_pooling",
    "extract_features",
    "extract_pooled",
    "pool_tokens",
    "feature_std",
    "knn_accuracy",
    "knn_predict",
    "linear_probe_accuracy",
    "mean_abs_offdiag_corr",
    "raw_pixel_baseline",
]
