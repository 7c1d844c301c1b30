"""Batches from a device-resident split, and the uint8 -> float conversion done on the device.

A whole split is moved to the device once, as uint8 (a quarter of float32's memory), and each
batch is one indexing operation, so neither loading nor augmentation goes through Python per
image.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import Tensor

from autoaug.data.base import Split


class BatchOrder:
    """The seeded order, the epoch count and the resumable position that every loader shares.

    A loader over ``n`` items draws each epoch's order from its own CPU generator (the same on
    every device and every rank), yields batches of it through ``_batches``, and records how
    far it got, so that :meth:`state_dict` captures a position in the middle of an epoch.
    """

    def _setup(self, n: int, batch_size: int, *, shuffle: bool, drop_last: bool, seed: int) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
            raise ValueError(f"batch_size: expected a positive integer, got {batch_size!r}")
        if drop_last and 0 < n < batch_size:
            raise ValueError(
                f"batch_size {batch_size} is larger than the split ({n} images) and drop_last=True: "
                "no batch would be yielded; use a smaller batch or drop_last=False"
            )
        self.n = n
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.epoch = 0  # epochs started
        self._generator = torch.Generator().manual_seed(seed)
        self._resume_batch = 0
        self._current: dict[str, Any] | None = None  # the epoch being iterated, for state_dict
        self.last_index: Tensor | None = None

    def __len__(self) -> int:
        """Batches per epoch."""
        return self.n // self.batch_size if self.drop_last else math.ceil(self.n / self.batch_size)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        start_state = self._generator.get_state()
        order = torch.randperm(self.n, generator=self._generator) if self.shuffle else torch.arange(self.n)
        skip, self._resume_batch = self._resume_batch, 0
        current = {"epoch": self.epoch, "generator": start_state, "batch": skip}
        self._current = current
        self.epoch += 1
        return self._batches(order, skip, current)

    def _batches(self, order: Tensor, skip: int, current: dict[str, Any]) -> Iterator[tuple[Tensor, Tensor]]:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        """The loader's position: ``epoch``, ``batch`` (batches of it already yielded) and the
        ``generator`` state that draws that epoch's order.

        Examples:
            >>> import torch
            >>> from autoaug.data import Split
            >>> split = Split(torch.zeros(6, 1, 2, 2, dtype=torch.uint8), torch.arange(6))
            >>> a = DeviceLoader(split, 2, seed=1)
            >>> it = iter(a); _ = next(it); state = a.state_dict()
            >>> b = DeviceLoader(split, 2, seed=99)
            >>> b.load_state_dict(state)
            >>> [y.tolist() for _, y in b] == [y.tolist() for _, y in it]
            True
        """
        cur = self._current
        if cur is not None and cur["batch"] < len(self):
            return {"epoch": cur["epoch"], "batch": cur["batch"], "generator": cur["generator"].clone()}
        return {"epoch": self.epoch, "batch": 0, "generator": self._generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume from :meth:`state_dict`: the next pass continues that epoch at that batch."""
        what = type(self).__name__
        missing = {"epoch", "batch", "generator"} - set(state)
        if missing:
            raise ValueError(f"{what} state: missing {sorted(missing)}; expected a {what}.state_dict()")
        if not 0 <= int(state["batch"]) <= len(self):
            raise ValueError(f"{what} state: batch {state['batch']} is outside [0, {len(self)}]")
        self._generator.set_state(state["generator"])
        self.epoch = int(state["epoch"])
        self._resume_batch = int(state["batch"])
        self._current = None


