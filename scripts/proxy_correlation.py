"""Does the optuna searcher's proxy predict the accuracy of a full training? (issue 15)

Over a set of policies (no augmentation, torchvision's fixed policies, a horizontal flip alone,
a hand-made flip + translate + erasing, and random draws from the ``families`` space of
``symmetry``), this script puts side by side

* the test accuracy of a full training with each policy, one seed: ``autoaug train`` on reduced
  Fashion-MNIST as ``scripts/bench_accuracy.py`` runs it (6,000 images, small_cnn, 15 epochs,
  SGD-Nesterov lr 0.1 cosine, batch 128; ``bench_accuracy.run_one``, so finished runs are reused);
* the proxy's scores of the same policies: the density-matching proxy (Fast AutoAugment, Lim et
  al., NeurIPS 2019; :mod:`autoaug.search.density`), one model trained once without
  augmentation on part of the same 6,000 images, each policy scored on the rest, augmented,

and the Spearman rank correlation between each score and the test accuracy. Writes
``OUT/results.json`` and ``OUT/results.md``; the runs go to ``OUT/runs/``.

Rows of no augmentation and the fixed policies are taken from an earlier
``results/accuracy/results.json`` of the same setting where it has them (``--reuse``; ``--reuse ''``
trains them here too).

Run (the trainings take 2-4 minutes each on 2 CPU cores; in the background)::

    nohup .venv/bin/python scripts/proxy_correlation.py > results/proxy_correlation_log.txt 2>&1 &
    .venv/bin/python scripts/proxy_correlation.py --skip train   # the scores only, once trained
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time
from pathlib import Path

import optuna
import torch

from autoaug.policy import OpEntry, Policy, atomic_write_text, load_policy
from autoaug.search import OptunaConfig
from autoaug.search.optuna import policy_from_params, suggest_params

SETTINGS = {
    "reduced": {"dataset": "fashion-mnist", "train_size": 6000, "model": "small_cnn", "epochs": 15,
                "batch_size": 128, "lr": 0.1},
    # bench_accuracy's low-data setting: 1,000 images, 60 epochs, where the policies' gaps are wider
    "lowdata": {"dataset": "fashion-mnist", "train_size": 1000, "model": "small_cnn", "epochs": 60,
                "batch_size": 128, "lr": 0.1},
}  # fmt: skip
SETTING = dict(SETTINGS["reduced"])  # the one this run measures (--setting)
FIXED = ("none", "randaugment", "trivialaugment", "autoaugment")


def handmade() -> Policy:
    """What a practitioner tries first on Fashion-MNIST (issue 16): a flip, small shifts (up to
    about 4 px at 28 px, as a pad-4 random crop), random erasing, each half of the time."""
    shift = [1.0] * 8  # levels 0 .. 0.3 of translate's 150/331 of the size: up to ~3.8 px
    levels = tuple(k / 7 * 0.3 for k in range(8))
    return Policy(
        [[OpEntry("hflip", 1.0, 0.5)],
         [OpEntry("translate_x", 1.0, 0.5, levels, tuple(shift))],
         [OpEntry("translate_y", 1.0, 0.5, levels, tuple(shift))],
         [OpEntry("erasing", 1.0, 0.5, (0.5,), (1.0,))]],
        space="symmetry", interpolation="nearest", name="flip_shift_erase",
    )  # fmt: skip


def random_policies(n: int, seed: int, distinct: bool = False) -> list[Policy]:
    """``n`` uniform random draws from the ``families`` space of ``symmetry``; with ``distinct``,
    draws that change no image (probability 0, no family: copies of ``none``) are drawn again."""
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    out: list[Policy] = []
    while len(out) < n:
        trial = study.ask()
        params = suggest_params(trial, "families", "symmetry")
        study.tell(trial, 0.0)
        policy = policy_from_params(params, "families", "symmetry", "bilinear", name=f"random{len(out)}")
        if distinct and not any(e.op != "identity" and e.prob > 0 for stage in policy.stages for e in stage):
            continue
        policy.meta = {"params": params}
        out.append(policy)
    return out


def policies(out: Path, n_random: int, seed: int, distinct: bool = False) -> dict[str, str]:
    """Name -> policy (a built-in name or a file written under ``OUT/policies/``)."""
    folder = out / "policies"
    folder.mkdir(parents=True, exist_ok=True)
    made = [Policy([[OpEntry("hflip", 1.0, 0.5)]], space="symmetry", name="hflip"), handmade()]
    made += random_policies(n_random, seed, distinct)
    named = {name: name for name in FIXED}
    for p in made:
        path = folder / f"{p.name}.json"
        p.save(path)
        named[p.name] = str(path)
    # Trained in this order (the most telling first, where the cores are slow): near-identity
    # draws and the check of `none` last.
    if (out / "search" / "search_cost.json").is_file():  # the searcher's own pick, once it has run
        named["optuna_best"] = str(out / "search" / "policy.json")
    order = ["hflip", "random0", "random2", "random3", "optuna_best", "random5", "flip_shift_erase", "random1",
             "random4"]  # fmt: skip
    return {k: named[k] for k in FIXED} | {k: named[k] for k in order if k in named} | named


def earlier_rows(path: Path) -> dict[str, float]:
    """Seed-0 test accuracies of the fixed policies in an earlier bench_accuracy run of this setting."""
    if not path.is_file():
        return {}
    data = json.loads(path.read_text())
    setting = data.get("setting", {})
    if any(setting.get(k) != v for k, v in SETTING.items()):
        return {}
    rows = {}
    for name in FIXED:
        runs = data.get("methods", {}).get(name, {}).get("runs", [])
        rows.update({name: r["test_acc"] for r in runs if r["seed"] == 0})  # noqa: B035
    return rows


def run_dir(out: Path, name: str, seed: int = 0) -> Path:
    return out / "runs" / f"{name}_s{seed}"


def _finished(run: Path) -> list[dict] | None:
    metrics = run / "metrics.jsonl"
    rows = [json.loads(x) for x in metrics.read_text().splitlines() if x.strip()] if metrics.is_file() else []
    return rows if len(rows) >= SETTING["epochs"] and (run / "model.pt").is_file() else None


def run_one(policy: str, seed: int, out: Path, label: str, quiet: bool) -> list[dict]:
    """``autoaug train`` as ``scripts/bench_accuracy.py`` runs a fixed policy (test every 5 epochs
    and after the last); a finished run is reused, a killed one resumed."""
    from autoaug.train import TrainConfig, Trainer

    run = run_dir(out, label, seed)
    done = _finished(run)
    if done:
        return done
    cfg = TrainConfig(policy=policy, seed=seed, device="auto", out=str(run), progress=not quiet, test_every=5,
                      **SETTING)  # fmt: skip
    Trainer(cfg).fit(resume=(run / "checkpoint.pt").is_file())
    return _finished(run) or []


def train_all(named: dict[str, str], out: Path, reuse: dict[str, float], quiet: bool) -> dict[str, dict]:
    results = {}
    for name, policy in named.items():
        if name in reuse:
            results[name] = {"test_acc": reuse[name], "source": "results/accuracy/results.json (seed 0)"}
            continue
        t0 = time.perf_counter()
        rows = run_one(policy, 0, out, name, quiet)
        results[name] = {"test_acc": rows[-1]["test_acc"], "seconds": sum(r["seconds"] for r in rows),
                         "source": str(run_dir(out, name, 0))}  # fmt: skip
        print(f"{name}: test {rows[-1]['test_acc']:.4f} ({time.perf_counter() - t0:.0f}s)", flush=True)
    return results


def trained(named: dict[str, str], out: Path, reuse: dict[str, float]) -> dict[str, dict]:
    """The test accuracies of the finished runs (and the reused rows)."""
    results = {}
    for name in named:
        if name in reuse:
            results[name] = {"test_acc": reuse[name], "source": "results/accuracy/results.json (seed 0)"}
            continue
        metrics = run_dir(out, name, 0) / "metrics.jsonl"
        rows = [json.loads(x) for x in metrics.read_text().splitlines()] if metrics.is_file() else []
        if len(rows) >= SETTING["epochs"]:
            results[name] = {"test_acc": rows[-1]["test_acc"], "seconds": sum(r["seconds"] for r in rows),
                             "source": str(run_dir(out, name, 0))}  # fmt: skip
    return results


def spearman(a: list[float], b: list[float]) -> float:
    """Spearman's rank correlation (ties get their mean rank)."""

    def ranks(v: list[float]) -> list[float]:
        order = sorted(range(len(v)), key=lambda i: v[i])
        r = [0.0] * len(v)
        i = 0
        while i < len(v):
            j = i
            while j + 1 < len(v) and v[order[j + 1]] == v[order[i]]:
                j += 1
            for k in range(i, j + 1):
                r[order[k]] = (i + j) / 2
            i = j + 1
        return r

    ra, rb = ranks(a), ranks(b)
    ma, mb = sum(ra) / len(ra), sum(rb) / len(rb)
    cov = sum((x - ma) * (y - mb) for x, y in zip(ra, rb))
    sa = math.sqrt(sum((x - ma) ** 2 for x in ra))
    sb = math.sqrt(sum((y - mb) ** 2 for y in rb))
    return cov / (sa * sb) if sa and sb else math.nan


