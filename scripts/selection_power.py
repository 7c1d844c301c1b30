"""Can a task's own validation split choose its augmentation policy? (issue 16)

Every searcher ends up choosing among policies by what the task's data says of them; the best a
searcher that learns from the data could do is to train each candidate with the final schedule
and keep the one its validation split scores highest. This script asks how well that oracle
would choose, from the runs an accuracy benchmark already made: for each ``results.json`` of
``scripts/bench_accuracy.py`` (each method trained in full with seeds 0, 1, 2, and the accuracy
on the run's validation split, on 10,000 held-out development images with ``--dev-size`` and on
the test set recorded per run), per seed,

* the Spearman rank correlation across methods between the validation accuracy and the test
  accuracy (and between the development accuracy and the test accuracy, a validation set 100
  times as large in low data);
* the method the validation split would pick, its test accuracy, and its regret: how far under
  the best method of that seed it lands on the test set (the same with the development set);

and, over all methods, how much the validation accuracy of one method moves from seed to seed
against how far apart the methods' means lie (the binomial standard error of one accuracy on
the split is given beside it).

Writes ``OUT/results.json`` and ``OUT/results.md``. Reads only the given files; trains nothing.

Run::

    python scripts/selection_power.py results/accuracy_cpu_amd/results.json \\
        results/accuracy_lowdata_amd/results.json --out results/selection_power
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import sys
from pathlib import Path

SCORES = ("val_acc", "dev_acc")


def _spearman():
    """``scripts/proxy_correlation.py``'s Spearman correlation (loaded by path, as bench_accuracy
    loads plain_train)."""
    spec = importlib.util.spec_from_file_location(
        "proxy_correlation", Path(__file__).with_name("proxy_correlation.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.spearman


def complete_methods(results: dict) -> dict[str, dict[int, dict]]:
    """The methods with a run of every seed of ``results`` that has a test and a validation
    accuracy: ``{method: {seed: run}}``."""
    seeds = list(results["seeds"])
    table = {}
    for name, method in results["methods"].items():
        runs = {r["seed"]: r for r in method.get("runs", []) if "test_acc" in r and "val_acc" in r}
        if all(s in runs for s in seeds):
            table[name] = {s: runs[s] for s in seeds}
    return table


def _pooled_seed_std(values: dict[str, list[float]]) -> float:
    """The standard deviation of one method's value over seeds, pooled over methods."""
    sq, dof = 0.0, 0
    for v in values.values():
        m = sum(v) / len(v)
        sq += sum((x - m) ** 2 for x in v)
        dof += len(v) - 1
    return math.sqrt(sq / dof) if dof else math.nan


def _std(v: list[float]) -> float:
    m = sum(v) / len(v)
    return math.sqrt(sum((x - m) ** 2 for x in v) / (len(v) - 1)) if len(v) > 1 else math.nan


def analyse(results: dict, val_fraction: float = 0.1) -> dict:
    """How well each score (validation, development accuracy) ranks and picks the methods of one
    benchmark's ``results`` (module docstring).

    Raises:
        ValueError: when fewer than three methods have a run of every seed.
    """
    spearman = _spearman()
    table = complete_methods(results)
    if len(table) < 3:
        raise ValueError(
            f"need at least 3 methods with a run of every seed {results['seeds']}, found {len(table)}"
        )
    names, seeds = sorted(table), list(results["seeds"])
    setting = results.get("setting", {})
    out: dict = {"setting": setting, "machine": results.get("machine"), "methods": names, "seeds": seeds}
    n_val = round(setting["train_size"] * val_fraction) if "train_size" in setting else None
    out["validation_images"] = n_val
    test = {n: [table[n][s]["test_acc"] for s in seeds] for n in names}
    per_seed = []
    for s in seeds:
        t = [table[n][s]["test_acc"] for n in names]
        best = max(range(len(names)), key=lambda i: t[i])
        row = {"seed": s, "best": names[best], "best_test": t[best]}
        for score in SCORES:
            v = [table[n][s].get(score) for n in names]
            if any(x is None for x in v):
                continue
            pick = max(range(len(names)), key=lambda i: (v[i], -i))  # ties: the first name
            row[score] = {"spearman": spearman(v, t), "pick": names[pick], "pick_test": t[pick],
                          "regret": t[best] - t[pick]}  # fmt: skip
        per_seed.append(row)
    out["per_seed"] = per_seed
    noise = {}
    for score in ("test_acc", *SCORES):
        values = {n: [table[n][s].get(score) for s in seeds] for n in names}
        if any(x is None for v in values.values() for x in v):
            continue
        means = [sum(v) / len(v) for v in values.values()]
        noise[score] = {"seed_std": _pooled_seed_std(values), "between_methods_std": _std(means),
                        "range_of_means": max(means) - min(means)}  # fmt: skip
    if n_val:
        p = sum(sum(v) for v in test.values()) / (len(names) * len(seeds))
        noise["val_acc"]["binomial_se"] = math.sqrt(p * (1 - p) / n_val)
    out["noise"] = noise
    return out


def _fmt(x: float | None, digits: int = 4) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def format_table(path: str, a: dict) -> str:
    """One benchmark's analysis as Markdown."""
    s = a["setting"]
    lines = [f"### {path}", "",
             f"{s.get('dataset')}, {s.get('train_size')} training images ({a['validation_images']} of them the "
             f"validation split), {s.get('epochs')} epochs; {len(a['methods'])} methods, seeds "
             f"{', '.join(map(str, a['seeds']))}; {a['machine']}", "",
             "| seed | best on test | validation: Spearman | picks | its test (regret) "
             "| development: Spearman | picks | its test (regret) |",
             "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in a["per_seed"]:
        cells = [str(r["seed"]), f"{r['best']} {_fmt(r['best_test'])}"]
        for score in SCORES:
            c = r.get(score)
            cells += ["-", "-", "-"] if c is None else [
                f"{c['spearman']:+.2f}", c["pick"], f"{_fmt(c['pick_test'])} ({c['regret'] * 100:.2f} pt)"]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "| accuracy on | one method, seed to seed (std) | between the methods' means (std) "
              "| range of the means | binomial SE of one accuracy |", "|---|---|---|---|---|"]  # fmt: skip
    for score, n in a["noise"].items():
        lines.append(f"| {score.removesuffix('_acc')} | {_fmt(n['seed_std'])} | {_fmt(n['between_methods_std'])} "
                     f"| {_fmt(n['range_of_means'])} | {_fmt(n.get('binomial_se'))} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("results", nargs="+", metavar="RESULTS.json", help="bench_accuracy.py results files")
    ap.add_argument(
        "--val-fraction",
        type=float,
        default=0.1,
        help="the validation split's share (plain_train's --val-size)",
    )
    ap.add_argument("--out", required=True, metavar="DIR")
    args = ap.parse_args(argv)
    analyses, md = {}, ["# Can the validation split choose the policy?", "",
                        f"`python scripts/selection_power.py {' '.join(args.results)} --out {args.out}`", ""]  # fmt: skip
    for path in args.results:
        try:
            results = json.loads(Path(path).read_text())
            analyses[path] = analyse(results, args.val_fraction)
        except (OSError, ValueError, KeyError) as e:
            print(f"selection_power: {path}: {e}", file=sys.stderr)
            return 2
        md.append(format_table(path, analyses[path]))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(analyses, indent=1))
    (out / "results.md").write_text("\n".join(md))
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