class DeviceLoader(BatchOrder):
    """Holds a :class:`Split` on a device as uint8 and yields ``(images, labels)`` batches by indexing.

    Each pass over the loader is one epoch, in a new order drawn from the loader's own CPU
    generator (so the order is the same on every device). :meth:`state_dict` captures the
    generator and the position, also in the middle of an epoch, so that a resumed run sees
    the same batches in the same order.

    If the split does not fit on the device, it stays in pinned CPU memory and each batch is
    copied over on its own.

    Args:
        split: the data.
        batch_size: images per batch.
        device: where the batches live.
        shuffle: a new random order each epoch; otherwise the split's order.
        drop_last: skip the last, smaller batch of an epoch.
        seed: seeds the order.

    Shape:
        yields images B×C×H×W uint8 and labels B int64, on ``device``.

    Examples:
        >>> import torch
        >>> from autoaug.data import Split
        >>> split = Split(torch.zeros(10, 1, 4, 4, dtype=torch.uint8), torch.arange(10))
        >>> loader = DeviceLoader(split, batch_size=4, seed=0)
        >>> len(loader), [labels.tolist() for _, labels in loader]
        (2, [[4, 1, 7, 5], [3, 9, 0, 8]])
    """

    def __init__(
        self,
        split: Split,
        batch_size: int,
        *,
        device: str | torch.device = "cpu",
        shuffle: bool = True,
        drop_last: bool = True,
        seed: int = 0,
    ) -> None:
        if not isinstance(split, Split):
            raise TypeError(
                f"DeviceLoader: expected a Split (such as dataset.train), got {type(split).__name__}"
            )
        self._setup(len(split), batch_size, shuffle=shuffle, drop_last=drop_last, seed=seed)
        self.device = torch.device(device)
        try:
            self.images = split.images.to(self.device)
            self.labels = split.labels.to(self.device)
            self.resident = True
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
            self.images, self.labels = split.images.pin_memory(), split.labels.pin_memory()
            self.resident = False

    def _batches(self, order: Tensor, skip: int, current: dict[str, Any]) -> Iterator[tuple[Tensor, Tensor]]:
        if self.resident:
            order = order.to(self.device)
        for b in range(skip, len(self)):
            idx = order[b * self.batch_size : (b + 1) * self.batch_size]
            # Counted before the yield: a checkpoint taken after the step on this batch resumes at the next.
            current["batch"] = b + 1
            self.last_index = idx  # the dataset indices of the batch just yielded
            if self.resident:
                yield self.images[idx], self.labels[idx]
            else:
                yield (
                    self.images[idx].to(self.device, non_blocking=True),
                    self.labels[idx].to(self.device, non_blocking=True),
                )


def channel_stats(split: Split, chunk: int = 8192) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and standard deviation of a split's pixels, in [0, 1] units.

    Computed in chunks, in float64, so the whole split is never converted to float at once.

    Examples:
        >>> import torch
        >>> from autoaug.data import Split
        >>> images = torch.tensor([0, 255], dtype=torch.uint8).view(2, 1, 1, 1)
        >>> channel_stats(Split(images, torch.zeros(2, dtype=torch.int64)))
        ((0.5,), (0.5,))
    """
    c = split.images.shape[1]
    total = torch.zeros(c, dtype=torch.float64)
    total_sq = torch.zeros(c, dtype=torch.float64)
    for start in range(0, len(split), chunk):
        x = split.images[start : start + chunk].to(torch.float64).div_(255)
        total += x.sum(dim=(0, 2, 3))
        total_sq += x.square().sum(dim=(0, 2, 3))
    count = max(1, split.images[:, 0].numel())
    mean = total / count
    std = (total_sq / count - mean.square()).clamp(min=0).sqrt()
    return tuple(mean.tolist()), tuple(std.tolist())


def _per_channel(values: Sequence[float] | Tensor, like: Tensor, what: str) -> Tensor:
    t = torch.as_tensor(values, dtype=like.dtype, device=like.device).reshape(-1)
    if t.numel() not in (1, like.shape[-3]):
        raise ValueError(f"{what}: expected 1 or {like.shape[-3]} values (one per channel), got {t.numel()}")
    return t.view(-1, 1, 1)


def normalize(images: Tensor, mean: Sequence[float] | Tensor, std: Sequence[float] | Tensor) -> Tensor:
    """``(images - mean) / std`` per channel, on the images' device.

    Shape:
        images: B×C×H×W float; mean, std: C (or 1) values.
    """
    return (images - _per_channel(mean, images, "mean")) / _per_channel(std, images, "std")


def to_float(
    images: Tensor,
    mean: Sequence[float] | Tensor | None = None,
    std: Sequence[float] | Tensor | None = None,
    *,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """uint8 images to float in [0, 1], then normalized per channel when ``mean`` and ``std`` are given.

    Runs on the images' device; augmentation (which works on [0, 1]) goes between the two
    steps, so call it without ``mean``/``std`` first and :func:`normalize` after.

    Shape:
        images: B×C×H×W uint8; returns the same shape in ``dtype``.

    Examples:
        >>> import torch
        >>> x = torch.full((1, 1, 2, 2), 255, dtype=torch.uint8)
        >>> to_float(x).max().item(), to_float(x, mean=[0.5], std=[0.25]).max().item()
        (1.0, 2.0)
    """
    if images.dtype != torch.uint8:
        raise ValueError(f"to_float: expected uint8 images, got {images.dtype}")
    if (mean is None) != (std is None):
        raise ValueError("to_float: give both mean and std, or neither")
    x = images.to(dtype).div_(255)
    return x if mean is None else normalize(x, mean, std)
