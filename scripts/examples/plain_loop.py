"""autoaug's MCMC search inside a plain PyTorch training loop (issue 21).

Four lines of autoaug in an ordinary loop: build an ``OnlineAugment``, call ``aug.loss`` instead
of the criterion, ``aug.end_epoch()`` after each epoch, ``aug.save_run`` at the end. Device,
bf16 autocast and channels_last are the loop's own (on CUDA when there is one)::

    python scripts/examples/plain_loop.py --dataset fashion-mnist --epochs 15 --out runs/plain_loop
    autoaug analyze runs/plain_loop
    autoaug export runs/plain_loop/policy.json --out runs/plain_loop/policy_tv.py

``--quick``: 256 glyphs images, 2 epochs (what the tests run).
"""

from __future__ import annotations

import argparse
import math

import torch
from _data import mean_std, tensors
from torch.utils.data import DataLoader

import autoaug
from autoaug.models import build_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", default="glyphs")
    ap.add_argument("--train-size", type=int)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--out", default="runs/plain_loop")
    ap.add_argument("--quick", action="store_true", help="256 images, 2 epochs")
    args = ap.parse_args()
    if args.quick:
        args.train_size, args.epochs = 256, 2
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    cuda = device.type == "cuda"
    torch.manual_seed(0)

    train, test, channels, classes = tensors(args.dataset, args.train_size)
    loader = DataLoader(train, batch_size=64 if args.quick else 128, shuffle=True, drop_last=True)
    model = build_model("small_cnn", channels, classes).to(device)
    if cuda:
        model = model.to(memory_format=torch.channels_last)
    mean, std = mean_std(train)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
    steps = args.epochs * len(loader)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 0.5 * (1 + math.cos(math.pi * i / steps)))

    # autoaug: the search, beside the loop's own normalization
    aug = autoaug.OnlineAugment(space="symmetry", normalize=(mean, std), out=args.out, seed=0)

    for epoch in range(args.epochs):
        model.train()
        for x, y, i in loader:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
                loss = aug.loss(model, x, y, index=i)  # autoaug: clean + constrained augmented loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        aug.end_epoch()  # autoaug: the epoch's statistics, history.json and policy.json
        print(
            f"epoch {epoch + 1}/{args.epochs}: train loss {aug.epoch_logs[-1]['train_loss']:.3f}, "
            f"test accuracy {accuracy(model, test, aug, device):.4f}",
            flush=True,
        )

    # autoaug: a run directory for `autoaug analyze` and `autoaug export`
    aug.save_run(args.out, model, dataset=args.dataset, model_name="small_cnn", train_size=args.train_size,
                 val_size=0)  # fmt: skip
    policy = aug.policy()
    print(
        f"learned policy: {', '.join(f'{e.op} {e.weight:.2f}' for e in policy.stages[0]) if policy.stages else 'none'}"
    )
    print(
        f"next: autoaug analyze {args.out}; autoaug export {args.out}/policy.json --out {args.out}/policy_tv.py"
    )


@torch.no_grad()
def accuracy(model: torch.nn.Module, test, aug: autoaug.OnlineAugment, device: torch.device) -> float:
    model.eval()
    right = 0
    for x, y, _ in DataLoader(test, batch_size=1024):
        logits = model(aug.normalize(x.to(device).float() / 255.0))
        right += (logits.argmax(1).cpu() == y).sum().item()
    return right / len(test)


if __name__ == "__main__":
    main()
