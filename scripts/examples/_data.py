"""The examples' data: an autoaug dataset as plain tensors (uint8 images, labels, indices)."""

from __future__ import annotations

import torch
from torch.utils.data import TensorDataset

from autoaug.data import load_dataset


def tensors(name: str, train_size: int | None) -> tuple[TensorDataset, TensorDataset, int, int]:
    """``(train, test, channels, classes)``: each item is ``(image uint8 C×H×W, label, index)``; the
    index lets OnlineAugment keep one sampler chain per training image."""
    ds = load_dataset(name, train_size=train_size, val_size=0)
    train = TensorDataset(ds.train.images, ds.train.labels, torch.arange(len(ds.train)))
    test = TensorDataset(ds.test.images, ds.test.labels, torch.arange(len(ds.test)))
    return train, test, ds.channels, ds.num_classes


def mean_std(train: TensorDataset) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of the training pixels in [0, 1] (the normalization)."""
    x = train.tensors[0].float() / 255.0
    return x.mean((0, 2, 3)).tolist(), x.std((0, 2, 3)).clamp(min=1e-3).tolist()