def permutation_p(a: list[float], b: list[float], rounds: int = 10_000, seed: int = 0) -> float:
    """How often a random pairing of ``a`` with ``b`` ranks at least as concordantly (one-sided)."""
    import random

    rng, observed = random.Random(seed), spearman(a, b)
    shuffled, hits = list(b), 0
    for _ in range(rounds):
        rng.shuffle(shuffled)
        hits += spearman(a, shuffled) >= observed - 1e-12
    return (hits + 1) / (rounds + 1)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--setting", choices=sorted(SETTINGS), default="reduced",
                    help="reduced (6,000 images, 15 epochs) or lowdata (1,000 images, 60 epochs)")  # fmt: skip
    ap.add_argument("--out", help="default: results/proxy_correlation, or ..._lowdata for --setting lowdata")
    ap.add_argument("--random", type=int, default=6, help="random policies from the families space")
    ap.add_argument("--seed", type=int, default=0, help="seed of the random policies")
    ap.add_argument("--reuse", default=None,
                    help="take the fixed policies' seed-0 rows from this bench_accuracy result ('' for none; "
                         "default results/accuracy/results.json in the reduced setting, none in lowdata)")  # fmt: skip
    ap.add_argument("--skip", nargs="*", default=[], choices=["train", "score"])
    ap.add_argument("--only", default="", help="train only these policies (comma-separated names)")
    ap.add_argument(
        "--distinct",
        action="store_true",
        help="draw again the random policies that change no image (copies of none)",
    )
    ap.add_argument("--quiet", action="store_true")
    ap.add_argument("--base-hflip", action="store_true",
                    help="also score with a proxy model trained with a horizontal flip (exploratory)")  # fmt: skip
    args = ap.parse_args(argv)
    SETTING.clear()
    SETTING.update(SETTINGS[args.setting])
    low = args.setting == "lowdata"
    out = Path(args.out or ("results/proxy_correlation_lowdata" if low else "results/proxy_correlation"))
    if args.reuse is None:
        args.reuse = "" if low else "results/accuracy/results.json"
    named = policies(out, args.random, args.seed, args.distinct)
    reuse = earlier_rows(Path(args.reuse)) if args.reuse else {}
    if "train" not in args.skip:
        only = [n for n in args.only.split(",") if n]
        train_all({k: v for k, v in named.items() if not only or k in only}, out, reuse, args.quiet)
    results = trained(named, out, reuse)
    if "score" not in args.skip:
        score_all(named, results, out, base=args.base_hflip)


