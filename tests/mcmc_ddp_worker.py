"""Run by ``torch.distributed.run`` from test_mcmc.py: a tiny MCMC search on every rank, then
each rank writes what its sampler holds (λ, u, the chains, the history and the policy)."""

import json
import sys
from pathlib import Path

import torch

from autoaug.search import SearchConfig
from autoaug.search.mcmc import MCMCStep
from autoaug.train import Trainer


def main(out: str) -> None:
    cfg = SearchConfig.of(dataset="glyphs", train_size=256, val_size=64, batch_size=32, epochs=2, levels=5,
                       space="standard", progress=False, out=out, seed=3, device="cpu")  # fmt: skip
    step = MCMCStep(cfg)
    trainer = Trainer(cfg, step=step)
    trainer.fit()
    rank = torch.distributed.get_rank()
    dump = {"lam": step.lam.tolist(), "relax": step.relax.tolist(), "history": step.history,
            "policy": step.learned_policy().to_dict(),
            "chains": {k: v.tolist() for k, v in step.chains.table.items()},
            "weights": [p.detach().flatten().tolist()[:50] for p in trainer.model.parameters()][:2]}  # fmt: skip
    Path(out, f"rank{rank}.json").write_text(json.dumps(dump))


if __name__ == "__main__":
    main(sys.argv[1])
