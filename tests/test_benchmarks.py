"""The accuracy benchmark script: method variants, run directories, each policy retrained by
scripts/plain_train.py (a searcher's after `autoaug export`), reused runs and kept rows (tiny
generated IDX data)."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import write_bar_idx

from autoaug.data import load_dataset

ROOT = Path(__file__).resolve().parents[1]


def _load(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bench_accuracy = _load("bench_accuracy")


@pytest.fixture(scope="module")
def idx_dir(tmp_path_factory) -> Path:
    """200 training and 100 test images of the bar task (conftest.write_bar_idx)."""
    return write_bar_idx(tmp_path_factory.mktemp("idx"), 200, 100)


def _common(idx_dir: Path, out: Path, seeds: str) -> list[str]:
    return [
        "--dataset",
        "fashion-mnist",
        "--data-root",
        str(idx_dir),
        "--train-size",
        "128",
        "--epochs",
        "1",
        "--batch-size",
        "32",
        "--seeds",
        seeds,
        "--plain-workers",
        "0",
        "--out",
        str(out),
        "--quiet",
    ]


def _table_row(out: Path, label: str) -> list[str]:
    line = next(x for x in (out / "results.md").read_text().splitlines() if x.startswith(f"| {label} |"))
    return [cell.strip() for cell in line.strip("|").split("|")]


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
        bench_accuracy.parse_methods("hflip[p=1]")
    # torchvision's arguments of a fixed policy, as plain_train.py reads them: a row of its own
    label = "randaugment[num_ops=3,interpolation=bilinear]"
    assert bench_accuracy.parse_methods(f"none,{label}") == [("none", "none", {}), (label, "randaugment", {})]
    assert bench_accuracy.run_name(label) == "randaugment-num_ops3-interpolationbilinear"
    with pytest.raises(SystemExit, match=r"'n_aug=0\.5' is not KEY=VALUE.*num_magnitude_bins, interpolation"):
        bench_accuracy.parse_methods("trivialaugment[n_aug=0.5]")
    with pytest.raises(SystemExit, match=r"--methods: randaugment\[num_ops=-1\]: "):
        bench_accuracy.parse_methods("randaugment[num_ops=-1]")  # torchvision's class refuses it
    with pytest.raises(SystemExit, match=r"plain_train\.py's policies"):
        bench_accuracy.main(["--trainer", "autoaug", "--methods", "randaugment[num_ops=3]"])
    with pytest.raises(SystemExit, match="cannot read"):
        bench_accuracy.parse_methods("mcmc[n_aug=0.5")
    # +MIX: plain_train.py's --mix after any method, a row and run directories of its own
    mixed = bench_accuracy.parse_methods(
        "randaugment[magnitude=5]+cutmix[alpha=0.5],optuna[n_trials=3]+mixup"
    )
    assert mixed == [
        ("randaugment[magnitude=5]+cutmix[alpha=0.5]", "randaugment", {}),
        ("optuna[n_trials=3]+mixup", "optuna", {"n_trials": 3}),
    ]
    assert bench_accuracy.split_mix(mixed[0][0]) == ("randaugment[magnitude=5]", "cutmix[alpha=0.5]")
    assert bench_accuracy.split_mix("optuna") == ("optuna", "")
    assert bench_accuracy.run_name(mixed[0][0]) == "randaugment-magnitude5-cutmix-alpha0.5"
    with pytest.raises(SystemExit, match=r"randaugment\+blend: --mix: expected one of none, mixup"):
        bench_accuracy.parse_methods("randaugment+blend")
    with pytest.raises(SystemExit, match=r"none\+cutmix: plain_train\.py's policies"):
        bench_accuracy.main(["--trainer", "autoaug", "--methods", "none+cutmix"])


def test_settings_search_the_symmetry_space_and_train_in_the_plain_script():
    for name, size, epochs in (("cpu", 6000, 15), ("lowdata", 1000, 60)):
        s = bench_accuracy.SETTINGS[name]
        assert (s["train_size"], s["epochs"], s["space"], s["trainer"]) == (size, epochs, "symmetry", "plain")
    assert {"hflip", "hflip-crop-erase"} <= set(bench_accuracy.FIXED.split(","))
    plain_train = _load("plain_train")
    assert set(bench_accuracy.FIXED.split(",")) == set(plain_train.FIXED_POLICIES)
    assert set(bench_accuracy.TUNABLE) == set(plain_train.TUNABLE)  # those whose arguments it takes
    assert bench_accuracy.SETTINGS["synthetic"]["trainer"] == "plain"
    with pytest.raises(SystemExit, match=r"plain_train\.py's policies"):
        bench_accuracy.main(["--setting", "synthetic", "--trainer", "autoaug", "--methods", "none,hflip"])
    with pytest.raises(SystemExit, match=r"plain_train\.py reads IDX files .*cifar10"):
        bench_accuracy.main(["--dataset", "cifar10", "--methods", "none"])
    gpu = bench_accuracy.SETTINGS["gpu"]  # ResNet-18 on the full set, trained in the plain script too
    assert (gpu["train_size"], gpu["model"], gpu["trainer"], gpu["device"]) == (
        60000,
        "resnet18",
        "plain",
        "auto",
    )
    with pytest.raises(
        SystemExit, match=r"plain_train\.py trains resnet18 and small_cnn, got --model wrn-40-2"
    ):
        bench_accuracy.main(["--setting", "gpu", "--model", "wrn-40-2"])


def test_plain_train_trains_autoaugs_resnet18_and_names_it_only_off_the_defaults(idx_dir, tmp_path):
    """plain_train.py's ResNet-18 is autoaug's (the same parameters, names and initial weights for
    a seed); it trains there; a benchmark names --model and --device only when they differ from
    plain_train.py's defaults, so the runs of earlier tables stay reusable."""
    from autoaug.models import build_model

    plain_train = _load("plain_train")
    torch.manual_seed(5)
    ours = plain_train.ResNet18(1, 10).state_dict()
    torch.manual_seed(5)
    theirs = build_model("resnet18", 1, 10).state_dict()
    assert list(ours) == list(theirs) and all(torch.equal(ours[k], theirs[k]) for k in ours)

    argv = ["--data-root", str(idx_dir), "--train-size", "64", "--epochs", "1", "--batch-size", "32",
            "--workers", "0", "--model", "resnet18", "--quiet"]  # fmt: skip
    assert plain_train.main([*argv, "--out", str(tmp_path / "r.json")]) == 0
    result = json.loads((tmp_path / "r.json").read_text())
    assert (result["settings"]["model"], result["settings"]["device"]) == ("resnet18", "cpu")
    assert 0 <= result["test_acc"] <= 1 and len(result["epochs"]) == 1
    if not torch.cuda.is_available():
        assert plain_train.main([*argv, "--device", "cuda", "--out", str(tmp_path / "c.json")]) == 2
        assert not (tmp_path / "c.json").exists()

    args = lambda *a: bench_accuracy.argparse.Namespace(  # noqa: E731
        data_root="d", train_size=100, epochs=1, batch_size=32, lr=0.1, dev_size=0, **dict(a)
    )
    cpu = bench_accuracy.plain_settings("none", 0, args(("model", "small_cnn"), ("device", "cpu")))
    assert "model" not in cpu and "device" not in cpu
    gpu = bench_accuracy.plain_settings("none", 0, args(("model", "resnet18"), ("device", "auto")))
    assert (gpu["model"], gpu["device"]) == ("resnet18", "auto")


