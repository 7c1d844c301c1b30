"""scripts/ship_policies.py: a benchmark's searched policy ships with its provenance and loads."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from autoaug.policy import load_policy

REPO = Path(__file__).resolve().parents[1]


def _bench(tmp_path: Path) -> Path:
    bench = tmp_path / "accuracy_cpu"
    runs = [{"seed": s, "test_acc": 0.88 + s / 100, "val_acc": 0.8, "seconds": 1.0} for s in (0, 1)]
    row = {"runs": runs, "test_acc_mean": 0.885, "test_acc_std": 0.007, "seconds_per_run": 1.0}
    results = {
        "setting": {"dataset": "fashion-mnist", "train_size": 6000, "model": "small_cnn", "epochs": 15,
                    "batch_size": 128, "lr": 0.1, "space": "symmetry"},
        "seeds": [0, 1],
        "machine": "test",
        "command": "python scripts/bench_accuracy.py",
        "methods": {"none": row | {"test_acc_mean": 0.87}, "randaugment": row | {"test_acc_mean": 0.89},
                    "mcmc": row, "mcmc[export=prior]": row | {"test_acc_mean": 0.888}},
    }  # fmt: skip
    bench.mkdir()
    (bench / "results.json").write_text(json.dumps(results))
    for seed in (0, 1):
        for run, policy in (("mcmc", "randaugment"), ("mcmc-exportprior", "autoaugment_svhn")):
            search = bench / "runs" / f"{run}_s{seed}" / "search"
            search.mkdir(parents=True)
            load_policy("trivialaugment" if seed and run == "mcmc" else policy).save(search / "policy.json")
    return bench


def _ship(*args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(REPO / "scripts" / "ship_policies.py"), *args]
    return subprocess.run(cmd, capture_output=True, text=True)


def test_the_chosen_seeds_policy_ships_with_its_figures(tmp_path):
    bench, out = _bench(tmp_path), tmp_path / "policies"
    out.mkdir()
    done = _ship(str(bench), "--seed", "1", "--methods", "mcmc", "--out", str(out))
    assert done.returncode == 0, done.stderr
    shipped = load_policy(out / "fashion-mnist_mcmc.json")
    source = load_policy(bench / "runs" / "mcmc_s1" / "search" / "policy.json")
    assert shipped.to_dict()["stages"] == source.to_dict()["stages"]
    meta = shipped.meta
    assert (meta["method"], meta["seed"], meta["space"], meta["dataset"]) == (
        "mcmc",
        1,
        "symmetry",
        "fashion-mnist",
    )
    assert meta["retrained"]["test_acc"] == 0.89
    assert (meta["retrained"]["best_fixed"], meta["retrained"]["best_fixed_mean"]) == ("randaugment", 0.89)
    assert "mcmc_s1/search" in meta["command"]


def test_a_missing_run_or_row_is_named(tmp_path):
    bench = _bench(tmp_path)
    done = _ship(str(bench), "--seed", "2", "--methods", "mcmc", "--out", str(tmp_path))
    assert done.returncode != 0 and "no mcmc run with seed 2" in done.stderr
    done = _ship(str(bench), "--methods", "optuna", "--out", str(tmp_path))
    assert done.returncode != 0 and "no row for 'optuna'" in done.stderr


def test_a_variants_row_ships_as_its_searchers_file(tmp_path):
    bench, out = _bench(tmp_path), tmp_path / "policies"
    out.mkdir()
    done = _ship(str(bench), "--methods", "mcmc[export=prior]", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert [p.name for p in out.iterdir()] == ["fashion-mnist_mcmc.json"]
    shipped = load_policy(out / "fashion-mnist_mcmc.json")
    source = load_policy(bench / "runs" / "mcmc-exportprior_s0" / "search" / "policy.json")
    assert shipped.to_dict()["stages"] == source.to_dict()["stages"]
    assert shipped.to_dict()["stages"] != load_policy("randaugment").to_dict()["stages"]  # not mcmc's row
    meta = shipped.meta
    assert (meta["method"], meta["row"], meta["settings"]) == (
        "mcmc",
        "mcmc[export=prior]",
        {"export": "prior"},
    )
    assert meta["retrained"]["method_mean"] == 0.888
    assert "mcmc-exportprior_s0/search" in meta["command"]
