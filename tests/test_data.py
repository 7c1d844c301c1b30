"""autoaug.data: synthetic tasks and their ground truth, IDX/npz/folder loading, splits, DeviceLoader."""

from __future__ import annotations

import gzip
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from autoaug.data import (
    DATASETS,
    DatasetError,
    DatasetNotFoundError,
    DeviceLoader,
    Split,
    channel_stats,
    list_datasets,
    load_dataset,
    normalize,
    to_float,
)
from autoaug.data.base import stratified_order
from autoaug.data.idx import IMAGES_MAGIC, LABELS_MAGIC, read_idx, read_idx_dir, write_idx, write_idx_dir
from autoaug.data.registry import synthetic_pool
from autoaug.data.synthetic import (
    ARROW_CLASSES,
    ARROW_JITTER,
    GLYPH_CLASSES,
    GlyphParams,
    glyph_partner,
    render,
    sample_params,
)
from autoaug.ops import OPS

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
SYNTHETIC = ("glyphs", "arrows")


def _same(a: Split, b: Split) -> bool:
    return torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)


# ------------------------------------------------------------------------------ synthetic


@pytest.mark.parametrize("name", SYNTHETIC)
def test_synthetic_shapes_dtypes_and_labels(name: str) -> None:
    ds = load_dataset(name, train_size=240, seed=0)
    k = len(GLYPH_CLASSES) if name == "glyphs" else len(ARROW_CLASSES)
    assert ds.num_classes == k and len(ds.class_names) == k
    assert (len(ds.train), len(ds.val), len(ds.test)) == (216, 24, 2000)
    assert ds.channels == 3 and ds.image_size == (32, 32)
    for split in (ds.train, ds.val, ds.test):
        assert split.images.dtype == torch.uint8 and split.images.shape[1:] == (3, 32, 32)
        assert split.labels.dtype == torch.int64
        assert int(split.labels.min()) >= 0 and int(split.labels.max()) < k
    # The images use the whole range: glyph and background are different colours.
    assert ds.train.images.float().std() > 30


@pytest.mark.parametrize("name", SYNTHETIC)
def test_synthetic_ground_truth_names_real_ops(name: str) -> None:
    ds = load_dataset(name, train_size=60)
    assert ds.ground_truth is not None
    assert set(ds.ground_truth) <= set(OPS), set(ds.ground_truth) - set(OPS)
    assert set(ds.ground_truth.values()) == {"symmetry", "breaks"}
    assert ds.ground_truth["hflip"] == ds.ground_truth["vflip"] == "breaks"
    assert ds.ground_truth["rotate90"] == ("symmetry" if name == "glyphs" else "breaks")


@pytest.mark.parametrize("name", SYNTHETIC)
def test_synthetic_is_deterministic_from_the_seed(name: str) -> None:
    a = load_dataset(name, train_size=120, seed=3)
    b = load_dataset(name, train_size=120, seed=3)
    c = load_dataset(name, train_size=120, seed=4)
    assert _same(a.train, b.train) and _same(a.val, b.val) and _same(a.test, b.test)
    assert not torch.equal(a.train.images, c.train.images)
    # The test set is shared by every seed, so runs are scored on the same images.
    assert _same(a.test, c.test)