def test_a_synthetic_task_trains_in_the_plain_script_on_the_searchs_images(tmp_path):
    """A suite task under --trainer plain: each seed's generated images are written as colour IDX
    files once, plain_train.py trains on them (the validation images the search held out) and
    evaluates on the task's test set; the exported mcmc policy trains there too. suite_table.py
    puts the task's row beside the others' with the searcher's gap to the best fixed policy."""
    suite, tmp_path = tmp_path, tmp_path / "levels"
    args = ["--setting", "synthetic", "--dataset", "levels", "--train-size", "120", "--epochs", "1",
            "--batch-size", "32", "--seeds", "1", "--plain-workers", "0", "--methods", "none,mcmc",
            "--out", str(tmp_path), "--quiet"]  # fmt: skip
    bench_accuracy.main(args)
    result = json.loads((tmp_path / "results.json").read_text())
    assert result["setting"]["dataset"] == "levels" and result["setting"]["trainer"] == "plain"
    root = tmp_path / "data" / "levels_n120_s1"
    plain = json.loads((tmp_path / "runs" / "none_s1" / "plain.json").read_text())
    assert plain["settings"]["data_root"] == str(root)
    assert (plain["settings"]["train_images"], plain["settings"]["val_images"]) == (108, 12)
    assert plain["settings"]["test_images"] == 2000
    assert result["methods"]["none"]["runs"][0]["test_acc"] == plain["test_acc"]
    run = tmp_path / "runs" / "mcmc_s1"
    mcmc = json.loads((run / "plain.json").read_text())
    assert mcmc["settings"]["data_root"] == str(root) and mcmc["settings"]["policy"] == str(
        run / "policy_tv.py"
    )
    assert "mcmc_levels" in (run / "policy_tv.py").read_text()

    plain_train = _load("plain_train")
    data = plain_train.load_idx_dir(root)
    assert data["train_images"].shape == (120, 3, 32, 32) and data["test_images"].shape == (2000, 3, 32, 32)
    train_idx, val_idx = plain_train.draw_splits(data["train_labels"], 120, 0.1, 1)
    ds = load_dataset("levels", train_size=120, seed=1)
    assert torch.equal(data["train_images"][train_idx], ds.train.images)
    assert torch.equal(data["train_images"][val_idx], ds.val.images)
    assert torch.equal(data["train_labels"][val_idx], ds.val.labels)
    assert torch.equal(data["test_images"], ds.test.images)
    # A second run reuses the written data and the trainings.
    stamps = {p: p.stat().st_mtime_ns for p in [*root.iterdir(), *tmp_path.glob("runs/*/plain.json")]}
    bench_accuracy.main(args)
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps

    assert _load("suite_table").main([str(suite)]) == 0
    summary = json.loads((suite / "summary.json").read_text())
    none_acc, mcmc_acc = (
        result["methods"]["none"]["test_acc_mean"],
        result["methods"]["mcmc"]["test_acc_mean"],
    )
    assert summary["table"] == {"none": {"levels": none_acc}, "mcmc": {"levels": mcmc_acc}}
    assert summary["best_fixed"] == {"levels": {"method": "none", "test_acc": none_acc}}
    standing = summary["searchers"]["mcmc"]
    assert standing["gap_to_best_fixed"] == {"levels": pytest.approx(mcmc_acc - none_acc)}
    assert standing["within_1_point"] == int(mcmc_acc - none_acc >= -0.01)
    assert "- levels: brightness (past a magnitude), solarize" in (suite / "summary.md").read_text()


