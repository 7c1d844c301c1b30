"""autoaug's MCMC search in a Lightning module (issue 21; ``pip install -e ".[lightning]"``).

The search lives in the module: ``training_step`` returns ``aug.loss``, the epoch hook closes
the search's epoch, and the search's state rides in Lightning's checkpoints. Precision, devices
and strategy (DDP included: the search all-reduces what it must) are Lightning's::

    python scripts/examples/lightning_module.py --dataset fashion-mnist --epochs 15 --out runs/lightning
    autoaug analyze runs/lightning

``--quick``: 256 glyphs images, 2 epochs (what the tests run).
"""

from __future__ import annotations

import argparse

import lightning as L
import torch
from _data import mean_std, tensors
from torch.utils.data import DataLoader

import autoaug
from autoaug.models import build_model


class AugmentedClassifier(L.LightningModule):
    """A classifier trained under autoaug's invariance-constrained augmentation."""

    def __init__(
        self, channels: int, classes: int, mean: list[float], std: list[float], out: str, epochs: int
    ):
        super().__init__()
        self.net = build_model("small_cnn", channels, classes)
        self.aug = autoaug.OnlineAugment(space="symmetry", normalize=(mean, std), out=out, seed=0)
        self.epochs = epochs

    def training_step(self, batch, batch_idx):
        x, y, i = batch
        loss = self.aug.loss(self.net, x, y, index=i)
        self.log("aug_loss", self.aug.last["aug_loss"], prog_bar=True)
        return loss

    def on_train_epoch_end(self) -> None:
        self.aug.end_epoch()

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["autoaug"] = self.aug.state_dict()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.aug.load_state_dict(checkpoint["autoaug"])

    def configure_optimizers(self):
        opt = torch.optim.SGD(self.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
        return [opt], [torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.epochs)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", default="glyphs")
    ap.add_argument("--train-size", type=int)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--out", default="runs/lightning")
    ap.add_argument("--quick", action="store_true", help="256 images, 2 epochs")
    args = ap.parse_args()
    if args.quick:
        args.train_size, args.epochs = 256, 2
    L.seed_everything(0, verbose=False)
    train, _, channels, classes = tensors(args.dataset, args.train_size)
    module = AugmentedClassifier(channels, classes, *mean_std(train), out=args.out, epochs=args.epochs)
    trainer = L.Trainer(max_epochs=args.epochs, accelerator="auto", devices=1, logger=False,
                        enable_checkpointing=False, enable_progress_bar=not args.quick,
                        enable_model_summary=False)  # fmt: skip
    trainer.fit(module, DataLoader(train, batch_size=64, shuffle=True, drop_last=True))
    module.aug.save_run(args.out, module.net, dataset=args.dataset, model_name="small_cnn",
                        train_size=args.train_size, val_size=0)  # fmt: skip
    print(f"{len(module.aug.history)} epochs searched; next: autoaug analyze {args.out}")


if __name__ == "__main__":
    main()
