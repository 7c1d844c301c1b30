"""Bench the Optuna searcher on reduced Fashion-MNIST: accuracy against wall time, and the
speed-up of two workers sharing one PostgreSQL study over one.

The density proxy (the searcher's default) is benched by ``scripts/proxy_correlation.py``;
this script measures the ``--proxy train`` searcher (a training per trial).

1. **Search.** ``autoaug search --method optuna --proxy train`` (6,000 training images,
   small_cnn, TPE, median pruner); from its ``metrics.jsonl``, the best validation accuracy so far and the
   test accuracy of that trial against the wall time since the search started. For scale, the
   same proxy training without augmentation (what the identity policy scores).
2. **Workers.** The same number of trials (1 epoch each, no pruner) by one worker and by two
   workers on one study in a throwaway PostgreSQL cluster, each worker on one torch thread;
   the ratio of wall times, and of trial throughput between the first trial's start and the
   last one's end (without process start-up).

Writes ``results/optuna.json`` and ``results/optuna.md`` (plus the run directories under
``results/optuna_runs/``). Run in the background; about 20 minutes on 2 CPU cores::

    nohup .venv/bin/python scripts/bench_optuna.py > results/optuna_log.txt 2>&1 &
"""

from __future__ import annotations

import argparse
import datetime as dt
import glob
import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DATA = ["--dataset", "fashion-mnist", "--train-size", "6000", "--model", "small_cnn", "--no-progress"]