def test_a_tiny_benchmark_reports_what_each_run_measured_and_reuses_runs(idx_dir, tmp_path, capsys):
    """none and an mcmc variant, seed 0: mcmc's policy exported and retrained in plain_train.py;
    the table holds each run's own numbers; a second benchmark reuses the runs and keeps the row."""
    bench_accuracy.main(["--methods", "none,mcmc[n_aug=0.5],none+cutmix", *_common(idx_dir, tmp_path, "0")])
    result = json.loads((tmp_path / "results.json").read_text())
    assert list(result["methods"]) == ["none", "mcmc[n_aug=0.5]", "none+cutmix"]
    assert result["setting"]["space"] == "symmetry" and result["setting"]["trainer"] == "plain"
    none, mcmc = result["methods"]["none"], result["methods"]["mcmc[n_aug=0.5]"]
    assert mcmc["settings"] == {"n_aug": 0.5}

    run = tmp_path / "runs" / "mcmc-n_aug0.5_s0"
    assert "n_aug: 0.5" in (run / "search" / "config.yaml").read_text()
    assert "space: symmetry" in (run / "search" / "config.yaml").read_text()
    # The exported policy is what plain_train.py trained with, and it came from the search's policy.json.
    plain = json.loads((run / "plain.json").read_text())
    assert plain["settings"]["policy"] == str(run / "policy_tv.py")
    assert (plain["settings"]["train_size"], plain["settings"]["epochs"]) == (128, 1)
    assert "mcmc_fashion-mnist" in (run / "policy_tv.py").read_text()
    none_plain = json.loads((tmp_path / "runs" / "none_s0" / "plain.json").read_text())
    assert none_plain["settings"]["policy"] == "none"
    cutmix_plain = json.loads((tmp_path / "runs" / "none-cutmix_s0" / "plain.json").read_text())
    assert (cutmix_plain["settings"]["policy"], cutmix_plain["settings"]["mix"]) == ("none", "cutmix")
    assert "CutMix" in cutmix_plain["settings"]["batch_transform"] and none_plain["settings"]["mix"] == "none"
    assert result["methods"]["none+cutmix"]["runs"][0]["test_acc"] == cutmix_plain["test_acc"]

    # Each number is the run's own: plain accuracy, in-search accuracy, search time over none's time.
    in_search = json.loads((run / "search" / "metrics.jsonl").read_text().splitlines()[-1])["test_acc"]
    search_s = json.loads((run / "search" / "search_seconds.json").read_text())["seconds"]
    assert mcmc["runs"][0]["test_acc"] == plain["test_acc"] and mcmc["test_acc_std"] == 0.0
    assert none["runs"][0]["test_acc"] == none_plain["test_acc"]
    assert mcmc["in_search_acc_mean"] == in_search and "in_search_acc_mean" not in none
    assert none["seconds_per_run"] == none_plain["wall_seconds"]
    assert mcmc["search_cost"] == pytest.approx(search_s / none_plain["wall_seconds"])
    row = _table_row(tmp_path, "mcmc[n_aug=0.5]")
    assert row[1] == f"{plain['test_acc']:.4f} ± 0.0000" and row[2] == f"{plain['test_acc']:.4f}"
    assert row[3] == f"{in_search:.4f} ± 0.0000" and row[4] == f"{search_s / none_plain['wall_seconds']:.2f}"
    assert _table_row(tmp_path, "none")[1:5] == [
        f"{none_plain['test_acc']:.4f} ± 0.0000",
        f"{none_plain['test_acc']:.4f}",
        "-",
        "-",
    ]

    # Run again with one method: nothing is retrained, the other method's row is kept as it was.
    stamps = {p: p.stat().st_mtime_ns for p in tmp_path.glob("runs/*/*.json")}
    bench_accuracy.main(["--methods", "none", *_common(idx_dir, tmp_path, "0")])
    again = json.loads((tmp_path / "results.json").read_text())
    assert again["methods"]["none"] == none and again["methods"]["mcmc[n_aug=0.5]"] == mcmc
    assert again["kept"]["methods"] == ["mcmc[n_aug=0.5]", "none+cutmix"]
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    # Both runs on this machine's kernels, which the plain trainings recorded too: the kept row says so.
    assert again["kernels"] == result["kernels"] == plain["kernels"] == none_plain["kernels"]
    footer = (tmp_path / "results.md").read_text()
    assert (
        f"Rows kept from an earlier run (mcmc[n_aug=0.5], none+cutmix): {result['machine']}, the same kernels"
        in footer
    )
    # The earlier results.json as another machine would have left it: its kept row is flagged.
    again["kernels"] = "0123456789ab"
    (tmp_path / "results.json").write_text(json.dumps(again))
    bench_accuracy.main(["--methods", "none", *_common(idx_dir, tmp_path, "0")])
    assert "were trained on other kernels (0123456789ab" in capsys.readouterr().err
    footer = (tmp_path / "results.md").read_text()
    assert f"other kernels (0123456789ab; this run {result['kernels']}): not comparable run for run" in footer
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    # A finished search is reused only with the settings it was searched with.
    with pytest.raises(SystemExit, match=r"other settings \(mcmc.epsilon\)"):
        bench_accuracy.main(
            ["--methods", "mcmc[n_aug=0.5]", "--epsilon", "0.3", *_common(idx_dir, tmp_path, "0")]
        )
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps


