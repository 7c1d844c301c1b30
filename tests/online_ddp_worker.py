"""Run by ``torch.distributed.run`` from test_online.py: a plain DistributedDataParallel loop
(gloo, CPU) with OnlineAugment; each rank writes what its search holds and its weights."""

import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

import autoaug
from autoaug.data import load_dataset
from autoaug.models import build_model


def main(out: str) -> None:
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    ds = load_dataset("glyphs", train_size=256, val_size=0)
    torch.manual_seed(0)
    model = DistributedDataParallel(build_model("small_cnn", ds.channels, ds.num_classes))
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    aug = autoaug.OnlineAugment(space="standard", levels=5, seed=3, out=out)  # the same seed on every rank
    mine = torch.arange(rank, len(ds.train), world)  # this rank's shard
    for epoch in range(2):
        order = mine[torch.randperm(len(mine), generator=torch.Generator().manual_seed(epoch))]
        for batch in order.split(32):
            x, y = ds.train.images[batch], ds.train.labels[batch]
            loss = aug.loss(model, x, y, index=batch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        aug.end_epoch()
    core = aug.core
    dump = {"lam": core.lam.tolist(), "relax": core.relax.tolist(), "history": aug.history,
            "policy": aug.policy().to_dict(), "chains": {k: v.tolist() for k, v in core.chains.table.items()},
            "weights": [p.detach().flatten().tolist()[:50] for p in model.module.parameters()][:2]}  # fmt: skip
    Path(out, f"rank{rank}.json").write_text(json.dumps(dump))
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