@pytest.mark.parametrize("name", SYNTHETIC)
def test_synthetic_classes_are_balanced(name: str) -> None:
    ds = load_dataset(name, train_size=1200, val_size=0.25, seed=1)
    k = ds.num_classes
    pool = torch.cat([ds.train.labels, ds.val.labels])
    assert pool.bincount(minlength=k).tolist() == [1200 // k] * k
    assert ds.val.labels.bincount(minlength=k).tolist() == [300 // k] * k
    counts = ds.test.labels.bincount(minlength=k)
    assert int(counts.max() - counts.min()) <= 1


def test_default_synthetic_sizes_and_generation_time() -> None:
    start = time.perf_counter()
    ds = load_dataset("glyphs")
    elapsed = time.perf_counter() - start
    assert len(ds.train) + len(ds.val) == 10000 and len(ds.test) == 2000
    arrows = load_dataset("arrows")
    assert len(arrows.train) + len(arrows.val) == 6000 and len(arrows.test) == 2000
    # About 0.6 s on two idle CPU cores; the bound leaves room for a busy machine.
    assert elapsed < 10, f"generating glyphs took {elapsed:.1f} s"


def _canonical(task: str, labels: list[int], angles: list[float], size: int = 48) -> torch.Tensor:
    """White glyphs on black, centred, scale 1, as floats in [0, 1] (one channel)."""
    n = len(labels)
    params = GlyphParams(
        torch.tensor(labels),
        torch.tensor(angles, dtype=torch.float32),
        torch.zeros(n, 2),
        torch.ones(n),
        torch.ones(n, 3),
        torch.zeros(n, 3),
    )
    return render(task, params, size)[:, 0].float() / 255


def test_glyph_hflip_is_the_partner_class_with_mirrored_parameters() -> None:
    p = sample_params("glyphs", 120, torch.Generator().manual_seed(0))
    images = render("glyphs", p)
    mirror = GlyphParams(
        glyph_partner(p.labels), -p.angle, p.offset * torch.tensor([-1.0, 1.0]), p.scale, p.fg, p.bg
    )
    diff = (torch.flip(images, dims=[-1]).int() - render("glyphs", mirror).int()).abs()
    assert int(diff.max()) <= 1  # uint8 rounding of the same values
    assert bool((glyph_partner(p.labels) != p.labels).all())


def test_glyph_vflip_is_the_partner_class_turned_half_way() -> None:
    p = sample_params("glyphs", 120, torch.Generator().manual_seed(1))
    images = render("glyphs", p)
    mirror = GlyphParams(
        glyph_partner(p.labels), 180.0 - p.angle, p.offset * torch.tensor([1.0, -1.0]), p.scale, p.fg, p.bg
    )
    diff = (torch.flip(images, dims=[-2]).int() - render("glyphs", mirror).int()).abs()
    assert int(diff.max()) <= 1


def test_glyphs_are_chiral_and_distinct_at_every_rotation() -> None:
    # For each pair of classes, the best match of one (at 0°) among the other's rotations
    # (every 2°): zero for a class with itself, and far from zero otherwise. That a class
    # never matches its partner is what makes hflip break the label under full rotation.
    k = len(GLYPH_CLASSES)
    angles = [float(a) for a in range(0, 360, 2)]
    reference = _canonical("glyphs", list(range(k)), [0.0] * k)
    best = torch.zeros(k, k)
    for c in range(k):
        rotations = _canonical("glyphs", [c] * len(angles), angles)
        best[:, c] = (rotations[None] - reference[:, None]).abs().mean((-2, -1)).min(1).values
    one_degree = (_canonical("glyphs", list(range(k)), [1.0] * k) - reference).abs().mean((-2, -1))
    assert float(one_degree.max()) < 0.01  # how far a 1° misalignment moves a glyph
    off_diagonal = best[~torch.eye(k, dtype=torch.bool)]
    assert float(off_diagonal.min()) > 0.03, best


def test_arrow_rot90_maps_each_class_to_its_neighbour() -> None:
    p = sample_params("arrows", 80, torch.Generator().manual_seed(2))
    images = render("arrows", p)
    # torch.rot90 turns counter-clockwise on screen; the classes go clockwise (up, right, down, left).
    turned = GlyphParams(
        (p.labels - 1) % 4, p.angle, torch.stack([p.offset[:, 1], -p.offset[:, 0]], 1), p.scale, p.fg, p.bg
    )
    diff = (torch.rot90(images, 1, dims=(-2, -1)).int() - render("arrows", turned).int()).abs()
    assert int(diff.max()) <= 1
    assert bool(((p.labels - 1) % 4 != p.labels).all())


def test_arrow_hflip_swaps_left_and_right_only() -> None:
    p = sample_params("arrows", 80, torch.Generator().manual_seed(3))
    images = render("arrows", p)
    swap = torch.tensor([0, 3, 2, 1])  # up, right, down, left -> up, left, down, right
    mirror = GlyphParams(swap[p.labels], -p.angle, p.offset * torch.tensor([-1.0, 1.0]), p.scale, p.fg, p.bg)
    diff = (torch.flip(images, dims=[-1]).int() - render("arrows", mirror).int()).abs()
    assert int(diff.max()) <= 1


def test_arrows_rotate_range_stays_within_half_the_class_spacing() -> None:
    # rotate goes up to 30° in every space; with the data's jitter an arrow stays < 45° from
    # its class direction, so it still points the same way.
    assert ARROW_JITTER + 30 < 45
    p = sample_params("arrows", 400, torch.Generator().manual_seed(4))
    assert float(p.angle.abs().max()) <= ARROW_JITTER


def test_synthetic_colours_keep_the_glyph_visible_in_grayscale() -> None:
    p = sample_params("glyphs", 2000, torch.Generator().manual_seed(5))
    luma = torch.tensor([0.299, 0.587, 0.114])
    assert float(((p.fg - p.bg) @ luma).abs().min()) >= 0.3


def test_render_rejects_unknown_task() -> None:
    p = sample_params("glyphs", 2, torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="unknown synthetic task 'letters'"):
        render("letters", p)


# ---------------------------------------------------------------------------------- names


def test_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(DatasetError, match=r"unknown dataset 'imagenet'.*glyphs.*fashion-mnist"):
        load_dataset("imagenet")


def test_list_datasets_covers_every_name() -> None:
    infos = {info.name: info for info in list_datasets()}
    assert set(DATASETS) <= set(infos)
    assert infos["glyphs"].available and infos["arrows"].available
    assert infos["fashion-mnist"].available == FASHION_MNIST_DIR.is_dir()
    for info in infos.values():
        assert info.where and info.description


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"seed": -1}, "seed"),
        ({"train_size": 0}, "train_size"),
        ({"val_size": 1.5}, "val_size"),
        ({"val_size": 100}, "val_size"),
        ({"val_size": 0.999}, "leaves none of the 40 training images"),
    ],
)
def test_bad_arguments_are_named(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_dataset("arrows", **({"train_size": 40} | kwargs))


def test_missing_torchvision_set_says_how_to_get_it(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match="--download") as err:
        load_dataset("cifar10", root=tmp_path)
    assert str(tmp_path) in str(err.value)
    assert isinstance(err.value, FileNotFoundError) and isinstance(err.value, ValueError)


# ------------------------------------------------------------------------------------ IDX


def _idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def _write_idx_dir(directory: Path, n_train: int = 40, n_test: int = 20) -> None:
    rng = np.random.default_rng(0)
    for part, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = np.arange(n) % 10
        (directory / f"{part}-images-idx3-ubyte.gz").write_bytes(gzip.compress(_idx_bytes(images)))
        (directory / f"{part}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(_idx_bytes(labels)))


def test_idx_directory_loads_from_root(tmp_path: Path) -> None:
    _write_idx_dir(tmp_path)
    ds = load_dataset("mnist", root=tmp_path, val_size=10)
    assert ds.channels == 1 and ds.image_size == (28, 28)
    assert (len(ds.train), len(ds.val), len(ds.test)) == (30, 10, 20)
    assert ds.val.labels.bincount(minlength=10).tolist() == [1] * 10
    raw = read_idx(tmp_path / "t10k-images-idx3-ubyte.gz", IMAGES_MAGIC)
    assert torch.equal(ds.test.images[:, 0], torch.from_numpy(raw.copy()))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda b: gzip.compress(b[:-100]), "truncated or malformed IDX file"),
        (lambda b: b"this is not gzip at all", "cannot read it as a gzipped IDX file"),
        (
            lambda b: gzip.compress(bytes([0, 0, 8, 1]) + b[4:]),
            "magic number 0x00000801, expected 0x00000803",
        ),
        (lambda b: gzip.compress(b[:2]), "shorter than the 4-byte header"),
        (lambda b: gzip.compress(b)[:50], "cannot read it as a gzipped IDX file"),
    ],
    ids=["truncated-data", "not-gzip", "wrong-magic", "no-header", "truncated-gzip"],
)
def test_malformed_idx_file_is_named(tmp_path: Path, damage, message: str) -> None:
    _write_idx_dir(tmp_path)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(damage(gzip.decompress(path.read_bytes())))
    with pytest.raises(DatasetError, match=message) as err:
        load_dataset("fashion-mnist", root=tmp_path)
    assert str(path) in str(err.value)


