"""bilevel's export ``auto``, read from runs already made: per seed, the learned export's plain
training where the search learned something (``autoaug.search.bilevel.learned_nothing`` on its
weights), else the prior export's. Each task's table was run by bench_accuracy.py with the methods
``bilevel`` and ``bilevel[export=prior]``; their searches are the same search (a bilevel search is
deterministic for a seed on one machine: the script checks that both runs' ``history.json`` agree).

Writes ``DIR/auto_rows.json`` and prints a line per task.

Run: python scripts/bilevel_auto_rows.py [--dir results/accuracy_synthetic_unseen]
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import torch

from autoaug.search.bilevel import largest_share, learned_nothing


def _json(path: Path) -> dict:
    return json.loads(path.read_text())


def task_rows(base: Path) -> dict:
    """The task's auto row beside its learned and prior rows and its fixed policies' means."""
    methods = _json(base / "results.json")["methods"]
    seeds = [r["seed"] for r in methods["bilevel"]["runs"]]
    rows = []
    for s in seeds:
        learned_run, prior_run = base / "runs" / f"bilevel_s{s}", base / "runs" / f"bilevel-exportprior_s{s}"
        if (learned_run / "search" / "history.json").read_text() != (
            prior_run / "search" / "history.json"
        ).read_text():
            raise SystemExit(f"{base}: seed {s}'s two bilevel searches differ; auto cannot be read from them")
        policy = _json(learned_run / "search" / "policy.json")
        w = torch.tensor([[o["weight"] for o in stage["ops"]] for stage in policy["stages"]])
        nothing = learned_nothing(w)
        learned = _json(learned_run / "plain.json")["test_acc"]
        prior = _json(prior_run / "plain.json")["test_acc"]
        rows.append({"seed": s, "largest_share": [round(x, 3) for x in largest_share(w)], "learned_nothing": nothing,
                     "auto": prior if nothing else learned, "learned": learned, "prior": prior})  # fmt: skip
    mean = {k: statistics.mean(r[k] for r in rows) for k in ("auto", "learned", "prior")}
    fixed = {m: r["test_acc_mean"] for m, r in methods.items() if not m.startswith("bilevel")}
    return {"runs": rows, **{f"{k}_mean": v for k, v in mean.items()}, "fixed": fixed}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", default="results/accuracy_synthetic_unseen")
    args = ap.parse_args(argv)
    root = Path(args.dir)
    out = {}
    for base in sorted(p.parent for p in root.glob("*/results.json")):
        out[base.name] = r = task_rows(base)
        nothing = sum(x["learned_nothing"] for x in r["runs"])
        print(f"{base.name}: learned nothing on {nothing} of {len(r['runs'])} seeds; auto {r['auto_mean']:.4f}, "
              f"learned {r['learned_mean']:.4f}, prior {r['prior_mean']:.4f}; "
              + ", ".join(f"{m} {v:.4f}" for m, v in r["fixed"].items()))  # fmt: skip
    (root / "auto_rows.json").write_text(json.dumps(out, indent=2) + "\n")
    return out


if __name__ == "__main__":
    main()
