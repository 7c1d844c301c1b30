"""Run by two ``torch.distributed.run --nnodes 2 --nproc_per_node 1`` launchers from
test_multinode.py (two "nodes" on localhost, a c10d rendezvous, gloo): an MCMC search on a
streamed folder; each rank writes the dataset indices of every batch it trained on, its final
weights and the policy it learned to ``OUT/rank{r}.pt``.

    python -m torch.distributed.run --nnodes 2 --nproc_per_node 1 --rdzv-backend c10d \\
        --rdzv-endpoint 127.0.0.1:PORT --rdzv-id ID tests/multinode_worker.py OUT FOLDER
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from autoaug.search import SearchConfig
from autoaug.search.mcmc import MCMCStep
from autoaug.train import Trainer


class RecordingStep(MCMCStep):
    """The MCMC searcher's step, recording each batch's dataset indices (``Trainer.batch_index``)."""

    def __init__(self, config: SearchConfig) -> None:
        super().__init__(config)
        self.seen: list[list[int]] = []

    def loss(self, trainer, images, labels):
        self.seen.append(trainer.batch_index.tolist())
        return super().loss(trainer, images, labels)


def config(out: str | Path, folder: str | Path) -> SearchConfig:
    return SearchConfig.of(method="mcmc", dataset=f"folder:{folder}", image_size="16", stream="on", workers=0,
                           epochs=2, batch_size=6, device="cpu", progress=False, out=str(out))  # fmt: skip


if __name__ == "__main__":
    out, folder = Path(sys.argv[1]), Path(sys.argv[2])
    step = RecordingStep(config(out / "search", folder))  # as MCMCSearcher.run does
    trainer = Trainer(step.config, step=step)
    trainer.fit()
    state = {"world": trainer.world, "seen": step.seen, "model": trainer.model.state_dict(),
             "policy": step.learned_policy().to_dict()}  # fmt: skip
    torch.save(state, out / f"rank{trainer.rank}.pt")
