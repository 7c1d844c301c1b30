"""Does the MCMC sampler train each image on that image's own law π(g|x)?

A simulation with a known, image-dependent loss table ``ℓ(x, g)`` (the model is frozen, so the
target is fixed): ``N`` images visited once per epoch in batches, as the trainer does, each
visit driving :meth:`autoaug.search.mcmc.MCMCStep.sample` with the table in place of a model.
The target is ``π(g|x) ∝ ℓ(x, g)`` (with per-op constraints, over the levels of the op dealt).

Two figures per sampler:

* **per-image agreement**: how far the trained state follows the image beyond what the
  marginal over images explains. With ``π̄`` the mean of ``π(·|x)`` over images, it is
  ``E_visits[π(g_t|x) − π̄(g_t)] / E_{g~π(·|x)}[π(g|x) − π̄(g)]``: 1 when every visit draws from
  the image's own law, 0 when the trained state does not depend on the image (as with chains
  kept per batch position), whatever the marginal.
* **marginal TV**: the total-variation distance between the trained states' law over ops
  (single constraint) or over levels (per-op) and the target's, averaged over images.

Compared: ``per-image`` (autoaug's chains, keyed by the image), ``batch-slot`` (chains kept
per position in the batch and carried to the next batch's images: the sampler before the
per-image chains, replicated here for comparison), ``per-image k=2`` (two Metropolis-Hastings
steps per visit, ``--chain-length 2``), and ``oracle`` (an exact draw from π(·|x)
each visit: the best a sampler can do with this many visits).

Usage:
    python scripts/sampler_agreement.py                  # single and per-op, 2,000 images, 30 epochs
    python scripts/sampler_agreement.py --out results/sampler_agreement.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from autoaug.search import SearchConfig
from autoaug.search.mcmc import MCMCStep, mh_step


def loss_table(n: int, k: int, levels: int, seed: int = 0, rank: int = 2, scale: float = 1.0) -> torch.Tensor:
    """``ℓ(x, op, level)`` > 0 with an image × op interaction (a rank-``rank`` term) and a level
    effect that differs per image: N×K×L."""
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(k * levels, generator=g) * 0.5
    v = torch.randn(rank, k * levels, generator=g)
    u = torch.randn(n, rank, generator=g)  # drawn last: the first images' rows do not depend on n
    logits = base + scale * (u @ v) / rank**0.5
    return logits.exp().view(n, k, levels)


def _target(table: torch.Tensor, per_op: bool) -> torch.Tensor:
    if per_op:
        return table / table.sum(2, keepdim=True)  # π(level | x, op)
    return table / table.sum((1, 2), keepdim=True)  # π(op, level | x)


def _score(visits: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]], table: torch.Tensor, per_op: bool):
    """Per-image agreement and marginal TV of the visits (image, op, level)."""
    target = _target(table, per_op)
    mean = target.mean(0, keepdim=True)
    centred = target - mean
    idx = torch.cat([v[0] for v in visits])
    op = torch.cat([v[1] for v in visits])
    lv = torch.cat([v[2] for v in visits])
    got = centred[idx, op, lv].mean()
    if per_op:  # the best: drawing the level from π(·|x, op) for the op each visit was dealt
        best = (target[idx, op] * centred[idx, op]).sum(1).mean()
        counts = torch.zeros_like(table).index_put_((idx, op, lv), torch.ones(len(idx)), accumulate=True)
        emp = counts.sum(0) / counts.sum((0, 2)).clamp(min=1)[:, None]  # law over levels per op
        tv = 0.5 * (emp - target[idx].view(len(idx), *table.shape[1:]).mean(0)).abs().sum(1).mean()
    else:
        best = (target * centred).sum((1, 2)).mean()
        counts = torch.zeros_like(table).index_put_((idx, op, lv), torch.ones(len(idx)), accumulate=True)
        emp_ops = counts.sum((0, 2)) / counts.sum()
        tv = 0.5 * (emp_ops - target.sum(2).mean(0)).abs().sum()
    return float(got / best), float(tv)


def simulate(sampler: str, per_op: bool, n: int = 2000, epochs: int = 30, batch: int = 128, levels: int = 5,
             space: str = "standard", seed: int = 0, table_seed: int = 1, shuffle_images: bool = False,
             chain_length: int = 1) -> dict:  # fmt: skip
    """Run one sampler over the epochs; returns its per-image agreement and marginal TV.

    ``shuffle_images`` scores the visits against other images' targets (a control: it must give
    an agreement near 0).
    """
    cfg = SearchConfig.of(
        space=space,
        levels=levels,
        constraint="per_op" if per_op else "single",
        seed=seed,
        chain_length=chain_length,
    )
    step = MCMCStep(cfg)
    k = step.states.size
    table = loss_table(n, k, levels, seed=table_seed)
    order_gen = torch.Generator().manual_seed(seed + 1)
    slots = None
    visits = []
    for _ in range(epochs):
        order = torch.randperm(n, generator=order_gen)
        for b in range(n // batch):
            idx = order[b * batch : (b + 1) * batch]
            if sampler == "per-image":

                def evaluate(state, rows, need_loss, idx=idx):
                    loss = table[idx[rows], state["op"], state["level"]] if need_loss else None
                    return None, loss

                _, state = step.sample(len(idx), idx, evaluate)
            elif sampler == "batch-slot":  # the chain belongs to the slot; its images change every batch
                if slots is None:
                    slots = step.chains.start(len(idx), None)
                state = slots
                cur = table[idx, state["op"], state["level"]]
                proposal = step.chains.propose(state)
                slots, _, _ = mh_step(state, cur, proposal, table[idx, proposal["op"], proposal["level"]],
                                      step.generator)  # fmt: skip
            elif sampler == "oracle":
                target = _target(table, per_op)[idx]
                if per_op:
                    op = step.chains.deal(len(idx))
                    lv = torch.multinomial(target[torch.arange(len(idx)), op], 1, generator=step.generator)[
                        :, 0
                    ]
                else:
                    flat = torch.multinomial(target.flatten(1), 1, generator=step.generator)[:, 0]
                    op, lv = flat // levels, flat % levels
                state = {"op": op, "level": lv}
            else:
                raise ValueError(f"unknown sampler {sampler!r}; known: per-image, batch-slot, oracle")
            shown = idx[torch.randperm(len(idx), generator=order_gen)] if shuffle_images else idx
            visits.append((shown, state["op"], state["level"]))
    agreement, tv = _score(visits, table, per_op)
    return {"sampler": sampler, "constraint": cfg.mcmc.constraint, "agreement": agreement, "marginal_tv": tv,
            "images": n, "epochs": epochs, "states": k * levels, "shuffled_control": shuffle_images}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--out", default="results/sampler_agreement.json")
    args = ap.parse_args(argv)
    rows = []
    for per_op in (False, True):
        for sampler in ("per-image", "per-image k=2", "batch-slot", "oracle"):
            k = 2 if sampler.endswith("k=2") else 1
            r = simulate(sampler.split()[0], per_op, n=args.images, epochs=args.epochs, chain_length=k)
            r["sampler"] = sampler
            rows.append(r)
            print(
                f"{r['constraint']:7s} {sampler:11s} agreement {r['agreement']:+.3f}  marginal TV {r['marginal_tv']:.3f}"
            )
        r = simulate("per-image", per_op, n=args.images, epochs=args.epochs, shuffle_images=True)
        rows.append(r)
        print(f"{r['constraint']:7s} {'(shuffled)':11s} agreement {r['agreement']:+.3f}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=1))
    lines = ["| constraint | sampler | per-image agreement | marginal TV |", "|---|---|---|---|"]
    lines += [f"| {r['constraint']} | {r['sampler']}{' (images shuffled)' if r['shuffled_control'] else ''} | "
              f"{r['agreement']:.3f} | {r['marginal_tv']:.3f} |" for r in rows]  # fmt: skip
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print(f"wrote {out} and {out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