def autoaug(*args: str, threads: int | None = None) -> subprocess.Popen:
    env = dict(os.environ)
    if threads is not None:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    return subprocess.Popen([sys.executable, "-m", "autoaug", *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip


def finish(procs: list[subprocess.Popen]) -> list[str]:
    outs = [p.communicate()[0] for p in procs]
    for p, out in zip(procs, outs):
        if p.returncode != 0:
            raise SystemExit(f"a worker failed (exit {p.returncode}):\n{out}")
    return outs


def rows_of(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


# ------------------------------------------------------------------------------- search


def bench_search(out: Path, n_trials: int, epochs: int, space: str, optuna_space: str) -> dict:
    from autoaug.search.optuna import best_so_far

    run = out / f"search_{optuna_space}"
    shutil.rmtree(run, ignore_errors=True)
    load = load_average()
    t0 = time.time()
    started = dt.datetime.now()
    print(finish([autoaug("search", "--method", "optuna", *DATA, "--n-trials", str(n_trials), "--proxy", "train",
                          "--trial-epochs", str(epochs), "--space", space, "--optuna-space", optuna_space,
                          "--pruner", "median", "--out", str(run))])[0], flush=True)  # fmt: skip
    wall = time.time() - t0
    rows = rows_of(run)

    def since(r: dict) -> float:
        return (dt.datetime.fromisoformat(r["complete"]) - started).total_seconds()

    curve = [{"trial": r["trial"], "wall_s": round(since(r), 1), "best_val_acc": r["val_acc"],
              "test_acc": r["test_acc"]} for r in best_so_far(rows)]  # fmt: skip
    states = [r["state"] for r in rows]
    best = curve[-1] if curve else None
    return {
        "space": space,
        "optuna_space": optuna_space,
        "n_trials": n_trials,
        "trial_epochs": epochs,
        "wall_s": round(wall, 1),
        "complete": states.count("complete"),
        "pruned": states.count("pruned"),
        "failed": states.count("fail"),
        "trial_seconds": [round(r["seconds"] or 0.0, 1) for r in rows],
        "best": best,
        "best_params": next(r["params"] for r in rows if best and r["trial"] == best["trial"]),
        "curve": curve,
        "load_average_at_start": load,
        "run": str(run.relative_to(REPO)),
    }


def bench_reference(out: Path, epochs: int) -> dict:
    """The proxy training without augmentation: what the identity policy scores."""
    run = out / "none"
    shutil.rmtree(run, ignore_errors=True)
    t0 = time.time()
    finish([autoaug("train", *DATA, "--epochs", str(epochs), "--policy", "none", "--out", str(run))])
    last = rows_of(run)[-1]
    return {"policy": "none", "epochs": epochs, "val_acc": last["val_acc"], "test_acc": last["test_acc"],
            "wall_s": round(time.time() - t0, 1)}  # fmt: skip


# ------------------------------------------------------------------------------ workers


@contextmanager
def postgres():
    """A throwaway PostgreSQL cluster on a free port (as the ``postgres`` user when root)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        raise SystemExit("PostgreSQL is not installed: apt-get install postgresql")
    bindir = Path(found[-1]).parent
    root = Path(tempfile.mkdtemp(prefix="autoaug_bench_pg_"))
    prefix: list[str] = []
    if os.geteuid() == 0:
        entry = pwd.getpwnam("postgres")
        os.chown(root, entry.pw_uid, entry.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = root / "data"
    subprocess.run([*prefix, str(bindir / "initdb"), "-D", str(data), "-U", "autoaug", "-A", "trust"],
                   check=True, capture_output=True)  # fmt: skip
    options = f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={root}"
    subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(root / "log"),
                    "-w", "start"], check=True, capture_output=True)  # fmt: skip
    try:
        yield f"postgresql://autoaug@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"],
                       capture_output=True)  # fmt: skip
        shutil.rmtree(root, ignore_errors=True)


def bench_workers(
    out: Path, url: str, n_trials: int, workers: int, round_: int = 0, proxy: str = "train"
) -> dict:
    """``n_trials`` by ``workers`` workers on one study; ``proxy`` ``train``: trials of 1 epoch, no
    pruner; ``density`` (the default searcher): every worker fits the proxy model, then scores."""
    name = f"speed_{proxy}_{workers}w_r{round_}"
    args = ["search", "--method", "optuna", *DATA, "--n-trials", str(n_trials), "--proxy", proxy,
            "--storage", url, "--study-name", name]  # fmt: skip
    if proxy == "train":
        args += ["--trial-epochs", "1", "--pruner", "none"]
    load = load_average()
    t0 = time.time()
    finish([autoaug(*args, "--out", str(out / f"{name}{i}"), threads=1) for i in range(workers)])
    wall = time.time() - t0
    rows = [r for r in rows_of(out / f"{name}0") if r["state"] in ("complete", "pruned")]
    start = min(dt.datetime.fromisoformat(r["start"]) for r in rows)
    end = max(dt.datetime.fromisoformat(r["complete"]) for r in rows)
    per_worker: dict[str, int] = {}
    for r in rows:
        per_worker[r["worker"]] = per_worker.get(r["worker"], 0) + 1
    return {"workers": workers, "proxy": proxy, "n_trials": n_trials, "finished": len(rows), "wall_s": round(wall, 1),
            "trials_span_s": round((end - start).total_seconds(), 1),
            "mean_trial_s": round(sum(r["seconds"] for r in rows) / len(rows), 1),
            "trials_per_worker": sorted(per_worker.values()), "load_average_at_start": load}  # fmt: skip


def _total(runs: list[dict]) -> dict:
    """Rounds of one setting summed (wall, span) or averaged (trial time)."""
    return {"workers": runs[0]["workers"], "n_trials": runs[0]["n_trials"], "rounds": len(runs),
            "wall_s": round(sum(r["wall_s"] for r in runs), 1),
            "trials_span_s": round(sum(r["trials_span_s"] for r in runs), 1),
            "mean_trial_s": round(sum(r["mean_trial_s"] for r in runs) / len(runs), 1),
            "trials_per_worker": [r["trials_per_worker"] for r in runs],
            "load_average_at_start": [r["load_average_at_start"][0] for r in runs]}  # fmt: skip


# ------------------------------------------------------------------------------- report


def _search_lines(s: dict) -> list[str]:
    return [
        f"## Search: {s['n_trials']} trials of {s['trial_epochs']} epochs, TPE over the `{s['optuna_space']}` "
        f"space of `{s['space']}`, median pruner",
        "",
        f"{s['complete']} complete, {s['pruned']} pruned, {s['failed']} failed; {s['wall_s'] / 60:.1f} min wall "
        f"(load average {s['load_average_at_start']} at the start: the 2 cores were shared).",
        "",
        "| wall (min) | trial | best validation accuracy | its test accuracy |",
        "|---:|---:|---:|---:|",
        *[
            f"| {c['wall_s'] / 60:.1f} | {c['trial']} | {c['best_val_acc']:.4f} | {c['test_acc']:.4f} |"
            for c in s["curve"]
        ],
        "",
        f"Best trial's parameters: `{json.dumps(s['best_params'])}`",
        "",
    ]


def write_report(result: dict, out_json: Path, out_md: Path) -> None:
    out_json.write_text(json.dumps(result, indent=2) + "\n")
    s, ref = result.get("search"), result.get("reference")
    lines = [
        "# Optuna search on reduced Fashion-MNIST",
        "",
        f"{result['date']}, {result['machine']}. 6,000 training images (10% of them validation), small_cnn, "
        f"10,000 test images. Written by `scripts/bench_optuna.py`.",
        "",
    ]
    lines += [*result.get("notes", []), ""] if result.get("notes") else []
    if s:
        lines += _search_lines(s)
    if ref:
        lines += [f"The same {ref['epochs']}-epoch proxy training without augmentation: validation "
                  f"{ref['val_acc']:.4f}, test {ref['test_acc']:.4f}.", ""]  # fmt: skip
    for key, what in (
        ("workers", "trials of 1 epoch (`--proxy train`, no pruner)"),
        (
            "workers_density",
            "trials of the density proxy (the default; each worker fits its proxy model first)",
        ),
    ):
        w = result.get(key)
        if not w:
            continue
        one, two = w["one"], w["two"]
        lines += [
            f"## Workers: {one['n_trials']} {what} on one PostgreSQL study, one torch thread per worker",
            "",
            f"{one['rounds']} round(s) of each, order alternating; times are summed over the rounds.",
            "",
            "| workers | wall (s) | first trial start → last trial end (s) | mean trial (s) | trials per worker "
            "| load average at the start |",
            "|---:|---:|---:|---:|---|---|",
            *[
                f"| {r['workers']} | {r['wall_s']} | {r['trials_span_s']} | {r['mean_trial_s']} | "
                f"{r['trials_per_worker']} | {r['load_average_at_start']} |"
                for r in (one, two)
            ],
            "",
            f"Speed-up of two workers over one: {w['speedup_wall']:.2f}× in wall time (process start-up "
            f"included), {w['speedup_trials']:.2f}× over the span of the trials.",
            "",
        ]
    out_md.write_text("\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n-trials", type=int, default=16)
    ap.add_argument("--trial-epochs", type=int, default=3)
    ap.add_argument("--space", default="symmetry")
    ap.add_argument("--optuna-space", default="policy")
    ap.add_argument("--speed-trials", type=int, default=8)
    ap.add_argument(
        "--speed-rounds", type=int, default=1, help="rounds of (1 worker, 2 workers), order alternating"
    )
    ap.add_argument("--storage", help="a PostgreSQL URL for the workers part (default: a throwaway cluster)")
    ap.add_argument(
        "--speed-proxy",
        choices=["train", "density"],
        default="train",
        help="the proxy of the workers part (density: the searcher's default, --speed-trials trials)",
    )
    ap.add_argument("--skip", nargs="*", default=[], choices=["search", "reference", "workers"])
    args = ap.parse_args()
    out = REPO / "results" / "optuna_runs"
    out.mkdir(parents=True, exist_ok=True)
    result: dict = {"date": dt.date.today().isoformat(),
                    "machine": f"{os.cpu_count()} CPU cores, no GPU, torch threads: default for the search"}  # fmt: skip
    previous = REPO / "results" / "optuna.json"
    if previous.is_file():
        result.update(
            {
                k: v
                for k, v in json.loads(previous.read_text()).items()
                if k in args.skip or k == "notes" or k.startswith("workers")
            }
        )
    report = (result, REPO / "results" / "optuna.json", REPO / "results" / "optuna.md")
    # The short parts first; the report is rewritten after each part.
    if "workers" not in args.skip:
        runs: dict[int, list[dict]] = {1: [], 2: []}
        with postgres() if args.storage is None else _given(args.storage) as url:
            # Rounds alternate the order (1, 2, then 2, 1, ...) so that a change in the load of a
            # shared machine falls on both.
            for r in range(args.speed_rounds):
                for workers in (1, 2) if r % 2 == 0 else (2, 1):
                    runs[workers].append(
                        bench_workers(out, url, args.speed_trials, workers, r, args.speed_proxy)
                    )
                    print(json.dumps(runs[workers][-1]), flush=True)
        one, two = (_total(runs[w]) for w in (1, 2))
        key = "workers" if args.speed_proxy == "train" else "workers_density"
        result[key] = {"one": one, "two": two, "rounds": runs, "speedup_wall": one["wall_s"] / two["wall_s"],
                             "speedup_trials": one["trials_span_s"] / two["trials_span_s"]}  # fmt: skip
        write_report(*report)
    if "reference" not in args.skip:
        result["reference"] = bench_reference(out, args.trial_epochs)
        print(json.dumps(result["reference"]), flush=True)
        write_report(*report)
    if "search" not in args.skip:
        result["search"] = bench_search(out, args.n_trials, args.trial_epochs, args.space, args.optuna_space)
        print(json.dumps(result["search"]["curve"]), flush=True)
        write_report(*report)
    print((REPO / "results" / "optuna.md").read_text())


@contextmanager
def _given(url: str):
    yield url


if __name__ == "__main__":
    main()
