"""Datasets that stay on disk: a split of image files, decoded and resized in DataLoader workers.

A :class:`FileSplit` is a list of files with their labels and the size and channels they are
decoded to. :class:`StreamLoader` batches it in the seeded order a :class:`DeviceLoader`
would (the same batches, the same ``last_index``, the same resumable ``state_dict``), decoding
each batch in worker processes; augmentation is not done there but on the device, batched,
by the step that gets the batch (``Policy.apply``), as for device-resident data. Under
torchrun each rank decodes only its own batches: for the others' it yields ``(None, None)``,
which the trainer skips.

Examples:
    >>> import tempfile, pathlib
    >>> from PIL import Image
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> for i, size in enumerate([(40, 30), (20, 50), (64, 64), (10, 12)]):
    ...     Image.new("RGB", size).save(root / f"{i}.png")
    >>> split = FileSplit([str(root / f"{i}.png") for i in range(4)], torch.tensor([0, 1, 0, 1]), 3, (16, 16))
    >>> images, labels = next(iter(StreamLoader(split, batch_size=2, workers=0)))
    >>> images.shape, images.dtype, len(split.load())
    (torch.Size([2, 3, 16, 16]), torch.uint8, 4)
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from autoaug.data.base import DatasetError, Split
from autoaug.data.images import CROPS, read_image
from autoaug.data.loader import BatchOrder


@dataclass
class FileSplit:
    """One split of image files: paths, int64 labels, and how each file is decoded.

    Attributes:
        paths: the files.
        labels: N int64.
        channels: 1 or 3.
        size: (H, W) every image is brought to.
        crop: ``"center"`` (shorter side, centre crop) or ``"random"`` (RandomResizedCrop, a
            new crop each epoch; training splits only).
    """

    paths: list[str]
    labels: Tensor
    channels: int
    size: tuple[int, int]
    crop: str = "center"
    images: LazyImages = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if len(self.paths) != len(self.labels):
            raise ValueError(f"FileSplit: {len(self.paths)} files but {len(self.labels)} labels")
        if self.crop not in CROPS:
            raise ValueError(f"FileSplit.crop: expected one of {', '.join(CROPS)}, got {self.crop!r}")
        self.images = LazyImages(self)

    def __len__(self) -> int:
        return len(self.labels)

    def __repr__(self) -> str:
        h, w = self.size
        return f"FileSplit({len(self)} files -> uint8[{self.channels}, {h}, {w}], crop={self.crop!r})"

    def subset(self, index: Tensor) -> FileSplit:
        """The files and labels at ``index`` (a 1-D integer tensor)."""
        return FileSplit([self.paths[i] for i in index.tolist()], self.labels[index].contiguous(),
                         self.channels, self.size, self.crop)  # fmt: skip

    def with_crop(self, crop: str) -> FileSplit:
        return FileSplit(self.paths, self.labels, self.channels, self.size, crop)

    def decode(self, i: int, seed: int | None = None) -> Tensor:
        """Image ``i`` as uint8 C×H×W (``seed``: its random crop)."""
        array = read_image(self.paths[i], self.channels, self.size, self.crop, seed)
        return torch.from_numpy(array.transpose(2, 0, 1).copy())

    def load(self, workers: int = 0) -> Split:
        """Decode every file (centre crops) into a device-ready :class:`Split`."""
        split = self.with_crop("center")
        parts = [x for x, _, _ in _decoded(split, [list(range(len(split)))[i : i + 256]
                                                   for i in range(0, len(split), 256)], workers)]  # fmt: skip
        images = torch.cat(parts) if parts else torch.zeros((0, self.channels, *self.size), dtype=torch.uint8)
        return Split(images, self.labels.clone())

    @property
    def nbytes(self) -> int:
        """Bytes the decoded split takes as uint8."""
        return len(self) * self.channels * self.size[0] * self.size[1]


class LazyImages:
    """``split.images`` of a :class:`FileSplit`: its shape, and decoding on indexing.

    ``images[idx]`` (an int, a slice or an index tensor) decodes those files in this process
    (centre crops), for the few images a probe or a validation batch needs.
    """

    def __init__(self, split: FileSplit) -> None:
        self._split = split

    @property
    def shape(self) -> torch.Size:
        s = self._split
        return torch.Size((len(s), s.channels, *s.size))

    @property
    def dtype(self) -> torch.dtype:
        return torch.uint8

    def __len__(self) -> int:
        return len(self._split)

    def __getitem__(self, index: int | slice | Tensor | Sequence[int]) -> Tensor:
        split = self._split.with_crop("center")
        if isinstance(index, int):
            return split.decode(index)
        rows = range(len(split))[index] if isinstance(index, slice) else torch.as_tensor(index).tolist()
        if not rows:
            return torch.zeros((0, split.channels, *split.size), dtype=torch.uint8)
        return torch.stack([split.decode(int(i)) for i in rows])


def crop_seed(seed: int, epoch: int, index: int) -> int:
    """The seed of image ``index``'s random crop in ``epoch``: the same in every worker and rank."""
    return zlib.crc32(f"{seed}/{epoch}/{index}".encode())


