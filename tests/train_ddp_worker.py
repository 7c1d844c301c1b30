"""Run by ``torch.distributed.run`` from test_distributed.py: two tiny glyphs trainings with
the real :class:`Trainer`, one with BatchNorm frozen (eval mode) and one as shipped (train
mode); each process writes, for each, the dataset indices of every batch it trained on and its
final weights to ``OUT/rank{r}.pt``. :func:`train` alone (one process) is the test's reference.

    python -m torch.distributed.run --nproc_per_node=2 tests/train_ddp_worker.py OUT BATCH_SIZE
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import torch
from torch import nn

from autoaug.data import Dataset, load_dataset
from autoaug.policy import Policy
from autoaug.train import PolicyStep, TrainConfig, Trainer

EPOCHS = 2
TRAIN_SIZE = 256  # val_size 0: all 256 are trained on; 4 steps an epoch at a global batch of 64


class RecordingStep(PolicyStep):
    """No augmentation; records each batch's dataset indices (``Trainer.batch_index``).

    With ``frozen_bn`` BatchNorm stays in eval mode (it normalizes with its running statistics,
    which then stay at their initial 0 and 1), so that an image's loss does not depend on the
    rest of its batch: in train mode each rank normalizes its B images with their own
    statistics, not those of the global 2B batch, and no one-process run could match it.
    """

    def __init__(self, seed: int, frozen_bn: bool) -> None:
        super().__init__(Policy.identity(), seed=seed)
        self.frozen_bn = frozen_bn
        self.seen: list[list[int]] = []

    def loss(self, trainer, images, labels):
        self.seen.append(trainer.batch_index.tolist())
        if self.frozen_bn:
            for m in trainer.model.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()  # fit() and evaluate() put the model back in train mode
        return super().loss(trainer, images, labels)


def config(out: str | Path, batch_size: int) -> TrainConfig:
    return TrainConfig(dataset="glyphs", train_size=TRAIN_SIZE, val_size=0.0, batch_size=batch_size,
                       epochs=EPOCHS, policy="none", device="cpu", progress=False, out=str(out))  # fmt: skip


def dataset() -> Dataset:
    data = load_dataset("glyphs", train_size=TRAIN_SIZE, val_size=0.0, seed=0)
    return dataclasses.replace(data, test=data.test.subset(torch.arange(64)))  # a quick evaluation


def train(out: str | Path, batch_size: int, frozen_bn: bool) -> dict:
    """Train; returns the world size, the batches this process saw and its final weights."""
    step = RecordingStep(seed=0, frozen_bn=frozen_bn)
    trainer = Trainer(config(out, batch_size), dataset=dataset(), step=step)
    trainer.fit()
    return {"world": trainer.world, "seen": step.seen, "model": trainer.model.state_dict()}


if __name__ == "__main__":
    out, batch_size = Path(sys.argv[1]), int(sys.argv[2])
    runs = {f"{bn}_bn": train(out / f"{bn}_bn", batch_size, bn == "frozen") for bn in ("frozen", "train")}
    torch.save(runs, out / f"rank{torch.distributed.get_rank()}.pt")
