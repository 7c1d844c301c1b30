"""``autoaug analyze``: the symmetry report of a real (tiny) search run, of a checkpoint, one clear
line and exit code 2 on bad input; and, marked slow, agreement with the synthetic tasks' ground
truth after a default search."""

import json
import shutil
import subprocess
import sys

import pytest
import torch

from autoaug.analysis.invariance import InvarianceProfile
from autoaug.analysis.report import FILES, validate_report
from autoaug.analysis.verdicts import task_verdicts
from autoaug.cli import main
from autoaug.search import SearchConfig, get_searcher

PNG = b"\x89PNG\r\n\x1a\n"
FAST = ["--images", "48", "--magnitudes", "2", "--no-lie"]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Small tensors on a shared 2-core machine: a second thread only waits for the first."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A real search run: 2 epochs on 256 glyphs, the standard space (14 ops), 5 levels."""
    out = tmp_path_factory.mktemp("search") / "run"
    config = SearchConfig.of(dataset="glyphs", train_size=256, val_size=64, batch_size=64, epochs=2, levels=5,
                          space="standard", progress=False, out=str(out), seed=1)  # fmt: skip
    get_searcher("mcmc")(config).run()
    return out


def _clean_accuracy(run, images):
    """The run's model's accuracy on the report's held-out test images, computed here: weights
    from model.pt, the trainer's normalization, the report's seeded choice of images."""
    from autoaug.data import load_dataset
    from autoaug.models import build_model

    ds = load_dataset("glyphs", train_size=256, val_size=64, seed=1)
    model = build_model("small_cnn", ds.channels, ds.num_classes)
    model.load_state_dict(torch.load(run / "model.pt", weights_only=True))
    model.eval()
    train = ds.train.images.float() / 255
    mean = train.mean(dim=(0, 2, 3)).view(1, -1, 1, 1)
    std = train.std(dim=(0, 2, 3)).clamp(min=1e-3).view(1, -1, 1, 1)
    idx = torch.randperm(len(ds.test), generator=torch.Generator().manual_seed(0))[:images].sort().values
    with torch.no_grad():
        logits = model((ds.test.images[idx].float() / 255 - mean) / std)
    return (logits.argmax(1) == ds.test.labels[idx]).float().mean().item()


def _check_report(directory, ops, searched, dataset=("glyphs", [32, 32])):
    for name in FILES.values():
        assert (directory / name).is_file(), name
    report = json.loads((directory / FILES["json"]).read_text())
    validate_report(report)
    assert list(report["ops"]) == ops
    assert (report["dataset"]["name"], report["dataset"]["image_size"]) == dataset
    assert report["model"]["name"] == "small_cnn"
    assert (report["search"] is not None) == searched
    for op, entry in report["ops"].items():
        assert (entry["search"] is not None) == searched, op
        assert entry["profile"]["magnitudes"], op
    md = (directory / FILES["markdown"]).read_text()
    assert (
        "| op | the task: verdict | max safe magnitude | in op units | score | this model | evidence |" in md
    )
    assert all(f"| {op} |" in md for op in ops)
    for key in ("heatmaps", "verdicts_png"):
        assert (directory / FILES[key]).read_bytes()[:8] == PNG
    profile = InvarianceProfile.load(directory / FILES["profile"])
    assert profile.ops == ops and profile.num_images == report["dataset"]["images"]
    return report


def test_analyze_a_search_run(run, capsys):
    assert main(["analyze", str(run), *FAST]) == 0
    out = capsys.readouterr().out
    from autoaug.spaces import get_space

    ops = list(get_space("standard").ops)
    report = _check_report(run / "analysis", ops, searched=True)
    assert report["search"]["epochs"] == 2 and report["search"]["constraint"] == "per_op"
    assert report["dataset"]["images"] == 48 and report["dataset"]["split"] == "test"
    assert report["clean_accuracy"] == pytest.approx(_clean_accuracy(run, 48))
    # The report's verdicts are task_verdicts of the profile, the run's history and the support profile.
    from autoaug.analysis.support import SupportProfile

    profile = InvarianceProfile.load(run / "analysis" / FILES["profile"])
    support = SupportProfile.from_dict(json.loads((run / "analysis" / FILES["support"]).read_text()))
    again = task_verdicts(profile, json.loads((run / "history.json").read_text()),
                          metrics=[json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()],
                          support=support)  # fmt: skip
    assert {op: v.verdict for op, v in again.items()} == {op: e["verdict"] for op, e in report["ops"].items()}
    # The terminal gets the table and the files.
    assert "verdict" in out and "rotate" in out and "symmetry_report.md" in out
    # A 2-epoch model is weak, and the report says so.
    if report["clean_accuracy"] < 0.9:
        assert report["warnings"] and "warning:" in out