SEARCH = {"space": "symmetry", "optuna_space": "families", "proxy": "density", "n_trials": 20}
MEASURES = ("best_of_1", "best_of_2", "best_of_3", "best_of_5", "acc", "neg_loss", "neg_min_loss")


def search_config(out: Path):
    from autoaug.search import SearchConfig

    return SearchConfig.of(
        method="optuna", seed=0, progress=False, out=str(out / "search"), **SETTING, **SEARCH
    )


def search(out: Path) -> dict:
    """The optuna searcher with its defaults on this setting (seed 0): its best policy and its cost.
    A finished study is reused (its cost then comes from the first run's record)."""
    from autoaug.search import get_searcher

    cfg = search_config(out)
    record = out / "search" / "search_cost.json"
    if record.is_file():
        return json.loads(record.read_text())
    t0 = time.perf_counter()
    result = get_searcher("optuna")(cfg).run()
    wall = time.perf_counter() - t0
    rows = [json.loads(x) for x in (out / "search" / "metrics.jsonl").read_text().splitlines()]
    fit = json.loads((out / "search" / "proxy" / "metrics.jsonl").read_text().splitlines()[-1])
    fit_rows = [json.loads(x) for x in (out / "search" / "proxy" / "metrics.jsonl").read_text().splitlines()]
    fit_seconds = sum(r["seconds"] for r in fit_rows)
    # A plain run trains 5,400 images (6,000 less 10% validation) for as many epochs as the proxy
    # model trains its 3,000 (whole batches only): its cost at the proxy model's own throughput,
    # measured under the same load.
    batch, epochs = SETTING["batch_size"], SETTING["epochs"]
    plain_images = round(SETTING["train_size"] * 0.9) // batch * batch * epochs
    fit_images = round(SETTING["train_size"] * (1 - cfg.optuna.proxy_holdout)) // batch * batch * epochs
    plain_estimate = fit_seconds * plain_images / fit_images
    cost = {
        "wall_s": wall,
        "proxy_fit_s": fit_seconds,
        "trials_s": sum(r["seconds"] or 0 for r in rows),
        "plain_run_estimate_s": plain_estimate,
        "ratio_to_plain": wall / plain_estimate,
        "best_trial": result.summary["best_trial"],
        "best_score": result.metrics["score"],
        "policy": str(out / "search" / "policy.json"),
        "params": result.policy.meta.get("params"),
        "proxy_clean_acc": fit.get("test_acc"),
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
    }
    atomic_write_text(record, json.dumps(cost, indent=2) + "\n")
    return cost


