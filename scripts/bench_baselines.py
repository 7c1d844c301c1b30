"""Test accuracy of augmentation methods side by side: the same data, model, epochs and seeds.

Methods are fixed policies (``none``, ``randaugment``, ``trivialaugment``, ``autoaugment``, any
policy file) trained with ``autoaug train``, and searchers (``mcmc``) that train the model
while they search (the accuracy reported is that model's; ``bilevel`` searches a policy on a
proxy with ``--mode search``, then trains the model with it, and its time counts both). Each run writes into
``OUT/runs/<method>_s<seed>/``; finished runs are reused, so an interrupted benchmark picks up
where it stopped. Writes ``OUT/results.json`` and ``OUT/results.md`` (mean ± std over seeds,
and training throughput relative to ``none``).

Default setting (DESIGN.md's anchor): reduced Fashion-MNIST, 6,000 training images, the small
CNN, 15 epochs, SGD-Nesterov with a cosine schedule, 3 seeds, the full 10,000 test images.

Run:
    python scripts/bench_baselines.py                       # the four fixed policies
    python scripts/bench_baselines.py --methods none,trivialaugment,mcmc --out results/accuracy
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

from autoaug.search import SearchConfig, get_searcher
from autoaug.train import TrainConfig, Trainer

SEARCHERS = {"mcmc", "bilevel", "optuna"}


def _finished(run: Path, epochs: int) -> dict | None:
    metrics = run / "metrics.jsonl"
    if not metrics.is_file():
        return None
    rows = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
    return rows if len(rows) >= epochs and (run / "model.pt").is_file() else None


def run_one(method: str, seed: int, args: argparse.Namespace, out: Path) -> list[dict]:
    run = out / "runs" / f"{method}_s{seed}"
    done = _finished(run, args.epochs)
    if done:
        print(f"[{method} seed {seed}] reusing {run}")
        return done
    common = dict(dataset=args.dataset, train_size=args.train_size, model=args.model, epochs=args.epochs,
                  batch_size=args.batch_size, lr=args.lr, seed=seed, device=args.device, out=str(run),
                  progress=not args.quiet, test_every=args.test_every)  # fmt: skip
    resume = (run / "checkpoint.pt").is_file()
    t0 = time.perf_counter()
    if method == "bilevel":  # search a policy on the proxy (--mode search), then train the model with it
        search = run / "search"
        cfg = SearchConfig(method=method, mode="search", space=args.space, **{**common, "out": str(search)})
        if args.epsilon is not None:
            cfg.epsilon = args.epsilon
        if not (search / "model.pt").is_file():  # a finished search is reused
            get_searcher(method)(cfg).run(resume=(search / "checkpoint.pt").is_file())
        Trainer(TrainConfig(policy=str(search / "policy.json"), **common)).fit(resume=resume)
    elif method in SEARCHERS:
        cfg = SearchConfig(method=method, space=args.space, **common)
        if args.epsilon is not None:
            cfg.epsilon = args.epsilon
        if args.constraint:
            cfg.constraint = args.constraint
        get_searcher(method)(cfg).run(resume=resume)
    else:
        Trainer(TrainConfig(policy=method, **common)).fit(resume=resume)
    print(f"[{method} seed {seed}] {time.perf_counter() - t0:.0f}s")
    return _finished(run, args.epochs) or []


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--methods", default="none,randaugment,trivialaugment,autoaugment")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--dataset", default="fashion-mnist")
    ap.add_argument("--train-size", type=int, default=6000)
    ap.add_argument("--model", default="small_cnn")
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--space", default="standard", help="search space for searchers (default: standard)")
    ap.add_argument("--epsilon", type=float, default=None, help="MCMC margin (default: the searcher's)")
    ap.add_argument("--constraint", default=None, help="MCMC constraint: single or per_op")
    ap.add_argument(
        "--test-every", type=int, default=5, help="test-set evaluation every k epochs (and the last)"
    )
    ap.add_argument("--out", default="results/baselines")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args()

    out = Path(args.out)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    seeds = [int(s) for s in args.seeds.split(",")]
    results: dict[str, dict] = {}
    for method in methods:
        per_seed = []
        for seed in seeds:
            rows = run_one(method, seed, args, out)
            last = rows[-1]
            speed = statistics.mean(r["images_per_s"] for r in rows)
            seconds = sum(r["seconds"] for r in rows)
            search = out / "runs" / f"{method}_s{seed}" / "search" / "metrics.jsonl"
            if method == "bilevel" and search.is_file():  # the search's epochs count too
                seconds += sum(
                    json.loads(line)["seconds"] for line in search.read_text().splitlines() if line.strip()
                )
            per_seed.append({"seed": seed, "test_acc": last["test_acc"], "val_acc": last.get("val_acc"),
                             "images_per_s": speed, "seconds": seconds})  # fmt: skip
        accs = [r["test_acc"] for r in per_seed]
        results[method] = {
            "runs": per_seed,
            "test_acc_mean": statistics.mean(accs),
            "test_acc_std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
            "images_per_s": statistics.mean(r["images_per_s"] for r in per_seed),
            "seconds_per_run": statistics.mean(r["seconds"] for r in per_seed),
        }
        if method in SEARCHERS:
            policy_path = (
                out
                / "runs"
                / f"{method}_s{seeds[0]}"
                / ("search/policy.json" if method == "bilevel" else "policy.json")
            )
            if policy_path.is_file():
                results[method]["policy"] = str(policy_path)

    machine = (f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}, "
               + (torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"))  # fmt: skip
    summary = {
        "setting": {
            k: getattr(args, k)
            for k in ("dataset", "train_size", "model", "epochs", "batch_size", "lr", "space")
        },
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
    lines = [
        f"{args.dataset}, {args.train_size} training images, {args.model}, {args.epochs} epochs, "
        f"seeds {','.join(map(str, seeds))}; {machine}",
        "",
        "| method | test accuracy (mean ± std) | per seed | train images/s | × none |",
        "|---|---|---|---|---|",
    ]
    for method, r in results.items():
        per = ", ".join(f"{x['test_acc']:.4f}" for x in r["runs"])
        ratio = f"{r['images_per_s'] / base:.2f}" if base else "-"
        lines.append(f"| {method} | {r['test_acc_mean']:.4f} ± {r['test_acc_std']:.4f} | {per} | "
                     f"{r['images_per_s']:,.0f} | {ratio} |")  # fmt: skip
    if "kept" in summary:
        k = summary["kept"]
        lines += ["", f"Rows kept from an earlier run ({', '.join(k['methods'])}): {k['machine']}."]
    table = "\n".join(lines)
    (out / "results.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
