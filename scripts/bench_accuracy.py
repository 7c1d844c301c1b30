"""Test accuracy of augmentation methods side by side: the same data, model, epochs and seeds.

Methods are fixed policies (``none``, ``randaugment``, ``trivialaugment``, ``autoaugment``,
torchvision's policies in autoaug's format, or any policy file) trained with ``autoaug train``,
and the searchers. ``mcmc`` trains the model while it searches (the accuracy reported is that
model's); ``bilevel`` searches a policy on a proxy (``--mode search``) and ``optuna`` runs
``--optuna-trials`` proxy trainings of ``--trial-epochs`` epochs, then each trains the model
with its policy, and the time of a run counts both. Each run writes into
``OUT/runs/<method>_s<seed>/``; finished runs are reused, so an interrupted benchmark picks up
where it stopped. Writes ``OUT/results.json`` and ``OUT/results.md`` (mean ± std over seeds,
median wall time per run and training throughput relative to ``none``).

Settings (``--setting``; the other flags override them):

* ``cpu`` (default; DESIGN.md's anchor): reduced Fashion-MNIST, 6,000 training images, the small
  CNN, 15 epochs, the `standard` space, SGD-Nesterov with a cosine schedule, 3 seeds, the full
  10,000 test images;
* ``gpu``: full Fashion-MNIST (60,000 images) with ResNet-18, 30 epochs;
* ``synthetic``: each built-in synthetic dataset (``glyphs``, ``arrows``) with the small CNN,
  10 epochs, the `symmetry` space; one table per dataset under ``OUT/DATASET/``.

Run:
    python scripts/bench_accuracy.py                        # every method, the cpu setting
    python scripts/bench_accuracy.py --methods none,trivialaugment,mcmc --out results/accuracy
    python scripts/bench_accuracy.py --methods "mcmc[n_aug=0.5],mcmc[fused=true]"  # searcher variants
    python scripts/bench_accuracy.py --setting gpu --out results/accuracy_gpu
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import re
import statistics
import sys
import time
from pathlib import Path

import torch
import yaml

from autoaug.search import SearchConfig, get_searcher
from autoaug.train import TrainConfig, Trainer

SEARCHERS = {"mcmc", "bilevel", "optuna"}
# What makes two runs comparable: a results.json with the same keeps the rows of methods not run now.
SETTING_KEYS = (
    "dataset",
    "train_size",
    "model",
    "epochs",
    "batch_size",
    "lr",
    "space",
    "optuna_trials",
    "trial_epochs",
)
METHODS = "none,randaugment,trivialaugment,autoaugment,mcmc,bilevel,optuna"
SETTINGS = {
    "cpu": {"datasets": ["fashion-mnist"], "train_size": 6000, "model": "small_cnn", "epochs": 15, "space": "standard"},
    "gpu": {"datasets": ["fashion-mnist"], "train_size": None, "model": "resnet18", "epochs": 30, "space": "standard"},
    "synthetic": {"datasets": ["glyphs", "arrows"], "train_size": 6000, "model": "small_cnn", "epochs": 10,
                  "space": "symmetry"},
}  # fmt: skip


def _finished(run: Path, epochs: int) -> dict | None:
    metrics = run / "metrics.jsonl"
    if not metrics.is_file():
        return None
    rows = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
    return rows if len(rows) >= epochs and (run / "model.pt").is_file() else None


def _search_seconds(search: Path) -> float:
    """Wall seconds of a run's search before its training: the bilevel proxy's epochs, or the
    optuna search's wall time as ``run_one`` recorded it."""
    timing, metrics = search / "search_seconds.json", search / "metrics.jsonl"
    if timing.is_file():
        return json.loads(timing.read_text())["seconds"]
    if metrics.is_file():
        return sum(json.loads(line)["seconds"] for line in metrics.read_text().splitlines() if line.strip())
    return 0.0