def test_idx_labels_and_images_must_agree(tmp_path: Path) -> None:
    _write_idx_dir(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(_idx_bytes(np.zeros(7, np.uint8))))
    with pytest.raises(DatasetError, match="t10k-labels-idx1-ubyte"):
        load_dataset("mnist", root=tmp_path)


def test_read_idx_checks_the_label_magic(tmp_path: Path) -> None:
    path = tmp_path / "labels"
    path.write_bytes(_idx_bytes(np.array([3, 1, 4], np.uint8)))  # not gzipped: read as is
    assert read_idx(path, LABELS_MAGIC).tolist() == [3, 1, 4]
    with pytest.raises(DatasetError, match="not an IDX image file"):
        read_idx(path, IMAGES_MAGIC)


def test_written_idx_files_read_back_grey_and_colour(tmp_path: Path) -> None:
    """write_idx_dir inverts read_idx_dir for grey images; colour images go N×H×W×C, and the
    labels and the order are kept."""
    (tmp_path / "src").mkdir()
    _write_idx_dir(tmp_path / "src")
    train, test = read_idx_dir(tmp_path / "src")
    back = read_idx_dir(write_idx_dir(tmp_path / "grey", train, test))
    assert all(
        torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
        for a, b in zip(back, (train, test))
    )
    pool, test = synthetic_pool("polarity", 40, seed=2)
    write_idx_dir(tmp_path / "colour", pool, test)
    images = read_idx(tmp_path / "colour" / "train-images-idx3-ubyte.gz", 0x00000804)
    assert images.shape == (40, 32, 32, 3)
    assert torch.equal(torch.from_numpy(images.copy()).permute(0, 3, 1, 2), pool.images)
    labels = read_idx(tmp_path / "colour" / "t10k-labels-idx1-ubyte.gz", LABELS_MAGIC)
    assert labels.tolist() == test.labels.tolist()
    with pytest.raises(ValueError, match="unsigned bytes; got an array of int64"):
        write_idx(tmp_path / "x.gz", np.arange(3))
    with pytest.raises(DatasetError, match="'mnist' is not synthetic; synthetic: glyphs, arrows"):
        synthetic_pool("mnist", 10)