def test_analyze_with_lie_per_layer_and_out(run, tmp_path):
    out = tmp_path / "elsewhere"
    args = ["analyze", str(run), "--out", str(out), "--images", "24", "--magnitudes", "1", "--per-layer",
            "--split", "val"]  # fmt: skip
    assert main(args) == 0
    report = json.loads((out / FILES["json"]).read_text())
    assert report["dataset"]["split"] == "val"
    assert report["ops"]["rotate"]["lie_derivative"] is not None
    assert report["ops"]["color"]["lie_derivative"] is None
    assert InvarianceProfile.load(out / FILES["profile"]).per_layer


def test_lie_derivatives_warn_nothing_of_torchs_own(run, tmp_path):
    """torch's first forward-mode call warns (FutureWarning) that a function it uses inside is
    deprecated; the user can do nothing about it, so the report does not pass it on. A fresh
    process, since torch warns once per process."""
    args = [sys.executable, "-W", "error::FutureWarning", "-m", "autoaug", "analyze", str(run), "--out",
            str(tmp_path / "a"), "--images", "16", "--magnitudes", "1", "--no-baseline", "--no-progress"]  # fmt: skip
    done = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Warning" not in done.stderr
    assert (
        json.loads((tmp_path / "a" / FILES["json"]).read_text())["ops"]["rotate"]["lie_derivative"]
        is not None
    )


def test_no_baseline_changes_no_verdict(run, tmp_path):
    with_base, without = tmp_path / "with", tmp_path / "without"
    assert main(["analyze", str(run), "--out", str(with_base), *FAST]) == 0
    assert main(["analyze", str(run), "--out", str(without), "--no-baseline", "--no-progress", *FAST]) == 0
    a = json.loads((with_base / FILES["json"]).read_text())
    b = json.loads((without / FILES["json"]).read_text())
    assert a["ops"].keys() == b["ops"].keys()
    for op in a["ops"]:
        assert a["ops"][op]["baseline_invariance"] is not None
        assert b["ops"][op]["baseline_invariance"] is None
        assert (a["ops"][op]["verdict"], a["ops"][op]["max_safe_magnitude"]) == (
            b["ops"][op]["verdict"],
            b["ops"][op]["max_safe_magnitude"],
        )
    assert InvarianceProfile.load(without / FILES["profile"]).baseline_invariance is None
    assert (without / FILES["markdown"]).read_text()


def test_analyze_a_checkpoint(run, tmp_path, capsys):
    out = tmp_path / "ckpt"
    args = ["analyze", "--checkpoint", str(run / "model.pt"), "--dataset", "glyphs", "--model", "small_cnn",
            "--train-size", "256", "--space", "standard", "--out", str(out), *FAST]  # fmt: skip
    assert main(args) == 0
    from autoaug.spaces import get_space

    report = _check_report(out, list(get_space("standard").ops), searched=False)
    assert report["model"]["run"] is None
    assert "No search statistics" in (out / FILES["markdown"]).read_text()