@pytest.mark.slow
def test_every_searcher_over_two_seeds(idx_dir, tmp_path):
    """bilevel and optuna (no in-search model) with two seeds: means and deviations of the runs'
    own accuracies; mcmc's run resumes from its search when its plain training is gone."""
    methods = "none,bilevel,optuna[n_trials=2],mcmc"
    bench_accuracy.main(["--methods", methods, *_common(idx_dir, tmp_path, "0,1")])
    result = json.loads((tmp_path / "results.json").read_text())
    for label, name in (("bilevel", "bilevel"), ("optuna[n_trials=2]", "optuna-n_trials2"), ("mcmc", "mcmc")):
        r = result["methods"][label]
        accs = [
            json.loads((tmp_path / "runs" / f"{name}_s{s}" / "plain.json").read_text())["test_acc"]
            for s in (0, 1)
        ]
        assert [x["test_acc"] for x in r["runs"]] == accs
        assert r["test_acc_mean"] == pytest.approx(np.mean(accs))
        assert r["test_acc_std"] == pytest.approx(np.std(accs, ddof=1))
        assert r["search_cost"] > 0 and ("in_search_acc_mean" in r) == (label == "mcmc")
    search = tmp_path / "runs" / "mcmc_s1" / "search"
    stamp = (search / "search_seconds.json").stat().st_mtime_ns
    (tmp_path / "runs" / "mcmc_s1" / "plain.json").unlink()
    bench_accuracy.main(["--methods", "mcmc", *_common(idx_dir, tmp_path, "0,1")])
    assert (search / "search_seconds.json").stat().st_mtime_ns == stamp
    again = json.loads((tmp_path / "results.json").read_text())["methods"]["mcmc"]
    for key in ("seed", "test_acc", "in_search_acc", "search_seconds"):  # the same seed trains the same model
        assert [r[key] for r in again["runs"]] == [r[key] for r in result["methods"]["mcmc"]["runs"]]