def test_missing_idx_dataset_says_where_it_looked(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError) as err:
        load_dataset("fashion-mnist", root=tmp_path / "nowhere")
    message = str(err.value)
    assert str(tmp_path / "nowhere") in message
    assert "apt-get install dataset-fashion-mnist" in message and "--download" in message


@pytest.fixture(scope="module")
def fashion() -> object:
    if not FASHION_MNIST_DIR.is_dir():
        pytest.skip("Fashion-MNIST not installed: apt-get install dataset-fashion-mnist")
    return load_dataset("fashion-mnist", train_size=6000, seed=0)


def test_fashion_mnist_reduced_setting(fashion) -> None:
    assert fashion.channels == 1 and fashion.image_size == (28, 28)
    assert (len(fashion.train), len(fashion.val), len(fashion.test)) == (5400, 600, 10000)
    assert fashion.train.labels.bincount().tolist() == [540] * 10
    assert fashion.val.labels.bincount().tolist() == [60] * 10
    assert fashion.class_names[0] == "T-shirt/top" and fashion.ground_truth is None
    assert fashion.source == str(FASHION_MNIST_DIR)


def test_fashion_mnist_subset_is_deterministic_from_the_seed(fashion) -> None:
    again = load_dataset("fashion-mnist", train_size=6000, seed=0)
    other = load_dataset("fashion-mnist", train_size=6000, seed=1)
    assert _same(fashion.train, again.train) and _same(fashion.val, again.val)
    assert not torch.equal(fashion.train.images, other.train.images)
    assert _same(fashion.test, other.test)


