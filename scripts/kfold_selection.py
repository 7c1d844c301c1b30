"""Would cross-validation over all the training images choose the policy? (issue 16)

``scripts/selection_power.py`` found that the validation split (100 images in the low-data
setting) cannot tell the policies apart. A user's other way is k-fold cross-validation: train
each candidate N times, each time holding out one of N class-proportional folds of the drawn
images, so that every image is scored once (``plain_train.py --fold K/N``). This script runs
that for a list of policies and compares the cross-validated accuracy with the test accuracy of
full trainings that an accuracy benchmark already made (``--reference``, a
``bench_accuracy.py`` results.json of the same setting): the Spearman correlation across the
policies, the policy cross-validation picks and its regret (how far under the best policy's
mean test accuracy it lands), beside the same for the validation split of each reference seed.

The runs go to ``OUT/runs/`` and are reused; split the policies between processes pinned to
cores, then run once with all of them to gather the table. Writes ``OUT/results.json`` and
``OUT/results.md``.

Run::

    python scripts/kfold_selection.py --policies none,hflip,autoaugment,trivialaugment,randaugment,randaugment[num_ops=3] \\
        --reference results/accuracy_lowdata_amd/results.json --out results/kfold_selection
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, HERE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_path(out: Path, policy: str, fold: int, folds: int, seed: int) -> Path:
    return out / "runs" / f"{re.sub(r'[^A-Za-z0-9]+', '-', policy).strip('-')}_s{seed}_f{fold}of{folds}.json"


def cross_validate(policy: str, args: argparse.Namespace, out: Path) -> dict:
    """The policy's N fold runs (trained where not already on disk) and its cross-validated
    accuracy: the held-out images right over all folds, each image held out once."""
    plain_train = _load("plain_train")
    runs = []
    for k in range(args.folds):
        path = run_path(out, policy, k, args.folds, args.seed)
        if not path.is_file():
            argv = ["--policy", policy, "--fold", f"{k}/{args.folds}", "--seed", str(args.seed),
                    "--train-size", str(args.train_size), "--epochs", str(args.epochs), "--data-root", args.data_root,
                    "--workers", str(args.workers), "--threads", str(args.threads), "--quiet", "--out", str(path)]  # fmt: skip
            if plain_train.main(argv) != 0:
                raise RuntimeError(f"plain_train.py {' '.join(argv)} failed")
        runs.append(json.loads(path.read_text()))
    right = sum(r["val_acc"] * r["settings"]["val_images"] for r in runs)
    images = sum(r["settings"]["val_images"] for r in runs)
    return {"cv_acc": right / images, "images": images, "fold_acc": [r["val_acc"] for r in runs],
            "test_acc_of_fold_models": [r["test_acc"] for r in runs]}  # fmt: skip


def analyse(cv: dict[str, dict], reference: dict) -> dict:
    """Cross-validation against the reference's full trainings (module docstring)."""
    spearman = _load("proxy_correlation").spearman
    names = [n for n in cv if n in reference["methods"]]
    if len(names) < 3:
        raise ValueError(f"need at least 3 policies that --reference also has, found {names}")
    runs = {n: reference["methods"][n]["runs"] for n in names}
    test = [sum(r["test_acc"] for r in runs[n]) / len(runs[n]) for n in names]
    best = max(test)

    def choice(scores: list[float]) -> dict:
        pick = max(range(len(names)), key=lambda i: (scores[i], -i))
        return {"spearman": spearman(scores, test), "pick": names[pick], "regret": best - test[pick]}

    out = {"policies": names, "test_mean": dict(zip(names, test)), "best": names[test.index(best)]}
    out["cv"] = choice([cv[n]["cv_acc"] for n in names]) | {"acc": {n: cv[n]["cv_acc"] for n in names}}
    images = cv[names[0]]["images"]
    out["cv"]["binomial_se"] = math.sqrt(best * (1 - best) / images)
    out["validation_split"] = {}
    for seed in reference["seeds"]:
        by = {n: next((r for r in runs[n] if r["seed"] == seed), None) for n in names}
        if all(r is not None and "val_acc" in r for r in by.values()):
            out["validation_split"][seed] = choice([by[n]["val_acc"] for n in names])
    return out


def format_table(a: dict, cv: dict[str, dict], args: argparse.Namespace) -> str:
    lines = [f"{args.folds}-fold cross-validation over the {args.train_size} drawn images (seed {args.seed}, "
             f"{args.epochs} epochs, plain_train.py), against the mean test accuracy of full trainings "
             f"({args.reference})", "",
             "| policy | cross-validated accuracy | per fold | mean test accuracy (reference) |",
             "|---|---|---|---|"]  # fmt: skip
    for n in a["policies"]:
        folds = ", ".join(f"{v:.3f}" for v in cv[n]["fold_acc"])
        lines.append(f"| {n} | {cv[n]['cv_acc']:.4f} | {folds} | {a['test_mean'][n]:.4f} |")
    c = a["cv"]
    lines += ["", "| chosen by | Spearman with test | picks | regret |", "|---|---|---|---|",
              f"| cross-validation ({cv[a['policies'][0]]['images']} images, binomial SE {c['binomial_se']:.4f}) "
              f"| {c['spearman']:+.2f} | {c['pick']} | {c['regret'] * 100:.2f} pt |"]  # fmt: skip
    for seed, v in a["validation_split"].items():
        lines.append(
            f"| validation split, seed {seed} | {v['spearman']:+.2f} | {v['pick']} | {v['regret'] * 100:.2f} pt |"
        )
    return "\n".join(lines) + f"\n\nbest on test: {a['best']}\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--policies", required=True, help="comma-separated plain_train.py policies")
    ap.add_argument("--reference", required=True, metavar="RESULTS.json", help="bench_accuracy.py results")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--train-size", type=int, default=1000)
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--data-root", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--train-only", action="store_true", help="train the fold runs, write no table")
    ap.add_argument("--out", required=True, metavar="DIR")
    args = ap.parse_args(argv)
    policies = [p.strip() for p in re.split(r",(?![^\[]*\])", args.policies) if p.strip()]
    out = Path(args.out)
    try:
        cv = {p: cross_validate(p, args, out) for p in policies}
        if args.train_only:
            return 0
        a = analyse(cv, json.loads(Path(args.reference).read_text()))
    except (OSError, ValueError, RuntimeError) as e:
        print(f"kfold_selection: {e}", file=sys.stderr)
        return 2
    md = format_table(a, cv, args)
    (out / "results.json").write_text(json.dumps({"analysis": a, "cv": cv, "settings": vars(args)}, indent=1))
    (out / "results.md").write_text(
        f"`python scripts/kfold_selection.py {' '.join(sys.argv[1:] if argv is None else argv)}`\n\n{md}"
    )
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
