"""Datasets from the user's own files: an ImageFolder directory or a ``.npz`` file.

Both give the images as they are, all of one size, or resized on load to an ``image_size``
(:mod:`autoaug.data.images`). Neither needs a test split of its own; :func:`autoaug.data.load_dataset` holds one out when there is
none.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch

from autoaug.data.base import DatasetError, DatasetNotFoundError, Split
from autoaug.data.images import probe, resize_tensor
from autoaug.data.stream import FileSplit


def _scan_image_folder(
    directory: Path, class_to_idx: dict[str, int] | None
) -> tuple[list[str], list[int], list[tuple[tuple[int, int], int]], list[str]]:
    """The files of an ImageFolder, their labels, each one's (size, channels) from its header,
    and the class names."""
    from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes, make_dataset

    try:
        if class_to_idx is None:
            classes, class_to_idx = find_classes(directory)
        else:
            classes = list(class_to_idx)
            extra = sorted(e.name for e in directory.iterdir() if e.is_dir() and e.name not in class_to_idx)
            if extra:
                raise DatasetError(
                    f"{directory}: class folders {extra} do not appear in the training folder "
                    f"(classes: {classes})"
                )
        samples = make_dataset(directory, class_to_idx, extensions=IMG_EXTENSIONS, allow_empty=True)
    except FileNotFoundError as e:
        raise DatasetError(
            f"{directory}: not an ImageFolder directory ({e}); expected one sub-folder per class "
            f"holding images ({', '.join(IMG_EXTENSIONS)})"
        ) from None
    if not samples:
        raise DatasetError(
            f"{directory}: no images found in its class folders (extensions: {', '.join(IMG_EXTENSIONS)})"
        )
    paths = [p for p, _ in samples]
    return paths, [label for _, label in samples], [probe(p) for p in paths], list(classes)


def scan_folder(
    path: str | Path, image_size: tuple[int, int] | None = None
) -> tuple[FileSplit, FileSplit | None, list[str]]:
    """An ImageFolder directory as :class:`~autoaug.data.stream.FileSplit` s, nothing decoded yet.

    The layout is :func:`load_folder`'s. Every file's header is read (its size and mode), so a
    file PIL cannot open or a mode autoaug cannot read is named now, not in the middle of a run.
    Without ``image_size`` every image must have the same size, which is then the split's.

    Raises:
        DatasetNotFoundError: when ``path`` is not a directory.
        DatasetError: not an ImageFolder, a file PIL cannot read, an unreadable mode, or (no
            ``image_size``) two images of different sizes; the message names the file.
    """
    path = Path(path).expanduser()
    if not path.is_dir():
        raise DatasetNotFoundError(f"folder dataset {str(path)!r}: no such directory")
    test_dir = next((path / d for d in ("test", "val") if (path / d).is_dir()), None)
    scans = []
    if (path / "train").is_dir() and test_dir is not None:
        scans.append(_scan_image_folder(path / "train", None))
        scans.append(_scan_image_folder(test_dir, {c: i for i, c in enumerate(scans[0][3])}))
    else:
        scans.append(_scan_image_folder(path, None))
    channels = max(c for scan in scans for _, c in scan[2])  # any colour image: all are RGB
    if image_size is None:
        first_size, first = scans[0][2][0][0], scans[0][0][0]
        for paths, _, probes, _ in scans:
            for p, (size, _) in zip(paths, probes):
                if size != first_size:
                    raise DatasetError(
                        f"{p}: {size[1]}×{size[0]} pixels, but {first} is {first_size[1]}×{first_size[0]}; "
                        "all images of a folder dataset must have the same size, or pass --image-size HxW "
                        "(image_size=) to resize them on load"
                    )
        image_size = first_size
    splits = [FileSplit(paths, torch.tensor(labels, dtype=torch.int64), channels, image_size)
              for paths, labels, _, _ in scans]  # fmt: skip
    return splits[0], (splits[1] if len(splits) > 1 else None), scans[0][3]


def load_folder(
    path: str | Path, image_size: tuple[int, int] | None = None, workers: int = 0
) -> tuple[Split, Split | None, list[str]]:
    """Read an ImageFolder directory: ``path/<class>/<image>``.

    When ``path`` holds ``train/`` and ``test/`` (or ``val/``) folders, each an ImageFolder
    with the same classes, they are the training and test splits; otherwise the whole folder
    is training data and the test split is ``None``. Classes are numbered in sorted folder
    order, as torchvision's ``ImageFolder`` does. Grayscale images give 1-channel tensors;
    when any image has colour, all are RGB (a palette, RGBA or CMYK image becomes RGB).

    With ``image_size`` (H, W) the images may have any sizes: each is resized on load as
    torchvision evaluates (the shorter side to cover H×W, then the centre H×W); without it
    they must all have one size.

    Returns:
        The training split, the test split or ``None``, and the class names.

    Raises:
        DatasetNotFoundError: when ``path`` is not a directory.
        DatasetError: when it is not an ImageFolder, an image cannot be read, or two images
            differ in size without ``image_size`` (the message names the file).

    Examples:
        >>> import tempfile, pathlib
        >>> from PIL import Image
        >>> root = pathlib.Path(tempfile.mkdtemp())
        >>> for cls in ("cat", "dog"):
        ...     (root / cls).mkdir()
        ...     Image.new("RGB", (8, 8)).save(root / cls / "0.png")
        >>> train, test, classes = load_folder(root)
        >>> train.images.shape, test, classes
        (torch.Size([2, 3, 8, 8]), None, ['cat', 'dog'])
    """
    train, test, classes = scan_folder(path, image_size)
    return train.load(workers), (test.load(workers) if test is not None else None), classes


def _images(x: np.ndarray, key: str, path: Path) -> torch.Tensor:
    if x.dtype != np.uint8:
        raise DatasetError(
            f"{path}: {key!r} has dtype {x.dtype}, expected uint8 (pixel values 0-255; scale and cast with "
            "(x * 255).round().astype(np.uint8) if they are floats in [0, 1])"
        )
    if x.ndim == 3:
        return torch.from_numpy(np.ascontiguousarray(x)).unsqueeze(1)
    if x.ndim == 4 and x.shape[3] in (1, 3):
        return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    raise DatasetError(f"{path}: {key!r} has shape {x.shape}, expected N×H×W or N×H×W×C with C = 1 or 3")


def _labels(y: np.ndarray, key: str, n: int, path: Path) -> torch.Tensor:
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise DatasetError(
            f"{path}: {key!r} has shape {y.shape} and dtype {y.dtype}, expected N integer labels"
        )
    if len(y) != n:
        raise DatasetError(f"{path}: {n} images but {len(y)} labels in {key!r}")
    if len(y) and y.min() < 0:
        raise DatasetError(f"{path}: {key!r} holds a negative label ({y.min()}); labels must be 0, 1, 2, ...")
    return torch.from_numpy(y.astype(np.int64))


def load_npz(
    path: str | Path, image_size: tuple[int, int] | None = None
) -> tuple[Split, Split | None, list[str]]:
    """Read a ``.npz`` file: ``x`` (N×H×W or N×H×W×C uint8, C = 1 or 3) and ``y`` (N integers).

    Optional keys: ``x_test`` and ``y_test`` for a test split of its own, and ``class_names``
    (strings); without them the test split is ``None`` and the classes are named "0", "1", ...
    With ``image_size`` (H, W) the images are resized: the shorter side to cover H×W, then the
    centre H×W (antialiased), and ``x_test`` may then have another size than ``x``.

    Returns:
        The training split, the test split or ``None``, and the class names.

    Raises:
        DatasetNotFoundError: when the file does not exist.
        DatasetError: when it is not an ``.npz`` file, a key is missing, a dtype or a shape is
            wrong, or images and labels differ in number.

    Examples:
        >>> import numpy as np, tempfile, pathlib
        >>> f = pathlib.Path(tempfile.mkdtemp()) / "tiny.npz"
        >>> np.savez(f, x=np.zeros((4, 8, 8), np.uint8), y=np.array([0, 1, 0, 1]))
        >>> train, test, classes = load_npz(f)
        >>> train.images.shape, classes
        (torch.Size([4, 1, 8, 8]), ['0', '1'])
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise DatasetNotFoundError(f"npz dataset {str(path)!r}: no such file")
    try:
        loaded = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise DatasetError(f"{path}: not a readable .npz file ({e})") from None
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        raise DatasetError(f"{path}: a single .npy array, expected an .npz archive with 'x' and 'y'")
    with loaded:
        try:
            arrays = {k: loaded[k] for k in loaded.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
            raise DatasetError(f"{path}: not a readable .npz file ({e})") from None
    odd = sorted(k for k, v in arrays.items() if not isinstance(v, np.ndarray))
    if odd:  # NpzFile hands back the raw bytes of a member that is no .npy array (a pickle, say)
        raise DatasetError(f"{path}: not a readable .npz file ({', '.join(odd)}: not .npy arrays)")
    missing = [k for k in ("x", "y") if k not in arrays]
    if missing:
        raise DatasetError(f"{path}: missing key(s) {missing}; found {sorted(arrays)}, expected 'x' and 'y'")
    images = _images(arrays["x"], "x", path)
    if image_size is not None:
        images = resize_tensor(images, image_size)
    train = Split(images, _labels(arrays["y"], "y", len(images), path))
    test = None
    if "x_test" in arrays or "y_test" in arrays:
        if not ("x_test" in arrays and "y_test" in arrays):
            raise DatasetError(f"{path}: has only one of 'x_test' and 'y_test'; give both or neither")
        x_test = _images(arrays["x_test"], "x_test", path)
        if image_size is not None:
            x_test = resize_tensor(x_test, image_size)
        if x_test.shape[1:] != images.shape[1:]:
            raise DatasetError(
                f"{path}: 'x_test' images are {tuple(x_test.shape[1:])}, 'x' images {tuple(images.shape[1:])}"
            )
        test = Split(x_test, _labels(arrays["y_test"], "y_test", len(x_test), path))
    labels = torch.cat([train.labels] + ([test.labels] if test is not None else []))
    top = int(labels.max()) if len(labels) else -1
    if "class_names" in arrays:
        names = [str(n) for n in np.asarray(arrays["class_names"]).reshape(-1)]
        if top >= len(names):
            raise DatasetError(f"{path}: label {top} but only {len(names)} class names in 'class_names'")
    else:
        names = [str(i) for i in range(top + 1)]
    return train, test, names
