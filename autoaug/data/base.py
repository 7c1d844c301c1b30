"""The dataset containers, the dataset error, and the seeded splits every loader shares."""

from __future__ import annotations

import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import Tensor

Truth = Literal["symmetry", "breaks", "partial"]


class DatasetError(ValueError):
    """A dataset that cannot be found, read or split; the message says where autoaug looked
    and how to get the data."""


class DatasetNotFoundError(DatasetError, FileNotFoundError):
    """A dataset whose files are not where autoaug looked."""


@dataclass
class Split:
    """One split of a dataset: uint8 images and int64 labels, CPU tensors.

    Shape:
        images: N×C×H×W uint8 (C = 1 or 3); labels: N int64.

    Examples:
        >>> import torch
        >>> s = Split(torch.zeros(4, 1, 28, 28, dtype=torch.uint8), torch.arange(4))
        >>> len(s), s
        (4, Split(images=uint8[4, 1, 28, 28], labels=int64[4]))
    """

    images: Tensor
    labels: Tensor

    def __post_init__(self) -> None:
        if not isinstance(self.images, Tensor) or self.images.dtype != torch.uint8 or self.images.ndim != 4:
            raise ValueError(f"Split.images: expected a uint8 N×C×H×W tensor, got {_describe(self.images)}")
        if self.images.shape[1] not in (1, 3):
            raise ValueError(f"Split.images: expected 1 or 3 channels, got shape {tuple(self.images.shape)}")
        if not isinstance(self.labels, Tensor) or self.labels.dtype != torch.int64 or self.labels.ndim != 1:
            raise ValueError(
                f"Split.labels: expected an int64 tensor of shape N, got {_describe(self.labels)}"
            )
        if len(self.labels) != len(self.images):
            raise ValueError(f"Split: {len(self.images)} images but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.labels)

    def __repr__(self) -> str:
        return f"Split(images={_describe(self.images)}, labels={_describe(self.labels)})"

    def subset(self, index: Tensor) -> Split:
        """The images and labels at ``index`` (a 1-D integer tensor), copied."""
        return Split(self.images[index].contiguous(), self.labels[index].contiguous())


@dataclass
class Dataset:
    """A dataset with its train, validation and test splits.

    Attributes:
        name: the name it was loaded under (``"glyphs"``, ``"fashion-mnist"``, ``"npz:x.npz"``).
        train, val, test: the splits; ``val`` is carved from the training data, seeded.
        num_classes: labels are in ``[0, num_classes)``.
        class_names: one name per class.
        ground_truth: for synthetic sets, op name -> ``"symmetry"`` (the op never changes the
            label), ``"breaks"`` (it changes it) or ``"partial"`` (it changes it only above a
            magnitude; :mod:`autoaug.data.suite` gives the bound), for the ops whose effect on
            the label is known by construction; ``None`` for real data.
        source: where the data came from, for people (a directory, a file, "generated").

    Examples:
        >>> from autoaug.data import load_dataset
        >>> ds = load_dataset("arrows", train_size=400)
        >>> ds.channels, ds.image_size, ds.num_classes, len(ds.train) + len(ds.val)
        (3, (32, 32), 4, 400)
    """

    name: str
    train: Split
    val: Split
    test: Split
    num_classes: int
    class_names: list[str]
    ground_truth: dict[str, Truth] | None = None
    source: str = ""

    def __post_init__(self) -> None:
        shapes = {s: tuple(getattr(self, s).images.shape[1:]) for s in ("train", "val", "test")}
        if len(set(shapes.values())) != 1:
            raise ValueError(f"dataset {self.name!r}: splits differ in image shape: {shapes}")
        if len(self.class_names) != self.num_classes:
            raise ValueError(
                f"dataset {self.name!r}: {len(self.class_names)} class names for {self.num_classes} classes"
            )
        for split_name in ("train", "val", "test"):
            labels = getattr(self, split_name).labels
            if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= self.num_classes):
                raise ValueError(
                    f"dataset {self.name!r}: {split_name} labels span [{int(labels.min())}, "
                    f"{int(labels.max())}], expected [0, {self.num_classes - 1}]"
                )
        for op, truth in (self.ground_truth or {}).items():
            if truth not in ("symmetry", "breaks", "partial"):
                raise ValueError(
                    f"dataset {self.name!r}: ground truth for {op!r} is {truth!r}, "
                    "expected 'symmetry', 'breaks' or 'partial'"
                )

    @property
    def channels(self) -> int:
        """Image channels, 1 or 3."""
        return int(self.train.images.shape[1])

    @property
    def image_size(self) -> tuple[int, int]:
        """Image height and width."""
        h, w = self.train.images.shape[-2:]
        return int(h), int(w)


