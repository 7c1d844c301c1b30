"""Test accuracy of augmentation methods side by side, measured where a user gets it: each
policy trained in a plain torch/torchvision loop (``scripts/plain_train.py``), the same data,
model, epochs and seeds for every method.

Methods are fixed policies (``none``, ``hflip``, ``hflip-crop-erase``, ``randaugment``,
``trivialaugment``, ``autoaugment``: plain_train.py's names) and the searchers (``mcmc``,
``bilevel``, ``optuna``, in the setting's space); any of them may be followed by ``+MIX``,
plain_train.py's ``--mix`` (``randaugment+cutmix``: MixUp or CutMix on whole batches after the
DataLoader, ``--trainer plain`` only). A searcher's run searches a policy
(``OUT/runs/<method>_s<seed>/search/``), exports it as a user would
(``autoaug export search/policy.json --out policy_tv.py``) and trains it from scratch with
plain_train.py (``plain.json``); a fixed policy's run is only the plain training. Every process
of a run leaves a file behind when it ends, and a run reuses what it finds (a finished search,
its export, a plain training of the same settings), so an interrupted benchmark picks up where
it stopped.

What the tables report, per method:

* test accuracy of the plain training, mean ± std over seeds (and per seed);
* the accuracy of the model trained while searching, where the search trains one (``mcmc``,
  ``bilevel[mode=online]``): what autoaug's own training gets, not what the export gives;
* search cost: the search's wall time (before any final training; the median over seeds) as a
  multiple of the median wall time of ``none``'s plain training in the same table;
* median wall times of the search and of the plain training.

In ``cpu``, ``lowdata`` and ``synthetic`` the searches run on the CPU, where plain_train.py trains, so that
their costs compare; in ``gpu`` both run on the GPU. Writes ``OUT/results.json`` and ``OUT/results.md`` (``OUT``:
``results/accuracy_SETTING`` unless ``--out``). Rows of methods not run now are kept from an
earlier ``results.json`` of the same setting and seeds.

Settings (``--setting``; the other flags override them):

* ``cpu`` (default): reduced Fashion-MNIST, 6,000 training images, the small CNN, 15 epochs,
  SGD-Nesterov with a cosine schedule, the `symmetry` space (it holds hflip and erasing), 3 seeds,
  the 10,000 test images;
* ``lowdata``: the same with 1,000 training images and 60 epochs, where the policies differ more;
* ``gpu``: full Fashion-MNIST (60,000 images), ResNet-18, 30 epochs, searches and plain
  trainings on the GPU (plain_train.py ``--model resnet18 --device auto``: bf16 autocast, the
  policies per image in its DataLoader workers; give ``--plain-workers`` about the cores);
* ``synthetic``: the built-in synthetic datasets ``glyphs`` and ``arrows`` (``--dataset``: any
  task of the symmetry suite, ``autoaug datasets`` lists them), 6,000 images, the small CNN,
  10 epochs; each seed's generated images are written as IDX files into the table's ``data/`` for
  plain_train.py; one table per dataset under ``OUT/DATASET/``.

With ``--trainer autoaug`` every policy (a fixed one by autoaug's name, a searcher's
``policy.json``) is trained with ``autoaug train``'s Trainer in this process instead
(``train/``); ``hflip`` and ``hflip-crop-erase`` are plain_train.py's only.

Run:
    python scripts/bench_accuracy.py                     # every method, cpu: into results/accuracy_cpu
    python scripts/bench_accuracy.py --setting lowdata   # into results/accuracy_lowdata
    python scripts/bench_accuracy.py --methods none,hflip,mcmc --seeds 0 --out /tmp/accuracy
    python scripts/bench_accuracy.py --methods "mcmc[n_aug=1],optuna[n_trials=40]"  # searcher variants
    python scripts/bench_accuracy.py --methods "randaugment[num_ops=3,magnitude=14]"  # torchvision's arguments
    python scripts/bench_accuracy.py --methods "randaugment+cutmix,optuna+mixup[alpha=0.2]"  # batch mixing
    python scripts/bench_accuracy.py --setting gpu --out results/accuracy_gpu
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import yaml

from autoaug.data import SYNTHETIC_DATASETS, synthetic_pool
from autoaug.data.idx import write_idx_dir
from autoaug.search import SECTIONS, SearchConfig, get_searcher
from autoaug.settings import flatten
from autoaug.train import TrainConfig, Trainer

ROOT = Path(__file__).resolve().parents[1]
PLAIN_TRAIN = ROOT / "scripts" / "plain_train.py"
SEARCHERS = {"mcmc", "bilevel", "optuna"}
PLAIN_ONLY = {"hflip", "hflip-crop-erase"}  # fixed policies that autoaug's trainer does not know
TUNABLE = {"randaugment", "trivialaugment", "autoaugment"}  # plain_train.py takes their arguments
# What makes two runs comparable: a results.json with the same keeps the rows of methods not run now.
SETTING_KEYS = (
    "dataset",
    "train_size",
    "model",
    "epochs",
    "batch_size",
    "lr",
    "space",
    "trainer",
    "optuna_trials",
    "trial_epochs",
    "epsilon",
    "constraint",
)
# SearchConfig fields that change how a search runs, not what it finds (a finished one is reused across them).
HOW_IT_RUNS = {
    "device",
    "progress",
    "out",
    "test_every",
    "override",
    "data_root",
    "optuna.heartbeat",
    "optuna.storage",
}
FIXED = "none,hflip,hflip-crop-erase,randaugment,trivialaugment,autoaugment"
SEARCH = "mcmc,bilevel,optuna"
SETTINGS = {
    "cpu": {"datasets": ["fashion-mnist"], "train_size": 6000, "model": "small_cnn", "epochs": 15,
            "space": "symmetry", "trainer": "plain", "device": "cpu"},
    "lowdata": {"datasets": ["fashion-mnist"], "train_size": 1000, "model": "small_cnn", "epochs": 60,
                "space": "symmetry", "trainer": "plain", "device": "cpu"},
    "gpu": {"datasets": ["fashion-mnist"], "train_size": 60000, "model": "resnet18", "epochs": 30,
            "space": "symmetry", "trainer": "plain", "device": "auto"},
    "synthetic": {"datasets": ["glyphs", "arrows"], "train_size": 6000, "model": "small_cnn", "epochs": 10,
                  "space": "symmetry", "trainer": "plain", "device": "cpu"},
}  # fmt: skip


def parse_methods(text: str) -> list[tuple[str, str, dict]]:
    """``none,mcmc[n_aug=0.5,fused=true]`` -> ``[(label, method, overrides), ...]``.

    A searcher may carry settings in brackets: its settings as ``autoaug search --method M``
    takes them (the common fields of :class:`SearchConfig` and those of the method's section),
    values read as YAML scalars. So may ``randaugment``, ``trivialaugment`` and ``autoaugment``:
    their torchvision class's arguments, as plain_train.py reads them (``--trainer plain`` only).
    Either makes a variant with its own row and its own run directories.
    """
    parsed = []
    for label in (m.strip() for m in re.split(r",(?![^\[]*\])", text)):
        if not label:
            continue
        base, mix = split_mix(label)
        if mix:
            try:
                _plain_train().batch_mix(mix, 2)
            except ValueError as e:
                raise SystemExit(f"--methods: {label}: {e}") from None
        match = re.fullmatch(r"([\w.-]+)(?:\[(.*)\])?", base)
        if not match:
            raise SystemExit(f"--methods: cannot read {label!r}; write METHOD or METHOD[key=value,...]")
        method, body = match.group(1), match.group(2)
        overrides: dict = {}
        items = list(filter(None, (x.strip() for x in (body or "").split(","))))
        if items and method in TUNABLE:  # torchvision's arguments, which plain_train.py reads
            try:
                _plain_train().policy_steps(base, 28)  # builds torchvision's class: its checks too
            except ValueError as e:
                raise SystemExit(f"--methods: {e}") from None
            parsed.append((label, method, {}))
            continue
        if items and method not in SEARCHERS:
            raise SystemExit(
                f"--methods: {label}: settings in brackets apply to searchers ({', '.join(sorted(SEARCHERS))}) "
                f"and to {', '.join(sorted(TUNABLE))} (their torchvision arguments)"
            )
        fields = set(SearchConfig.fields()) - set(SECTIONS) | set(SECTIONS[method].fields() if items else ())
        for item in items:
            key, eq, value = item.partition("=")
            key = key.strip()
            if not eq or key not in fields:
                raise SystemExit(
                    f"--methods: {label}: {item!r} is not KEY=VALUE with KEY a setting of {method} "
                    f"(a common SearchConfig field or one of its {method} section)"
                )
            overrides[key] = yaml.safe_load(value)
        parsed.append((label, method, overrides))
    return parsed


def split_mix(label: str) -> tuple[str, str]:
    """``randaugment[magnitude=5]+cutmix[alpha=0.5]`` -> the policy and plain_train.py's ``--mix``
    (``""`` when the label has no ``+``)."""
    base, plus, mix = label.partition("+")
    return base.strip(), mix.strip() if plus else ""


@functools.cache
def _plain_train():
    """scripts/plain_train.py as a module (to check a fixed policy's arguments as it reads them),
    loaded once: parse_methods runs more than once per benchmark."""
    spec = importlib.util.spec_from_file_location("plain_train", PLAIN_TRAIN)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_name(label: str) -> str:
    """A run directory's name for a method label: ``mcmc[n_aug=0.5]`` -> ``mcmc-n_aug0.5``."""
    return re.sub(r"[^\w.-]+", "-", label.replace("=", "")).strip("-")


def run_dir(out: Path, label: str, seed: int) -> Path:
    return out / "runs" / f"{run_name(label)}_s{seed}"


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # whole, then renamed
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)


def _rows(metrics: Path) -> list[dict]:
    if not metrics.is_file():
        return []
    return [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]


def _common(args: argparse.Namespace, seed: int, out: Path) -> dict:
    return dict(
        dataset=args.dataset,
        data_root=args.data_root,
        train_size=args.train_size,
        model=args.model,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=seed,
        device=args.device,
        out=str(out),
        progress=not args.quiet,
        test_every=args.test_every or args.epochs,
    )


def search_config(
    method: str, overrides: dict, seed: int, args: argparse.Namespace, out: Path
) -> SearchConfig:
    """The search of a benchmark run: the searcher's defaults, the setting's data, model, epochs
    and space, the benchmark's flags, then the method's bracketed settings."""
    cfg = SearchConfig.of(method=method, space=args.space, **_common(args, seed, out))
    flags = {"epsilon": args.epsilon, "constraint": args.constraint or None, "n_trials": args.optuna_trials,
             "trial_epochs": args.trial_epochs}  # fmt: skip
    if method == "optuna":
        flags["study_name"] = f"bench-{args.dataset}-s{seed}"
    own = SECTIONS[method].fields()  # a flag goes to the methods that have the setting
    return cfg.replace(**{k: v for k, v in flags.items() if v is not None and k in own}, **overrides)


def trains_the_model(cfg: SearchConfig) -> bool:
    """Whether the search trains the task's model (its accuracy is worth a column)."""
    return cfg.method == "mcmc" or (cfg.method == "bilevel" and cfg.bilevel.mode == "online")


def _what_it_finds(settings: dict) -> dict:
    """A search's saved settings, flat (``mcmc.n_aug``), less those that change only how it runs;
    a search saved by an older autoaug (one flat mapping) is read in this version's shape."""
    flat = flatten(SearchConfig.upgrade(settings))
    return {k: v for k, v in flat.items() if k not in HOW_IT_RUNS and k != "policy"}


def run_search(cfg: SearchConfig, tag: str) -> dict:
    """Run (or reuse, or resume) one search; its wall time goes to ``search_seconds.json`` when
    it ends, which marks it finished. A resumed search's time counts from the resume."""
    search = Path(cfg.out)
    timing = search / "search_seconds.json"
    settings = json.loads(json.dumps(cfg.to_dict()))
    if timing.is_file():
        done = json.loads(timing.read_text())
        now, then = _what_it_finds(settings), _what_it_finds(done.get("settings", {}))
        changed = sorted(k for k in now.keys() | then.keys() if now.get(k) != then.get(k))
        if changed:
            raise SystemExit(
                f"[{tag}] {search} was searched with other settings ({', '.join(changed)}); "
                "give another --out, or remove that run"
            )
        print(f"[{tag}] reusing the search in {search}")
    else:
        resume = (search / "checkpoint.pt").is_file()  # an optuna study also resumes from its storage
        t0 = time.perf_counter()
        get_searcher(cfg.method)(cfg).run(resume=resume)
        search.mkdir(parents=True, exist_ok=True)
        done = {"seconds": time.perf_counter() - t0, "resumed": resume, "settings": settings}
        _write_json(timing, done)
    record = {"search_seconds": done["seconds"], "search_resumed": done["resumed"]}
    if trains_the_model(cfg):
        record["in_search_acc"] = _rows(search / "metrics.jsonl")[-1]["test_acc"]
    return record


def export_policy(policy: Path, out: Path, tag: str) -> Path:
    """``autoaug export POLICY --out OUT`` in a subprocess, as a user runs it (redone when the
    policy is newer than its export)."""
    if out.is_file() and out.stat().st_mtime >= policy.stat().st_mtime:
        return out
    tmp = out.with_name(f".{out.stem}.{os.getpid()}.tmp.py")  # an interrupted export leaves no policy_tv.py
    cmd = [sys.executable, "-m", "autoaug", "export", str(policy), "--out", str(tmp)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"[{tag}] {' '.join(cmd)} exited {done.returncode}: {done.stderr.strip()}")
    tmp.replace(out)
    return out


def plain_settings(
    policy: str, seed: int, args: argparse.Namespace, mix: str = "", data_root: str | None = None
) -> dict:
    """What a plain training must have been run with to be reused (plain_train.py's names);
    ``data_root``: the seed's data (:func:`plain_data_root`) when not ``args.data_root``."""
    return {
        "policy": policy,
        **({"mix": mix} if mix else {}),
        "data_root": data_root or args.data_root,
        "train_size": args.train_size,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "seed": seed,
        **({"dev_size": args.dev_size} if args.dev_size else {}),
        # plain_train.py's defaults, named only when they differ (earlier runs' JSONs lack them)
        **({"model": args.model} if args.model != "small_cnn" else {}),
        **({"device": args.device} if args.device != "cpu" else {}),
    }


def finished_plain(out: Path, want: dict) -> dict | None:
    """plain_train.py's JSON at ``out`` when it was trained with the settings ``want`` names."""
    if not out.is_file():
        return None
    done = json.loads(out.read_text())
    return done if {k: done["settings"].get(k) for k in want} == want else None


def plain_data_root(args: argparse.Namespace, seed: int, out: Path) -> str:
    """The directory plain_train.py reads ``seed``'s data from: ``--data-root``, or for a
    synthetic dataset the images autoaug generates for this seed and size (the searches' own),
    written once as IDX files under ``OUT/data/`` in ``load_dataset``'s order, so that
    plain_train.py, drawing every image with ``--train-size``, holds out the same validation
    images as the search."""
    if not is_synthetic(args.dataset):
        return args.data_root
    root = out / "data" / f"{args.dataset}_n{args.train_size}_s{seed}"
    if not (root / "done").is_file():
        pool, test = synthetic_pool(args.dataset, args.train_size, seed)
        tmp = root.with_name(f".{root.name}.{os.getpid()}.tmp")  # whole, then renamed
        shutil.rmtree(tmp, ignore_errors=True)
        write_idx_dir(tmp, pool, test)
        (tmp / "done").write_text(f"{args.dataset}, {args.train_size} images, seed {seed}\n")
        shutil.rmtree(root, ignore_errors=True)
        tmp.replace(root)
    return str(root)


def is_synthetic(dataset: str) -> bool:
    return dataset.replace("_", "-").lower() in SYNTHETIC_DATASETS


def run_plain(
    policy: str,
    seed: int,
    args: argparse.Namespace,
    out: Path,
    tag: str,
    mix: str = "",
    data_root: str | None = None,
) -> dict:
    """scripts/plain_train.py with ``policy`` (a fixed policy's name or an exported ``.py``) and
    ``mix`` (its ``--mix``, if any) in a subprocess, on ``data_root`` (default ``--data-root``);
    its JSON, reused when one of the same settings is there."""
    want = plain_settings(policy, seed, args, mix, data_root)
    done = finished_plain(out, want)
    if done is not None:
        print(f"[{tag}] reusing {out}")
        return done
    cmd = [sys.executable, str(PLAIN_TRAIN), "--out", str(out), "--workers", str(args.plain_workers)]
    cmd += [f"--{k.replace('_', '-')}={v}" for k, v in want.items()]
    if args.quiet:
        cmd.append("--quiet")
    out.parent.mkdir(parents=True, exist_ok=True)
    rc = subprocess.run(cmd).returncode
    if rc != 0:
        raise SystemExit(f"[{tag}] {' '.join(cmd)} exited {rc}")
    return json.loads(out.read_text())


def run_autoaug_train(policy: str, seed: int, args: argparse.Namespace, out: Path, tag: str) -> dict:
    """autoaug's Trainer with ``policy`` (a name or a policy.json) in this process; resumed or reused."""
    rows = _rows(out / "metrics.jsonl")
    if len(rows) >= args.epochs and (out / "model.pt").is_file():
        print(f"[{tag}] reusing {out}")
    else:
        Trainer(TrainConfig(policy=policy, **_common(args, seed, out))).fit(
            resume=(out / "checkpoint.pt").is_file()
        )
        rows = _rows(out / "metrics.jsonl")
    return {
        "test_acc": rows[-1]["test_acc"],
        "val_acc": rows[-1].get("val_acc"),
        "wall_seconds": sum(r["seconds"] for r in rows),
    }


def run_one(label: str, method: str, overrides: dict, seed: int, args: argparse.Namespace, out: Path) -> dict:
    """One method and seed: the search and its export (searchers), then the final training."""
    run, tag = run_dir(out, label, seed), f"{label} seed {seed}"
    t0 = time.perf_counter()
    record: dict = {"seed": seed}
    policy, mix = split_mix(label)  # a fixed policy, with its arguments if it has them
    if method in SEARCHERS:
        cfg = search_config(method, overrides, seed, args, run / "search")
        record.update(run_search(cfg, tag))
        policy = str(run / "search" / "policy.json")
        if args.trainer == "plain":
            policy = str(export_policy(Path(policy), run / "policy_tv.py", tag))
        record["policy"] = policy
    if args.trainer == "plain":
        final = run_plain(policy, seed, args, run / "plain.json", tag, mix, plain_data_root(args, seed, out))
    else:
        final = run_autoaug_train(policy, seed, args, run / "train", tag)
    record.update(test_acc=final["test_acc"], val_acc=final["val_acc"], seconds=final["wall_seconds"])
    if final.get("dev_acc") is not None:
        record["dev_acc"] = final["dev_acc"]
    print(f"[{tag}] test accuracy {record['test_acc']:.4f} ({time.perf_counter() - t0:.0f}s)")
    return record


def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def summarize(runs: list[dict]) -> dict:
    """A method's row: means, standard deviations and medians over its seeds."""
    row: dict = {"runs": runs}
    row["test_acc_mean"], row["test_acc_std"] = _mean_std([r["test_acc"] for r in runs])
    row["seconds_per_run"] = statistics.median(r["seconds"] for r in runs)  # robust to one disturbed run
    if all("dev_acc" in r for r in runs):
        row["dev_acc_mean"], row["dev_acc_std"] = _mean_std([r["dev_acc"] for r in runs])
    if all("in_search_acc" in r for r in runs):
        row["in_search_acc_mean"], row["in_search_acc_std"] = _mean_std([r["in_search_acc"] for r in runs])
    if all("search_seconds" in r for r in runs):
        row["search_seconds"] = statistics.median(r["search_seconds"] for r in runs)
    return row


def main(argv: list[str] | None = None, default_methods: str | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--setting", choices=sorted(SETTINGS), default="cpu")
    ap.add_argument(
        "--methods",
        default=None,
        help=f"default: {FIXED},{SEARCH} (without {', '.join(sorted(PLAIN_ONLY))} under --trainer autoaug)",
    )
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument(
        "--dataset", default=None, help="default: the setting's (cpu, lowdata, gpu: fashion-mnist)"
    )
    ap.add_argument(
        "--data-root",
        default=None,
        help="directory of the dataset's files (default: where autoaug "
        "looks; for plain_train.py, /usr/share/datasets/fashion-mnist)",
    )
    ap.add_argument("--train-size", type=int, default=None, help="default: the setting's")
    ap.add_argument("--model", default=None, help="default: the setting's")
    ap.add_argument("--epochs", type=int, default=None, help="default: the setting's")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument(
        "--device",
        default=None,
        help="of the searches and of the final trainings (default: the setting's: cpu for cpu, lowdata and "
        "synthetic, whose plain trainings set the cost unit on the CPU; auto for gpu)",
    )
    ap.add_argument("--space", default=None, help="search space for searchers (default: the setting's)")
    ap.add_argument(
        "--trainer",
        choices=("plain", "autoaug"),
        default=None,
        help="what trains each policy: scripts/plain_train.py, or autoaug's Trainer (default: the setting's)",
    )
    ap.add_argument("--plain-workers", type=int, default=2, help="plain_train.py's DataLoader workers")
    ap.add_argument(
        "--dev-size",
        type=int,
        default=0,
        help="plain_train.py's --dev-size: also report the accuracy on this many training images that "
        "were not drawn (a development set to choose designs by, apart from the test images)",
    )
    ap.add_argument(
        "--optuna-trials", type=int, default=None, help="optuna's n_trials (default: the searcher's)"
    )
    ap.add_argument(
        "--trial-epochs", type=int, default=None, help="optuna's trial_epochs (default: the searcher's)"
    )
    ap.add_argument(
        "--epsilon",
        type=float,
        default=None,
        help="the invariance margin of mcmc and bilevel (default: the searcher's)",
    )
    ap.add_argument("--constraint", default=None, help="mcmc's constraint: single or per_op")
    ap.add_argument(
        "--test-every",
        type=int,
        default=None,
        help="test-set evaluation every k epochs in a search or autoaug training (and the last; "
        "default: only the last)",
    )
    ap.add_argument("--out", default=None, help="default: results/accuracy_SETTING")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    preset = SETTINGS[args.setting]
    args.out = args.out or f"results/accuracy_{args.setting}"
    for key in ("train_size", "model", "epochs", "space", "trainer", "device"):
        if getattr(args, key) is None:
            setattr(args, key, preset[key])
    if args.methods is None:
        args.methods = default_methods
    if args.methods is None:
        fixed = [m for m in FIXED.split(",") if args.trainer == "plain" or m not in PLAIN_ONLY]
        args.methods = ",".join([*fixed, SEARCH])
    if args.trainer == "plain":
        if args.model not in _plain_train().MODELS:
            raise SystemExit(
                f"--trainer plain: plain_train.py trains {' and '.join(sorted(_plain_train().MODELS))}, "
                f"got --model {args.model}; use --trainer autoaug"
            )
        if args.train_size is None:
            raise SystemExit("--trainer plain: give --train-size (plain_train.py draws a number of images)")
        unknown = [
            label
            for label, method, _ in parse_methods(args.methods)
            if method not in {*FIXED.split(","), *SEARCHERS}
        ]
        if unknown:
            raise SystemExit(
                f"--methods: {', '.join(unknown)}: expected {FIXED} (plain_train.py's policies) "
                f"or a searcher ({SEARCH})"
            )
    else:
        plain_only = [
            label
            for label, method, _ in parse_methods(args.methods)
            if method in PLAIN_ONLY or (method in TUNABLE and label != method) or split_mix(label)[1]
        ]
        if plain_only:
            raise SystemExit(
                f"--methods: {', '.join(plain_only)}: plain_train.py's policies; autoaug's trainer "
                "does not know them (use --trainer plain)"
            )
    datasets = [args.dataset] if args.dataset else preset["datasets"]
    if args.trainer == "plain" and any(
        d.replace("_", "-").lower() not in ("fashion-mnist", "mnist") and not is_synthetic(d)
        for d in datasets
    ):
        raise SystemExit(
            f"--trainer plain: plain_train.py reads IDX files (fashion-mnist, mnist; a synthetic dataset is "
            f"written as such), got {datasets}; use --trainer autoaug"
        )
    if args.trainer == "plain" and args.data_root is None and not all(map(is_synthetic, datasets)):
        if datasets != ["fashion-mnist"]:
            raise SystemExit(f"--trainer plain: give --data-root, the directory of {datasets[0]}'s IDX files")
        args.data_root = "/usr/share/datasets/fashion-mnist"  # plain_train.py's default
    for dataset in datasets:
        args.dataset = dataset
        bench(args, Path(args.out) / dataset if len(datasets) > 1 else Path(args.out))


def bench(args: argparse.Namespace, out: Path) -> None:
    """Every method and seed of ``args`` on ``args.dataset``; the tables into ``out``."""
    parsed = parse_methods(args.methods)
    seeds = [int(s) for s in args.seeds.split(",")]
    results: dict[str, dict] = {}
    for label, method, overrides in parsed:
        results[label] = summarize([run_one(label, method, overrides, seed, args, out) for seed in seeds])
        if overrides:
            results[label]["settings"] = overrides
        if method in SEARCHERS:
            results[label]["policy"] = str(run_dir(out, label, seeds[0]) / "search" / "policy.json")

    machine = f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}, " + (
        torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"
    )
    summary = {
        "setting": {k: getattr(args, k) for k in SETTING_KEYS},
        "seeds": seeds,
        "machine": machine,
        "kernels": _plain_train().kernel_fingerprint(),
        "command": "python " + " ".join(sys.argv),
        "methods": results,
    }
    # Methods of an earlier results.json with the same setting and seeds that were not run now keep their rows.
    earlier = json.loads((out / "results.json").read_text()) if (out / "results.json").is_file() else {}
    if earlier.get("setting") == summary["setting"] and earlier.get("seeds") == seeds:
        kept = [m for m in earlier.get("methods", {}) if m not in results]
        results = {**earlier["methods"], **results}
        # Fixed policies first, then the searchers, each in the order the defaults name them.
        canon = [*FIXED.split(","), *SEARCH.split(",")]
        results = dict(
            sorted(results.items(), key=lambda kv: canon.index(kv[0]) if kv[0] in canon else len(canon))
        )
        summary["methods"] = results
        if kept:
            summary["kept"] = {
                "methods": kept,
                "machine": earlier.get("machine"),
                "kernels": earlier.get("kernels"),
                "command": earlier.get("command"),
            }
            if earlier.get("kernels") != summary["kernels"]:
                print(
                    f"warning: rows kept from {out / 'results.json'} ({', '.join(kept)}) were trained on other "
                    f"kernels ({earlier.get('kernels') or 'not recorded'}; here {summary['kernels']}): one seed "
                    "may give another accuracy here, so they compare with this run's rows only as other "
                    "measurements, not run for run",
                    file=sys.stderr,
                )
    base = results.get("none", {}).get("seconds_per_run")
    for r in results.values():  # recomputed here: `none` may be a kept row, or run only now
        if "search_seconds" in r:
            r["search_cost"] = r["search_seconds"] / base if base else None
    out.mkdir(parents=True, exist_ok=True)
    _write_json(out / "results.json", summary)
    table = format_table(summary, args)
    (out / "results.md").write_text(table + "\n")
    print(table)