def test_fashion_mnist_train_size_beyond_the_data(fashion) -> None:
    with pytest.raises(DatasetError, match="train_size 70000 is more than the 60000"):
        load_dataset("fashion-mnist", train_size=70_000)


# ------------------------------------------------------------------------------ npz, folder


def _npz(path: Path, **arrays: np.ndarray) -> Path:
    np.savez(path, **arrays)
    return path


def test_npz_loads_and_holds_out_a_fixed_test_split(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (100, 12, 10, 3), dtype=np.uint8)
    y = np.arange(100) % 5
    path = _npz(tmp_path / "set.npz", x=x, y=y)
    a = load_dataset(f"npz:{path}", seed=0)
    b = load_dataset(str(path), seed=1)  # a name ending in .npz
    assert a.channels == 3 and a.image_size == (12, 10) and a.num_classes == 5
    assert (len(a.train), len(a.val), len(a.test)) == (72, 8, 20)
    assert a.test.labels.bincount().tolist() == [4] * 5
    assert _same(a.test, b.test)  # held out with a fixed seed
    assert not _same(a.val, b.val)  # the validation split follows the seed
    # Pixels come through unchanged: find one test image among the inputs.
    first = a.test.images[0].permute(1, 2, 0).numpy()
    assert any(np.array_equal(first, xi) for xi in x)


def test_npz_grayscale_own_test_split_and_class_names(tmp_path: Path) -> None:
    path = _npz(
        tmp_path / "gray.npz",
        x=np.zeros((20, 8, 8), np.uint8),
        y=np.arange(20) % 2,
        x_test=np.ones((6, 8, 8), np.uint8),
        y_test=np.arange(6) % 2,
        class_names=np.array(["cat", "dog"]),
    )
    ds = load_dataset(f"npz:{path}", val_size=0)
    assert ds.channels == 1 and len(ds.train) == 20 and len(ds.val) == 0 and len(ds.test) == 6
    assert ds.class_names == ["cat", "dog"] and bool((ds.test.images == 1).all())


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"x": np.zeros((4, 8, 8), np.uint8)}, r"missing key\(s\) \['y'\]"),
        ({"x": np.zeros((4, 8, 8), np.float32), "y": np.zeros(4, np.int64)}, "dtype float32, expected uint8"),
        ({"x": np.zeros((4, 8, 8), np.uint8), "y": np.zeros(3, np.int64)}, "4 images but 3 labels"),
        ({"x": np.zeros((4, 8, 8, 2), np.uint8), "y": np.zeros(4, np.int64)}, "expected N×H×W or N×H×W×C"),
        ({"x": np.zeros((4, 8, 8), np.uint8), "y": np.zeros(4, np.float64)}, "expected N integer labels"),
        ({"x": np.zeros((4, 8, 8), np.uint8), "y": -np.ones(4, np.int64)}, "negative label"),
    ],
    ids=["missing-y", "float-x", "length", "channels", "float-y", "negative"],
)
def test_npz_errors_name_the_problem(tmp_path: Path, arrays: dict, message: str) -> None:
    path = _npz(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DatasetError, match=message):
        load_dataset(f"npz:{path}")


def test_npz_that_is_not_an_npz(tmp_path: Path) -> None:
    path = tmp_path / "junk.npz"
    path.write_bytes(b"junk")
    with pytest.raises(DatasetError, match=r"not a readable \.npz file"):
        load_dataset(str(path))
    with pytest.raises(DatasetNotFoundError, match="no such file"):
        load_dataset(str(tmp_path / "absent.npz"))


def _write_folder(
    root: Path, classes: dict[str, list[tuple[int, int, int]]], size=(6, 5), mode="RGB"
) -> None:
    for name, colours in classes.items():
        (root / name).mkdir(parents=True)
        for i, colour in enumerate(colours):
            value = colour if mode == "RGB" else colour[0]
            Image.new(mode, size, value).save(root / name / f"{i}.png")