class _Files(torch.utils.data.Dataset):
    """What a DataLoader worker does: decode an (index, crop seed) pair; a failure is returned
    as its message, so that the main process raises it as one line."""

    def __init__(self, split: FileSplit) -> None:
        self.split = split

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, item: tuple[int, int | None]) -> tuple[Tensor, int] | str:
        i, seed = item
        try:
            return self.split.decode(i, seed), i
        except DatasetError as e:
            return str(e)


def _collate(items: list[tuple[Tensor, int] | str]) -> tuple[Tensor, Tensor] | str:
    for item in items:
        if isinstance(item, str):
            return item
    images, index = zip(*items)  # type: ignore[misc]
    return torch.stack(images), torch.tensor(index, dtype=torch.int64)


def _decoded(
    split: FileSplit, batches: list[list[Any]], workers: int, pin: bool = False
) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
    """(images, labels, indices) for each batch of indices (or of (index, crop seed) pairs)."""
    pairs = [[b if isinstance(b, tuple) else (b, None) for b in batch] for batch in batches]
    loader = torch.utils.data.DataLoader(
        _Files(split), batch_sampler=pairs, num_workers=workers, collate_fn=_collate, pin_memory=pin,
        prefetch_factor=4 if workers else None,
    )  # fmt: skip
    for out in loader:
        if isinstance(out, str):
            raise DatasetError(out)
        images, index = out
        yield images, split.labels[index], index


class StreamLoader(BatchOrder):
    """Batches of a :class:`FileSplit` in a :class:`DeviceLoader`'s seeded order, decoded in workers.

    Args:
        split: the files.
        batch_size, shuffle, drop_last, seed: as for :class:`DeviceLoader`.
        device: where the batches go.
        workers: DataLoader worker processes (0: decode in this process).
        rank, world: under torchrun, this rank decodes batches ``rank, rank + world, ...`` (as
            many as every rank gets) and yields ``(None, None)`` for the others'.

    Shape:
        yields images B×C×H×W uint8 and labels B int64, on ``device``.
    """

    def __init__(
        self,
        split: FileSplit,
        batch_size: int,
        *,
        device: str | torch.device = "cpu",
        shuffle: bool = True,
        drop_last: bool = True,
        seed: int = 0,
        workers: int = 2,
        rank: int = 0,
        world: int = 1,
    ) -> None:
        if not isinstance(split, FileSplit):
            raise TypeError(f"StreamLoader: expected a FileSplit, got {type(split).__name__}")
        self._setup(len(split), batch_size, shuffle=shuffle, drop_last=drop_last, seed=seed)
        self.split, self.device, self.workers = split, torch.device(device), workers
        self.seed, self.rank, self.world = seed, rank, world
        self.resident = False

    def takes(self, b: int) -> bool:
        """Whether this rank decodes batch ``b`` of an epoch."""
        return b % self.world == self.rank and b < len(self) // self.world * self.world

    def _batches(self, order: Tensor, skip: int, current: dict[str, Any]) -> Iterator[tuple[Tensor, Tensor]]:
        epoch, bs = current["epoch"], self.batch_size
        random = self.split.crop == "random"
        mine = [
            [(i, crop_seed(self.seed, epoch, i) if random else None) for i in order[b * bs : (b + 1) * bs].tolist()]
            for b in range(skip, len(self))
            if self.takes(b)
        ]  # fmt: skip
        decoded = (
            _decoded(self.split, mine, self.workers, pin=self.device.type == "cuda") if mine else iter(())
        )
        for b in range(skip, len(self)):
            current["batch"] = b + 1  # counted before the yield, as DeviceLoader does
            if not self.takes(b):
                self.last_index = None
                yield None, None  # type: ignore[misc]
                continue
            images, labels, index = next(decoded)
            self.last_index = index.to(self.device)
            yield images.to(self.device, non_blocking=True), labels.to(self.device, non_blocking=True)


def sequential_batches(
    split: Split | FileSplit, batch_size: int, workers: int = 0
) -> Iterator[tuple[Tensor, Tensor]]:
    """A split in its order, ``batch_size`` at a time, as CPU uint8 images and labels
    (decoded in ``workers`` processes for a :class:`FileSplit`)."""
    if isinstance(split, Split):
        for i in range(0, len(split), batch_size):
            yield split.images[i : i + batch_size], split.labels[i : i + batch_size]
        return
    split = split.with_crop("center")
    batches = [list(range(i, min(i + batch_size, len(split)))) for i in range(0, len(split), batch_size)]
    for images, labels, _ in _decoded(split, batches, workers):
        yield images, labels


def pixel_stats(split: Split | FileSplit, sample: int = 2048, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Per-channel mean and standard deviation of the pixels in [0, 1]: of the whole split when it
    is in memory, of ``sample`` seeded images of a :class:`FileSplit`.

    Shape:
        returns two C-element float32 tensors.
    """
    if isinstance(split, Split):
        x = split.images.float() / 255.0
    else:
        idx = torch.randperm(len(split), generator=torch.Generator().manual_seed(seed))[:sample]
        x = split.subset(idx.sort().values).load().images.float() / 255.0
    return x.mean(dim=(0, 2, 3)), x.std(dim=(0, 2, 3))


__all__ = ["FileSplit", "LazyImages", "StreamLoader", "crop_seed", "pixel_stats", "sequential_batches"]