def test_a_killed_run_with_its_checkpoint(run, tmp_path):
    killed = tmp_path / "killed"
    shutil.copytree(run, killed, ignore=shutil.ignore_patterns("model.pt", "analysis"))
    assert main(["analyze", str(killed), *FAST]) == 2  # no model.pt: says so
    assert main(["analyze", str(killed), "--checkpoint", str(killed / "checkpoint.pt"), *FAST]) == 0
    assert json.loads((killed / "analysis" / FILES["json"]).read_text())["search"]["epochs"] == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["analyze", "{tmp}/missing"], "run directory not found"),
        (["analyze", "{tmp}"], "no history.json"),
        (["analyze", "{run_no_model}"], "model weights not found"),
        (["analyze"], "give a search RUN_DIR"),
        (["analyze", "--checkpoint", "{tmp}/model.pt"], "needs --dataset"),
        (
            ["analyze", "--checkpoint", "{tmp}/nope.pt", "--dataset", "glyphs", "--model", "small_cnn"],
            "not found",
        ),
        (
            ["analyze", "--checkpoint", "{model}", "--dataset", "nosuchdata", "--model", "small_cnn"],
            "nosuchdata",
        ),
        (["analyze", "{run}", "--dataset", "glyphs"], "only with --checkpoint"),
        (["analyze", "{run}", "--images", "1"], "--images"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(run, tmp_path, capsys, args, message):
    no_model = tmp_path / "run_no_model"
    shutil.copytree(run, no_model, ignore=shutil.ignore_patterns("model.pt", "checkpoint.pt", "analysis"))
    names = {"tmp": tmp_path, "run": run, "run_no_model": no_model, "model": run / "model.pt"}
    argv = [a.format(**names) for a in args]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("autoaug: error:") and "\n" not in err and "Traceback" not in err
    assert message in err


@pytest.mark.parametrize("stream", ["on", "off"])
def test_analyze_a_run_on_a_resized_folder_loads_it_as_the_run_did(tmp_path, capsys, stream):
    """A search on a folder of mixed-size JPEGs and PNGs (--image-size 16, streamed or not):
    analyze reads the size and the streaming from the run's config.yaml, and its clean accuracy
    is the model's on those test images, resized alike, with the trainer's normalization."""
    from test_stream import make_photo_folder

    from autoaug.analysis.invariance import run_dataset
    from autoaug.data import FileSplit, Split, load_dataset
    from autoaug.models import build_model
    from autoaug.settings import read_config
    from autoaug.spaces import get_space

    photos = make_photo_folder(tmp_path / "photos")
    out = tmp_path / "run"
    config = SearchConfig.of(dataset=f"folder:{photos}", image_size="16", stream=stream, workers=0, epochs=1,
                             batch_size=6, space="standard", levels=5, device="cpu", progress=False, out=str(out))  # fmt: skip
    get_searcher("mcmc")(config).run()
    assert main(["analyze", str(out), *FAST, "--no-baseline", "--device", "cpu"]) == 0
    report = _check_report(out / "analysis", list(get_space("standard").ops), searched=True,
                           dataset=(f"folder:{photos}", [16, 16]))  # fmt: skip
    # By hand: the folder in memory at 16×16, the run's weights, the whole training split's statistics.
    ds = load_dataset(f"folder:{photos}", image_size="16", stream="off")
    assert isinstance(ds.test, Split) and len(ds.test) == report["dataset"]["images"] == 7
    model = build_model("small_cnn", ds.channels, ds.num_classes)
    model.load_state_dict(torch.load(out / "model.pt", weights_only=True))
    train = ds.train.images.float() / 255
    mean, std = train.mean(dim=(0, 2, 3)).view(1, -1, 1, 1), train.std(dim=(0, 2, 3)).view(1, -1, 1, 1)
    with torch.no_grad():
        logits = model.eval()((ds.test.images.float() / 255 - mean) / std)
    right = (logits.argmax(1) == ds.test.labels).float().mean().item()
    loss = torch.nn.functional.cross_entropy(logits, ds.test.labels).item()
    assert report["clean_accuracy"] == pytest.approx(right)
    assert report["clean_loss"] == pytest.approx(loss, rel=1e-4)
    # The run's data as analyze loads it: streamed when the run streamed.
    loaded = run_dataset(read_config(out / "config.yaml"))
    assert isinstance(loaded.train, FileSplit if stream == "on" else Split) and loaded.image_size == (16, 16)
    # Without the size, the mixed sizes say what to pass; with a RUN_DIR the run's size is used.
    assert main(["analyze", str(out), "--image-size", "16"]) == 2
    assert "read from RUN_DIR/config.yaml" in capsys.readouterr().err
    assert main(["analyze", "--checkpoint", str(out / "model.pt"), "--dataset", f"folder:{photos}", "--model",
                 "small_cnn", "--out", str(tmp_path / "a"), *FAST, "--no-baseline", "--device", "cpu"]) == 2  # fmt: skip
    assert "or pass --image-size HxW" in capsys.readouterr().err
    assert main(["analyze", "--checkpoint", str(out / "model.pt"), "--dataset", f"folder:{photos}", "--model",
                 "small_cnn", "--image-size", "16", "--out", str(tmp_path / "a"), *FAST, "--no-baseline",
                 "--device", "cpu"]) == 0  # fmt: skip
    again = json.loads((tmp_path / "a" / FILES["json"]).read_text())
    assert again["clean_accuracy"] == report["clean_accuracy"]
