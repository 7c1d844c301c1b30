"""How far above RandAugment does a searcher's own space go, when every candidate is judged by
what the searchers' proxies only estimate: a full plain training, scored on a development set?

Optuna's TPE over the optuna searcher's space (``families`` in the ``symmetry`` space, as the
accuracy benchmark searches it), with RandAugment's point of that space (N 2, M 9, every op
applied, the geometric and photometric families) as the first trial. Each trial's policy is
exported with ``autoaug export`` and trained from scratch by ``scripts/plain_train.py`` (seed 0,
the accuracy benchmark's data, model and schedule); its value is the accuracy on ``--dev-size``
training images no run drew, never the test images. The ``--confirm`` best trials by that value
are then trained on ``--confirm-seeds``, and their test accuracy over all seeds is set beside
the fixed policies of a bench_accuracy ``results.json`` made on the same CPU kernels
(``--reference``; a reference of other kernels is refused, as its runs are not comparable).

This is not a searcher: it spends a full training per candidate, tens of times what the goal
allows a search. It asks whether the space holds a policy above the best fixed one at all,
which separates "the searchers' signal cannot find it" from "it is not there".

    OMP_NUM_THREADS=1 python scripts/oracle_search.py --trials 24 --confirm 3 \\
        --reference results/accuracy_lowdata_amd10/results.json --out results/oracle_lowdata

Trainings run ``--workers`` at a time, each pinned to a core of its own (``taskset``) with one
torch thread and one DataLoader worker. The study lives in ``OUT/study.db``; running the same
command again continues it, and reuses every finished training.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import queue
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import optuna

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = {"lowdata": {"train_size": 1000, "epochs": 60}, "cpu": {"train_size": 6000, "epochs": 15}}


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


bench = _load("bench_accuracy")  # its plain_train.py loader, `autoaug export` call and mean and std


class Cores:
    """The cores trainings are pinned to, one training per core (none pinned without taskset)."""

    def __init__(self, workers: int):
        have = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
        pin = shutil.which("taskset") is not None and len(have) >= workers
        self.free: queue.Queue[int | None] = queue.Queue()
        for core in have[:workers] if pin else [None] * workers:
            self.free.put(core)

    def run(self, cmd: list[str]) -> int:
        core = self.free.get()
        try:
            prefix = ["taskset", "-c", str(core)] if core is not None else []
            env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
            return subprocess.run(prefix + cmd, env=env).returncode
        finally:
            self.free.put(core)


def train(policy_py: Path, seed: int, out: Path, args: argparse.Namespace, cores: Cores) -> dict:
    """plain_train.py with ``policy_py``; its JSON (reused when a finished one is there)."""
    want = {
        "train_size": args.train_size,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "seed": seed,
        "dev_size": args.dev_size,
    }
    done = bench.finished_plain(out, want)
    if done is not None:
        return done
    cmd = [sys.executable, str(bench.PLAIN_TRAIN), "--policy", str(policy_py), "--out", str(out), "--threads", "1",
           "--workers", "1", "--quiet"] + [f"--{k.replace('_', '-')}={v}" for k, v in want.items()]  # fmt: skip
    if args.data_root:
        cmd.append(f"--data-root={args.data_root}")
    if cores.run(cmd) != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed")
    return json.loads(out.read_text())


def export(params: dict, out: Path, space: str, image_size: int) -> Path:
    """The trial's policy (as the optuna searcher builds it) and its ``autoaug export``."""
    from autoaug.search.base import SearchConfig
    from autoaug.search.optuna import policy_from_params

    interpolation = SearchConfig().interpolation
    policy = policy_from_params(params, "families", space, interpolation, name=out.name)
    policy.meta = {"oracle_params": params, "image_size": [image_size, image_size]}
    out.mkdir(parents=True, exist_ok=True)
    policy.save(out / "policy.json")
    return bench.export_policy(out / "policy.json", out / "policy_tv.py", out.name)


