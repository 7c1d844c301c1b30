"""Copy the searchers' policies of an accuracy benchmark into ``policies/``, with their provenance.

For each searcher of a ``bench_accuracy.py`` run (``OUT/results.json`` and ``OUT/runs/``), the
policy its search learned with ``--seed`` (the seed is chosen here, never the best test
accuracy: picking by test accuracy would select on the test set) becomes
``policies/DATASET_METHOD.json``; its ``meta`` gains where it came from (dataset, method,
space, seed, the benchmark's setting and command) and what the plain-loop retraining measured
(this seed's test accuracy, the method's mean ± std over the seeds, the best fixed policy's
mean in the same table).

Run:
    python scripts/ship_policies.py results/accuracy_cpu            # seed 0's policies
    python scripts/ship_policies.py results/accuracy_cpu --seed 1 --methods mcmc
    python scripts/ship_policies.py results/accuracy_cpu --methods "mcmc[export=prior]"  # a variant's row

A variant's row (``mcmc[export=prior]``) ships as its searcher's file (``DATASET_mcmc.json``);
``meta.row`` names the row, ``meta.settings`` its settings.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
from pathlib import Path

from autoaug.policy import atomic_write_text

ROOT = Path(__file__).resolve().parents[1]
SEARCHERS = ("mcmc", "bilevel", "optuna")
FIXED = ("none", "hflip", "hflip-crop-erase", "randaugment", "trivialaugment", "autoaugment")


@functools.cache
def _bench_accuracy():
    """scripts/bench_accuracy.py, for how it names a row's settings and run folders."""
    spec = importlib.util.spec_from_file_location("bench_accuracy", ROOT / "scripts" / "bench_accuracy.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def provenance(results: dict, method: str, seed: int, bench_dir: Path) -> dict:
    """What a shipped policy's ``meta`` says of where it came from and how it did."""
    rows = results["methods"]
    row = rows[method]
    run = next((r for r in row["runs"] if r["seed"] == seed), None)
    if run is None:
        raise SystemExit(
            f"{bench_dir}: no {method} run with seed {seed} (seeds: {[r['seed'] for r in row['runs']]})"
        )
    fixed = {m: rows[m]["test_acc_mean"] for m in FIXED if m in rows}
    best = max(fixed, key=fixed.get) if fixed else None
    setting = results["setting"]
    bench = _bench_accuracy()
    [(_, searcher, overrides)] = bench.parse_methods(method)
    return {
        "dataset": setting["dataset"],
        "method": searcher,
        **({"row": method, "settings": overrides} if method != searcher else {}),
        "space": setting["space"],
        "seed": seed,
        "setting": {k: setting[k] for k in ("train_size", "model", "epochs", "batch_size", "lr")},
        "command": f"{results['command']}  (the search of seed {seed}: "
        f"{bench_dir.name}/runs/{bench.run_name(method)}_s{seed}/search)",
        "retrained": {
            "by": "scripts/plain_train.py (torch and torchvision only), the exported policy_tv.py",
            "test_acc": run["test_acc"],
            "method_mean": round(row["test_acc_mean"], 4),
            "method_std": round(row["test_acc_std"], 4),
            "seeds": results["seeds"],
            "best_fixed": best,
            "best_fixed_mean": round(fixed[best], 4) if best else None,
            "machine": results["machine"],
        },
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("bench", type=Path, help="a bench_accuracy.py output folder (results.json, runs/)")
    ap.add_argument("--seed", type=int, default=0, help="whose search's policy ships (default 0)")
    ap.add_argument("--methods", default=",".join(SEARCHERS), help="searchers to ship (default: all three)")
    ap.add_argument("--out", type=Path, default=ROOT / "policies", help="where the policy files go")
    args = ap.parse_args(argv)
    results_path = args.bench / "results.json"
    if not results_path.is_file():
        raise SystemExit(f"{results_path}: not found; run scripts/bench_accuracy.py first")
    results = json.loads(results_path.read_text())
    for method in filter(None, args.methods.split(",")):
        if method not in results["methods"]:
            raise SystemExit(f"{results_path}: no row for {method!r} (rows: {', '.join(results['methods'])})")
        meta = provenance(results, method, args.seed, args.bench)
        src = _bench_accuracy().run_dir(args.bench, method, args.seed) / "search" / "policy.json"
        if not src.is_file():
            raise SystemExit(f"{src}: not found (the benchmark's runs/ folder is kept where it ran)")
        policy = json.loads(src.read_text())
        policy.setdefault("meta", {}).update(meta)
        dest = args.out / f"{results['setting']['dataset']}_{meta['method']}.json"
        atomic_write_text(dest, json.dumps(policy, indent=2) + "\n")
        r = policy["meta"]["retrained"]
        print(f"{dest}: {method} seed {args.seed}, retrained {r['test_acc']:.4f} "
              f"(mean {r['method_mean']:.4f}; best fixed {r['best_fixed']} {r['best_fixed_mean']})")  # fmt: skip


if __name__ == "__main__":
    main()