def parse_methods(text: str) -> list[tuple[str, str, dict]]:
    """``none,mcmc[n_aug=0.5,fused=true]`` -> ``[(label, method, overrides), ...]``.

    A searcher may carry settings in brackets: fields of :class:`SearchConfig`, values read as
    YAML scalars. They make a variant with its own row and its own run directories.
    """
    fields = {f.name for f in dataclasses.fields(SearchConfig)}
    parsed = []
    for label in (m.strip() for m in re.split(r",(?![^\[]*\])", text)):
        if not label:
            continue
        match = re.fullmatch(r"([\w.-]+)(?:\[(.*)\])?", label)
        if not match:
            raise SystemExit(f"--methods: cannot read {label!r}; write METHOD or METHOD[key=value,...]")
        method, body = match.group(1), match.group(2)
        overrides: dict = {}
        for item in filter(None, (x.strip() for x in (body or "").split(","))):
            key, eq, value = item.partition("=")
            key = key.strip()
            if not eq or key not in fields:
                raise SystemExit(
                    f"--methods: {label}: {item!r} is not KEY=VALUE with KEY a SearchConfig field"
                )
            overrides[key] = yaml.safe_load(value)
        if overrides and method not in SEARCHERS:
            raise SystemExit(
                f"--methods: {label}: settings in brackets apply to searchers ({', '.join(sorted(SEARCHERS))})"
            )
        parsed.append((label, method, overrides))
    return parsed


def run_name(label: str) -> str:
    """A run directory's name for a method label: ``mcmc[n_aug=0.5]`` -> ``mcmc-n_aug0.5``."""
    return re.sub(r"[^\w.-]+", "-", label.replace("=", "")).strip("-")


def run_dir(out: Path, label: str, seed: int) -> Path:
    return out / "runs" / f"{run_name(label)}_s{seed}"


def run_one(method: str, seed: int, args: argparse.Namespace, out: Path, label: str | None = None,
            overrides: dict | None = None) -> list[dict]:  # fmt: skip
    label = label or method
    overrides = overrides or {}
    run = run_dir(out, label, seed)
    done = _finished(run, args.epochs)
    if done:
        print(f"[{label} seed {seed}] reusing {run}")
        return done
    common = dict(dataset=args.dataset, train_size=args.train_size, model=args.model, epochs=args.epochs,
                  batch_size=args.batch_size, lr=args.lr, seed=seed, device=args.device, out=str(run),
                  progress=not args.quiet, test_every=args.test_every)  # fmt: skip
    resume = (run / "checkpoint.pt").is_file()
    t0 = time.perf_counter()
    if method in ("bilevel", "optuna"):  # search a policy, then train the model with it
        search = run / "search"
        cfg = SearchConfig(method=method, mode="search", space=args.space, **{**common, "out": str(search)})
        if args.epsilon is not None:
            cfg.epsilon = args.epsilon
        if method == "optuna":
            cfg.n_trials, cfg.trial_epochs = args.optuna_trials, args.trial_epochs
            cfg.study_name = f"bench-{args.dataset}-s{seed}"
            # policy.json is rewritten after every trial; the timing file only when the search ends.
            finished = (search / "search_seconds.json").is_file()
        else:
            finished = (search / "model.pt").is_file()
        for key, value in overrides.items():
            setattr(cfg, key, value)
        if not finished:  # a finished search is reused; an optuna study resumes from its storage
            t_search = time.perf_counter()
            get_searcher(method)(cfg).run(resume=(search / "checkpoint.pt").is_file())
            if method == "optuna":  # (a resumed study's time counts from the resume)
                seconds = time.perf_counter() - t_search
                (search / "search_seconds.json").write_text(json.dumps({"seconds": seconds}))
        Trainer(TrainConfig(policy=str(search / "policy.json"), **common)).fit(resume=resume)
    elif method in SEARCHERS:
        cfg = SearchConfig(method=method, space=args.space, **common)
        if args.epsilon is not None:
            cfg.epsilon = args.epsilon
        if args.constraint:
            cfg.constraint = args.constraint
        for key, value in overrides.items():
            setattr(cfg, key, value)
        get_searcher(method)(cfg).run(resume=resume)
    else:
        Trainer(TrainConfig(policy=method, **common)).fit(resume=resume)
    print(f"[{label} seed {seed}] {time.perf_counter() - t0:.0f}s")
    return _finished(run, args.epochs) or []


