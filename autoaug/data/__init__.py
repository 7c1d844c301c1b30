"""Datasets as uint8 tensors with seeded splits, and a loader that batches them on the device.

* :func:`load_dataset`: synthetic tasks with known symmetries (``glyphs``, ``arrows``),
  Fashion-MNIST and MNIST from IDX files, CIFAR-10/100 and SVHN through torchvision, an
  ImageFolder directory (``folder:PATH``) or a ``.npz`` file (``npz:PATH``);
* :func:`list_datasets`: what is known, what is installed, and how to get the rest;
* :class:`DeviceLoader`, :func:`to_float`, :func:`normalize`, :func:`channel_stats`: batches
  by indexing a device-resident split, conversion and normalization on the device;
* :class:`FileSplit`, :class:`StreamLoader`: a folder too large for memory, decoded and resized
  in DataLoader workers, batched in the same seeded order (:mod:`autoaug.data.stream`).

Example:
    >>> from autoaug.data import DeviceLoader, load_dataset, to_float
    >>> ds = load_dataset("glyphs", train_size=600)
    >>> images, labels = next(iter(DeviceLoader(ds.train, batch_size=32)))
    >>> to_float(images).shape, labels.dtype
    (torch.Size([32, 3, 32, 32]), torch.int64)
"""

from autoaug.data.base import Dataset, DatasetError, DatasetNotFoundError, Split, data_home
from autoaug.data.loader import DeviceLoader, channel_stats, normalize, to_float
from autoaug.data.registry import (
    DATASETS,
    SYNTHETIC_DATASETS,
    DatasetInfo,
    list_datasets,
    load_dataset,
    synthetic_pool,
)
from autoaug.data.stream import FileSplit, StreamLoader

__all__ = [
    "DATASETS",
    "SYNTHETIC_DATASETS",
    "Dataset",
    "DatasetError",
    "DatasetInfo",
    "DatasetNotFoundError",
    "DeviceLoader",
    "FileSplit",
    "Split",
    "StreamLoader",
    "channel_stats",
    "data_home",
    "list_datasets",
    "load_dataset",
    "normalize",
    "synthetic_pool",
    "to_float",
]
