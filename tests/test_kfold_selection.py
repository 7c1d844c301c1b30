"""scripts/kfold_selection.py: cross-validated accuracy per policy from plain_train.py's fold runs
(tiny generated IDX data), and how it ranks and picks against a reference benchmark."""

import importlib.util
import json
from pathlib import Path

import pytest
from conftest import write_bar_idx

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("kfold_selection", ROOT / "scripts" / "kfold_selection.py")
kfold_selection = importlib.util.module_from_spec(spec)
spec.loader.exec_module(kfold_selection)


def _reference(test: dict[str, list[float]], val: dict[str, list[float]]) -> dict:
    methods = {n: {"runs": [{"seed": s, "test_acc": t, "val_acc": v} for s, (t, v) in enumerate(zip(test[n], val[n]))]}
               for n in test}  # fmt: skip
    return {"seeds": [0, 1], "methods": methods}


def test_ranks_and_picks_against_the_references_mean_test_accuracy():
    ref = _reference({"a": [0.80, 0.82], "b": [0.84, 0.84], "c": [0.86, 0.88]},
                     {"a": [0.9, 0.7], "b": [0.8, 0.8], "c": [0.7, 0.9]})  # fmt: skip
    cv = {n: {"cv_acc": acc, "images": 1000} for n, acc in (("a", 0.80), ("b", 0.85), ("c", 0.84))}
    a = kfold_selection.analyse(cv, ref)
    assert a["best"] == "c" and a["test_mean"]["c"] == pytest.approx(0.87)
    assert a["cv"]["pick"] == "b" and a["cv"]["regret"] == pytest.approx(0.87 - 0.84)
    assert a["cv"]["spearman"] == pytest.approx(0.5)
    assert a["validation_split"][0]["pick"] == "a" and a["validation_split"][0]["spearman"] == pytest.approx(
        -1.0
    )
    assert a["validation_split"][1]["pick"] == "c" and a["validation_split"][1]["regret"] == 0
    with pytest.raises(ValueError, match="at least 3 policies"):
        kfold_selection.analyse({"a": cv["a"], "zz": cv["b"]}, ref)


def test_trains_each_fold_once_and_scores_every_drawn_image(tmp_path):
    (tmp_path / "idx").mkdir()
    idx = write_bar_idx(tmp_path / "idx", 400, 100)
    ref = tmp_path / "ref.json"
    ref.write_text(json.dumps(_reference({n: [0.8, 0.8] for n in ("none", "hflip", "randaugment")},
                                         {n: [0.8, 0.8] for n in ("none", "hflip", "randaugment")})))  # fmt: skip
    argv = ["--policies", "none,hflip,randaugment", "--folds", "2", "--train-size", "256", "--epochs", "1",
            "--data-root", str(idx), "--workers", "0", "--reference", str(ref), "--out", str(tmp_path / "out")]  # fmt: skip
    assert kfold_selection.main(argv) == 0
    result = json.loads((tmp_path / "out" / "results.json").read_text())
    runs = sorted((tmp_path / "out" / "runs").glob("*.json"))
    assert len(runs) == 6
    for name in ("none", "hflip", "randaugment"):
        cv = result["cv"][name]
        assert cv["images"] == 256 and len(cv["fold_acc"]) == 2
        assert cv["cv_acc"] == pytest.approx(sum(cv["fold_acc"]) / 2)  # two folds of 128
    stamps = [p.stat().st_mtime_ns for p in runs]
    assert kfold_selection.main(argv) == 0  # the runs are reused
    assert [p.stat().st_mtime_ns for p in runs] == stamps
    assert "| none |" in (tmp_path / "out" / "results.md").read_text()