def format_table(summary: dict, args: argparse.Namespace) -> str:
    """results.md: one line of setting, the table, and what its columns mean."""
    trainer = "scripts/plain_train.py" if args.trainer == "plain" else "autoaug's Trainer"
    exported = "exported `policy_tv.py`" if args.trainer == "plain" else "`policy.json`"
    seeds = ",".join(map(str, summary["seeds"]))
    lines = [
        f"{args.dataset}, {args.train_size or 'all'} training images, {args.model}, {args.epochs} epochs, "
        f"searchers in the `{args.space}` space, seeds {seeds}; every policy trained by {trainer}; "
        f"{summary['machine']}" + (f", CPU kernels {summary['kernels']}" if summary.get("kernels") else ""),
        "",
        "| method | test accuracy (mean ± std) | per seed | in-search accuracy | search cost (× none) "
        "| search s (median) | training s (median) |",
        "|---|---|---|---|---|---|---|",
    ]
    dev = any("dev_acc_mean" in r for r in summary["methods"].values())
    if dev:
        lines[2] = lines[2].replace(" | per seed |", " | per seed | development accuracy |")
        lines[3] += "---|"
    resumed = False
    for label, r in summary["methods"].items():
        per = ", ".join(f"{x['test_acc']:.4f}" for x in r["runs"])
        in_search = (
            f"{r['in_search_acc_mean']:.4f} ± {r['in_search_acc_std']:.4f}"
            if "in_search_acc_mean" in r
            else "-"
        )
        cost = f"{r['search_cost']:.2f}" if r.get("search_cost") is not None else "-"
        if any(x.get("search_resumed") for x in r["runs"]):
            cost, resumed = cost + " †", True
        search_s = f"{r['search_seconds']:,.0f}" if "search_seconds" in r else "-"
        dev_cell = (
            (f" {r['dev_acc_mean']:.4f} ± {r['dev_acc_std']:.4f} |" if "dev_acc_mean" in r else " - |")
            if dev
            else ""
        )
        lines.append(
            f"| {label} | {r['test_acc_mean']:.4f} ± {r['test_acc_std']:.4f} | {per} |{dev_cell} {in_search} | "
            f"{cost} | {search_s} | {r['seconds_per_run']:,.0f} |"
        )
    lines += [
        "",
        f"Test accuracy: the policy (a searcher's {exported}) trained from scratch by {trainer}; in-search: "
        "the model the search trained; search cost: the search's wall time before any final training, over "
        "the median wall time of `none`'s training."
        + (
            " Development accuracy: on training images no run drew (plain_train.py --dev-size), "
            "what designs are chosen by, apart from the test images."
            if dev
            else ""
        ),
    ]
    if resumed:
        lines.append("† a search resumed after an interruption: its time counts from the resume.")
    if "kept" in summary:
        k = summary["kept"]
        same = k.get("kernels") == summary.get("kernels")
        kernels = (
            f"the same kernels ({summary['kernels']})"
            if same
            else f"other kernels ({k.get('kernels') or 'not recorded'}; this run {summary.get('kernels')}): "
            "not comparable run for run"
        )
        lines.append(f"Rows kept from an earlier run ({', '.join(k['methods'])}): {k['machine']}, {kernels}.")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