@pytest.mark.slow
def test_autoaugs_trainer_on_a_synthetic_set(tmp_path):
    """--trainer autoaug (the gpu setting's): the policies trained in this process."""
    bench_accuracy.main(
        [
            "--setting",
            "synthetic",
            "--trainer",
            "autoaug",
            "--dataset",
            "glyphs",
            "--train-size",
            "256",
            "--epochs",
            "1",
            "--batch-size",
            "64",
            "--seeds",
            "0",
            "--methods",
            "none,mcmc",
            "--out",
            str(tmp_path),
            "--quiet",
        ]
    )
    result = json.loads((tmp_path / "results.json").read_text())
    for label in ("none", "mcmc"):
        rows = (tmp_path / "runs" / f"{label}_s0" / "train" / "metrics.jsonl").read_text().splitlines()
        assert result["methods"][label]["runs"][0]["test_acc"] == json.loads(rows[-1])["test_acc"]
    assert result["methods"]["mcmc"]["runs"][0]["policy"] == str(
        tmp_path / "runs" / "mcmc_s0" / "search" / "policy.json"
    )


def test_plain_train_reports_a_development_set_outside_the_drawn_images(idx_dir, tmp_path):
    """--dev-size: images no seed drew for training or validation, nearly the same for two seeds;
    the accuracy on them is reported beside the test accuracy."""
    import torch

    plain_train = _load("plain_train")
    labels = plain_train.load_idx_dir(idx_dir)["train_labels"]
    sets = []
    for seed in (0, 1):
        train, val = plain_train.draw_splits(labels, 100, 0.1, seed)
        dev = plain_train.draw_dev(labels, torch.cat([train, val]), 60)
        assert len(dev) == 60 and not set(dev.tolist()) & set(torch.cat([train, val]).tolist())
        sets.append(set(dev.tolist()))
    assert len(sets[0] & sets[1]) >= 20  # one fixed order, only this seed's draws skipped
    with pytest.raises(ValueError, match="only 100 training images are left"):
        plain_train.draw_dev(labels, torch.cat([train, val]), 101)
    argv = ["--data-root", str(idx_dir), "--train-size", "100", "--epochs", "1", "--batch-size", "32",
            "--workers", "0", "--quiet"]  # fmt: skip
    assert plain_train.main([*argv, "--dev-size", "60", "--out", str(tmp_path / "dev.json")]) == 0
    result = json.loads((tmp_path / "dev.json").read_text())
    assert 0 <= result["dev_acc"] <= 1 and result["settings"]["dev_images"] == 60
    assert plain_train.main([*argv, "--out", str(tmp_path / "none.json")]) == 0
    assert json.loads((tmp_path / "none.json").read_text())["dev_acc"] is None


