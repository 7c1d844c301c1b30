"""MNIST and Fashion-MNIST from their IDX files, parsed with gzip and numpy.

An IDX file is a 4-byte magic number (two zero bytes, a type code, 0x08 for unsigned bytes,
and the number of dimensions), one big-endian uint32 per dimension, then the data. Images are
``0x00000803`` (N×H×W), labels ``0x00000801`` (N).

Example:
    >>> from autoaug.data.idx import find_idx_dir
    >>> find_idx_dir(["/nonexistent"]) is None
    True
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch

from autoaug.data.base import DatasetError, Split

IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801
FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

FASHION_MNIST_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]  # fmt: skip
MNIST_CLASSES = [str(d) for d in range(10)]


def read_idx(path: str | Path, magic: int) -> np.ndarray:
    """Read one IDX file (gzipped when its name ends in ``.gz``) into a uint8 array.

    Args:
        path: the file.
        magic: the expected magic number, :data:`IMAGES_MAGIC` or :data:`LABELS_MAGIC`.

    Raises:
        DatasetError: when the file cannot be decompressed, has another magic number, or holds
            fewer or more bytes than its header promises; the message names the file.

    Examples:
        >>> import gzip, tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "labels.gz"
        >>> _ = p.write_bytes(gzip.compress(bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 1, 2])))
        >>> read_idx(p, LABELS_MAGIC).tolist()
        [7, 1, 2]
    """
    path = Path(path)
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                data = f.read()
        else:
            data = path.read_bytes()
    except (OSError, EOFError, zlib.error) as e:  # gzip.BadGzipFile is an OSError
        raise DatasetError(
            f"{path}: cannot read it as a gzipped IDX file ({e}); the file is damaged"
        ) from None
    if len(data) < 4:
        raise DatasetError(f"{path}: not an IDX file ({len(data)} bytes, shorter than the 4-byte header)")
    found = int.from_bytes(data[:4], "big")
    if found != magic:
        raise DatasetError(
            f"{path}: not an IDX {'image' if magic == IMAGES_MAGIC else 'label'} file "
            f"(magic number 0x{found:08x}, expected 0x{magic:08x})"
        )
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DatasetError(f"{path}: truncated IDX header ({len(data)} bytes, expected at least {header})")
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    expected = int(np.prod(dims))
    if len(data) - header != expected:
        raise DatasetError(
            f"{path}: truncated or malformed IDX file: its header promises {'×'.join(map(str, dims))} "
            f"= {expected} bytes of data, it holds {len(data) - header}"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def _file(directory: Path, stem: str) -> Path | None:
    for name in (f"{stem}.gz", stem):
        if (directory / name).is_file():
            return directory / name
    return None


def find_idx_dir(candidates: Iterable[str | Path]) -> Path | None:
    """The first directory among ``candidates`` that holds all four IDX files (``.gz`` or not)."""
    for d in map(Path, candidates):
        if all(_file(d, stem) is not None for stem in FILES.values()):
            return d
    return None


def read_idx_dir(directory: str | Path) -> tuple[Split, Split]:
    """The training and test splits of an MNIST-style directory, images 1×H×W.

    Raises:
        DatasetError: when a file is missing or malformed, or images and labels disagree in count.
    """
    directory = Path(directory)
    arrays = {}
    for key, stem in FILES.items():
        path = _file(directory, stem)
        if path is None:
            raise DatasetError(f"{directory}: missing {stem}.gz")
        arrays[key] = read_idx(path, IMAGES_MAGIC if key.endswith("images") else LABELS_MAGIC)
    splits = []
    for part in ("train", "test"):
        images, labels = arrays[f"{part}_images"], arrays[f"{part}_labels"]
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise DatasetError(
                f"{directory}: {FILES[f'{part}_images']} holds {images.shape} images but "
                f"{FILES[f'{part}_labels']} holds {labels.shape} labels; expected N×H×W and N"
            )
        splits.append(
            Split(torch.from_numpy(images.copy()).unsqueeze(1), torch.from_numpy(labels.astype(np.int64)))
        )
    return splits[0], splits[1]


def write_idx(path: str | Path, array: np.ndarray | torch.Tensor) -> Path:
    """Write a uint8 array as one gzipped IDX file (the inverse of :func:`read_idx`); any number
    of dimensions, so colour images go as N×H×W×C (magic ``0x00000804``).

    Raises:
        ValueError: for an array that is not uint8 or has more than 255 dimensions.

    Examples:
        >>> import tempfile, pathlib
        >>> p = write_idx(pathlib.Path(tempfile.mkdtemp()) / "labels.gz", np.array([7, 1, 2], np.uint8))
        >>> read_idx(p, LABELS_MAGIC).tolist()
        [7, 1, 2]
    """
    array = array.numpy() if isinstance(array, torch.Tensor) else np.asarray(array)
    if array.dtype != np.uint8:
        raise ValueError(f"IDX files here hold unsigned bytes; got an array of {array.dtype}")
    if not 1 <= array.ndim <= 255:
        raise ValueError(f"an IDX file holds 1 to 255 dimensions; got {array.ndim}")
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    path = Path(path)
    path.write_bytes(gzip.compress(header + np.ascontiguousarray(array).tobytes(), mtime=0))
    return path


def write_idx_dir(directory: str | Path, train: Split, test: Split) -> Path:
    """Write a dataset's training and test splits as the four gzipped files of an MNIST-style
    directory (images N×H×W for one channel, N×H×W×C for more; labels N), in the splits'
    order, for tools that read IDX files (``scripts/plain_train.py``).

    Raises:
        ValueError: for labels outside 0-255.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for part, split in (("train", train), ("test", test)):
        images, labels = split.images, split.labels
        if len(labels) and not 0 <= int(labels.min()) <= int(labels.max()) <= 255:
            raise ValueError(f"{part} labels: an IDX label file holds 0 to 255")
        pixels = images[:, 0] if images.shape[1] == 1 else images.permute(0, 2, 3, 1)
        write_idx(directory / f"{FILES[f'{part}_images']}.gz", pixels.contiguous())
        write_idx(directory / f"{FILES[f'{part}_labels']}.gz", labels.to(torch.uint8))
    return directory


__all__ = [
    "FASHION_MNIST_CLASSES",
    "IMAGES_MAGIC",
    "LABELS_MAGIC",
    "MNIST_CLASSES",
    "find_idx_dir",
    "read_idx",
    "read_idx_dir",
    "write_idx",
    "write_idx_dir",
]