def score_policies(named: dict[str, str], out: Path, base: bool = False) -> dict[str, dict]:
    """Every policy's scores (5 draws) by the search's proxy model, or (``base``) by one trained
    the same way but with a horizontal flip half of the time, as Fast AA trains its model with
    the task's standard augmentation. Cached in ``OUT/scores.json`` (``scores_base_hflip.json``)."""
    import dataclasses

    from autoaug.data import load_dataset
    from autoaug.search.density import DensityProxy
    from autoaug.search.optuna import density_proxy
    from autoaug.train import TrainConfig

    cache = out / ("scores_base_hflip.json" if base else "scores.json")
    scores = json.loads(cache.read_text()) if cache.is_file() else {}
    todo = [n for n in named if n not in scores]
    if todo:
        cfg = search_config(out)
        data = load_dataset(cfg.dataset, train_size=cfg.train_size, val_size=cfg.val_size, seed=cfg.seed)
        if base:
            flip = Policy([[OpEntry("hflip", 1.0, 0.5)]], space="symmetry", name="hflip")
            train = {k: v for k, v in dataclasses.asdict(cfg).items()
                     if k in TrainConfig.fields() and k not in ("out", "dataset", "seed")}  # fmt: skip
            proxy = DensityProxy(data, holdout=cfg.optuna.proxy_holdout, draws=5, seed=cfg.seed, base=flip,
                                 out=out / "proxy_base_hflip", **train)  # fmt: skip
        else:
            proxy = density_proxy(cfg, data, draws=5)
        fitted = proxy.fit()
        print(
            f"proxy model: {'loaded' if fitted['reused'] else 'trained'}, clean {fitted['clean_acc']:.4f}",
            flush=True,
        )
        for name in todo:
            sc = proxy.score(load_policy(named[name]))
            scores[name] = {"best_of_1": sc["best_of"][0], "best_of_2": sc["best_of"][1], "best_of_3": sc["best_of"][2],
                            "best_of_5": sc["best_of"][4], "acc": sc["acc"], "neg_loss": -sc["loss"],
                            "neg_min_loss": -sc["min_loss"], "seconds": sc["seconds"], "forwards": sc["forwards"]}  # fmt: skip
            print(f"{name}: {scores[name]}", flush=True)
            atomic_write_text(cache, json.dumps(scores, indent=1) + "\n")
    return scores


def correlations(names: list[str], scores: dict, results: dict) -> tuple[dict, dict]:
    accs = [results[n]["test_acc"] for n in names]
    corr = {m: spearman([scores[n][m] for n in names], accs) for m in MEASURES}
    return corr, {m: permutation_p([scores[n][m] for n in names], accs) for m in MEASURES}