def main(argv: list[str] | None = None, default_methods: str = METHODS) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--setting", choices=sorted(SETTINGS), default="cpu")
    ap.add_argument("--methods", default=default_methods)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--dataset", default=None, help="default: the setting's (cpu, gpu: fashion-mnist)")
    ap.add_argument("--train-size", type=int, default=None, help="default: the setting's")
    ap.add_argument("--model", default=None, help="default: the setting's")
    ap.add_argument("--epochs", type=int, default=None, help="default: the setting's")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--space", default=None, help="search space for searchers (default: the setting's)")
    ap.add_argument("--optuna-trials", type=int, default=12, help="optuna's budget: proxy trainings")
    ap.add_argument("--trial-epochs", type=int, default=3, help="epochs of each optuna proxy training")
    ap.add_argument("--epsilon", type=float, default=None, help="MCMC margin (default: the searcher's)")
    ap.add_argument("--constraint", default=None, help="MCMC constraint: single or per_op")
    ap.add_argument(
        "--test-every", type=int, default=5, help="test-set evaluation every k epochs (and the last)"
    )
    ap.add_argument("--out", default="results/accuracy")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    preset = SETTINGS[args.setting]
    for key in ("train_size", "model", "epochs", "space"):
        if getattr(args, key) is None:
            setattr(args, key, preset[key])
    datasets = [args.dataset] if args.dataset else preset["datasets"]
    for dataset in datasets:
        args.dataset = dataset
        bench(args, Path(args.out) / dataset if len(datasets) > 1 else Path(args.out))


def bench(args: argparse.Namespace, out: Path) -> None:
    """Every method and seed of ``args`` on ``args.dataset``; the tables into ``out``."""
    parsed = parse_methods(args.methods)
    seeds = [int(s) for s in args.seeds.split(",")]
    results: dict[str, dict] = {}
    for label, method, overrides in parsed:
        per_seed = []
        for seed in seeds:
            rows = run_one(method, seed, args, out, label, overrides)
            last = rows[-1]
            speed = statistics.mean(r["images_per_s"] for r in rows)
            seconds = sum(r["seconds"] for r in rows)
            seconds += _search_seconds(run_dir(out, label, seed) / "search")
            per_seed.append({"seed": seed, "test_acc": last["test_acc"], "val_acc": last.get("val_acc"),
                             "images_per_s": speed, "seconds": seconds})  # fmt: skip
        accs = [r["test_acc"] for r in per_seed]
        results[label] = {
            "runs": per_seed,
            "test_acc_mean": statistics.mean(accs),
            "test_acc_std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
            "images_per_s": statistics.median(r["images_per_s"] for r in per_seed),
            "seconds_per_run": statistics.median(
                r["seconds"] for r in per_seed
            ),  # robust to one disturbed run
        }
        if overrides:
            results[label]["settings"] = overrides
        if method in SEARCHERS:
            run = run_dir(out, label, seeds[0])
            policy_path = run / ("policy.json" if method == "mcmc" else "search/policy.json")
            if policy_path.is_file():
                results[label]["policy"] = str(policy_path)

    machine = (f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}, "
               + (torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"))  # fmt: skip
    summary = {
        "setting": {k: getattr(args, k) for k in SETTING_KEYS},
        "seeds": seeds,
        "machine": machine,
        "command": "python " + " ".join(sys.argv),
        "methods": results,
    }
    # Methods of an earlier results.json with the same setting and seeds that were not run now keep their rows.
    earlier = json.loads((out / "results.json").read_text()) if (out / "results.json").is_file() else {}
    if earlier.get("setting") == summary["setting"] and earlier.get("seeds") == seeds:
        kept = [m for m in earlier.get("methods", {}) if m not in results]
        results = {**earlier["methods"], **results}
        summary["methods"] = results
        if kept:
            summary["kept"] = {
                "methods": kept,
                "machine": earlier.get("machine"),
                "command": earlier.get("command"),
            }
    base = results.get("none", {}).get("images_per_s")
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(summary, indent=2))
    base_s = results.get("none", {}).get("seconds_per_run")
    lines = [
        f"{args.dataset}, {args.train_size or 'all'} training images, {args.model}, {args.epochs} epochs, "
        f"seeds {','.join(map(str, seeds))}; {machine}",
        "",
        "| method | test accuracy (mean ± std) | per seed | wall s per run (median; search included) | × none "
        "| train images/s | × none |",
        "|---|---|---|---|---|---|---|",
    ]
    for method, r in results.items():
        per = ", ".join(f"{x['test_acc']:.4f}" for x in r["runs"])
        ratio = f"{r['images_per_s'] / base:.2f}" if base else "-"
        s_ratio = f"{r['seconds_per_run'] / base_s:.2f}" if base_s else "-"
        lines.append(f"| {method} | {r['test_acc_mean']:.4f} ± {r['test_acc_std']:.4f} | {per} | "
                     f"{r['seconds_per_run']:,.0f} | {s_ratio} | {r['images_per_s']:,.0f} | {ratio} |")  # fmt: skip
    if "kept" in summary:
        k = summary["kept"]
        lines += ["", f"Rows kept from an earlier run ({', '.join(k['methods'])}): {k['machine']}."]
    table = "\n".join(lines)
    (out / "results.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
