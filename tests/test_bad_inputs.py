"""A corpus of bad input, one case per kind of file or setting a user hands autoaug.

Each case runs through the command line (``autoaug.cli.main``, in-process: the same code
path as the console script, much faster) and must end with exit code 2, exactly one line on
stderr that names the problem, no traceback, and every file that was there before (a run's
config.yaml, metrics.jsonl, checkpoint.pt) byte for byte as it was.

The corpus is generated into a temporary directory by the fixtures below (``bad_inputs``),
so the files need no storage in the repository and stay in step with the formats.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from autoaug.cli import main

TRAIN = ["--train-size", "256", "--batch-size", "64", "--epochs", "1", "--device", "cpu", "--no-progress"]


def _policy(**entry) -> dict:
    op = {"op": "rotate", "weight": 1.0, "prob": 0.5, "magnitude": 0.3} | entry
    return {"autoaug_policy": 1, "stages": [{"ops": [{k: v for k, v in op.items() if v is not None}]}]}


# (name, file content as bytes or a JSON-able document, what the one line must say)
POLICIES = [
    ("empty", b"", "not valid JSON"),
    ("not_json", b"rotate: 0.3\n", "not valid JSON"),
    ("binary", bytes(range(256)) * 4, "not a text file"),
    ("a_list", [1, 2], "expected a JSON object"),
    ("a_string", "rotate", "expected a JSON object"),
    ("weight_is_text", _policy(weight="a lot"), "weight: expected a number, got 'a lot'"),
    ("unknown_op", _policy(op="rotat"), "unknown op 'rotat'"),
    ("op_is_number", _policy(op=7), "expected an op name, got 7"),
    ("magnitude_above_1", _policy(magnitude=1.5), r"magnitude: expected a number in [0, 1], got 1.5"),
    ("magnitude_below_0", _policy(magnitude=-0.1), r"magnitude: expected a number in [0, 1]"),
    (
        "magnitude_nan",
        b'{"autoaug_policy": 1, "stages": [{"ops": [{"op": "rotate", "magnitude": NaN}]}]}',
        "magnitude",
    ),
    (
        "weight_infinite",
        b'{"autoaug_policy": 1, "stages": [{"ops": [{"op": "rotate", "weight": Infinity, '
        b'"magnitude": 0.3}]}]}',
        "weight",
    ),
    ("negative_weight", _policy(weight=-1), "weight: expected a number >= 0, got -1"),
    ("prob_above_1", _policy(prob=2), "prob: expected a number in [0, 1]"),
    ("all_weights_zero", _policy(weight=0), "weights sum to 0"),
    ("no_magnitude", _policy(magnitude=None), "needs 'magnitude'"),
    ("hist_all_zero", _policy(magnitude=None, hist=[0, 0]), "hist: all zero"),
    ("hist_negative", _policy(magnitude=None, hist=[1, -1]), "hist[1]: expected a number >= 0"),
    ("magnitude_and_hist", _policy(hist=[1, 1]), "not both"),
    ("magnitude_on_flip", _policy(op="hflip"), "takes no magnitude"),
    ("no_version", {"stages": []}, "missing field 'autoaug_policy'"),
    ("version_99", {"autoaug_policy": 99, "stages": []}, "format version 99"),
    ("unknown_field", {"autoaug_policy": 1, "stages": [], "colour": 1}, "unknown field(s) ['colour']"),
    ("stages_not_list", {"autoaug_policy": 1, "stages": "all"}, "stages: expected a list"),
    ("empty_stage", {"autoaug_policy": 1, "stages": [{"ops": []}]}, "a stage needs at least one op"),
    ("unknown_space", {"autoaug_policy": 1, "stages": [], "space": "huge"}, "unknown space 'huge'"),
    ("bad_range", {"autoaug_policy": 1, "stages": [], "ranges": {"rotate": [0]}}, "ranges.rotate"),
    ("bad_interpolation", {"autoaug_policy": 1, "stages": [], "interpolation": "cubic"}, "interpolation"),
    (
        "nested_5000_deep",
        b'{"autoaug_policy": 1, "stages": ' + b"[" * 5000 + b"]" * 5000 + b"}",
        "nested too deeply",
    ),
]

CONFIGS = [
    ("not_yaml", "epochs: [1\nlr: 0.1\n", "not valid YAML"),
    ("python_object_tag", "epochs: !!python/object/apply:os.system ['echo hi']\n", "tags that build objects"),
    ("epochs_many", "epochs: many\n", "epochs = 'many': expected an integer >= 1"),
    ("epochs_bool", "epochs: true\n", "epochs = True: expected an integer >= 1"),
    ("epochs_empty", "epochs:\n", "epochs = None"),
    ("epochs_negative", "epochs: -3\n", "epochs = -3: expected an integer >= 1"),
    ("lr_zero", "lr: 0\n", "lr = 0: expected a number > 0"),
    ("lr_nan", "lr: .nan\n", "lr = nan"),
    ("lr_text", "lr: fast\n", "lr = 'fast'"),
    ("val_size_one", "val_size: 1.0\n", "val_size = 1.0: expected a number in [0, 1)"),
    ("batch_size_zero", "batch_size: 0\n", "batch_size = 0: expected an integer >= 1"),
    ("unknown_key", "epochs: 1\ncolour: blue\n", "unknown setting(s) ['colour']"),
    ("a_list", "- epochs\n- 1\n", "expected a mapping of settings"),
    ("nested_deep", "a: " + "[" * 5000 + "]" * 5000 + "\n", "nested too deeply"),
    ("binary", bytes(range(256)).decode("latin-1"), "not a text file"),
]

# Flags out of range or of the wrong type: (argv, what the line must say)
FLAGS = [
    (["train", "--epochs", "-3"], "--epochs -3: expected an integer >= 1"),
    (["train", "--epochs", "0"], "--epochs 0: expected an integer >= 1"),
    (["train", "--epochs", "many"], "invalid int value: 'many'"),
    (["train", "--lr", "0"], "--lr 0.0: expected a number > 0"),
    (["train", "--lr", "-1"], "--lr -1.0: expected a number > 0"),
    (["train", "--lr", "nan"], "--lr nan"),
    (["train", "--lr", "inf"], "--lr inf"),
    (["train", "--batch-size", "0"], "--batch-size 0: expected an integer >= 1"),
    (["train", "--val-size", "1"], "--val-size 1.0: expected a number in [0, 1)"),
    (["train", "--val-size", "-0.1"], "--val-size -0.1"),
    (["train", "--train-size", "0"], "--train-size 0: expected an integer >= 1"),
    (["train", "--momentum", "1"], "--momentum 1.0: expected a number in [0, 1)"),
    (["train", "--label-smoothing", "1"], "--label-smoothing 1.0"),
    (["train", "--weight-decay", "-1"], "--weight-decay -1.0: expected a number >= 0"),
    (["train", "--seed", "-1"], "--seed -1: expected an integer >= 0"),
    (["train", "--test-every", "0"], "--test-every 0"),
    (
        ["train", "--train-size", "32", "--batch-size", "64"],
        "batch_size = 64 is more than the 29 training images",
    ),
    (["search", "--n-aug", "0"], "--n-aug 0.0: expected a number > 0"),
    (["search", "--levels", "0"], "--levels 0: expected an integer >= 1"),
    (["search", "--epsilon", "-1"], "--epsilon -1.0: expected a number >= 0"),
    (["search", "--dual-lr", "-0.1"], "--dual-lr -0.1: expected a number >= 0"),
    (["search", "--method", "optuna", "--n-trials", "0"], "--n-trials 0: expected an integer >= 1"),
    (["search", "--method", "optuna", "--trial-epochs", "0"], "--trial-epochs 0"),
    (["search", "--method", "bilevel", "--temperature", "0"], "--temperature 0.0: expected a number > 0"),
    (
        ["search", "--method", "bilevel", "--proxy-data", "1.5"],
        "--proxy-data 1.5: expected a number in (0, 1]",
    ),
    (["search", "--method", "bilevel", "--init-prob", "2"], "--init-prob 2.0"),
    (["train", "--dataset", "nope"], "unknown dataset 'nope'"),
    (["train", "--model", "vgg99"], "vgg99"),
    (["train", "--policy", "nope"], "no policy file or built-in policy called 'nope'"),
    (["search", "--method", "annealing"], "unknown search method 'annealing'"),
    (["search", "--space", "huge"], "huge"),
    (["search", "--method", "optuna", "--pruner", "sometimes"], "unknown pruner 'sometimes'"),
    (["search", "--method", "optuna", "--optuna-space", "grid"], "unknown optuna space 'grid'"),
    (["search", "--method", "bilevel", "--mode", "sideways"], "sideways"),
    (["train", "--frobnicate"], "unrecognized arguments: --frobnicate"),
    (["export", "trivialaugment", "--out", "x.py", "--image-size", "big"], "--image-size"),
]


def _write(path: Path, content) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif isinstance(content, str) and path.suffix in (".yaml", ".txt"):
        path.write_text(content, encoding="latin-1")
    else:
        path.write_text(json.dumps(content))
    return path


def _png(path: Path, size=(8, 8), mode="L") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, 128).save(path)
    return path


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A finished one-epoch training run: config.yaml, metrics.jsonl, checkpoint.pt, model.pt."""
    out = tmp_path_factory.mktemp("run") / "run"
    assert main(["train", "--dataset", "glyphs", *TRAIN, "--out", str(out)]) == 0
    return out