def score_all(named: dict[str, str], results: dict[str, dict], out: Path, base: bool = False) -> None:
    """Score every policy with the search's proxy model (5 draws), then the rank correlations."""
    cost = search(out)
    named = named | {"optuna_best": cost["policy"]}  # (named holds it already where the search ran before)
    scores = score_policies(named, out)
    have = [n for n in named if n in results and n in scores]
    # The set (no augmentation, the fixed policies, hflip, random draws) and that set with
    # the searcher's own pick, which the proxy chose (so it is not a neutral sample).
    sets = {"without the searched policy": [n for n in have if n != "optuna_best"], "all trained": have}
    corr, p_value = {}, {}
    for label, names in sets.items():
        corr[label], p_value[label] = correlations(names, scores, results)
    flipped = score_policies(named, out, base=True) if base else None
    if flipped:
        for label, names in sets.items():
            corr[f"{label}, base hflip"], p_value[f"{label}, base hflip"] = correlations(
                names, flipped, results
            )
    summary = {"setting": SETTING, "search": SEARCH, "policies": {n: {"policy": named[n], **results.get(n, {}),
               "scores": scores[n]} for n in named}, "spearman": corr, "p_one_sided": p_value,
               "n": {k: len(v) for k, v in sets.items()}, "search_cost": cost,
               "machine": f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}"}  # fmt: skip
    atomic_write_text(out / "results.json", json.dumps(summary, indent=2) + "\n")
    half = SETTING["train_size"] // 2
    scored = min(half, OptunaConfig().proxy_images or half)  # the searcher's sample of the held-out images
    reused = sorted(
        n for n in named if "source" in results.get(n, {}) and "results.json" in results[n]["source"]
    )
    lines = [f"Fashion-MNIST, {SETTING['train_size']} training images ({SETTING['model']}, {SETTING['epochs']} epochs, "
             f"seed 0); proxy: density matching, one {SETTING['model']} trained {SETTING['epochs']} epochs on {half:,} "
             f"images, each policy scored on {scored:,} of the other {half:,}, 5 augmented draws each. "
             + (f"Test accuracies of {', '.join(reused)}: seed 0 of an earlier bench_accuracy run of the same setting; "
                if reused else "")
             + "the trainings: `autoaug train` here (`OUT/runs/`), one seed.", "",
             "| policy | test accuracy (full training) | best of 1 (mean acc of one draw) | best of 3 | best of 5 | "
             "mean acc (5 draws) | mean loss |", "|---|---|---|---|---|---|---|"]  # fmt: skip
    for n in sorted(named, key=lambda k: -results.get(k, {}).get("test_acc", -1)):
        sc, acc = scores[n], results.get(n, {}).get("test_acc")
        lines.append(f"| {n} | {f'{acc:.4f}' if acc is not None else 'not trained'} | {sc['best_of_1']:.4f} | "
                     f"{sc['best_of_3']:.4f} | {sc['best_of_5']:.4f} | {sc['acc']:.4f} | {-sc['neg_loss']:.4f} |")  # fmt: skip
    a, b = sets
    lines += ["", "Spearman rank correlation of each score with the test accuracy (one-sided permutation p-value, "
              "10,000 permutations):", "",
              f"| score | {a} ({len(sets[a])} policies) | {b} ({len(sets[b])}) |", "|---|---|---|"]  # fmt: skip
    default = f"best_of_{OptunaConfig().proxy_draws}" if OptunaConfig().proxy_score == "best" else ""
    lines += [f"| {m}{' (the default)' if m == default else ''} | {corr[a][m]:+.2f} (p {p_value[a][m]:.2f}) | "
              f"{corr[b][m]:+.2f} (p {p_value[b][m]:.2f}) |" for m in MEASURES]  # fmt: skip
    if flipped:
        a2, b2 = f"{a}, base hflip", f"{b}, base hflip"
        lines += ["", "Exploratory (chosen after seeing the table above): the proxy model trained with a horizontal "
                  "flip half of the time (`--base-hflip`), the same policies and draws:", "",
                  f"| score | {a} | {b} |", "|---|---|---|"]  # fmt: skip
        lines += [f"| {m} | {corr[a2][m]:+.2f} (p {p_value[a2][m]:.2f}) | {corr[b2][m]:+.2f} (p {p_value[b2][m]:.2f}) |"
                  for m in MEASURES]  # fmt: skip
    lines += ["", f"Search (20 trials, defaults): {cost['wall_s']:.0f} s wall, of which the proxy model "
              f"{cost['proxy_fit_s']:.0f} s and the trials {cost['trials_s']:.0f} s; a plain run at the proxy "
              f"model's throughput {cost['plain_run_estimate_s']:.0f} s: {cost['ratio_to_plain']:.2f}x a plain run "
              f"(2 shared CPU cores, load average {cost['load_average_at_end']}: rough)."]  # fmt: skip
    atomic_write_text(out / "results.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