def _describe(x: object) -> str:
    if isinstance(x, Tensor):
        return f"{str(x.dtype).removeprefix('torch.')}[{', '.join(map(str, x.shape))}]"
    return type(x).__name__


# ------------------------------------------------------------------------------- locations


def data_home() -> Path:
    """Where autoaug keeps downloaded data: ``$AUTOAUG_DATA``, else ``~/.cache/autoaug``."""
    env = os.environ.get("AUTOAUG_DATA")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "autoaug"


# ---------------------------------------------------------------------------------- seeding


def make_generator(seed: int, purpose: str) -> torch.Generator:
    """A CPU generator for one purpose ("glyphs/train", "split/val"), derived from ``seed``.

    Mixing the purpose into the seed keeps the streams independent: drawing more training
    images never moves the validation split, and the same seed in two places does not give
    two identical streams.
    """
    state = np.random.SeedSequence([seed, zlib.crc32(purpose.encode())]).generate_state(2, np.uint32)
    return torch.Generator().manual_seed((int(state[0]) << 31) ^ int(state[1]))


def check_seed(seed: object) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed: expected a non-negative integer, got {seed!r}")
    return int(seed)


# ----------------------------------------------------------------------------------- splits


def stratified_order(labels: Tensor, generator: torch.Generator, *, balanced: bool) -> Tensor:
    """A random permutation of ``range(len(labels))`` whose prefixes are class-stratified.

    With ``balanced=True`` the prefixes go round-robin over the classes (a prefix of
    ``k·num_classes`` holds ``k`` of each class while every class has ``k``), which is what a
    reduced training set wants; with ``balanced=False`` each prefix keeps the class
    proportions of the whole, which is what a held-out split of imbalanced data wants.

    Shape:
        labels: N non-negative integers; returns N int64.
    """
    n = len(labels)
    if n == 0:
        return torch.zeros(0, dtype=torch.int64)
    perm = torch.randperm(n, generator=generator)
    lab = labels[perm].long()
    counts = torch.bincount(lab)
    sorted_lab, by_class = torch.sort(lab, stable=True)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.empty(n, dtype=torch.int64)
    rank[by_class] = torch.arange(n) - starts[sorted_lab]
    key = rank.double() if balanced else (rank.double() + 0.5) / counts[lab].double()
    # Ties in the key (one per class and round) are broken by a random order of the classes.
    class_order = torch.randperm(len(counts), generator=generator)
    first = torch.argsort(class_order[lab], stable=True)
    order = first[torch.argsort(key[first], stable=True)]
    return perm[order]


def split_off(
    labels: Tensor, count: int, generator: torch.Generator, *, balanced: bool = False
) -> tuple[Tensor, Tensor]:
    """Indices of ``count`` stratified random items and of the rest, each sorted ascending."""
    order = stratified_order(labels, generator, balanced=balanced)
    taken, rest = order[:count], order[count:]
    return taken.sort().values, rest.sort().values


def holdout_count(size: int | float, total: int, what: str) -> int:
    """How many of ``total`` items a split size names: a fraction in [0, 1) or a count."""
    if isinstance(size, bool) or not isinstance(size, (int, float, np.integer, np.floating)):
        raise ValueError(f"{what}: expected a fraction in [0, 1) or a count, got {size!r}")
    if isinstance(size, (float, np.floating)):
        if not 0.0 <= size < 1.0:
            raise ValueError(f"{what}: a fraction must lie in [0, 1), got {size!r}")
        return round(float(size) * total)
    if not 0 <= size < total:
        raise ValueError(f"{what}: expected a count in [0, {total}) for {total} training images, got {size}")
    return int(size)