def test_folder_loads_classes_in_sorted_order(tmp_path: Path) -> None:
    _write_folder(tmp_path, {"red": [(255, 0, 0)] * 5, "blue": [(0, 0, 255)] * 5})
    ds = load_dataset(f"folder:{tmp_path}", val_size=0)
    assert ds.class_names == ["blue", "red"] and ds.num_classes == 2
    assert ds.channels == 3 and ds.image_size == (5, 6)  # PIL sizes are (width, height)
    assert (len(ds.train), len(ds.test)) == (8, 2)
    for split in (ds.train, ds.test):
        means = split.images.float().mean((2, 3))  # N×3
        expected = torch.tensor([[0.0, 0.0, 255.0], [255.0, 0.0, 0.0]])[split.labels]
        assert torch.equal(means, expected)


def test_folder_by_its_bare_path(tmp_path: Path, monkeypatch) -> None:
    """A directory given without folder: is a folder (as a .npz file is taken by its name); a
    known name still means the built-in dataset, and a path that is no directory is refused."""
    _write_folder(tmp_path / "photos", {"red": [(255, 0, 0)] * 5, "blue": [(0, 0, 255)] * 5})
    monkeypatch.chdir(tmp_path)
    for name in ("photos", str(tmp_path / "photos")):
        ds = load_dataset(name, val_size=0)
        assert ds.class_names == ["blue", "red"] and (len(ds.train), len(ds.test)) == (8, 2)
    (tmp_path / "glyphs").mkdir()
    assert load_dataset("glyphs", train_size=64).name == "glyphs"
    with pytest.raises(DatasetError, match="unknown dataset 'photo'"):
        load_dataset("photo")


def test_folder_grayscale_and_train_test_layout(tmp_path: Path) -> None:
    _write_folder(tmp_path / "train", {"a": [(10,)] * 3, "b": [(200,)] * 3}, mode="L")
    _write_folder(tmp_path / "test", {"a": [(10,)] * 2, "b": [(200,)] * 2}, mode="L")
    ds = load_dataset(f"folder:{tmp_path}", val_size=0)
    assert ds.channels == 1 and (len(ds.train), len(ds.test)) == (6, 4)
    assert ds.test.images[ds.test.labels == 1].unique().tolist() == [200]


def test_folder_images_of_different_sizes_name_the_file(tmp_path: Path) -> None:
    _write_folder(tmp_path, {"a": [(0, 0, 0)] * 2, "b": [(9, 9, 9)] * 2})
    Image.new("RGB", (7, 7)).save(tmp_path / "b" / "odd.png")
    with pytest.raises(DatasetError, match=r"odd\.png: 7×7 pixels, but .* is 6×5"):
        load_dataset(f"folder:{tmp_path}")


def test_folder_that_is_not_one(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match="no such directory"):
        load_dataset(f"folder:{tmp_path / 'absent'}")
    with pytest.raises(DatasetError, match="a path after the colon"):
        load_dataset("folder:")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="not an ImageFolder directory"):
        load_dataset(f"folder:{tmp_path / 'empty'}")


# --------------------------------------------------------------------------------- splits


def test_stratified_order_prefixes_are_balanced() -> None:
    labels = torch.tensor([0] * 50 + [1] * 30 + [2] * 20)
    order = stratified_order(labels, torch.Generator().manual_seed(0), balanced=True)
    assert sorted(order.tolist()) == list(range(100))
    assert labels[order[:60]].bincount().tolist() == [20, 20, 20]
    proportional = stratified_order(labels, torch.Generator().manual_seed(0), balanced=False)
    assert labels[proportional[:10]].bincount().tolist() == [5, 3, 2]


# ----------------------------------------------------------------------------- DeviceLoader


def _indexed_split(n: int) -> Split:
    images = torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1).expand(n, 1, 2, 2).contiguous()
    return Split(images, torch.arange(n))


