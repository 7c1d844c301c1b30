"""The command line: every subcommand on real files, and one clear line with exit code 2 on bad input."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from autoaug.cli import main
from autoaug.policy import Policy, load_policy


@pytest.fixture
def image_files(tmp_path):
    rng = np.random.default_rng(0)
    rgb = tmp_path / "rgb.png"
    Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(rgb)
    gray = tmp_path / "gray.png"
    Image.fromarray(rng.integers(0, 256, (28, 28), dtype=np.uint8)).save(gray)
    return rgb, gray


def test_console_script_help():
    from pathlib import Path

    beside = Path(sys.executable).parent / "autoaug"  # the virtual environment's scripts
    exe = str(beside) if beside.exists() else shutil.which("autoaug")
    assert exe, "the autoaug console script is not installed"
    result = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    for command in ("policies", "show", "apply", "export"):
        assert command in result.stdout


def test_policies_lists_builtins_and_files(capsys):
    assert main(["policies"]) == 0
    out = capsys.readouterr().out
    for name in ("randaugment", "trivialaugment", "autoaugment_cifar10", "randaugment.json"):
        assert name in out


def test_show_prints_a_table_and_plots(tmp_path, capsys):
    png = tmp_path / "p.png"
    assert main(["show", "autoaugment_svhn", "--plot", str(png)]) == 0
    out = capsys.readouterr().out
    assert "shear_x" in out and "invert" in out and "picked" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_apply_writes_a_grid(tmp_path, image_files, capsys):
    out_dir = tmp_path / "out"
    assert (
        main(["apply", "trivialaugment", str(image_files[0]), "--out", str(out_dir), "--samples", "4"]) == 0
    )
    grid = Image.open(next(out_dir.glob("*.png")))
    assert grid.width > grid.height  # one row: the original and four samples
    # Images of different sizes get one grid each.
    assert main(["apply", "randaugment", *map(str, image_files), "--out", str(out_dir / "two")]) == 0
    assert len(list((out_dir / "two").glob("*.png"))) == 2


def test_apply_a_policy_named_after_a_folder_dataset(tmp_path, image_files):
    """A learned policy's name holds its dataset, here a path: the grid's file name must not."""
    policy = load_policy("randaugment")
    policy.name = "optuna_folder:/data/my photos"
    path = tmp_path / "p.json"
    policy.save(path)
    out_dir = tmp_path / "out"
    assert main(["apply", str(path), str(image_files[0]), "--out", str(out_dir), "--samples", "2"]) == 0
    assert [p.name for p in out_dir.iterdir()] == ["optuna_folder_data_my_photos_samples.png"]


def test_export_writes_source(tmp_path):
    out = tmp_path / "ta.py"
    assert main(["export", "trivialaugment", "--to", "torchvision", "--out", str(out)]) == 0
    assert "transform = v2.Compose" in out.read_text()
    assert main(["export", "randaugment", "--out", str(tmp_path / "ra.pt"), "--image-size", "32"]) == 0
    assert (tmp_path / "ra.pt").stat().st_size > 0


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize(
    "make_args, message",
    [
        (lambda t, i: ["show", str(t / "missing.json")], "policy file not found"),
        (lambda t, i: ["show", _write(t, "bad.json", "{not json")], "not valid JSON"),
        (lambda t, i: ["show", _write(t, "op.json", json.dumps(
            {"autoaug_policy": 1, "stages": [{"ops": [{"op": "twirl"}]}]}))], "unknown op 'twirl'"),
        (lambda t, i: ["show", _write(t, "mag.json", json.dumps(
            {"autoaug_policy": 1, "stages": [{"ops": [{"op": "rotate", "magnitude": 3}]}]}))], r"expected a number in [0, 1], got 3"),
        (lambda t, i: ["show", _write(t, "w.json", json.dumps(
            {"autoaug_policy": 1, "stages": [{"ops": [{"op": "rotate", "weight": -2, "magnitude": 0.1}]}]}))], "weight: expected a number >= 0"),
        (lambda t, i: ["apply", "randaugment", _write(t, "x.png", "not an image"), "--out", str(t)], "not an image"),
        (lambda t, i: ["apply", "randaugment", str(t / "nope.png"), "--out", str(t)], "image not found"),
        (lambda t, i: ["export", "randaugment", "--out", str(t / "ra.py")], "image size"),
        (lambda t, i: ["export", "randaugment", "--out", str(t / "ra.py"), "--image-size", "big"], "--image-size"),
        (lambda t, i: ["export", "trivialaugment", "--out", str(t / "ta.txt")], r"\.py or \.pt"),
        (lambda t, i: ["export", "trivialaugment", "--to", "albumentations", "--out", str(t / "a.py")], "only 'torchvision'"),
        (lambda t, i: ["show", "no_such_policy"], "no policy file or built-in policy"),
    ],
)  # fmt: skip
def test_bad_input_is_one_line_and_exit_2(tmp_path, image_files, capsys, make_args, message):
    import re

    assert main(make_args(tmp_path, image_files)) == 2
    err = capsys.readouterr().err
    assert err.startswith("autoaug: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    assert re.search(message, err) or message in err, err


@pytest.mark.parametrize(
    "flag, value, message",
    [("--export", "foo", "export must be"), ("--constraint", "both", "constraint must be")],
)
def test_search_refuses_an_mcmc_setting_before_it_starts(tmp_path, capsys, flag, value, message):
    out = tmp_path / "run"
    assert main(["search", "--method", "mcmc", "--dataset", "glyphs", flag, value, "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert message in captured.err and captured.err.count("\n") == 1
    assert "searching" not in captured.out and not out.exists()  # refused before anything ran


def test_shipped_policy_files_load(tmp_path):
    from autoaug.policy import POLICY_DIR

    files = sorted(POLICY_DIR.glob("*.json"))
    assert len(files) >= 5
    for f in files:
        Policy.load(f)
