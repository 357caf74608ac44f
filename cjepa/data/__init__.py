"""Datasets (whole splits as uint8 tensors), batched augmentations and a step-keyed loader."""

from cjepa.data.datasets import LabeledImages, dataset_stats, fashion_mnist_dir, load_split
from cjepa.data.idx import read_idx
from cjepa.data.loader import StepBatchDataset, StepBatchSampler, build_loader, derive_seed
from cjepa.data.transforms import crop_params, eval_view, resized_crops, train_views

__all__ = [
    "LabeledImages",
    "StepBatchDataset",
    "StepBatchSampler",
    "build_loader",
    "crop_params",
    "dataset_stats",
    "derive_seed",
    "eval_view",
    "fashion_mnist_dir",
    "load_split",
    "read_idx",
    "resized_crops",
    "train_views",
]
