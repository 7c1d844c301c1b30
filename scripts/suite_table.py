"""One table of ``scripts/bench_accuracy.py`` runs over several tasks: every method's test mean per
task side by side, its mean over the tasks, and how each searcher stands against the fixed
policies task by task.

Reads ``DIR/TASK/results.json`` for every task folder under ``DIR`` (``bench_accuracy.py
--setting synthetic --dataset TASK --out DIR/TASK``); writes ``DIR/summary.json`` and
``DIR/summary.md``. For a searcher, per task: the gap to the best fixed policy of that task (the
best of ``none``, ``hflip``, ``hflip-crop-erase``, ``randaugment``, ``trivialaugment``,
``autoaugment`` that were run), and over the tasks: on how many it is within 1 point of that
best (``within 1``), at least 1 point above it (``+1``), and its mean gap to RandAugment. A
task of the symmetry suite has its label-changing ops named under the table (the suite's
declared ground truth, ``breaks`` or ``partial``).

Run:
    python scripts/suite_table.py results/accuracy_synthetic_heldout
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

FIXED = ("none", "hflip", "hflip-crop-erase", "randaugment", "trivialaugment", "autoaugment")
SEARCHERS = ("mcmc", "bilevel", "optuna")


def load(directory: Path) -> dict[str, dict]:
    """task -> its results.json, for every task folder of ``directory`` that has one."""
    found = {p.parent.name: json.loads(p.read_text()) for p in sorted(directory.glob("*/results.json"))}
    if not found:
        raise SystemExit(
            f"{directory}: no TASK/results.json under it (bench_accuracy.py --out {directory}/TASK)"
        )
    return found


def summarize(results: dict[str, dict]) -> dict:
    """Per method, the test means per task and over the tasks; per searcher, its standing."""
    tasks = list(results)
    methods: list[str] = []
    for r in results.values():
        methods += [m for m in r["methods"] if m not in methods]
    table = {m: {t: results[t]["methods"][m]["test_acc_mean"] for t in tasks if m in results[t]["methods"]}
             for m in methods}  # fmt: skip
    best_fixed = {}
    for t in tasks:
        fixed = {m: table[m][t] for m in FIXED if t in table.get(m, {})}
        if fixed:
            best_fixed[t] = max(fixed.items(), key=lambda kv: kv[1])
    standing = {}
    for m in methods:
        if m.split("[")[0] not in SEARCHERS or any(t not in table[m] for t in best_fixed):
            continue
        gaps = {t: table[m][t] - best_fixed[t][1] for t in best_fixed}
        ra = [table[m][t] - table["randaugment"][t] for t in tasks if t in table.get("randaugment", {})]
        standing[m] = {
            "gap_to_best_fixed": gaps,
            "within_1_point": sum(g >= -0.01 for g in gaps.values()),
            "plus_1_point": sum(g >= 0.01 for g in gaps.values()),
            "mean_gap_to_randaugment": statistics.mean(ra) if ra else None,
        }
    means = {m: statistics.mean(v.values()) for m, v in table.items() if len(v) == len(tasks)}
    return {"tasks": tasks, "table": table, "mean_over_tasks": means,
            "best_fixed": {t: {"method": b[0], "test_acc": b[1]} for t, b in best_fixed.items()},
            "searchers": standing}  # fmt: skip


def breaking_ops(task: str) -> str:
    """The ops a suite task declares label-changing, or '' for a task outside the suite."""
    try:
        from autoaug.data.suite import SUITE
    except ImportError:  # the table needs nothing else from autoaug
        return ""
    if task not in SUITE:
        return ""
    truth = SUITE[task].truth
    return ", ".join(f"{op}" + (" (past a magnitude)" if v == "partial" else "")
                     for op, v in sorted(truth.items()) if v in ("breaks", "partial"))  # fmt: skip


def format_table(summary: dict, setting: str) -> str:
    tasks = summary["tasks"]
    lines = [setting, "", "| method | " + " | ".join(tasks) + " | mean |", "|---" * (len(tasks) + 2) + "|"]
    for m, row in summary["table"].items():
        cells = []
        for t in tasks:
            v = row.get(t)
            best = summary["best_fixed"].get(t, {}).get("method") == m
            cells.append("-" if v is None else (f"**{v:.4f}**" if best else f"{v:.4f}"))
        mean = summary["mean_over_tasks"].get(m)
        lines.append(f"| {m} | " + " | ".join(cells) + f" | {'-' if mean is None else f'{mean:.4f}'} |")
    lines += ["", "Bold: the task's best fixed policy. Each searcher against it:", "",
              "| searcher | " + " | ".join(tasks) + " | within 1 point | +1 point | mean gap to RandAugment |",
              "|---" * (len(tasks) + 4) + "|"]  # fmt: skip
    for m, s in summary["searchers"].items():
        gaps = " | ".join(f"{100 * s['gap_to_best_fixed'][t]:+.2f}" for t in tasks)
        ra = s["mean_gap_to_randaugment"]
        lines.append(f"| {m} | {gaps} | {s['within_1_point']} of {len(tasks)} | {s['plus_1_point']} | "
                     f"{'-' if ra is None else f'{100 * ra:+.2f}'} |")  # fmt: skip
    lines += ["", "Gaps in points (test accuracy × 100). What changes each task's label:", ""]
    lines += [f"- {t}: {breaking_ops(t) or 'not declared'}" for t in tasks]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("directory", type=Path)
    args = ap.parse_args(argv)
    results = load(args.directory)
    summary = summarize(results)
    first = next(iter(results.values()))
    s, seeds = first["setting"], ",".join(map(str, first["seeds"]))
    setting = (f"{len(results)} tasks, {s['train_size']} training images, {s['model']}, {s['epochs']} epochs, "
               f"searchers in the `{s['space']}` space, seeds {seeds}; test means over seeds; {first['machine']}, "
               f"CPU kernels {first.get('kernels')}")  # fmt: skip
    if any(
        r["setting"][k] != s[k] for r in results.values() for k in ("train_size", "epochs", "model", "space")
    ):
        print(
            "warning: the tasks were not all run with the same size, epochs, model and space", file=sys.stderr
        )
    summary["setting"] = setting
    (args.directory / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    table = format_table(summary, setting)
    (args.directory / "summary.md").write_text(table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