def reference_rows(path: Path, kernels: str, seeds: list[int], args: argparse.Namespace) -> dict[str, dict]:
    """The fixed policies of a bench_accuracy results.json made on these kernels."""
    data = json.loads(path.read_text())
    made = {k: data.get("setting", {}).get(k) for k in ("train_size", "epochs", "batch_size")}
    if made != {"train_size": args.train_size, "epochs": args.epochs, "batch_size": args.batch_size}:
        raise SystemExit(f"--reference {path}: made with {made}, not this run's training")
    if data.get("kernels") != kernels:
        raise SystemExit(f"--reference {path}: made on kernels {data.get('kernels')!r}, these are {kernels!r}: "
                         "its runs are not comparable run for run")  # fmt: skip
    rows = {}
    for name, m in data["methods"].items():
        runs = [r for r in m["runs"] if r["seed"] in seeds and "dev_acc" in r]
        if len(runs) == len(seeds) and "[" not in name and "+" not in name:
            rows[name] = {"test": [r["test_acc"] for r in runs], "dev": [r["dev_acc"] for r in runs]}
    return rows


def _mean_std(values: list[float]) -> str:
    return "{:.4f} ± {:.4f}".format(*bench._mean_std(values))


def describe(params: dict) -> str:
    fams = [k.split(":", 1)[1] for k, v in params.items() if k.startswith("family:") and v]
    return f"N {params['n_ops']}, M {params['magnitude']}, p {params['prob']:.2f}, {'+'.join(fams) or 'no family'}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--setting", choices=sorted(SETTINGS), default="lowdata")
    ap.add_argument("--train-size", type=int, default=None, help="default: the setting's")
    ap.add_argument("--epochs", type=int, default=None, help="default: the setting's")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--space", default="symmetry", help="autoaug's op space the families are drawn from")
    ap.add_argument("--trials", type=int, default=24, help="trials (full trainings on seed 0), in all")
    ap.add_argument(
        "--confirm", type=int, default=3, help="best trials by development accuracy trained again"
    )
    ap.add_argument("--confirm-seeds", default="1,2")
    ap.add_argument("--dev-size", type=int, default=10000)
    ap.add_argument("--workers", type=int, default=2, help="trainings at a time, each on a core of its own")
    ap.add_argument("--sampler-seed", type=int, default=0)
    ap.add_argument("--data-root", default=None, help="plain_train.py's --data-root")
    ap.add_argument(
        "--reference", type=Path, default=None, help="a bench_accuracy results.json, same kernels"
    )
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "oracle_lowdata")
    args = ap.parse_args(argv)
    args.train_size = args.train_size or SETTINGS[args.setting]["train_size"]
    args.epochs = args.epochs or SETTINGS[args.setting]["epochs"]
    if args.dev_size <= 0:
        raise SystemExit("--dev-size: expected a positive count; the trials are chosen by it")
    seeds = [0] + [int(s) for s in args.confirm_seeds.split(",") if s.strip()]
    kernels = bench._plain_train().kernel_fingerprint()
    reference = reference_rows(args.reference, kernels, seeds, args) if args.reference else {}
    args.out.mkdir(parents=True, exist_ok=True)
    cores = Cores(args.workers)
    lock = threading.Lock()

    def objective(trial: optuna.Trial) -> float:
        from autoaug.search.optuna import suggest_params

        with lock:  # the sampler's draw, policy files and exports, one at a time
            params = suggest_params(trial, "families", args.space)
            out = args.out / "trials" / f"{trial.number:04d}"
            py = export(params, out, args.space, 28)
        run = train(py, 0, out / "plain_s0.json", args, cores)
        trial.set_user_attr("test_acc", run["test_acc"])
        trial.set_user_attr("val_acc", run["val_acc"])
        print(f"trial {trial.number}: {describe(params)}: development {run['dev_acc']:.4f}", flush=True)
        return run["dev_acc"]

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.TPESampler(seed=args.sampler_seed, multivariate=True, n_startup_trials=8)
    study = optuna.create_study(study_name="oracle", storage=f"sqlite:///{args.out / 'study.db'}",
                                direction="maximize", sampler=sampler, load_if_exists=True)  # fmt: skip
    state = optuna.trial.TrialState
    if not study.trials:
        from autoaug.search.optuna import prior_params

        study.enqueue_trial(prior_params("families", args.space))
    for t in study.trials:  # a killed run's trials: failed, and their candidates drawn again first
        if t.state == state.RUNNING:
            study.tell(t.number, state=state.FAIL)
            if t.params:
                study.enqueue_trial(t.params)

    def worker() -> None:
        while True:
            with lock:
                busy = sum(t.state in (state.COMPLETE, state.RUNNING) for t in study.trials)
                if busy >= args.trials:
                    return
                trial = study.ask()
            try:
                value = objective(trial)
            except BaseException:
                study.tell(trial, state=state.FAIL)
                raise
            study.tell(trial, value)

    threads = [threading.Thread(target=worker) for _ in range(args.workers)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    done = sorted((t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE),
                  key=lambda t: (-t.value, t.number))  # fmt: skip
    top = done[: args.confirm]
    jobs = [(t, s) for t in top for s in seeds[1:]]

    def confirm(job):
        t, s = job
        out = args.out / "trials" / f"{t.number:04d}"
        return train(out / "policy_tv.py", s, out / f"plain_s{s}.json", args, cores)

    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=args.workers) as pool:
        list(pool.map(confirm, jobs))
    confirmed = []
    for t in top:
        runs = [
            json.loads((args.out / "trials" / f"{t.number:04d}" / f"plain_s{s}.json").read_text())
            for s in seeds
        ]
        confirmed.append({"trial": t.number, "params": t.params, "policy": describe(t.params),
                          "test": [r["test_acc"] for r in runs], "dev": [r["dev_acc"] for r in runs]})  # fmt: skip
    result = {
        "setting": args.setting, "train_size": args.train_size, "epochs": args.epochs, "space": args.space,
        "kernels": kernels, "seeds": seeds, "dev_size": args.dev_size, "sampler_seed": args.sampler_seed,
        "command": "python " + " ".join([str(Path(sys.argv[0]).relative_to(ROOT)) if Path(sys.argv[0]).is_absolute()
                                         else sys.argv[0], *sys.argv[1:]]),
        "trials": [{"trial": t.number, "params": t.params, "dev_acc": t.value, **t.user_attrs} for t in
                   sorted(done, key=lambda t: t.number)],
        "confirmed": confirmed, "reference": {k: v for k, v in reference.items()},
    }  # fmt: skip
    (args.out / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        f"{args.setting}: {args.train_size} training images, {args.epochs} epochs, the `families` space over "
        f"`{args.space}`; {len(done)} trials on seed 0 chosen by development accuracy ({args.dev_size} images), "
        f"the best {len(top)} trained on seeds {', '.join(map(str, seeds[1:]))}; kernels {kernels}",
        "",
        "| policy | test accuracy (mean ± std) | per seed | development accuracy | seed 0 development (the trial's value) |",
        "|---|---|---|---|---|",
    ]
    for name, row in reference.items():
        lines.append(f"| {name} (reference) | {_mean_std(row['test'])} | {', '.join(f'{v:.4f}' for v in row['test'])}"
                     f" | {_mean_std(row['dev'])} | {row['dev'][0]:.4f} |")  # fmt: skip
    for c in confirmed:
        lines.append(f"| trial {c['trial']}: {c['policy']} | {_mean_std(c['test'])} | "
                     f"{', '.join(f'{v:.4f}' for v in c['test'])} | {_mean_std(c['dev'])} | {c['dev'][0]:.4f} |")  # fmt: skip
    lines += ["", "Every trial (seed 0):", "", "| trial | policy | development | test |", "|---|---|---|---|"]
    for t in sorted(done, key=lambda t: t.number):
        lines.append(
            f"| {t.number} | {describe(t.params)} | {t.value:.4f} | {t.user_attrs.get('test_acc', 0):.4f} |"
        )
    (args.out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
