"""Cost of a search step against a plain training step: same model, batch, data and device.

For each method, the median wall time of a full training step (forward, backward, optimizer)
over ``--steps`` batches after a warm-up, with the plain step (no augmentation) and the
fixed-policy step (TrivialAugment) for reference, as ratios to the plain step in one run.
The MCMC step is measured with its defaults and with longer chains / more augmented copies.

An absolute time means something only on a fixed machine (and on a GPU); the ratios are the
result. The reference MCMC implementation costs about 2.7 plain steps (DESIGN.md).

Run: python scripts/bench_search_cost.py [--dataset glyphs] [--model small_cnn] [--batch-size 128]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from autoaug.policy import Policy, load_policy
from autoaug.search import SearchConfig
from autoaug.search.mcmc import MCMCStep
from autoaug.train import PolicyStep, Trainer


def _median_step_time(trainer: Trainer, step, batches, warmup: int) -> float:
    times = []
    for i, (x, y) in enumerate(batches):
        if trainer.cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        loss, _ = step.loss(trainer, x, y)
        trainer.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        trainer.optimizer.step()
        if trainer.cuda:
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="glyphs")
    ap.add_argument("--model", default="small_cnn")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--space", default="symmetry")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--out", default="results/search_cost.json")
    args = ap.parse_args()

    cfg = SearchConfig(dataset=args.dataset, model=args.model, batch_size=args.batch_size, space=args.space,
                       device=args.device, progress=False, out="/tmp/autoaug_bench_cost")  # fmt: skip
    trainer = Trainer(cfg, step=PolicyStep(Policy.identity()))
    batches = []
    it = trainer.batches()
    for _ in range(args.steps + args.warmup):
        try:
            batches.append(next(it))
        except StopIteration:
            it = trainer.batches()
            batches.append(next(it))

    variants = [
        ("plain (no augmentation)", PolicyStep(Policy.identity())),
        ("trivialaugment policy", PolicyStep(load_policy("trivialaugment"))),
        ("mcmc (per-op, chain 1, n_aug 1)", MCMCStep(cfg)),
        ("mcmc (single constraint)", MCMCStep(SearchConfig(**{**cfg.to_dict(), "constraint": "single"}))),
        ("mcmc (chain 2)", MCMCStep(SearchConfig(**{**cfg.to_dict(), "chain_length": 2}))),
        ("mcmc (n_aug 2)", MCMCStep(SearchConfig(**{**cfg.to_dict(), "n_aug": 2}))),
    ]
    rows = []
    for name, step in variants:
        seconds = _median_step_time(trainer, step, batches, args.warmup)
        rows.append({"step": name, "seconds": seconds})
        print(f"{name}: {seconds * 1000:.1f} ms")
    base = rows[0]["seconds"]
    for r in rows:
        r["ratio"] = r["seconds"] / base
    machine = (f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}, "
               + (torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"))  # fmt: skip
    result = {"setting": vars(args), "machine": machine, "rows": rows}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    lines = [f"{args.dataset}, {args.model}, batch {args.batch_size}, space {args.space}; {machine}", "",
             "| step | ms | × plain |", "|---|---|---|"]  # fmt: skip
    lines += [f"| {r['step']} | {r['seconds'] * 1000:.1f} | {r['ratio']:.2f} |" for r in rows]
    table = "\n".join(lines)
    out.with_suffix(".md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
