"""The accuracy benchmark script: method variants, run directories, kept rows (tiny synthetic runs)."""

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bench_accuracy = _load("bench_accuracy")


def test_methods_with_settings_in_brackets():
    parsed = bench_accuracy.parse_methods("none, mcmc[n_aug=0.5,fused=true],optuna[trial_epochs=5]")
    assert parsed == [
        ("none", "none", {}),
        ("mcmc[n_aug=0.5,fused=true]", "mcmc", {"n_aug": 0.5, "fused": True}),
        ("optuna[trial_epochs=5]", "optuna", {"trial_epochs": 5}),
    ]
    assert bench_accuracy.run_name("mcmc[n_aug=0.5,fused=true]") == "mcmc-n_aug0.5-fusedtrue"
    with pytest.raises(SystemExit, match="not KEY=VALUE"):
        bench_accuracy.parse_methods("mcmc[no_such_field=1]")
    with pytest.raises(SystemExit, match="apply to searchers"):
        bench_accuracy.parse_methods("trivialaugment[n_aug=0.5]")
    with pytest.raises(SystemExit, match="cannot read"):
        bench_accuracy.parse_methods("mcmc[n_aug=0.5")


def test_a_tiny_benchmark_writes_its_table_and_keeps_earlier_rows(tmp_path):
    common = ["--dataset", "glyphs", "--train-size", "256", "--epochs", "1", "--batch-size", "64", "--seeds", "0,1",
              "--space", "standard", "--test-every", "1", "--out", str(tmp_path), "--quiet"]  # fmt: skip
    bench_accuracy.main(["--methods", "none,mcmc[n_aug=0.5]", *common])
    result = json.loads((tmp_path / "results.json").read_text())
    assert list(result["methods"]) == ["none", "mcmc[n_aug=0.5]"]
    variant = result["methods"]["mcmc[n_aug=0.5]"]
    assert variant["settings"] == {"n_aug": 0.5}
    assert [r["seed"] for r in variant["runs"]] == [0, 1]
    for r in variant["runs"]:  # the table reports what each run measured, not just some number
        rows = (tmp_path / "runs" / f"mcmc-n_aug0.5_s{r['seed']}" / "metrics.jsonl").read_text().splitlines()
        assert r["test_acc"] == json.loads(rows[-1])["test_acc"]
    config = (tmp_path / "runs" / "mcmc-n_aug0.5_s0" / "config.yaml").read_text()
    assert "n_aug: 0.5" in config
    assert "| mcmc[n_aug=0.5] |" in (tmp_path / "results.md").read_text()
    # A second run of one method reuses its finished runs and keeps the other method's row.
    bench_accuracy.main(["--methods", "none", *common])
    again = json.loads((tmp_path / "results.json").read_text())
    assert again["methods"]["none"] == result["methods"]["none"]
    assert again["methods"]["mcmc[n_aug=0.5]"] == variant
    assert again["kept"]["methods"] == ["mcmc[n_aug=0.5]"]
