"""Cost of a bilevel policy search (``--mode search``) against one plain training of the final model.

The plain run trains the model without augmentation for the whole schedule on the whole training
split; the search trains its proxy (``proxy_data`` of the images, ``proxy_epochs`` of the
schedule) with a hypergradient policy update every ``policy_every`` steps. Both run in this
process with the same settings, alternating (plain, search, search, plain, ... for
``--repeats``), so that the load of a shared machine falls on both; the ratio is of the summed
wall-clock times, evaluation included. Writes ``OUT.json`` and ``OUT.md``.

Default setting: reduced Fashion-MNIST (6,000 training images), the small CNN, 15 epochs,
the standard space.

Run:
    python scripts/bench_bilevel_cost.py                         # results/bilevel_cost.{json,md}
    python scripts/bench_bilevel_cost.py --unroll first_order --repeats 2
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

from autoaug.search import SearchConfig, get_searcher
from autoaug.search.bilevel import proxy_config
from autoaug.train import TrainConfig, Trainer


def _metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="fashion-mnist")
    ap.add_argument("--train-size", type=int, default=6000)
    ap.add_argument("--model", default="small_cnn")
    ap.add_argument("--epochs", type=int, default=15, help="the final model's schedule")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--space", default="standard")
    ap.add_argument("--unroll", default=None, help="second_order or first_order (default: the searcher's)")
    ap.add_argument("--policy-every", type=int, default=None)
    ap.add_argument("--repeats", type=int, default=1, help="pairs of (plain, search) runs, alternating")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--out", default="results/bilevel_cost")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    common = dict(dataset=args.dataset, train_size=args.train_size, model=args.model, epochs=args.epochs,
                  batch_size=args.batch_size, device=args.device, progress=False, test_every=5)  # fmt: skip
    search_cfg = SearchConfig.of(method="bilevel", mode="search", space=args.space, **common)
    if args.unroll:
        search_cfg = search_cfg.replace(unroll=args.unroll)
    if args.policy_every:
        search_cfg = search_cfg.replace(policy_every=args.policy_every)
    times: dict[str, list[float]] = {"plain": [], "search": []}
    details: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="bilevel_cost_") as tmp:
        order = []
        for r in range(args.repeats):
            order += ["plain", "search"] if r % 2 == 0 else ["search", "plain"]
        for i, kind in enumerate(order):
            run = Path(tmp) / f"{kind}_{i}"
            t0 = time.perf_counter()
            if kind == "plain":
                metrics = Trainer(TrainConfig(policy="none", out=str(run), **common)).fit()
                details["plain"] = {"test_acc": metrics.get("test_acc"), "epochs": args.epochs}
            else:
                cfg = search_cfg.replace(out=str(run))
                result = get_searcher("bilevel")(cfg).run()
                details["search"] = {"proxy_epochs": result.summary["epochs"],
                                     "proxy_train_images": result.summary["train_images"],
                                     "proxy_test_acc": result.summary["test_acc"],
                                     "policy_updates": sum(e["policy_updates"] for e in
                                                           json.loads((run / "history.json").read_text())["epochs"])}  # fmt: skip
            seconds = time.perf_counter() - t0
            times[kind].append(seconds)
            rows = _metrics(run)
            details[kind]["epoch_seconds"] = sum(r["seconds"] for r in rows) / len(rows)
            print(f"[{kind}] {seconds:.1f}s", flush=True)

    plain, search = sum(times["plain"]), sum(times["search"])
    machine = (f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}, "
               + (torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"))  # fmt: skip
    resolved = proxy_config(search_cfg)
    summary = {
        "setting": {
            k: getattr(args, k) for k in ("dataset", "train_size", "model", "epochs", "batch_size", "space")
        },
        "search": {
            k: getattr(resolved, k)
            for k in (
                "unroll",
                "relaxation",
                "policy_every",
                "stages",
                "proxy_data",
                "proxy_epochs",
                "probe_size",
            )
        },
        "machine": machine,
        "command": "python " + " ".join(sys.argv),
        "seconds": times,
        "ratio": search / plain,
        "details": details,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(summary, indent=2))
    s, d = summary["search"], details
    lines = [
        f"{args.dataset}, {args.train_size} training images, {args.model}, batch {args.batch_size}, space "
        f"{args.space}; {machine}",
        "",
        "| run | what | wall-clock s (each) | s per epoch |",
        "|---|---|---|---|",
        f"| plain training | {args.epochs} epochs on all training images, no augmentation | "
        f"{', '.join(f'{t:.0f}' for t in times['plain'])} | {d['plain']['epoch_seconds']:.1f} |",
        f"| bilevel search | proxy: {d['search']['proxy_epochs']} epochs on {d['search']['proxy_train_images']} "
        f"images; {s['unroll']} hypergradient every {s['policy_every']} steps, {s['stages']} stages | "
        f"{', '.join(f'{t:.0f}' for t in times['search'])} | {d['search']['epoch_seconds']:.1f} |",
        "",
        f"search cost / plain training cost: **{summary['ratio']:.2f}**",
    ]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
