"""Dataset names, where each one's files are looked for, and :func:`load_dataset`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from autoaug.data import suite, synthetic
from autoaug.data.base import (
    Dataset,
    DatasetError,
    DatasetNotFoundError,
    Split,
    check_seed,
    data_home,
    holdout_count,
    make_generator,
    split_off,
)
from autoaug.data.files import load_npz, scan_folder
from autoaug.data.idx import FASHION_MNIST_CLASSES, MNIST_CLASSES, find_idx_dir, read_idx_dir
from autoaug.data.images import CROPS, parse_image_size, resize_tensor
from autoaug.data.stream import FileSplit
from autoaug.data.vision import IDX_DOWNLOADS, TORCHVISION_SETS, download_idx, is_present, load_torchvision

SYSTEM_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")  # Debian's dataset-fashion-mnist
SYNTHETIC_TRAIN = 6000
# glyphs (the main job's default data) is drawn at every rotation, so it needs more images for the
# 8-epoch default search to learn chirality with room: at 6,000 that search reached 96.9-98.3% over
# seeds 0-2 (the symmetry suite's bar is 97%), at 10,000 99.8% (seed 0, two threads).
SYNTHETIC_TRAIN_OF = {"glyphs": 10000}
SYNTHETIC_TEST = 2000
TEST_HOLDOUT = 0.2  # of a folder or npz set without a test split of its own

_DESCRIPTIONS = {
    "glyphs": "synthetic, 6 classes (L/J, S/Z, b/d at any rotation), 32×32 RGB; hflip/vflip change the label",
    "arrows": "synthetic, 4 classes (arrow up/right/down/left, ±10°), 32×32 RGB; rotate90 and flips change it",
    "fashion-mnist": "Fashion-MNIST, 10 clothing classes, 28×28 gray, 60k train / 10k test (IDX files)",
    "mnist": "MNIST, 10 digits, 28×28 gray, 60k train / 10k test (IDX files)",
    "cifar10": "CIFAR-10, 10 classes, 32×32 RGB, 50k train / 10k test (torchvision)",
    "cifar100": "CIFAR-100, 100 classes, 32×32 RGB, 50k train / 10k test (torchvision)",
    "svhn": "SVHN, 10 digits, 32×32 RGB, 73k train / 26k test (torchvision; reading it needs scipy)",
}
# The rest of the symmetry suite (autoaug.data.suite), after the real sets: synthetic tasks with a
# declared ground truth, each op of the symmetry space keeping the label in some and changing it
# in others.
for _t in suite.SUITE.values():
    if _t.name not in _DESCRIPTIONS:
        _DESCRIPTIONS[_t.name] = (
            f"synthetic ({_t.half} half of the symmetry suite), {len(_t.classes)} classes, 32×32 RGB: "
            f"{_t.description}"
        )
DATASETS: tuple[str, ...] = tuple(_DESCRIPTIONS)
_SYNTHETIC = {
    "glyphs": synthetic.glyphs,
    "arrows": synthetic.arrows,
    **{
        t.name: (lambda n_train, n_test, seed, name=t.name: suite.make_task(name, n_train, n_test, seed))
        for t in suite.SUITE.values()
        if t.draw is not None
    },
}
SYNTHETIC_DATASETS: tuple[str, ...] = tuple(_SYNTHETIC)
_GROUND_TRUTH = {name: t.truth for name, t in suite.SUITE.items()}
_CLASSES = {name: t.classes for name, t in suite.SUITE.items()}


@dataclass(frozen=True)
class DatasetInfo:
    """What :func:`list_datasets` says about one dataset.

    Attributes:
        name: the name :func:`load_dataset` takes.
        description: one line.
        available: whether it can be loaded now without a download.
        where: where it was found, or where autoaug looked and how to get it.
    """

    name: str
    description: str
    available: bool
    where: str


def _idx_candidates(name: str, root: str | Path | None) -> list[Path]:
    """Directories that may hold the IDX files, in the order they are tried."""
    bases = [Path(root).expanduser()] if root is not None else []
    if root is None:
        if name == "fashion-mnist":
            bases.append(SYSTEM_FASHION_MNIST)
        bases.append(data_home() / name)
    # torchvision's downloads land in <base>/<FashionMNIST|MNIST>/raw
    return [d for b in bases for d in (b, b / IDX_DOWNLOADS[name] / "raw")]


def _idx_hint(name: str, looked: list[Path]) -> str:
    install = "apt-get install dataset-fashion-mnist, " if name == "fashion-mnist" else ""
    return (
        f"looked in {', '.join(map(str, looked))} for {name}'s four IDX files "
        f"(train-images-idx3-ubyte.gz, ...); to get them: {install}pass --download (download=True) "
        "to fetch them with torchvision, or --data-root (root=) a directory that holds them"
    )


def _torchvision_root(name: str, root: str | Path | None) -> Path:
    return Path(root).expanduser() if root is not None else data_home() / name


def _resolve(name: str) -> tuple[str, str | None]:
    """(kind, path): a known name, or "folder"/"npz" with the path the name holds."""
    for kind in ("folder", "npz"):
        if name.startswith(f"{kind}:"):
            path = name[len(kind) + 1 :]
            if not path:
                raise DatasetError(f"dataset {name!r}: expected {kind}:PATH with a path after the colon")
            return kind, path
    if name.endswith(".npz"):
        return "npz", name
    key = name.lower().replace("_", "-")
    key = {"fashionmnist": "fashion-mnist", "cifar-10": "cifar10", "cifar-100": "cifar100"}.get(key, key)
    if key in DATASETS:
        return key, None
    if Path(name).is_dir():  # a directory by its path, as a .npz file is taken by its name
        return "folder", name
    raise DatasetError(
        f"unknown dataset {name!r}; known: {', '.join(DATASETS)}, folder:PATH (an ImageFolder directory; an existing "
        "directory's path alone works too) "
        "or npz:PATH (a .npz file with 'x' and 'y')"
    )


def synthetic_pool(name: str, train_size: int | None = None, seed: int = 0) -> tuple[Split, Split]:
    """The images a synthetic dataset generates, before :func:`load_dataset` splits them: the
    training pool (``train_size`` images, the validation split still in it, in the order
    ``load_dataset`` draws that split from) and the test split. For tools that train on the same
    images outside autoaug (``scripts/plain_train.py``, by way of
    :func:`autoaug.data.idx.write_idx_dir`).

    Raises:
        DatasetError: for a dataset that is not synthetic, or a size out of range.

    Examples:
        >>> pool, test = synthetic_pool("levels", 200, seed=0)
        >>> len(pool), len(test), tuple(pool.images.shape[1:])
        (200, 2000, (3, 32, 32))
        >>> ds = load_dataset("levels", train_size=200, seed=0)
        >>> sorted(ds.train.labels.tolist() + ds.val.labels.tolist()) == sorted(pool.labels.tolist())
        True
    """
    kind, _ = _resolve(name)
    if kind not in _SYNTHETIC:
        raise DatasetError(f"dataset {name!r} is not synthetic; synthetic: {', '.join(SYNTHETIC_DATASETS)}")
    if train_size is not None and (
        isinstance(train_size, bool) or not isinstance(train_size, int) or train_size <= 0
    ):
        raise DatasetError(f"train_size: expected a positive integer or None, got {train_size!r}")
    n_train = train_size if train_size is not None else SYNTHETIC_TRAIN_OF.get(kind, SYNTHETIC_TRAIN)
    return _SYNTHETIC[kind](n_train, SYNTHETIC_TEST, check_seed(seed))


def load_dataset(
    name: str,
    *,
    root: str | Path | None = None,
    train_size: int | None = None,
    val_size: int | float = 0.1,
    seed: int = 0,
    download: bool = False,
    image_size: str | tuple[int, int] | None = None,
    train_crop: str = "center",
    stream: str = "auto",
    memory_budget: float = 4.0,
    workers: int = 0,
) -> Dataset:
    """Load a dataset as uint8 tensors with seeded train/validation splits.

    Names: ``glyphs``, ``arrows`` and the rest of the symmetry suite (:mod:`autoaug.data.suite`;
    synthetic, generated from ``seed``, with known ground truth), ``fashion-mnist``, ``mnist``, ``cifar10``, ``cifar100``, ``svhn``,
    ``folder:PATH`` (an ImageFolder directory), ``npz:PATH`` or any name ending in ``.npz``.

    Where the files are looked for: ``root`` when given; otherwise, for Fashion-MNIST,
    /usr/share/datasets/fashion-mnist (Debian's ``dataset-fashion-mnist``), and for every
    downloadable set ``$AUTOAUG_DATA/<name>`` or ``~/.cache/autoaug/<name>``, where
    ``download=True`` puts it.

    The splits:

    * test: the dataset's own test split. Synthetic test sets depend on neither ``seed`` nor
      ``train_size``. A folder or npz set without one has ``20%`` of its images held out,
      stratified by class, by a fixed seed, so that every run of a study sees the same test
      images.
    * ``train_size`` images are drawn from the training data (class-balanced, seeded; for the
      synthetic sets, generated), then ``val_size`` of them are held out for validation
      (stratified, seeded); the rest are ``train``.

    Args:
        name: which dataset.
        root: a directory holding it (or to download it into).
        train_size: how many training images to use before the validation split; all when
            ``None`` (6,000 for the synthetic sets).
        val_size: the validation split, a fraction in [0, 1) or a count.
        seed: seeds the subset, the validation split and synthetic images.
        download: fetch a missing MNIST, Fashion-MNIST, CIFAR or SVHN with torchvision.
        image_size: ``"HxW"`` or ``(H, W)``: resize every image on load, torchvision's way (the
            shorter side to cover H×W, then the centre H×W), so a folder may mix sizes.
        train_crop: how a folder's training images reach ``image_size``: ``"center"`` (as
            evaluation) or ``"random"`` (RandomResizedCrop, a new crop each epoch; the
            training split then streams).
        stream: ``"auto"``: a folder whose decoded images take more than ``memory_budget``
            GiB stays on disk and streams (:class:`~autoaug.data.stream.FileSplit`);
            ``"on"``: it always does; ``"off"``: never.
        memory_budget: GiB the decoded images of a folder may take in memory.
        workers: processes that decode a folder's images while loading it.

    Returns:
        The :class:`Dataset`.

    Raises:
        DatasetNotFoundError: when the files are not found; the message says where autoaug
            looked and how to get them.
        DatasetError: for an unknown name, a malformed file, or sizes the data cannot meet.

    Examples:
        >>> ds = load_dataset("glyphs", train_size=600, seed=0)
        >>> len(ds.train), len(ds.val), len(ds.test), ds.class_names
        (540, 60, 2000, ['L', 'J', 'S', 'Z', 'b', 'd'])
        >>> ds.ground_truth["hflip"], ds.ground_truth["rotate"]
        ('breaks', 'symmetry')
    """
    if not isinstance(name, str):
        raise DatasetError(f"dataset name: expected a string, got {name!r}")
    seed = check_seed(seed)
    if train_size is not None and (
        isinstance(train_size, bool) or not isinstance(train_size, (int, np.integer)) or train_size <= 0
    ):
        raise ValueError(f"train_size: expected a positive integer or None, got {train_size!r}")
    size = parse_image_size(image_size)
    if train_crop not in CROPS:
        raise ValueError(f"train_crop: expected one of {', '.join(CROPS)}, got {train_crop!r}")
    if stream not in ("auto", "on", "off"):
        raise ValueError(f"stream: expected auto, on or off, got {stream!r}")
    kind, path = _resolve(name)
    if kind != "folder" and (train_crop != "center" or stream == "on"):
        raise DatasetError(
            f"dataset {name!r}: train_crop {train_crop!r} and stream {stream!r} need a folder:PATH dataset "
            "(other datasets are read into memory whole); use train_crop center, stream auto"
        )
    ground_truth = None
    test: Split | None
    if kind in _SYNTHETIC:
        pool, test = synthetic_pool(kind, int(train_size) if train_size is not None else None, seed)
        classes, ground_truth, source = list(_CLASSES[kind]), dict(_GROUND_TRUTH[kind]), "generated"
    elif kind in IDX_DOWNLOADS:
        looked = _idx_candidates(kind, root)
        directory = find_idx_dir(looked)
        if directory is None and download:
            base = Path(root).expanduser() if root is not None else data_home() / kind
            directory = download_idx(kind, base)
        if directory is None:
            raise DatasetNotFoundError(f"{kind} not found: {_idx_hint(kind, looked)}")
        pool, test = read_idx_dir(directory)
        classes = FASHION_MNIST_CLASSES if kind == "fashion-mnist" else MNIST_CLASSES
        source = str(directory)
    elif kind in TORCHVISION_SETS:
        where = _torchvision_root(kind, root)
        pool, test, classes = load_torchvision(kind, where, download)
        source = str(where)
    else:
        assert path is not None
        pool, test, classes = scan_folder(path, size) if kind == "folder" else load_npz(path, size)
        source = str(Path(path).expanduser())
        name = f"{kind}:{path}"
    if size is not None and isinstance(pool, Split):
        pool = Split(resize_tensor(pool.images, size), pool.labels)
        test = Split(resize_tensor(test.images, size), test.labels) if test is not None else None
    if len(pool) == 0:
        raise DatasetError(f"dataset {name!r} holds no training images")
    if test is None:
        n_test = holdout_count(TEST_HOLDOUT, len(pool), "test split")
        # A fixed seed: the held-out test images must not change with the run's seed.
        test_idx, rest = split_off(pool.labels, n_test, make_generator(0, "split/test"))
        pool, test = pool.subset(rest), pool.subset(test_idx)
    if train_size is not None and kind not in _SYNTHETIC:
        if train_size > len(pool):
            raise DatasetError(
                f"train_size {train_size} is more than the {len(pool)} training images of {name!r}"
            )
        taken, _ = split_off(pool.labels, int(train_size), make_generator(seed, "split/train"), balanced=True)
        pool = pool.subset(taken)
    n_val = holdout_count(val_size, len(pool), "val_size")
    if n_val >= len(pool):
        raise DatasetError(
            f"val_size {val_size!r} leaves none of the {len(pool)} training images for training"
        )
    val_idx, train_idx = split_off(pool.labels, n_val, make_generator(seed, "split/val"))
    train, val = pool.subset(train_idx), pool.subset(val_idx)
    if isinstance(train, FileSplit):
        streams = stream == "on" or (
            stream == "auto" and train.nbytes + val.nbytes + test.nbytes > memory_budget * 2**30
        )
        if not streams:
            val, test = val.load(workers), test.load(workers)
            train = train.load(workers) if train_crop == "center" else train
        if train_crop == "random":
            train = train.with_crop("random")
    return Dataset(
        name=kind if path is None else name,
        train=train,
        val=val,
        test=test,
        num_classes=len(classes),
        class_names=list(classes),
        ground_truth=ground_truth,
        source=source,
    )


def list_datasets() -> list[DatasetInfo]:
    """Every dataset autoaug knows, whether it is available here, and where it is (or how to get it).

    The last two entries are the patterns for the user's own data, ``folder:PATH`` and
    ``npz:PATH``.

    Examples:
        >>> infos = {i.name: i for i in list_datasets()}
        >>> infos["glyphs"].available, infos["glyphs"].where
        (True, 'built in: generated from the seed')
    """
    infos = []
    for name in DATASETS:
        if name in _SYNTHETIC:
            infos.append(DatasetInfo(name, _DESCRIPTIONS[name], True, "built in: generated from the seed"))
        elif name in IDX_DOWNLOADS:
            looked = _idx_candidates(name, None)
            found = find_idx_dir(looked)
            where = str(found) if found is not None else f"not found: {_idx_hint(name, looked)}"
            infos.append(DatasetInfo(name, _DESCRIPTIONS[name], found is not None, where))
        else:
            where_dir = _torchvision_root(name, None)
            found = is_present(name, where_dir)
            layout = TORCHVISION_SETS[name][1]
            where = (
                str(where_dir)
                if found
                else f"not found in {where_dir} (as {layout}): pass --download (download=True), "
                "or --data-root (root=) a directory that holds it"
            )
            infos.append(DatasetInfo(name, _DESCRIPTIONS[name], found, where))
    infos.append(
        DatasetInfo(
            "folder:PATH",
            "your images: an ImageFolder directory (PATH/<class>/<image>; any sizes with --image-size)",
            True,
            "the directory you name",
        )
    )
    infos.append(
        DatasetInfo(
            "npz:PATH",
            "your arrays: a .npz file with x (N×H×W or N×H×W×C uint8) and y (N integer labels)",
            True,
            "the file you name",
        )
    )
    return infos
