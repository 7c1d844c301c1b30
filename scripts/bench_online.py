"""Per-step cost of ``OnlineAugment.loss`` in a plain loop against the trainer's own MCMC step
(issue 21): the same model, batch, device and search settings.

* **trainer**: the step as ``autoaug search --method mcmc`` takes it, ``MCMCStep.loss(trainer,
  x, y)`` with the trainer's forward (its normalization, autocast on CUDA) and its batch indices;
* **api**: ``aug.loss(model, x, y, index=i)`` with ``normalize=(mean, std)``, as a user's loop
  calls it.

Each step is the loss, ``backward`` and the optimizer's step, on the trainer's own batches (so
both see the same images in the same order, block by block). The two alternate in blocks of ``--block`` steps
for ``--rounds`` rounds, so that a change in the machine's load falls on both; the figure is the
ratio of the median block times. On CPU, compare ratios only. Writes ``OUT.json`` and ``OUT.md``.

Run:
    taskset -c 1 python scripts/bench_online.py                  # results/online_cost.{json,md}
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

import autoaug
from autoaug.models import build_model
from autoaug.search import SearchConfig
from autoaug.search.mcmc import MCMCStep
from autoaug.train import Trainer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", default="fashion-mnist")
    ap.add_argument("--train-size", type=int, default=6000)
    ap.add_argument("--model", default="small_cnn")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--space", default="symmetry")
    ap.add_argument("--block", type=int, default=10, help="steps per timed block")
    ap.add_argument("--rounds", type=int, default=5, help="blocks of each, alternating")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="results/online_cost")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        cfg = SearchConfig.of(dataset=args.dataset, train_size=args.train_size, model=args.model,
                              batch_size=args.batch_size, space=args.space, device=args.device, progress=False,
                              out=tmp)  # fmt: skip
        step = MCMCStep(cfg)
        trainer = Trainer(cfg, step=step)
        device = trainer.device
        torch.manual_seed(cfg.seed)
        model = build_model(cfg.model, trainer.dataset.channels, trainer.dataset.num_classes).to(device)
        if trainer.cuda and cfg.channels_last:
            model = model.to(memory_format=torch.channels_last)
        opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov)
        aug = autoaug.OnlineAugment(
            config=cfg, normalize=(trainer.mean.flatten().tolist(), trainer.std.flatten().tolist())
        )
        # The same batches for both: block r of each takes batches r·block, ..., (r + 1)·block − 1.
        stream = trainer.batches()
        batches = []
        while len(batches) < (args.rounds + 1) * args.block:
            for x, y in stream:
                batches.append((x, y, trainer.batch_index))
                if len(batches) == (args.rounds + 1) * args.block:
                    break
            stream = trainer.batches()

        def trainer_block(r: int) -> float:
            t0 = time.perf_counter()
            for x, y, index in batches[r * args.block : (r + 1) * args.block]:
                trainer.batch_index = index
                loss, _ = step.loss(trainer, x, y)
                trainer.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                trainer.optimizer.step()
            if trainer.cuda:
                torch.cuda.synchronize()
            return time.perf_counter() - t0

        def api_block(r: int) -> float:
            t0 = time.perf_counter()
            for x, y, index in batches[r * args.block : (r + 1) * args.block]:
                with torch.autocast("cuda", dtype=torch.bfloat16, enabled=trainer.cuda and cfg.amp):
                    loss = aug.loss(model, x, y, index=index)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            if trainer.cuda:
                torch.cuda.synchronize()
            return time.perf_counter() - t0

        trainer_block(args.rounds), api_block(args.rounds)  # warm-up, on the last batches
        times: dict[str, list[float]] = {"trainer": [], "api": []}
        for r in range(args.rounds):
            for name, block in (("trainer", trainer_block), ("api", api_block))[:: 1 if r % 2 == 0 else -1]:
                times[name].append(block(r))
    med = {k: statistics.median(v) / args.block for k, v in times.items()}
    result = {"date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, {torch.get_num_threads()} torch "
              f"thread(s), device {device}", "settings": vars(args), "step_s": med,
              "blocks_s": times, "ratio_api_over_trainer": med["api"] / med["trainer"]}  # fmt: skip
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    md = [
        "# OnlineAugment in a plain loop against the trainer's MCMC step",
        "",
        f"{result['date']}, {result['machine']}. `python scripts/bench_online.py` ({args.dataset}, "
        f"{args.train_size} images, {args.model}, batch {args.batch_size}, space {args.space}; {args.rounds} "
        f"blocks of {args.block} steps each, alternating; a step = loss, backward, optimizer step).",
        "",
        "| step | median s per step | × the trainer's |",
        "|---|---:|---:|",
        f"| trainer (`MCMCStep.loss`) | {med['trainer']:.4f} | 1.00 |",
        f"| API (`OnlineAugment.loss`, plain loop) | {med['api']:.4f} | {result['ratio_api_over_trainer']:.2f} |",
        "",
    ]
    out.with_suffix(".md").write_text("\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