def _checkpoint_cases(run: Path, root: Path) -> list[tuple[str, list[str], str]]:
    """Run directories holding a bad checkpoint, and the command that resumes from it."""
    good = torch.load(run / "checkpoint.pt", weights_only=True)
    raw = (run / "checkpoint.pt").read_bytes()

    def with_checkpoint(name: str, content: bytes | None = None, state: dict | None = None) -> Path:
        d = root / "checkpoints" / name
        shutil.copytree(run, d)
        if state is not None:
            torch.save(state, d / "checkpoint.pt")
        elif content is not None:
            (d / "checkpoint.pt").write_bytes(content)
        return d

    def resume(d: Path, *extra: str) -> list[str]:
        return ["train", "--out", str(d), "--resume", *extra]

    other_model = dict(good, model={"conv.weight": torch.zeros(3, 3)})
    other_config = dict(good, config=json.dumps(json.loads(good["config"]) | {"model": "resnet18"}))
    from_search = dict(good, config=json.dumps(json.loads(good["config"]) | {"method": "mcmc"}))
    return [
        (
            "corrupt",
            resume(with_checkpoint("corrupt", b"not a checkpoint\n" * 100)),
            "not a checkpoint that loads",
        ),
        (
            "truncated",
            resume(with_checkpoint("truncated", raw[: len(raw) // 2])),
            "not a checkpoint that loads",
        ),
        ("empty", resume(with_checkpoint("empty", b"")), "not a checkpoint that loads"),
        (
            "a_pickle",
            resume(with_checkpoint("a_pickle", pickle.dumps(Path("x")))),
            "not a checkpoint that loads",
        ),
        (
            "model_pt_only",
            resume(with_checkpoint("model_pt_only", state=good["model"])),
            "not an autoaug training checkpoint",
        ),
        (
            "weights_of_another_model",
            resume(with_checkpoint("weights_of_another_model", state=other_model)),
            "does not fit this run",
        ),
        (
            "made_with_another_model",
            resume(with_checkpoint("made_with_another_model", state=other_config)),
            "does not fit this run",
        ),
        (
            "made_with_another_model_named",
            resume(with_checkpoint("another_model_named", state=other_config), "--model", "small_cnn"),
            "model 'resnet18' -> 'small_cnn'",
        ),
        (
            "made_by_search",
            resume(with_checkpoint("made_by_search", state=from_search)),
            "made by autoaug search",
        ),
        (
            "resumed_with_another_dataset",
            resume(with_checkpoint("another_dataset"), "--dataset", "arrows"),
            "dataset 'glyphs' -> 'arrows'",
        ),
        (
            "resumed_with_another_model",
            resume(with_checkpoint("another_model"), "--model", "resnet18"),
            "model 'small_cnn' -> 'resnet18'",
        ),
        ("resumed_with_another_seed", resume(with_checkpoint("another_seed"), "--seed", "1"), "seed 0 -> 1"),
        (
            "resumed_with_another_lr",
            resume(with_checkpoint("another_lr"), "--lr", "0.05"),
            "lr 0.1 -> 0.05; resume with the run's settings, or pass --override",
        ),
        (
            "resumed_with_another_policy",
            resume(with_checkpoint("another_policy"), "--policy", "trivialaugment"),
            "policy 'none' -> 'trivialaugment'",
        ),
        (
            "resumed_by_search",
            ["search", "--out", str(with_checkpoint("by_search")), "--resume"],
            "made by autoaug train, not autoaug search",
        ),
        (
            "resumed_by_bilevel",
            [
                "search",
                "--method",
                "bilevel",
                "--epochs",
                "1",
                "--out",
                str(with_checkpoint("by_bilevel")),
                "--resume",
            ],
            "made by autoaug train",
        ),
        ("nothing_to_resume", ["train", "--out", str(root / "no_run"), "--resume"], "nothing to resume"),
        (
            "analyze_corrupt_checkpoint",
            [
                "analyze",
                "--checkpoint",
                str(with_checkpoint("analyze", b"x" * 64) / "checkpoint.pt"),
                "--dataset",
                "glyphs",
                "--model",
                "small_cnn",
            ],
            "checkpoint.pt",
        ),
    ]


def _dataset_cases(root: Path) -> list[tuple[str, list[str], str]]:
    d = root / "datasets"
    d.mkdir()
    x = np.zeros((20, 8, 8), np.uint8)
    y = np.arange(20) % 2
    np.savez(d / "float_pixels.npz", x=x.astype(np.float32) / 255, y=y)
    np.savez(d / "no_y.npz", x=x)
    np.savez(d / "fewer_than_a_batch.npz", x=x, y=y)
    np.savez(d / "negative_labels.npz", x=x, y=y - 1)
    np.savez(d / "label_count.npz", x=x, y=y[:-3])
    np.savez(d / "float_labels.npz", x=x, y=y.astype(np.float32))
    np.savez(d / "flat_images.npz", x=x.reshape(20, 64), y=y)
    np.savez(d / "only_x_test.npz", x=x, y=y, x_test=x)
    np.savez(d / "few_class_names.npz", x=x, y=y, class_names=np.array(["a"]))
    np.save(d / "single_array.npy", x)
    shutil.copy(d / "single_array.npy", d / "single_array.npz")
    (d / "not_a_zip.npz").write_text("x, y\n1, 2\n")
    whole = (d / "no_y.npz").read_bytes()
    (d / "truncated.npz").write_bytes(whole[: len(whole) // 2])
    with zipfile.ZipFile(d / "pickled.npz", "w") as z:
        z.writestr("x.npy", pickle.dumps(x))
        z.writestr("y.npy", pickle.dumps(y))

    def folder(name: str) -> Path:
        f = d / name
        for cls in ("a", "b"):
            for i in range(4):
                _png(f / cls / f"{i}.png")
        return f

    empty = d / "empty_folder"
    empty.mkdir()
    no_images = d / "class_dirs_only"
    (no_images / "a").mkdir(parents=True)
    (no_images / "b").mkdir()
    (no_images / "a" / "notes.txt").write_text("no images here")
    corrupt = folder("corrupt_png")
    (corrupt / "a" / "1.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    truncated = folder("truncated_png")
    png = (truncated / "b" / "2.png").read_bytes()
    (truncated / "b" / "2.png").write_bytes(png[: len(png) // 2])
    sizes = folder("mixed_sizes")
    _png(sizes / "b" / "9.png", size=(9, 9))
    float_mode = folder("float_mode")  # 32-bit float pixels: no 8-bit reading of them is the right one
    Image.fromarray(np.zeros((8, 8), np.float32)).save(float_mode / "a" / "f.tiff")
    bad_jpeg = folder("mixed_sizes_bad_jpeg")  # any sizes with --image-size, but one file is no image
    _png(bad_jpeg / "a" / "9.png", size=(13, 7))
    noise = np.random.default_rng(0).integers(0, 256, (40, 40, 3), dtype=np.uint8)
    Image.fromarray(noise).save(bad_jpeg / "b" / "broken.jpg", quality=95)
    whole_jpeg = (bad_jpeg / "b" / "broken.jpg").read_bytes()  # a good header, then cut off
    (bad_jpeg / "b" / "broken.jpg").write_bytes(whole_jpeg[: len(whole_jpeg) // 3])
    test_classes = d / "test_has_other_classes"
    for split, classes in (("train", ("a", "b")), ("test", ("a", "c"))):
        for cls in classes:
            _png(test_classes / split / cls / "0.png")

    def train(name: str) -> list[str]:
        return ["train", "--dataset", name, *TRAIN, "--out", str(root / "out" / Path(name).stem)]

    def train_all(name: str, *flags: str) -> list[str]:  # every image of a small folder, read in training
        return ["train", "--dataset", name, "--batch-size", "2", "--epochs", "1", "--device", "cpu",
                "--no-progress", "--val-size", "0", "--workers", "0", *flags, "--out", str(root / "out" / "all")]  # fmt: skip

    return [
        ("npz_float_pixels", train(f"npz:{d / 'float_pixels.npz'}"), "dtype float32, expected uint8"),
        ("npz_no_y", train(f"npz:{d / 'no_y.npz'}"), "missing key(s) ['y']"),
        ("npz_negative_labels", train(f"npz:{d / 'negative_labels.npz'}"), "negative label"),
        ("npz_label_count", train(f"npz:{d / 'label_count.npz'}"), "20 images but 17 labels"),
        ("npz_float_labels", train(f"npz:{d / 'float_labels.npz'}"), "expected N integer labels"),
        ("npz_flat_images", train(f"npz:{d / 'flat_images.npz'}"), "expected N×H×W"),
        ("npz_only_x_test", train(f"npz:{d / 'only_x_test.npz'}"), "only one of 'x_test' and 'y_test'"),
        ("npz_few_class_names", train(f"npz:{d / 'few_class_names.npz'}"), "class names"),
        ("npz_single_array", train(f"npz:{d / 'single_array.npz'}"), "a single .npy array"),
        ("npz_not_a_zip", train(f"npz:{d / 'not_a_zip.npz'}"), "not a readable .npz file"),
        ("npz_truncated", train(f"npz:{d / 'truncated.npz'}"), "not a readable .npz file"),
        ("npz_pickled", train(f"npz:{d / 'pickled.npz'}"), "not a readable .npz file"),
        (
            "npz_fewer_images_than_a_batch",  # the loader's own words named drop_last, no flag of ours
            [
                "search",
                "--dataset",
                f"npz:{d / 'fewer_than_a_batch.npz'}",
                "--epochs",
                "1",
                "--batch-size",
                "32",
                "--no-progress",
                "--out",
                str(root / "out" / "few"),
            ],
            "batch_size = 32 is more than the 14 training images; expected at most 14 (--batch-size)",
        ),
        ("npz_missing", train(f"npz:{d / 'missing.npz'}"), "no such file"),
        ("folder_empty", train(f"folder:{empty}"), "not an ImageFolder directory"),
        ("folder_no_images", train(f"folder:{no_images}"), "no images found"),
        ("folder_corrupt_png", train(f"folder:{corrupt}"), "1.png: not an image PIL can read"),
        ("folder_truncated_png", train(f"folder:{truncated}"), "2.png: not an image PIL can read"),
        ("folder_mixed_sizes", train(f"folder:{sizes}"), "must have the same size"),
        ("folder_test_classes", train(f"folder:{test_classes}"), "do not appear in the training folder"),
        ("folder_missing", train(f"folder:{d / 'nowhere'}"), "no such directory"),
        ("folder_float_mode", train(f"folder:{float_mode}"), "f.tiff: pixel mode 'F' (not 8-bit)"),
        (
            "folder_sized_bad_jpeg",
            train_all(f"folder:{bad_jpeg}", "--image-size", "8x8"),
            "broken.jpg: not an image PIL can read",
        ),
        (
            "folder_streamed_bad_jpeg",
            train_all(f"folder:{bad_jpeg}", "--image-size", "8", "--stream", "on"),
            "broken.jpg: not an image PIL can read",
        ),
        (
            "image_size_text",
            [*train(f"folder:{sizes}"), "--image-size", "big"],
            "--image-size big: expected HxW or H",
        ),
        (
            "image_size_zero",
            [*train(f"folder:{sizes}"), "--image-size", "0x8"],
            "--image-size 0x8: expected HxW or H",
        ),
        (
            "train_crop_unknown",
            [*train(f"folder:{sizes}"), "--train-crop", "corner"],
            "--train-crop corner: expected one of center, random",
        ),
        (
            "stream_on_for_npz",
            [*train(f"npz:{d / 'float_pixels.npz'}"), "--stream", "on"],
            "need a folder:PATH",
        ),
        ("folder_is_a_file", train(f"folder:{d / 'no_y.npz'}"), "no such directory"),
    ]


def _image_cases(root: Path) -> list[tuple[str, list[str], str]]:
    d = root / "images"
    text = _write(d / "notes.png", b"this is text, not a picture\n")
    empty = _write(d / "empty.jpg", b"")
    good = _png(d / "good.png", size=(16, 16), mode="RGB")
    truncated = _write(d / "truncated.png", good.read_bytes()[:40])
    folder = d / "a_folder.png"
    folder.mkdir()

    def apply(*images: Path) -> list[str]:
        return ["apply", "trivialaugment", *map(str, images), "--out", str(root / "grids")]

    return [
        ("apply_text_file", apply(text), "notes.png: not an image that PIL can read"),
        ("apply_empty_file", apply(empty), "empty.jpg: not an image that PIL can read"),
        ("apply_truncated_png", apply(good, truncated), "truncated.png: not an image that PIL can read"),
        ("apply_missing_file", apply(d / "gone.png"), "image not found"),
        ("apply_a_folder", apply(folder), "image not found"),
    ]


def _analyze_cases(root: Path) -> list[tuple[str, list[str], str]]:
    not_run = root / "not_a_run"
    not_run.mkdir()
    (not_run / "holiday.jpg").write_bytes(b"\xff\xd8")
    return [
        ("analyze_not_a_run", ["analyze", str(not_run)], "not_a_run"),
        ("analyze_missing_dir", ["analyze", str(root / "never_made")], "never_made"),
        ("analyze_a_file", ["analyze", str(not_run / "holiday.jpg")], "holiday.jpg"),
    ]


@pytest.fixture(scope="module")
def bad_inputs(run_dir, tmp_path_factory) -> list[tuple[str, list[str], str]]:
    """Every case: (name, argv, a piece of the one line it must print)."""
    root = tmp_path_factory.mktemp("bad_inputs")
    cases = []
    for name, content, message in POLICIES:
        path = _write(root / "policies" / f"{name}.json", content)
        cases.append((f"policy_{name}", ["show", str(path)], message))
    # The same files reach train, export and apply through one loader; a few of them there:
    for name in ("nested_5000_deep", "magnitude_above_1", "not_json"):
        path = root / "policies" / f"{name}.json"
        cases.append((f"train_policy_{name}", ["train", "--policy", str(path), *TRAIN, "--out",
                                               str(root / "o")], POLICIES_BY_NAME[name]))  # fmt: skip
        cases.append((f"export_policy_{name}", ["export", str(path), "--out", str(root / "p.py")],
                      POLICIES_BY_NAME[name]))  # fmt: skip
    for name, content, message in CONFIGS:
        path = _write(root / "configs" / f"{name}.yaml", content)
        cases.append((f"config_{name}", ["train", "--config", str(path), "--out", str(root / "c")], message))
    # A flag that sets the same setting does not hide the file's bad value.
    masked = root / "configs" / "epochs_many.yaml"
    cases.append(("config_epochs_many_with_flag", ["train", "--config", str(masked), "--epochs", "2"],
                  "epochs = 'many'"))  # fmt: skip
    for argv, message in FLAGS:
        out = root / "flags" / str(len(cases))
        small = [] if "--train-size" in argv or argv[0] == "export" else ["--train-size", "256"]
        cases.append(
            (f"flag_{'_'.join(a.strip('-') for a in argv)}", [*argv, *small, "--out", str(out)], message)
        )
    cases += _checkpoint_cases(run_dir, root)
    cases += _dataset_cases(root)
    cases += _image_cases(root)
    cases += _analyze_cases(root)
    return cases


POLICIES_BY_NAME = {name: message for name, _, message in POLICIES}


def _snapshot(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_every_bad_input_is_one_line_and_exit_2_and_loses_nothing(bad_inputs, run_dir, capsys):
    """The whole corpus in one test (one fixture build); the failure message lists every case
    that went wrong and how, so one run shows them all."""
    roots = {Path(a).parents[0] for _, argv, _ in bad_inputs for a in argv if "/checkpoints/" in a}
    before = {r: _snapshot(r) for r in roots} | {run_dir: _snapshot(run_dir)}
    failures = []
    for name, argv, message in bad_inputs:
        try:
            code = main(argv)
        except SystemExit as e:  # argparse's usage errors exit by themselves
            code = e.code
        except BaseException as e:  # a traceback: the worst outcome
            failures.append(f"{name}: raised {type(e).__name__}: {e}")
            continue
        err = capsys.readouterr().err
        lines = err.splitlines()
        if code != 2:
            failures.append(f"{name}: exit {code}, expected 2 ({err.strip()[:200]!r})")
        elif len(lines) != 1 or "Traceback" in err:
            failures.append(f"{name}: {len(lines)} lines on stderr: {err[:300]!r}")
        elif message not in lines[0]:
            failures.append(f"{name}: {lines[0]!r} does not say {message!r}")
    for r, files in before.items():
        if _snapshot(r) != files:
            failures.append(
                f"{r}: files changed or appeared: {sorted(set(_snapshot(r).items()) ^ set(files.items()))}"
            )
    clean = len(bad_inputs) - len(failures)
    print(f"bad-input corpus: {clean}/{len(bad_inputs)} clean")
    assert not failures, f"{clean}/{len(bad_inputs)} clean:\n" + "\n".join(failures)
    assert len(bad_inputs) >= 120