def _fingerprint_in_a_new_process(**env: str) -> str:
    code = (
        "import importlib.util; "
        f"spec = importlib.util.spec_from_file_location('plain_train', {str(ROOT / 'scripts' / 'plain_train.py')!r}); "
        "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m); print(m.kernel_fingerprint())"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env={**os.environ, **env}, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def test_the_kernel_fingerprint_names_the_kernels_not_the_process():
    """The same in two processes on this machine; another one where torch runs its portable kernels
    (ATEN_CPU_CAPABILITY=default, what a CPU without AVX would run), with platform, torch version
    and thread count unchanged."""
    import torch

    here = _fingerprint_in_a_new_process()
    assert len(here) == 12 and int(here, 16) >= 0
    assert _fingerprint_in_a_new_process() == here
    if torch.backends.cpu.get_cpu_capability() == "DEFAULT":
        pytest.skip("this CPU already runs torch's portable kernels")
    assert _fingerprint_in_a_new_process(ATEN_CPU_CAPABILITY="default") != here


def test_oracle_search_trains_every_trial_and_confirms_the_best(idx_dir, tmp_path):
    """scripts/oracle_search.py: RandAugment's point first, every trial exported and trained by
    plain_train.py and valued by its development accuracy, the best trained again on another
    seed; a second run reuses every training; a reference of other kernels is refused."""
    oracle = _load("oracle_search")
    argv = ["--data-root", str(idx_dir), "--train-size", "128", "--epochs", "1", "--batch-size", "32",
            "--dev-size", "60", "--trials", "2", "--confirm", "1", "--confirm-seeds", "1", "--workers", "1",
            "--out", str(tmp_path / "oracle")]  # fmt: skip
    assert oracle.main(argv) == 0
    result = json.loads((tmp_path / "oracle" / "results.json").read_text())
    trials = result["trials"]
    assert len(trials) == 2 and trials[0]["params"]["n_ops"] == 2 and trials[0]["params"]["magnitude"] == 9
    assert trials[0]["params"]["family:geometric"] and not trials[0]["params"]["family:flip"]
    for t in trials:
        run = tmp_path / "oracle" / "trials" / f"{t['trial']:04d}"
        plain = json.loads((run / "plain_s0.json").read_text())
        assert plain["settings"]["policy"] == str(run / "policy_tv.py") and plain["dev_acc"] == t["dev_acc"]
    best = max(trials, key=lambda t: (t["dev_acc"], -t["trial"]))
    (confirmed,) = result["confirmed"]
    assert confirmed["trial"] == best["trial"] and len(confirmed["test"]) == 2
    assert confirmed["dev"][0] == best["dev_acc"]
    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "oracle").rglob("plain_s*.json")}
    assert oracle.main(argv) == 0
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "oracle").rglob("plain_s*.json")} == stamps
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"kernels": "000000000000", "setting": {"train_size": 128, "epochs": 1,
                                                                       "batch_size": 32}, "methods": {}}))  # fmt: skip
    with pytest.raises(SystemExit, match="not comparable"):
        oracle.main([*argv, "--reference", str(other)])


def test_step_ops_counts_what_each_step_dispatches(tmp_path):
    """bench_step_ops.py: every step's aten operations, counted by a dispatch mode; a searcher's
    step dispatches more than a plain one, a plain step's count is its layers' and the optimizer's."""
    step_ops = _load("bench_step_ops")
    out = tmp_path / "ops.json"
    result = step_ops.main(["--batch-size", "16", "--image-size", "16", "--out", str(out)])
    rows = result["rows"]
    plain = rows["plain step (no augmentation)"]
    assert 50 < plain["ops"] < 400 and plain["waits"] == 1  # the loss's .item()
    assert rows["mcmc step (defaults)"]["ops"] > 3 * plain["ops"]
    assert json.loads(out.read_text())["rows"].keys() == rows.keys()
    assert "| mcmc step (defaults) |" in out.with_suffix(".md").read_text()