@pytest.mark.parametrize("drop_last", [False, True])
def test_device_loader_yields_every_index_once_per_epoch(drop_last: bool) -> None:
    loader = DeviceLoader(_indexed_split(103), 10, drop_last=drop_last, seed=0)
    assert len(loader) == (10 if drop_last else 11)
    epochs = []
    for _ in range(2):
        seen = []
        for images, labels in loader:
            assert images.dtype == torch.uint8 and images.shape[1:] == (1, 2, 2)
            assert torch.equal(images[:, 0, 0, 0].long(), labels)  # images travel with their labels
            seen.append(labels)
        seen = torch.cat(seen)
        assert len(seen) == (100 if drop_last else 103) and len(seen.unique()) == len(seen)
        epochs.append(seen)
    assert not torch.equal(epochs[0][:100], epochs[1][:100])  # reshuffled each epoch


def test_device_loader_without_shuffle_keeps_the_order() -> None:
    loader = DeviceLoader(_indexed_split(7), 3, shuffle=False, drop_last=False)
    assert [y.tolist() for _, y in loader] == [[0, 1, 2], [3, 4, 5], [6]]


def test_device_loader_resumes_at_an_epoch_boundary() -> None:
    split = _indexed_split(50)
    a = DeviceLoader(split, 8, seed=5)
    for _ in a:
        pass
    state = a.state_dict()
    expected = [[y.tolist() for _, y in a] for _ in range(2)]
    b = DeviceLoader(split, 8, seed=123)
    b.load_state_dict(state)
    assert [[y.tolist() for _, y in b] for _ in range(2)] == expected
    assert b.epoch == a.epoch == 3


def test_device_loader_resumes_in_the_middle_of_an_epoch() -> None:
    split = _indexed_split(50)
    a = DeviceLoader(split, 8, seed=5)
    it = iter(a)
    for _ in range(3):
        next(it)
    state = a.state_dict()
    assert (state["epoch"], state["batch"]) == (0, 3)
    rest = [y.tolist() for _, y in it] + [y.tolist() for _, y in a]
    b = DeviceLoader(split, 8, seed=0)
    b.load_state_dict(state)
    assert [y.tolist() for _, y in b] + [y.tolist() for _, y in b] == rest


def test_device_loader_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        DeviceLoader(_indexed_split(5), 0)
    with pytest.raises(ValueError, match="larger than the split"):
        DeviceLoader(_indexed_split(5), 8)
    with pytest.raises(ValueError, match="missing"):
        DeviceLoader(_indexed_split(5), 2).load_state_dict({"epoch": 0})
    with pytest.raises(TypeError, match="expected a Split"):
        DeviceLoader(load_dataset("arrows", train_size=40), 8)


def test_to_float_normalize_and_channel_stats() -> None:
    images = torch.randint(
        0, 256, (64, 3, 5, 5), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)
    )
    split = Split(images, torch.zeros(64, dtype=torch.int64))
    mean, std = channel_stats(split, chunk=10)
    x = images.double() / 255
    assert torch.allclose(torch.tensor(mean, dtype=torch.float64), x.mean((0, 2, 3)), atol=1e-9)
    assert torch.allclose(torch.tensor(std, dtype=torch.float64), x.std((0, 2, 3), unbiased=False), atol=1e-9)
    z = to_float(images, mean, std)
    assert z.dtype == torch.float32
    assert torch.allclose(z.mean((0, 2, 3)), torch.zeros(3), atol=1e-5)
    assert torch.allclose(z.std((0, 2, 3), unbiased=False), torch.ones(3), atol=1e-4)
    assert torch.allclose(normalize(to_float(images), mean, std), z)
    with pytest.raises(ValueError, match="expected uint8"):
        to_float(images.float())
    with pytest.raises(ValueError, match="one per channel"):
        to_float(images, [0.5, 0.5], [0.2, 0.2])


def test_split_validates_its_tensors() -> None:
    with pytest.raises(ValueError, match="uint8"):
        Split(torch.zeros(2, 1, 4, 4), torch.zeros(2, dtype=torch.int64))
    with pytest.raises(ValueError, match="2 images but 3 labels"):
        Split(torch.zeros(2, 1, 4, 4, dtype=torch.uint8), torch.zeros(3, dtype=torch.int64))
