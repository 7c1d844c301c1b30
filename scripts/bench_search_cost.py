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


def _step_time(trainer: Trainer, step, x, y) -> float:
    if trainer.cuda:
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    loss, _ = step.loss(trainer, x, y)
    trainer.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    trainer.optimizer.step()
    if trainer.cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def _interleaved_ratios(trainer: Trainer, variants, batches, warmup: int) -> list[dict]:
    """Every variant takes a step on the same batch, one after another, batch after batch;
    each variant's time on a batch is divided by the plain step's time on that batch. The
    median of those ratios is robust to what else the machine is doing (it hits all variants
    alike), unlike times measured one variant after another."""
    times: list[list[float]] = [[] for _ in variants]
    for i, (x, y) in enumerate(batches):
        for k, (_, step) in enumerate(variants):
            t = _step_time(trainer, step, x, y)
            if i >= warmup:
                times[k].append(t)
    rows = []
    for (name, _), ts in zip(variants, times):
        ratios = [t / p for t, p in zip(ts, times[0])]
        rows.append({"step": name, "seconds": statistics.median(ts), "ratio": statistics.median(ratios)})
    return rows


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

    def mcmc(**kw):
        return MCMCStep(SearchConfig(**{**cfg.to_dict(), **kw}))

    variants = [
        ("plain (no augmentation)", PolicyStep(Policy.identity())),
        ("trivialaugment policy", PolicyStep(load_policy("trivialaugment"))),
        ("mcmc (default: per-op, chain 1, n_aug 1)", mcmc()),
        ("mcmc (single constraint)", mcmc(constraint="single")),
        ("mcmc (n_aug 0.5: half the batch augmented)", mcmc(n_aug=0.5)),
        ("mcmc (chain 2)", mcmc(chain_length=2)),
        ("mcmc (n_aug 2)", mcmc(n_aug=2)),
    ]
    rows = _interleaved_ratios(trainer, variants, batches, args.warmup)
    for r in rows:
        print(f"{r['step']}: {r['seconds'] * 1000:.1f} ms, {r['ratio']:.2f} x plain")
    machine = (f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}, "
               + (torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"))  # fmt: skip
    result = {"setting": vars(args), "machine": machine, "rows": rows}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    lines = [f"{args.dataset}, {args.model}, batch {args.batch_size}, space {args.space}; {machine}; "
             f"median over {args.steps} batches, variants interleaved batch by batch", "",
             "| step | median ms | × plain (median of per-batch ratios) |", "|---|---|---|"]  # fmt: skip
    lines += [f"| {r['step']} | {r['seconds'] * 1000:.1f} | {r['ratio']:.2f} |" for r in rows]
    table = "\n".join(lines)
    out.with_suffix(".md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
