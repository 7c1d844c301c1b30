"""CIFAR-10, CIFAR-100 and SVHN through torchvision, and torchvision's MNIST downloads.

torchvision keeps each set in its own layout under a root directory (``cifar-10-batches-py/``,
``cifar-100-python/``, ``train_32x32.mat``, ``FashionMNIST/raw/``) and checks it against known
checksums; autoaug only converts the arrays to uint8 N×3×32×32 tensors.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from autoaug.data.base import DatasetError, DatasetNotFoundError, Split

# name -> (torchvision class, what torchvision keeps under the root, download size)
TORCHVISION_SETS = {
    "cifar10": ("CIFAR10", "cifar-10-batches-py/", "170 MB"),
    "cifar100": ("CIFAR100", "cifar-100-python/", "170 MB"),
    "svhn": ("SVHN", "train_32x32.mat and test_32x32.mat", "180 MB"),
}
# name -> torchvision class whose download fetches the IDX files into <root>/<class>/raw
IDX_DOWNLOADS = {"fashion-mnist": "FashionMNIST", "mnist": "MNIST"}


def is_present(name: str, root: Path) -> bool:
    """Whether torchvision's files for ``name`` seem to be under ``root`` (not verified)."""
    if name == "cifar10":
        return (root / "cifar-10-batches-py" / "data_batch_1").is_file()
    if name == "cifar100":
        return (root / "cifar-100-python" / "train").is_file()
    if name == "svhn":
        return (root / "train_32x32.mat").is_file() and (root / "test_32x32.mat").is_file()
    raise ValueError(f"not a torchvision set: {name!r}; known: {', '.join(TORCHVISION_SETS)}")


def load_torchvision(name: str, root: Path, download: bool) -> tuple[Split, Split, list[str]]:
    """The training and test splits of a torchvision set and its class names.

    Raises:
        DatasetNotFoundError: when the files are not under ``root`` and ``download`` is false.
        DatasetError: when a download fails or the files cannot be read.
    """
    import torchvision.datasets as tvd

    cls_name, layout, size = TORCHVISION_SETS[name]
    cls = getattr(tvd, cls_name)
    splits = []
    for train in (True, False):
        kwargs = {"split": "train" if train else "test"} if name == "svhn" else {"train": train}
        try:
            ds = cls(str(root), download=download, **kwargs)
        except RuntimeError as e:
            if download:
                raise DatasetError(f"{name}: download into {root} failed: {e}") from None
            raise DatasetNotFoundError(
                f"{name} not found in {root} (torchvision keeps it there as {layout}); pass "
                f"--download (download=True) to fetch it ({size}), or --data-root (root=) a directory "
                "that holds it"
            ) from None
        except ImportError as e:  # SVHN's .mat files need scipy
            raise DatasetError(f"{name}: reading it needs a package that is not installed: {e}") from None
        except OSError as e:  # no network, a full disk
            raise DatasetError(f"{name}: download into {root} failed: {e}") from None
        if name == "svhn":
            images, labels = np.asarray(ds.data), np.asarray(ds.labels)  # already N×3×32×32
        else:
            images, labels = np.asarray(ds.data).transpose(0, 3, 1, 2), np.asarray(ds.targets)
        splits.append(
            Split(
                torch.from_numpy(np.ascontiguousarray(images, dtype=np.uint8)),
                torch.from_numpy(labels.astype(np.int64)),
            )
        )
    classes = [str(d) for d in range(10)] if name == "svhn" else list(ds.classes)
    return splits[0], splits[1], classes


def download_idx(name: str, root: Path) -> Path:
    """Download MNIST or Fashion-MNIST with torchvision into ``root``; returns the directory
    holding the IDX files (``root/<FashionMNIST|MNIST>/raw``)."""
    import torchvision.datasets as tvd

    cls_name = IDX_DOWNLOADS[name]
    try:
        for train in (True, False):
            getattr(tvd, cls_name)(str(root), train=train, download=True)
    except (RuntimeError, OSError) as e:
        raise DatasetError(f"{name}: download into {root} failed: {e}") from None
    return root / cls_name / "raw"
