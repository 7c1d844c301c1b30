"""scripts/plain_train.py: the independent check of a policy trains with plain torch and
torchvision (no autoaug imported), on the data, model and schedule of autoaug's trainer."""

import importlib.util
import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from conftest import write_bar_idx
from torchvision.transforms import v2

from autoaug.data import load_dataset
from autoaug.export import export
from autoaug.models import build_model
from autoaug.policy import load_policy

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "plain_train.py"


def _load_script():
    spec = importlib.util.spec_from_file_location("plain_train", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


plain_train = _load_script()


@pytest.fixture(scope="module")
def idx_dir(tmp_path_factory) -> Path:
    """400 training images (gzipped) and 100 test images (not) of the bar task
    (conftest.write_bar_idx)."""
    return write_bar_idx(tmp_path_factory.mktemp("idx"), 400, 100, gzip_train=True)


def _args(idx_dir: Path, out: Path, *extra: str) -> list[str]:
    return ["--data-root", str(idx_dir), "--train-size", "256", "--epochs", "1", "--threads", "1",
            "--out", str(out), "--quiet", *extra]  # fmt: skip


def test_trains_with_an_exported_policy_without_importing_autoaug(idx_dir, tmp_path):
    """A real subprocess where autoaug cannot be imported, with a learned policy exported to .py
    and two DataLoader workers: the JSON has the accuracy, the epochs and the settings."""
    policy = export(
        load_policy(str(ROOT / "policies" / "fashion-mnist_bilevel.json")), tmp_path / "p.py", (28, 28)
    )
    (tmp_path / "blocker").mkdir()
    (tmp_path / "blocker" / "autoaug.py").write_text("raise ImportError('autoaug must not be needed')\n")
    out = tmp_path / "result.json"
    argv = [str(SCRIPT), *_args(idx_dir, out, "--policy", str(policy), "--workers", "2")]
    runner = textwrap.dedent(
        f"""
        import runpy, sys
        sys.argv = {argv!r}
        try:
            runpy.run_path(sys.argv[0], run_name="__main__")
        except SystemExit as e:
            assert e.code in (0, None), e.code
        loaded = sorted(m for m in sys.modules if m == "autoaug" or m.startswith("autoaug."))
        assert not loaded, loaded
        print("no autoaug")
        """
    )
    env = {"PYTHONPATH": str(tmp_path / "blocker"), "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-c", runner], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "no autoaug" in result.stdout and "test accuracy" in result.stdout
    data = json.loads(out.read_text())
    assert 0 <= data["test_acc"] <= 1 and 0 <= data["val_acc"] <= 1 and data["wall_seconds"] > 0
    assert len(data["epochs"]) == 1 and np.isfinite(data["epochs"][0]["train_loss"])
    s = data["settings"]
    assert (s["train_images"], s["val_images"], s["test_images"]) == (230, 26, 100)
    assert s["policy"] == str(policy) and s["epochs"] == 1 and s["seed"] == 0 and s["lr"] == 0.1
    assert "KeepInputType" in s["transform"] and "ToDtype" in s["transform"]


@pytest.mark.parametrize("policy", plain_train.FIXED_POLICIES)
def test_fixed_policies_train_and_a_seed_repeats_the_run(policy, idx_dir, tmp_path):
    results = []
    for run in ("a", "b"):
        assert (
            plain_train.main(_args(idx_dir, tmp_path / f"{run}.json", "--policy", policy, "--workers", "2"))
            == 0
        )
        results.append(json.loads((tmp_path / f"{run}.json").read_text()))
    a, b = results
    assert [e["train_loss"] for e in a["epochs"]] == [e["train_loss"] for e in b["epochs"]]
    assert a["test_acc"] == b["test_acc"] and a["val_acc"] == b["val_acc"]


def test_fixed_policies_take_torchvisions_arguments(idx_dir, tmp_path):
    """``randaugment[num_ops=3,...]`` builds torchvision's class with those arguments and trains;
    an argument the class does not take, or a bad value, is refused naming it."""
    (ra,), after = plain_train.policy_steps("randaugment[num_ops=3,magnitude=14,interpolation=bilinear]", 28)
    assert isinstance(ra, v2.RandAugment) and after == []
    assert (ra.num_ops, ra.magnitude, ra.interpolation) == (3, 14, v2.InterpolationMode.BILINEAR)
    (aa,), _ = plain_train.policy_steps("autoaugment[policy=svhn]", 28)
    assert aa.policy == torchvision.transforms.AutoAugmentPolicy.SVHN
    (ta,), _ = plain_train.policy_steps("trivialaugment", 28)
    assert ta.num_magnitude_bins == 31  # no brackets: torchvision's defaults
    for bad, says in (
        ("randaugment[num_opz=3]", "'num_opz=3' is not KEY=VALUE with KEY one of randaugment's"),
        ("randaugment[num_ops=three]", "num_ops must be an integer, got 'three'"),
        (
            "trivialaugment[interpolation=cubic]",
            "interpolation must be one of nearest, nearest-exact, bilinear",
        ),
        ("hflip[p=1]", "one of hflip's arguments (nothing)"),
        ("randaugment[num_ops=3", "not a fixed policy"),
        ("randaugment[num_ops=-1]", "randaugment[num_ops=-1]: "),  # torchvision's own refusal
    ):
        with pytest.raises(ValueError, match=re.escape(says)):
            plain_train.policy_steps(bad, 28)
    out = tmp_path / "ra.json"
    assert plain_train.main(_args(idx_dir, out, "--policy", "randaugment[num_ops=1,magnitude=20]")) == 0
    data = json.loads(out.read_text())
    assert data["settings"]["policy"] == "randaugment[num_ops=1,magnitude=20]"
    assert "num_ops=1" in data["settings"]["transform"] and "magnitude=20" in data["settings"]["transform"]


def test_same_images_as_autoaugs_loader(idx_dir):
    """The training and validation images are those autoaug's load_dataset draws for the seed."""
    data = plain_train.load_idx_dir(idx_dir)
    for seed, size in ((0, 256), (3, 120), (1, 400)):
        train_idx, val_idx = plain_train.draw_splits(data["train_labels"], size, 0.1, seed)
        ds = load_dataset("fashion-mnist", root=idx_dir, train_size=size, seed=seed)
        assert torch.equal(data["train_images"][train_idx], ds.train.images)
        assert torch.equal(data["train_labels"][train_idx], ds.train.labels)
        assert torch.equal(data["train_images"][val_idx], ds.val.images)
        assert torch.equal(data["test_images"], ds.test.images)


def test_same_model_as_autoaugs_small_cnn():
    """The same layers and parameter names; under one seed, the same initial weights."""
    torch.manual_seed(0)
    ours = plain_train.SmallCNN(1, 10)
    torch.manual_seed(0)
    theirs = build_model("small_cnn", in_channels=1, num_classes=10)
    a, b = ours.state_dict(), theirs.state_dict()
    assert list(a) == list(b)
    assert all(torch.equal(a[k], b[k]) for k in a)
    x = torch.rand(2, 1, 28, 28)
    torch.testing.assert_close(ours.eval()(x), theirs.eval()(x), atol=0, rtol=0)


def test_bad_policy_names_the_value(idx_dir, tmp_path, capsys):
    assert plain_train.main(_args(idx_dir, tmp_path / "x.json", "--policy", "flipflop")) == 2
    err = capsys.readouterr().err
    assert "'flipflop'" in err and "hflip-crop-erase" in err and not (tmp_path / "x.json").exists()


def test_folds_part_the_drawn_images_with_every_class_in_each(idx_dir, tmp_path, capsys):
    """--fold K/N: the N folds of the drawn images are disjoint, cover them, hold each class in
    proportion, and a run holds out its fold as the validation images."""
    labels = torch.arange(1000) % 10
    pool = torch.randperm(1000, generator=torch.Generator().manual_seed(0))[:403].sort().values
    held = [plain_train.draw_fold(labels, pool, k, 5, seed=3) for k in range(5)]
    assert torch.equal(torch.cat([h for _, h in held]).sort().values, pool)
    for train, h in held:
        assert torch.equal(torch.cat([train, h]).sort().values, pool) and len(h) in (80, 81)
        per_class = torch.bincount(labels[h], minlength=10)
        assert (per_class - torch.bincount(labels[pool], minlength=10) / 5).abs().max() <= 1
    assert not torch.equal(plain_train.draw_fold(labels, pool, 0, 5, seed=4)[1], held[0][1])
    with pytest.raises(ValueError, match="--fold"):
        plain_train.draw_fold(labels, pool, 5, 5, seed=0)
    # A run: 256 drawn images, 4 folds, fold 1 held out.
    out = tmp_path / "f.json"
    assert plain_train.main(_args(idx_dir, out, "--fold", "1/4", "--batch-size", "32")) == 0
    settings = json.loads(out.read_text())["settings"]
    assert settings["val_images"] == 64 and settings["train_images"] == 192
    with pytest.raises(SystemExit) as refused:
        plain_train.main(_args(idx_dir, out, "--fold", "4/4"))
    assert refused.value.code == 2 and "0 <= K < N, got '4/4'" in capsys.readouterr().err


def test_batch_mixing_after_the_loader(idx_dir, tmp_path, capsys):
    """--mix builds torchvision's MixUp / CutMix with the task's classes, trains with their soft
    labels (a seed repeats the run; the loss is not the unmixed run's) and refuses a bad value
    before reading any data."""
    mixup = plain_train.batch_mix("mixup", 10)
    assert isinstance(mixup, v2.MixUp) and mixup.num_classes == 10 and mixup.alpha == 1.0
    cutmix = plain_train.batch_mix("cutmix[alpha=0.5]", 3)
    assert isinstance(cutmix, v2.CutMix) and cutmix.alpha == 0.5 and cutmix.num_classes == 3
    either = plain_train.batch_mix("mixup-or-cutmix", 10)
    assert isinstance(either, v2.RandomChoice) and len(either.transforms) == 2
    assert plain_train.batch_mix("none", 10) is None
    x, y = torch.rand(8, 1, 28, 28), torch.arange(8) % 3
    mixed_x, soft = cutmix(x, y)
    assert soft.shape == (8, 3) and torch.allclose(soft.sum(1), torch.ones(8)) and mixed_x.shape == x.shape
    for bad, says in (("blend", "expected one of none, mixup"), ("cutmix[beta=1]", "'beta=1' is not alpha=A"),
                      ("mixup[alpha=0]", "'alpha=0' is not alpha=A with A > 0"), ("none[alpha=1]", "not alpha=A")):  # fmt: skip
        with pytest.raises(ValueError, match=re.escape(says)):
            plain_train.batch_mix(bad, 10)
    with pytest.raises(SystemExit):
        plain_train.main(_args(idx_dir / "missing", tmp_path / "x.json", "--mix", "blend"))
    assert "--mix: expected one of" in capsys.readouterr().err
    runs = {}
    for run, mix in (("a", "cutmix"), ("b", "cutmix"), ("plain", "none")):
        assert plain_train.main(_args(idx_dir, tmp_path / f"{run}.json", "--mix", mix, "--workers", "0")) == 0
        runs[run] = json.loads((tmp_path / f"{run}.json").read_text())
    assert runs["a"]["epochs"][0]["train_loss"] == runs["b"]["epochs"][0]["train_loss"]
    assert runs["a"]["epochs"][0]["train_loss"] != runs["plain"]["epochs"][0]["train_loss"]
    assert (
        "CutMix" in runs["a"]["settings"]["batch_transform"]
        and runs["plain"]["settings"]["batch_transform"] is None
    )
    assert 0 <= runs["a"]["epochs"][0]["train_acc"] <= 1
