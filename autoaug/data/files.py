"""Datasets from the user's own files: an ImageFolder directory or a ``.npz`` file.

Both give the images as they are (no resizing): every image must have the same size. Neither
needs a test split of its own; :func:`autoaug.data.load_dataset` holds one out when there is
none.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch

from autoaug.data.base import DatasetError, DatasetNotFoundError, Split

_GRAY_MODES = ("1", "L", "LA")


def _read_image_folder(directory: Path, class_to_idx: dict[str, int] | None) -> tuple[Split, list[str]]:
    from PIL import Image, UnidentifiedImageError
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
    arrays, labels = [], []
    size: tuple[int, int] | None = None
    for path, label in samples:
        try:
            with Image.open(path) as im:
                if size is None:
                    size, first = im.size, path
                elif im.size != size:
                    raise DatasetError(
                        f"{path}: {im.size[0]}×{im.size[1]} pixels, but {first} is {size[0]}×{size[1]}; "
                        "all images of a folder dataset must have the same size (resize them first)"
                    )
                arrays.append(np.asarray(im.convert("L" if im.mode in _GRAY_MODES else "RGB")))
        except (UnidentifiedImageError, OSError) as e:
            raise DatasetError(f"{path}: not an image PIL can read ({e})") from None
        labels.append(label)
    if any(a.ndim == 3 for a in arrays):  # a mix of gray and colour: make all colour
        arrays = [a if a.ndim == 3 else np.repeat(a[:, :, None], 3, axis=2) for a in arrays]
        images = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
    else:
        images = torch.from_numpy(np.stack(arrays)).unsqueeze(1)
    return Split(images, torch.tensor(labels, dtype=torch.int64)), list(classes)


def load_folder(path: str | Path) -> tuple[Split, Split | None, list[str]]:
    """Read an ImageFolder directory: ``path/<class>/<image>``.

    When ``path`` holds ``train/`` and ``test/`` (or ``val/``) folders, each an ImageFolder
    with the same classes, they are the training and test splits; otherwise the whole folder
    is training data and the test split is ``None``. Classes are numbered in sorted folder
    order, as torchvision's ``ImageFolder`` does. Grayscale images give 1-channel tensors;
    when any image has colour, all are RGB.

    Returns:
        The training split, the test split or ``None``, and the class names.

    Raises:
        DatasetNotFoundError: when ``path`` is not a directory.
        DatasetError: when it is not an ImageFolder, an image cannot be read, or two images
            differ in size (the message names the file).

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
    path = Path(path).expanduser()
    if not path.is_dir():
        raise DatasetNotFoundError(f"folder dataset {str(path)!r}: no such directory")
    test_dir = next((path / d for d in ("test", "val") if (path / d).is_dir()), None)
    if (path / "train").is_dir() and test_dir is not None:
        train, classes = _read_image_folder(path / "train", None)
        test, _ = _read_image_folder(test_dir, {c: i for i, c in enumerate(classes)})
        if test.images.shape[1:] != train.images.shape[1:]:
            raise DatasetError(
                f"{test_dir}: images of shape {tuple(test.images.shape[1:])}, but the training images "
                f"are {tuple(train.images.shape[1:])}"
            )
        return train, test, classes
    train, classes = _read_image_folder(path, None)
    return train, None, classes


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


def load_npz(path: str | Path) -> tuple[Split, Split | None, list[str]]:
    """Read a ``.npz`` file: ``x`` (N×H×W or N×H×W×C uint8, C = 1 or 3) and ``y`` (N integers).

    Optional keys: ``x_test`` and ``y_test`` for a test split of its own, and ``class_names``
    (strings); without them the test split is ``None`` and the classes are named "0", "1", ...

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
    train = Split(images, _labels(arrays["y"], "y", len(images), path))
    test = None
    if "x_test" in arrays or "y_test" in arrays:
        if not ("x_test" in arrays and "y_test" in arrays):
            raise DatasetError(f"{path}: has only one of 'x_test' and 'y_test'; give both or neither")
        x_test = _images(arrays["x_test"], "x_test", path)
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
