"""How many tensor operations each training step dispatches: a plain step, a fixed policy's step
and each searcher's step, and one ``Policy.apply`` over a batch that holds every op of a space.

On a GPU each dispatched operation is (about) one kernel launch plus its Python and dispatcher
overhead, some microseconds whatever the kernel's size: with small images and a small model a
step that dispatches many operations is bound by them, not by arithmetic. The first GPU table
(BENCHMARKS.md, "On a GPU") had mcmc's search epoch at about 6× a plain epoch where on two CPU
cores it is 2×. The count is a machine-independent proxy for that overhead, measured on the CPU
(a ``TorchDispatchMode`` that counts every aten call of one step after a warm-up); it does not
replace a GPU timing.

Also counted: the operations that make a GPU wait when their input lives there (``.item()``,
``nonzero``, ``unique``, ``masked_select``). On the CPU every tensor is on the CPU, so these are
upper bounds: ``Policy.apply`` groups the images by op on its CPU draws, where no GPU waits.

Writes JSON and a Markdown table.

Run: python scripts/bench_step_ops.py [--space symmetry] [--model small_cnn] [--out results/step_ops.json]
"""

from __future__ import annotations

import argparse
import collections
import json
import platform
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from autoaug.models import build_model
from autoaug.policy import Policy
from autoaug.search import SearchConfig
from autoaug.search.bilevel import BilevelStep
from autoaug.search.mcmc import MCMCStep, StateSpace

WAITS = {"_local_scalar_dense", "nonzero", "_unique2", "unique_dim", "unique_consecutive", "masked_select"}


class _Count(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.calls: collections.Counter[str] = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.calls[func.overloadpacket.__name__] += 1
        return func(*args, **(kwargs or {}))


def count(fn) -> dict:
    """Aten calls of one ``fn()`` after a warm-up call."""
    fn()
    with _Count() as c:
        fn()
    return {"ops": sum(c.calls.values()), "waits": sum(v for k, v in c.calls.items() if k in WAITS),
            "top": c.calls.most_common(8)}  # fmt: skip


class _Trainer:
    """What a step needs of autoaug's Trainer: the forward with its normalization, the config."""

    def __init__(self, model: torch.nn.Module, config: SearchConfig):
        self.model, self.config, self.batch_index = model, config, None
        self.cuda = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model((x - 0.3) / 0.3)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--space", default="symmetry")
    ap.add_argument("--model", default="small_cnn")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--image-size", type=int, default=28)
    ap.add_argument("--channels", type=int, default=1)
    ap.add_argument("--out", default="results/step_ops.json")
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    b, c, s = args.batch_size, args.channels, args.image_size
    model = build_model(args.model, c, 10)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4)
    x, y = torch.rand(b, c, s, s), torch.randint(0, 10, (b,))
    config = SearchConfig.of(method="mcmc", space=args.space, epochs=1, model=args.model)
    trainer = _Trainer(model, config)

    def train_on(loss: torch.Tensor) -> None:
        opt.zero_grad()
        loss.backward()
        opt.step()

    def plain() -> None:
        loss = F.cross_entropy(trainer.forward(x), y)
        train_on(loss)
        loss.item()

    policy = Policy.uniform(args.space)
    g = torch.Generator().manual_seed(0)

    def fixed() -> None:
        loss = F.cross_entropy(trainer.forward(policy.apply(x, params=policy.sample(b, g))), y)
        train_on(loss)
        loss.item()

    mcmc = MCMCStep(config)

    def mcmc_step() -> None:
        loss, _ = mcmc.step(trainer.forward, x, y, index=torch.arange(b), net=model)
        train_on(loss)

    bilevel_cfg = SearchConfig.of(method="bilevel", space=args.space, epochs=1, model=args.model)
    bilevel = BilevelStep(bilevel_cfg)

    def bilevel_step() -> None:
        bilevel.batches = 1  # between two policy updates (every policy_every steps): the model's step
        loss, _ = bilevel.loss(_Trainer(model, bilevel_cfg), x, y)
        train_on(loss)

    states = StateSpace(args.space, 30)
    n = b // 2
    state = states.uniform(n, g)
    aux = torch.rand(n, 2, generator=g)

    rows = {
        "plain step (no augmentation)": count(plain),
        f"fixed policy step (every op of `{args.space}` equally likely)": count(fixed),
        "mcmc step (defaults)": count(mcmc_step),
        "bilevel model step (defaults, no policy update)": count(bilevel_step),
        f"Policy.apply, {n} images over every op of `{args.space}`": count(
            lambda: states.apply(x[:n], state, aux)
        ),
    }
    base = rows["plain step (no augmentation)"]["ops"]
    machine = f"{platform.machine()}, torch {torch.__version__}, counted on the CPU"
    result = {"space": args.space, "model": args.model, "batch_size": b, "image": [c, s, s], "machine": machine,
              "rows": rows}  # fmt: skip
    lines = [
        f"{args.model}, batch {b}, {c}×{s}×{s} images, space `{args.space}`; {machine}",
        "",
        "| step | aten ops | × plain | ops that make a GPU wait (upper bound) |",
        "|---|---|---|---|",
    ]
    for name, r in rows.items():
        lines.append(f"| {name} | {r['ops']:,} | {r['ops'] / base:.1f} | {r['waits']} |")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return result


if __name__ == "__main__":
    main()
