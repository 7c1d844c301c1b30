"""scripts/selection_power.py: how well a benchmark's validation split ranks and picks its methods
(a small results file written here, with figures whose answers are known)."""

import importlib.util
import json
import math
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("selection_power", ROOT / "scripts" / "selection_power.py")
selection_power = importlib.util.module_from_spec(spec)
spec.loader.exec_module(selection_power)


def _results() -> dict:
    """Three methods, two seeds: on seed 0 the validation split ranks them as the test set does;
    on seed 1 backwards, so it picks the worst. "partial" lacks seed 1 and is left out."""
    test = {"a": [0.80, 0.81], "b": [0.82, 0.83], "c": [0.85, 0.86]}
    val = {"a": [0.70, 0.95], "b": [0.75, 0.90], "c": [0.90, 0.85]}
    methods = {m: {"runs": [{"seed": s, "test_acc": test[m][s], "val_acc": val[m][s], "dev_acc": test[m][s] + 0.01}
                            for s in (0, 1)]} for m in test}  # fmt: skip
    methods["partial"] = {"runs": [{"seed": 0, "test_acc": 0.9, "val_acc": 0.9}]}
    return {"setting": {"dataset": "fashion-mnist", "train_size": 1000, "epochs": 60}, "seeds": [0, 1],
            "machine": "here", "methods": methods}  # fmt: skip


def test_ranks_picks_and_regrets_per_seed():
    a = selection_power.analyse(_results())
    assert a["methods"] == ["a", "b", "c"] and a["validation_images"] == 100
    seed0, seed1 = a["per_seed"]
    assert seed0["best"] == seed1["best"] == "c"
    assert seed0["val_acc"]["spearman"] == pytest.approx(1.0) and seed0["val_acc"]["regret"] == 0
    assert seed1["val_acc"]["spearman"] == pytest.approx(-1.0)
    assert seed1["val_acc"]["pick"] == "a" and seed1["val_acc"]["regret"] == pytest.approx(0.86 - 0.81)
    assert seed1["dev_acc"]["spearman"] == pytest.approx(1.0) and seed1["dev_acc"]["pick"] == "c"
    # Seed to seed, every method's test accuracy moves by 0.01: a pooled std of 0.01/sqrt(2).
    assert a["noise"]["test_acc"]["seed_std"] == pytest.approx(0.01 / math.sqrt(2))
    assert a["noise"]["test_acc"]["range_of_means"] == pytest.approx(0.855 - 0.805)
    p = (0.80 + 0.81 + 0.82 + 0.83 + 0.85 + 0.86) / 6
    assert a["noise"]["val_acc"]["binomial_se"] == pytest.approx(math.sqrt(p * (1 - p) / 100))


def test_cli_writes_json_and_markdown_and_refuses_too_few_methods(tmp_path, capsys):
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    good.write_text(json.dumps(_results()))
    few = _results()
    del few["methods"]["a"]
    bad.write_text(json.dumps(few))
    out = tmp_path / "out"
    assert selection_power.main([str(good), "--out", str(out)]) == 0
    assert json.loads((out / "results.json").read_text())[str(good)]["per_seed"][1]["val_acc"]["pick"] == "a"
    md = (out / "results.md").read_text()
    assert "| 1 | c 0.8600 | -1.00 | a | 0.8100 (5.00 pt) |" in md
    assert selection_power.main([str(bad), "--out", str(tmp_path / "out2")]) == 2
    assert "need at least 3 methods" in capsys.readouterr().err
