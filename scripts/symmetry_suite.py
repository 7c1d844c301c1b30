"""The symmetry suite's verdicts against its declared ground truth (issue 17).

For each task of :data:`autoaug.data.suite.SUITE` (a half, or a list): the default search
(``autoaug search --dataset T --space symmetry --out RUNS/T/default``, reused once it has
finished), then ``autoaug analyze`` (``--no-lie --no-baseline``: no verdict reads either), then
the verdicts compared with the task's declared truth by :func:`autoaug.analysis.verdicts.agreement`
(``exact``: the verdict, and a ``partial`` one's safe magnitude in the declared interval;
``binary``: keeps vs changes the label; ``undecided`` counted apart). The analysis is reused too:
its saved measurements give the verdicts again under the thresholds in force now
(:func:`autoaug.analysis.report.saved_verdicts`), so calibrating a threshold needs no new
measurement; ``--reanalyze`` measures again.

``--epochs N`` runs the searches ``N`` epochs long instead (into ``RUNS/T/epochsN``) and reports,
beside the truth, how the verdicts agree with the default search's except for ops that either
flags ``undecided`` (issue 17, point 3).

Writes ``OUT/NAME.json`` and ``OUT/NAME.md`` (NAME: the half, ``tasks`` for a list, with
``_epochsN`` for longer searches). ``--tasks T... --into NAME`` writes instead into an earlier
``OUT/NAME.json``: the rows (and stability entries) of the tasks run now replace theirs, the
others are kept as they were, and the totals are counted again (a task changed, the rest not).

Usage:
    taskset -c 1 python scripts/symmetry_suite.py --half calibration
    taskset -c 1 python scripts/symmetry_suite.py --half heldout
    taskset -c 1 python scripts/symmetry_suite.py --tasks quadrants sizes
    taskset -c 1 python scripts/symmetry_suite.py --half heldout --epochs 16
    taskset -c 1 python scripts/symmetry_suite.py --tasks glyphs --into calibration
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

from autoaug._io import json_safe
from autoaug.analysis import verdicts as V
from autoaug.analysis.report import FILES, saved_verdicts
from autoaug.cli import main as autoaug
from autoaug.data.suite import CALIBRATION, HELD_OUT, SUITE
from autoaug.policy import atomic_write_text

HALVES = {"calibration": CALIBRATION, "heldout": HELD_OUT, "all": CALIBRATION + HELD_OUT}
ACCURACY_WANTED = 0.97
THRESHOLDS = (
    "SUPPORT_MIN",
    "FLOOR_SUPPORT",
    "GAP_REL",
    "GAP_ABS",
    "SEARCH_EXCESS",
    "FLAT_SLOPE",
    "RELAX_MIN",
)


def _metrics(run: Path) -> list[dict[str, Any]]:
    path = run / "metrics.jsonl"
    return (
        [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []
    )


def search(task: str, run: Path, epochs: int | None) -> float | None:
    """Run (or resume) the search unless it has finished; its wall time, or ``None`` when reused."""
    if (run / "model.pt").is_file():
        return None
    argv = ["search", "--dataset", task, "--space", "symmetry", "--out", str(run), "--no-progress"]
    if epochs is not None:
        argv += ["--epochs", str(epochs)]
    if (run / "checkpoint.pt").is_file():
        argv.append("--resume")
    t = time.perf_counter()
    if autoaug(argv) != 0:
        raise RuntimeError(f"autoaug {' '.join(argv)} failed")
    return time.perf_counter() - t


def analyze(run: Path, again: bool) -> tuple[dict[str, V.OpVerdict], float | None]:
    """The verdicts, from the saved analysis when there is one (and ``again`` is false)."""
    out = run / "analysis"
    timing = out / "suite_timing.json"
    report, support = out / FILES["json"], out / FILES["support"]
    saved = (
        support.is_file() and report.is_file() and report.stat().st_mtime > (run / "model.pt").stat().st_mtime
    )
    if again or not saved:
        t = time.perf_counter()
        if autoaug(["analyze", str(run), "--no-lie", "--no-baseline"]) != 0:
            raise RuntimeError(f"autoaug analyze {run} failed")
        atomic_write_text(timing, json.dumps({"analyze_s": time.perf_counter() - t}) + "\n")
    seconds = json.loads(timing.read_text())["analyze_s"] if timing.is_file() else None
    return saved_verdicts(run, out), seconds


def task_row(
    task: str, run: Path, verdicts: dict[str, V.OpVerdict], analyze_s: float | None
) -> dict[str, Any]:
    t = SUITE[task]
    rows = _metrics(run)
    last = rows[-1] if rows else {}
    score = V.agreement(verdicts, t.truth, t.safe)
    ops = {
        op: {"truth": t.truth.get(op), "safe": t.safe.get(op), "verdict": v.verdict,
             "max_safe_magnitude": v.max_safe_magnitude, "model_status": v.model_status,
             "model_max_safe": v.model_max_safe, "search": None if v.search is None else v.search.status,
             "evidence": v.evidence}
        for op, v in verdicts.items()
    }  # fmt: skip
    return {
        "task": task,
        "half": t.half,
        "run": str(run),
        "test_acc": last.get("test_acc"),
        "epochs": last.get("epoch"),
        "search_s": sum(r.get("seconds", 0.0) for r in rows),
        "analyze_s": analyze_s,
        "agreement": score,
        "undecided_unscored": [
            op for op, v in verdicts.items() if v.verdict == "undecided" and op not in t.truth
        ],
        "ops": ops,
    }


def stability(long: dict[str, V.OpVerdict], short: dict[str, V.OpVerdict]) -> dict[str, Any]:
    """Verdicts of two searches compared, ops that either calls ``undecided`` left out."""
    both = [op for op in long if op in short and "undecided" not in (long[op].verdict, short[op].verdict)]
    same = [op for op in both if long[op].verdict == short[op].verdict]
    return {
        "ops": len(both),
        "same": len(same),
        "rate": len(same) / len(both) if both else math.nan,
        "undecided": [
            op for op in long if "undecided" in (long[op].verdict, short.get(op, long[op]).verdict)
        ],
        "changed": {op: [short[op].verdict, long[op].verdict] for op in both if op not in same},
    }


def totals(rows: list[dict[str, Any]]) -> dict[str, Any]:
    a = [r["agreement"] for r in rows]
    decided = sum(x["decided"] for x in a)
    return {
        "tasks": len(rows),
        "ops": sum(x["ops"] for x in a),
        "decided": decided,
        "undecided": sum(x["undecided"] for x in a),
        "exact": sum(x["exact_count"] for x in a) / decided if decided else math.nan,
        "binary": sum(x["binary_count"] for x in a) / decided if decided else math.nan,
        "exact_count": sum(x["exact_count"] for x in a),
        "binary_count": sum(x["binary_count"] for x in a),
        "accuracy_below": [r["task"] for r in rows if (r["test_acc"] or 0) < ACCURACY_WANTED],
    }


def _pct(x: float | None) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{x:.1%}"


def _secs(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.0f}"


def markdown(result: dict[str, Any]) -> str:
    lines = [f"# Symmetry suite: {result['name']}", "", result["what"], "",
             "Thresholds: " + ", ".join(f"{k} = {v:g}" for k, v in result["thresholds"].items()), ""]  # fmt: skip
    for half, tot in result["totals"].items():
        lines.append(
            f"- **{half}**: {tot['tasks']} tasks, {tot['ops']} declared ops: exact {_pct(tot['exact'])} "
            f"({tot['exact_count']}/{tot['decided']}), keeps-vs-breaks {_pct(tot['binary'])} "
            f"({tot['binary_count']}/{tot['decided']}), undecided {tot['undecided']}"
            + (
                f"; test accuracy under 97%: {', '.join(tot['accuracy_below'])}"
                if tot["accuracy_below"]
                else ""
            )
        )
    lines += ["", "| task | half | test acc | search s | analyze s | exact | keeps-vs-breaks | undecided |"
              + (" same as default |" if result.get("stable") else ""),
              "|---|---|---|---|---|---|---|---|" + ("---|" if result.get("stable") else "")]  # fmt: skip
    for r in result["tasks"]:
        a = r["agreement"]
        row = (f"| {r['task']} | {r['half']} | {_pct(r['test_acc'])} | {_secs(r['search_s'])} | "
               f"{_secs(r['analyze_s'])} | {a['exact_count']}/{a['decided']} | {a['binary_count']}/{a['decided']} | "
               f"{a['undecided']} |")  # fmt: skip
        if result.get("stable"):
            s = result["stable"].get(r["task"])
            row += " n/a |" if s is None else f" {s['same']}/{s['ops']} |"
        lines.append(row)
    lines += [
        "",
        "Seconds: the search's training epochs (metrics.jsonl) and the analysis's wall time, on one CPU core shared with 2-3 other jobs (not timings to compare).",
        "",
    ]
    for r in result["tasks"]:
        lines += [
            f"## {r['task']}",
            "",
            "| op | truth | verdict | this model | search |",
            "|---|---|---|---|---|",
        ]
        for op, e in r["ops"].items():
            truth = e["truth"] or "—"
            if e["safe"]:
                lo, hi = e["safe"]
                truth += f" ≤{lo:g}" if lo == hi else f" ≤{lo:g}..{hi:g}"
            v = e["verdict"] + (f" ≤{e['max_safe_magnitude']:g}" if e["verdict"] == "partial" else "")
            miss = next((m for m in r["agreement"]["misses"] if m["op"] == op), None)
            mark = " ✗" if miss and not miss["binary"] else " ~" if miss else ""
            model = f"{e['model_status']} ≤{e['model_max_safe']:g}"
            lines.append(f"| {op} | {truth} | {v}{mark} | {model} | {e['search']} |")
        lines.append("")
    lines.append("✗: keeps-vs-breaks wrong; ~: right side, wrong verdict or safe magnitude.")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--half", choices=sorted(HALVES), default="all")
    p.add_argument("--tasks", nargs="+", help="a subset of tasks (instead of --half)")
    p.add_argument("--epochs", type=int, help="search this many epochs (default: the search's default)")
    p.add_argument("--runs", default="runs/symmetry_suite")
    p.add_argument("--out", default="results/symmetry_suite")
    p.add_argument("--reanalyze", action="store_true", help="measure again instead of reusing the analysis")
    p.add_argument("--no-search", action="store_true", help="only tasks whose search has finished")
    p.add_argument("--no-analyze", action="store_true", help="only tasks whose analysis is saved")
    p.add_argument(
        "--into", metavar="NAME", help="replace these tasks' rows in OUT/NAME.json, keep the others"
    )
    args = p.parse_args(argv)
    if args.into and not (Path(args.out) / f"{args.into}.json").is_file():
        p.error(f"--into {args.into}: no {Path(args.out) / args.into}.json to write into")
    tasks = args.tasks or list(HALVES[args.half])
    unknown = [t for t in tasks if t not in SUITE]
    if unknown:
        p.error(f"unknown task(s) {unknown}; known: {', '.join(SUITE)}")
    label = "default" if args.epochs is None else f"epochs{args.epochs}"
    name = ("tasks" if args.tasks else args.half) + ("" if args.epochs is None else f"_{label}")
    rows, stable = [], {}
    for task in tasks:
        run = Path(args.runs) / task / label
        if args.no_search and not (run / "model.pt").is_file():
            print(f"{task}: no finished search in {run}, skipped")
            continue
        if args.no_analyze and not (run / "analysis" / FILES["support"]).is_file():
            print(f"{task}: no saved analysis in {run / 'analysis'}, skipped")
            continue
        wall = search(task, run, args.epochs)
        verdicts, analyze_s = analyze(run, args.reanalyze)
        row = task_row(task, run, verdicts, analyze_s)
        if wall is not None:
            row["search_wall_s"] = wall
        if args.epochs is not None and (Path(args.runs) / task / "default" / "model.pt").is_file():
            short, _ = analyze(Path(args.runs) / task / "default", False)
            stable[task] = stability(verdicts, short)
        rows.append(row)
        a = row["agreement"]
        print(f"{task}: exact {a['exact_count']}/{a['decided']}, keeps-vs-breaks {a['binary_count']}/{a['decided']}, "
              f"undecided {a['undecided']}, test acc {_pct(row['test_acc'])}")  # fmt: skip
    if args.into:
        name = args.into
        earlier = json.loads((Path(args.out) / f"{name}.json").read_text())
        done = {r["task"]: r for r in rows}
        before = {r["task"] for r in earlier["tasks"]}
        rows = [done.get(r["task"], r) for r in earlier["tasks"]] + [
            r for r in rows if r["task"] not in before
        ]
        stable = {**{t: v for t, v in earlier.get("stable", {}).items() if t not in done}, **stable}
    halves = {h: [r for r in rows if r["half"] == h] for h in ("calibration", "held-out")}
    result = {
        "name": name,
        "what": f"{label} search (autoaug search --space symmetry, CLI defaults"
        + ("" if args.epochs is None else f", --epochs {args.epochs}")
        + "), autoaug analyze --no-lie --no-baseline (500 held-out test images), against suite.SUITE's truth",
        "thresholds": {k: getattr(V, k) for k in THRESHOLDS},
        "totals": {h: totals(r) for h, r in halves.items() if r},
        "tasks": rows,
        "stable": stable,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(
        out / f"{name}.json", json.dumps(json_safe(result), indent=1, ensure_ascii=False) + "\n"
    )
    atomic_write_text(out / f"{name}.md", markdown(result))
    for h, tot in result["totals"].items():
        print(
            f"{h}: exact {_pct(tot['exact'])}, keeps-vs-breaks {_pct(tot['binary'])}, undecided {tot['undecided']}"
        )
    print(f"wrote {out / name}.json and .md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
