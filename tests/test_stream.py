"""Folders of any sizes and modes (--image-size), and streaming them from disk (StreamLoader).

The folders are generated here: JPEG and PNG files of mixed sizes in the modes L, RGB, RGBA
and P, each class a colour, so a model can learn them and a decoded pixel can be checked.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms

from autoaug.data import DatasetError, FileSplit, Split, StreamLoader, load_dataset
from autoaug.data.images import parse_image_size, read_image
from autoaug.train import TrainConfig, Trainer

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (40, 40, 230)}
MODES = ("RGB", "L", "RGBA", "P")


def _photo(path: Path, size: tuple[int, int], colour: tuple[int, int, int], mode: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    w, h = size
    pixels = np.clip(np.array(colour) + rng.normal(0, 20, (h, w, 3)), 0, 255).astype(np.uint8)
    im = Image.fromarray(pixels)
    im = im.convert(mode) if mode != "P" else im.quantize(16)
    im.save(path.with_suffix(".jpg" if mode in ("RGB", "L") else ".png"), quality=95)


def make_photo_folder(root: Path, per_class: int = 12, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for c, (name, colour) in enumerate(COLOURS.items()):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            size = (int(rng.integers(12, 70)), int(rng.integers(12, 70)))
            _photo(root / name / f"{i}", size, colour, MODES[i % len(MODES)], seed=100 * c + i)
    return root


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    return make_photo_folder(tmp_path_factory.mktemp("photos"))


def test_parse_image_size() -> None:
    assert parse_image_size("24x32") == (24, 32)
    assert parse_image_size("64") == (64, 64)
    assert parse_image_size("7×9") == (7, 9)
    for bad in ("0", "x", "3x4x5", "-2x2", "big"):
        with pytest.raises(ValueError, match="expected HxW or H"):
            parse_image_size(bad)


def test_mixed_sizes_and_modes_load_at_one_size(photos: Path) -> None:
    ds = load_dataset(f"folder:{photos}", image_size="16x24", val_size=0.2)
    assert isinstance(ds.train, Split) and ds.image_size == (16, 24) and ds.channels == 3
    assert len(ds.train) + len(ds.val) + len(ds.test) == 36
    for split in (ds.train, ds.val, ds.test):  # every image keeps its class's colour, whatever its mode
        means = split.images.float().mean(dim=(2, 3))
        for image_mean, label in zip(means, split.labels):
            name = ds.class_names[int(label)]
            if all(abs(a - b) < 40 for a, b in zip(image_mean.tolist(), COLOURS[name])):
                continue
            r, g, b = COLOURS[name]  # an L file: its luma (PIL's weights) in all three channels
            gray = 0.299 * r + 0.587 * g + 0.114 * b
            assert image_mean.std() < 1 and abs(image_mean.mean() - gray) < 15, (name, image_mean)


def test_resize_is_torchvisions_resize_then_centre_crop(tmp_path: Path) -> None:
    for i, size in enumerate([(50, 20), (17, 33), (40, 40), (9, 61)]):
        path = tmp_path / f"{i}.png"
        noise = np.random.default_rng(i).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
        Image.fromarray(noise).save(path)
        expected = transforms.Compose([transforms.Resize(16), transforms.CenterCrop(16)])(Image.open(path))
        assert np.array_equal(read_image(path, 3, (16, 16)), np.asarray(expected))


def test_gray_folder_stays_one_channel_and_a_palette_decodes_to_its_colours(tmp_path: Path) -> None:
    for cls in ("a", "b"):
        (tmp_path / "gray" / cls).mkdir(parents=True)
        for i, size in enumerate([(10, 14), (20, 9)]):
            Image.new("L", size, 60 + 100 * (cls == "b")).save(tmp_path / "gray" / cls / f"{i}.png")
    ds = load_dataset(f"folder:{tmp_path / 'gray'}", image_size="8", val_size=0)
    assert ds.channels == 1 and ds.image_size == (8, 8)
    palette = Image.new("RGB", (9, 5), (200, 10, 90)).quantize(4)
    palette.save(tmp_path / "p.png")
    assert Image.open(tmp_path / "p.png").mode == "P"
    assert read_image(tmp_path / "p.png", 3, (4, 4))[0, 0].tolist() == [200, 10, 90]


def test_npz_is_resized_on_load(tmp_path: Path) -> None:
    x = np.random.default_rng(0).integers(0, 256, (10, 20, 30, 3), dtype=np.uint8)
    np.savez(tmp_path / "d.npz", x=x, y=np.arange(10) % 2, x_test=x[:4, :10], y_test=np.arange(4) % 2)
    ds = load_dataset(f"npz:{tmp_path / 'd.npz'}", image_size="8x12", val_size=0)
    assert ds.image_size == (8, 12) and ds.test.images.shape == (4, 3, 8, 12)


def test_without_image_size_mixed_sizes_say_how_to_resize(photos: Path) -> None:
    with pytest.raises(DatasetError, match=r"must have the same size, or pass --image-size HxW"):
        load_dataset(f"folder:{photos}")


# ------------------------------------------------------------------------------- streaming


def test_the_memory_budget_chooses_streaming(photos: Path) -> None:
    small = load_dataset(f"folder:{photos}", image_size="16", memory_budget=1.0)
    big = load_dataset(f"folder:{photos}", image_size="16", memory_budget=1e-6)
    assert isinstance(small.train, Split) and isinstance(big.train, FileSplit)
    assert isinstance(big.test, FileSplit) and big.image_size == (16, 16) and big.channels == 3
    forced = load_dataset(f"folder:{photos}", image_size="16", stream="on")
    assert isinstance(forced.train, FileSplit)


@pytest.mark.parametrize("workers", [0, 2])
def test_streamed_batches_are_the_resident_ones(photos: Path, workers: int) -> None:
    from autoaug.data import DeviceLoader

    resident = load_dataset(f"folder:{photos}", image_size="16", stream="off")
    streamed = load_dataset(f"folder:{photos}", image_size="16", stream="on")
    a = DeviceLoader(resident.train, 5, seed=3)
    b = StreamLoader(streamed.train, 5, seed=3, workers=workers)
    for _ in range(2):  # two epochs, two orders
        for (xa, ya), (xb, yb) in zip(a, b, strict=True):
            assert torch.equal(xa, xb) and torch.equal(ya, yb)
            assert torch.equal(a.last_index, b.last_index)


def test_stream_loader_resumes_in_the_middle_of_an_epoch(photos: Path) -> None:
    split = load_dataset(f"folder:{photos}", image_size="8", stream="on").train
    a = StreamLoader(split, 4, seed=1, workers=0)
    it = iter(a)
    next(it)
    state = a.state_dict()
    rest = [(x, a.last_index.clone()) for x, _ in it]
    b = StreamLoader(split, 4, seed=99, workers=0)
    b.load_state_dict(state)
    again = [(x, b.last_index.clone()) for x, _ in b]
    assert len(rest) == len(again) == len(a) - 1
    assert all(torch.equal(x, y) and torch.equal(i, j) for (x, i), (y, j) in zip(rest, again))


def test_a_rank_decodes_only_its_shard(photos: Path) -> None:
    split = load_dataset(f"folder:{photos}", image_size="8", stream="on").train
    n_batches = len(StreamLoader(split, 3, workers=0))
    seen = []
    for rank in (0, 1):
        loader = StreamLoader(split, 3, seed=0, workers=0, rank=rank, world=2)
        got = [(x is not None, loader.last_index) for x, _ in loader]
        assert len(got) == n_batches
        assert [b for b, (mine, _) in enumerate(got) if mine] == list(range(rank, n_batches // 2 * 2, 2))
        seen += [i for mine, idx in got if mine for i in idx.tolist()]
    assert len(seen) == len(set(seen)) == n_batches // 2 * 2 * 3


def test_random_crops_change_each_epoch_and_not_with_the_workers(photos: Path) -> None:
    split = load_dataset(f"folder:{photos}", image_size="16", stream="on", train_crop="random").train
    assert split.crop == "random"
    runs = []
    for workers in (0, 2):
        loader = StreamLoader(split, 6, seed=0, shuffle=False, workers=workers)
        runs.append([torch.cat([x for x, _ in loader]) for _ in range(2)])
    assert torch.equal(runs[0][0], runs[1][0]) and torch.equal(runs[0][1], runs[1][1])
    assert not torch.equal(runs[0][0], runs[0][1])
    centre = load_dataset(f"folder:{photos}", image_size="16", stream="off").train
    assert not torch.equal(runs[0][0], centre.images[: len(runs[0][0])])
    resident_random = load_dataset(f"folder:{photos}", image_size="16", train_crop="random")
    assert isinstance(resident_random.train, FileSplit) and isinstance(resident_random.test, Split)


def _config(photos: Path, out: Path, **extra) -> TrainConfig:
    return TrainConfig(dataset=f"folder:{photos}", image_size="16", epochs=2, batch_size=6, policy="trivialaugment",
                       device="cpu", progress=False, out=str(out), **extra)  # fmt: skip


def test_training_on_a_stream_equals_training_on_resident_data(photos: Path, tmp_path: Path) -> None:
    runs = {}
    for stream in ("off", "on"):
        trainer = Trainer(
            _config(photos, tmp_path / stream, stream=stream, workers=2 if stream == "on" else 0)
        )
        assert isinstance(trainer.dataset.train, FileSplit if stream == "on" else Split)
        runs[stream] = (trainer.fit(), trainer.model.state_dict())
    assert runs["on"][0]["test_acc"] == runs["off"][0]["test_acc"]
    assert all(torch.equal(runs["on"][1][k], runs["off"][1][k]) for k in runs["on"][1])


def test_mcmc_search_on_a_stream_keys_its_chains_and_equals_the_resident_search(
    photos: Path, tmp_path: Path
) -> None:
    from autoaug.search import SearchConfig, get_searcher

    policies = {}
    for stream in ("off", "on"):
        cfg = SearchConfig.of(dataset=f"folder:{photos}", image_size="16", stream=stream, workers=0, epochs=1,
                              batch_size=6, device="cpu", progress=False, out=str(tmp_path / stream))  # fmt: skip
        result = get_searcher("mcmc")(cfg).run()
        policies[stream] = result.policy.to_dict()
    assert policies["on"] == policies["off"]
