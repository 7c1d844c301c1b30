"""autoaug's MCMC search around any ``nn.Module`` classifier: a torchvision ResNet-18 (timm's
models are used the same way), trained in a plain loop, then its invariance measured (issue 21).

``OnlineAugment.loss`` only calls the model on a batch, so the architecture is the user's. The
run directory holds the history and the learned policy (``autoaug export`` reads it); the
invariance profile is measured from Python, since ``autoaug analyze RUN`` rebuilds autoaug's own
architectures by name::

    python scripts/examples/torchvision_model.py --dataset fashion-mnist --epochs 10 --out runs/resnet18

``--quick``: 128 glyphs images, 1 epoch, the ImageNet stem, 32 images profiled (what the tests run).
"""

from __future__ import annotations

import argparse
import math

import torch
import torchvision
from _data import mean_std, tensors
from torch.utils.data import DataLoader

import autoaug
from autoaug.analysis.invariance import invariance_profile


def resnet18(channels: int, classes: int, small_images: bool = True) -> torch.nn.Module:
    """torchvision's ResNet-18; for small images a 3×3 stem of stride 1 and no max-pool (16 times
    the compute of the ImageNet stem on the same images)."""
    net = torchvision.models.resnet18(num_classes=classes)
    if small_images:
        net.conv1 = torch.nn.Conv2d(channels, 64, 3, 1, 1, bias=False)
        net.maxpool = torch.nn.Identity()
    elif channels != 3:
        net.conv1 = torch.nn.Conv2d(channels, 64, 7, 2, 3, bias=False)
    return net


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", default="glyphs")
    ap.add_argument("--train-size", type=int)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--out", default="runs/resnet18")
    ap.add_argument("--quick", action="store_true", help="128 images, 1 epoch, the ImageNet stem")
    args = ap.parse_args()
    if args.quick:
        args.train_size, args.epochs = 128, 1
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    train, test, channels, classes = tensors(args.dataset, args.train_size)
    loader = DataLoader(train, batch_size=64, shuffle=True, drop_last=True)
    model = resnet18(channels, classes, small_images=not args.quick).to(device)
    mean, std = mean_std(train)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
    steps = args.epochs * len(loader)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 0.5 * (1 + math.cos(math.pi * i / steps)))
    aug = autoaug.OnlineAugment(space="symmetry", normalize=(mean, std), out=args.out, seed=0, n_aug=0.5)

    for epoch in range(args.epochs):
        model.train()
        for x, y, i in loader:
            loss = aug.loss(model, x.to(device), y.to(device), index=i)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        aug.end_epoch()
        lam = sorted(aug.dual.items(), key=lambda kv: -kv[1])[:3]
        print(
            f"epoch {epoch + 1}/{args.epochs}: train loss {aug.epoch_logs[-1]['train_loss']:.3f}; "
            f"largest dual variables {', '.join(f'{o} {v:.3f}' for o, v in lam)}",
            flush=True,
        )

    aug.save_run(args.out, model, dataset=args.dataset, train_size=args.train_size, val_size=0)
    n = 32 if args.quick else 256
    images, labels = test.tensors[0][:n], test.tensors[1][:n]
    profile = invariance_profile(model.eval(), images.to(device), labels.to(device), space="symmetry",
                                 magnitudes=2, normalize=aug.normalize, lie=False, progress=False)  # fmt: skip
    print("consistency of the predictions under each op (1: the op never changes the predicted class):")
    for op in profile.ops:
        print(f"  {op:14s} {min(profile.consistency[op]):.2f}")
    print(f"next: autoaug export {args.out}/policy.json --out {args.out}/policy_tv.py")


if __name__ == "__main__":
    main()
