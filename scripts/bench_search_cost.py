"""Cost of each searcher's training step against a plain training step: same model, batch,
data and device, in one run.

For each step, the wall time of a full training step (forward, backward, optimizer) on each
of ``--steps`` batches after a warm-up, with the plain step (no augmentation) and a
fixed-policy step (TrivialAugment) for reference. Two ratios to the plain step:

* the median of the per-batch ratios (robust to whatever else the machine is doing);
* the ratio of the summed times, i.e. the cost of an epoch (the batches an epoch is made of;
  the per-epoch evaluation, the same for every method, left out). It counts the bilevel
  policy update, which runs every ``policy_every`` steps and which a median would skip.

Steps: mcmc with its defaults and with longer chains / more augmented copies; bilevel (its
model step plus the hypergradient policy update, second- and first-order); an optuna trial,
which is plain training with one fixed sampled policy (its search cost is trials × proxy).

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
from autoaug.search.bilevel import BilevelStep
from autoaug.search.mcmc import MCMCStep
from autoaug.search.optuna import policy_from_params, suggest_params
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
        rows.append({"step": name, "seconds": statistics.median(ts), "ratio": statistics.median(ratios),
                     "epoch_ratio": sum(ts) / sum(times[0])})  # fmt: skip
    return rows


def _optuna_trial_policy(space: str, seed: int) -> Policy:
    """The policy of one trial drawn at random from optuna's ``policy`` space (what a trial
    trains with, for a whole proxy run)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=seed))
    return policy_from_params(suggest_params(study.ask(), "policy", space), "policy", space)


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
        return MCMCStep(cfg.replace(**kw))

    def bilevel(**kw):
        step = BilevelStep(cfg.replace(method="bilevel", **kw))
        step.bind(trainer)
        return step

    variants = [
        ("plain (no augmentation)", PolicyStep(Policy.identity())),
        ("trivialaugment policy", PolicyStep(load_policy("trivialaugment"))),
        ("mcmc (default: per-op, chain 1, n_aug 0.5)", mcmc()),
        ("mcmc (single constraint)", mcmc(constraint="single")),
        ("mcmc (n_aug 1: every image augmented)", mcmc(n_aug=1.0)),
        ("mcmc (fused: clean and augmented in one pass)", mcmc(fused=True)),
        ("mcmc (fused, n_aug 1)", mcmc(fused=True, n_aug=1.0)),
        ("mcmc (chain 2)", mcmc(chain_length=2)),
        ("mcmc (n_aug 2)", mcmc(n_aug=2)),
        ("bilevel (default: second-order hypergradient every 2 steps)", bilevel()),
        ("bilevel (first-order hypergradient)", bilevel(unroll="first_order")),
        ("optuna trial (one sampled policy, fixed)", PolicyStep(_optuna_trial_policy(args.space, 0))),
    ]
    rows = _interleaved_ratios(trainer, variants, batches, args.warmup)
    for r in rows:
        print(
            f"{r['step']}: {r['seconds'] * 1000:.1f} ms, {r['ratio']:.2f} x plain (epoch {r['epoch_ratio']:.2f})"
        )
    machine = (f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}, "
               + (torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"))  # fmt: skip
    result = {"setting": vars(args), "machine": machine, "rows": rows}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    lines = [f"{args.dataset}, {args.model}, batch {args.batch_size}, space {args.space}; {machine}; "
             f"median over {args.steps} batches, variants interleaved batch by batch", "",
             "| step | median ms | × plain (median of per-batch ratios) | × plain per epoch (summed times) |",
             "|---|---|---|---|"]  # fmt: skip
    lines += [f"| {r['step']} | {r['seconds'] * 1000:.1f} | {r['ratio']:.2f} | {r['epoch_ratio']:.2f} |"
              for r in rows]  # fmt: skip
    table = "\n".join(lines)
    out.with_suffix(".md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
