"""scripts/strength_signal.py on a real (tiny) search run: the search model's loss on its own
images, clean and under RandAugment(N, M), recomputed here for one row."""

import importlib.util
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from autoaug.analysis.invariance import load_run_model
from autoaug.data import load_dataset
from autoaug.search import SearchConfig, get_searcher

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("strength_signal", ROOT / "scripts" / "strength_signal.py")
strength_signal = importlib.util.module_from_spec(spec)
spec.loader.exec_module(strength_signal)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("search") / "run"
    config = SearchConfig.of(dataset="glyphs", train_size=192, val_size=64, batch_size=64, epochs=1,
                             progress=False, out=str(out), seed=0)  # fmt: skip
    get_searcher("mcmc")(config).run()
    return out


def test_tables_the_search_models_loss_clean_and_under_each_randaugment(run, tmp_path):
    assert (
        strength_signal.main([str(run), "--images", "100", "--draws", "1", "--out", str(tmp_path / "o")]) == 0
    )
    (result,) = json.loads((tmp_path / "o" / "results.json").read_text())
    assert result["train_images"] == 100 and result["epsilon"] == pytest.approx(0.6)
    assert list(result["rows"]) == ["clean"] + [f"N{n} M{m}" for n, m in strength_signal.VARIANTS]
    # The clean row, recomputed from the weights: the first 100 training images.
    ds = load_dataset("glyphs", train_size=192, val_size=64, seed=0)
    model, normalize, _, _ = load_run_model(run)
    with torch.no_grad():
        logits = model(normalize(ds.train.images[:100].float() / 255))
    assert result["rows"]["clean"]["train"]["loss"] == pytest.approx(
        F.cross_entropy(logits, ds.train.labels[:100]).item(), rel=1e-5
    )
    # Stronger policies change the images more: N 3 M 14 costs more loss than N 1 M 2.
    rows = result["rows"]
    assert rows["N3 M14"]["train"]["loss"] > rows["N1 M2"]["train"]["loss"]
    assert "| N2 M9 |" in (tmp_path / "o" / "results.md").read_text()


def test_refuses_a_directory_that_is_no_run(tmp_path, capsys):
    assert strength_signal.main([str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "strength_signal:" in capsys.readouterr().err
