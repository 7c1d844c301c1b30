"""OnlineAugment: the mcmc search in the caller's own training loop (issue 21)."""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import autoaug
from autoaug.data import DeviceLoader
from autoaug.data.stream import pixel_stats
from autoaug.models import build_model
from autoaug.search import get_searcher
from autoaug.search.base import SearchConfig, searched_ops
from autoaug.train import dataset_of

REPO = Path(__file__).resolve().parent.parent


def _cfg(tmp_path: Path, name: str, **kw) -> SearchConfig:
    base = dict(dataset="glyphs", train_size=256, val_size=64, batch_size=64, epochs=2, levels=5, progress=False,
                space="symmetry", out=str(tmp_path / name), seed=3)  # fmt: skip
    base.update(kw)
    return SearchConfig.of(**base)


def plain_loop(
    cfg: SearchConfig, out: Path | None = None, normalize=None
) -> tuple[autoaug.OnlineAugment, torch.nn.Module]:
    """A user's loop: their model, optimizer and schedule; the trainer's batches in its order;
    the trainer's normalization unless ``normalize`` is given."""
    ds = dataset_of(cfg)
    torch.manual_seed(cfg.seed)  # as the trainer does before it builds the model
    model = build_model(cfg.model, ds.channels, ds.num_classes)
    mean, std = pixel_stats(ds.train, seed=cfg.seed)
    loader = DeviceLoader(ds.train, cfg.batch_size, device="cpu", shuffle=True, drop_last=True, seed=cfg.seed)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov,
                          weight_decay=cfg.weight_decay)  # fmt: skip
    steps = cfg.epochs * len(loader)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda i: 0.5 * (1 + math.cos(math.pi * min(i, steps) / steps))
    )
    bilevel = cfg.method == "bilevel"  # what its hypergradient reads: the trainer's held-out and probe images
    extra = dict(val=(ds.val.images, ds.val.labels), optimizer=opt, probe=(ds.train.images, ds.train.labels))
    ops = searched_ops(cfg, ds.train)[0]  # as autoaug search: the ops that change some training image
    aug = autoaug.OnlineAugment(config=cfg, normalize=normalize or (mean, std.clamp(min=1e-3)), out=out, ops=ops,
                                **(extra if bilevel else {}))  # fmt: skip
    model.train()
    for _ in range(cfg.epochs):
        for images, labels in loader:
            loss = aug.loss(
                model, images.float() / 255.0, labels, index=None if bilevel else loader.last_index
            )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        aug.end_epoch()
    return aug, model


def test_plain_loop_reproduces_the_trainers_search(tmp_path):
    cfg = _cfg(tmp_path, "search")
    result = get_searcher("mcmc")(cfg).run()
    searched = json.loads((tmp_path / "search" / "history.json").read_text())
    aug, model = plain_loop(cfg)
    assert len(aug.history) == len(searched["epochs"]) == 2
    for mine, theirs in zip(aug.history, searched["epochs"]):
        assert mine["histogram"] == theirs["histogram"]  # the same states trained on, image by image
        assert mine["acceptance"] == pytest.approx(theirs["acceptance"], abs=1e-12)
        assert mine["lambda"] == pytest.approx(theirs["lambda"], abs=1e-9)
        assert mine["relaxation"] == pytest.approx(theirs["relaxation"], abs=1e-9)
    assert aug.policy().to_dict() == result.policy.to_dict()
    # and the same model
    trained = torch.load(tmp_path / "search" / "model.pt", weights_only=True)
    for k, v in model.state_dict().items():
        assert torch.allclose(v.float(), trained[k].float(), atol=1e-5), k


def test_plain_loop_reproduces_the_bilevel_online_search(tmp_path):
    """method='bilevel': the caller's loop with the validation and probe images the trainer uses
    gives autoaug search --method bilevel --mode online's policy and history."""
    cfg = SearchConfig.of(method="bilevel", mode="online", dataset="glyphs", train_size=256, val_size=64, batch_size=64,
                          epochs=2, space="standard", progress=False, out=str(tmp_path / "bilevel"), seed=3)  # fmt: skip
    result = get_searcher("bilevel")(cfg).run()
    searched = json.loads((tmp_path / "bilevel" / "history.json").read_text())
    aug, _ = plain_loop(cfg)
    assert len(aug.history) == len(searched["epochs"]) == 2
    for mine, theirs in zip(aug.history, searched["epochs"]):
        assert mine["policy_updates"] == theirs["policy_updates"] > 0
        assert mine["lambda"] == pytest.approx(theirs["lambda"], abs=1e-9)
        assert mine["op_weights"] == pytest.approx(theirs["op_weights"], abs=1e-6)
        assert mine["op_aug_loss"] == pytest.approx(theirs["op_aug_loss"], abs=1e-5)
    assert aug.policy().to_dict()["stages"] == result.policy.to_dict()["stages"]
    assert set(aug.dual) == {"all"} and aug.ops == result.policy.ops


def test_bilevel_needs_what_its_hypergradient_reads():
    with pytest.raises(ValueError, match="val="):
        autoaug.OnlineAugment(method="bilevel")
    with pytest.raises(ValueError, match="proxy model"):
        autoaug.OnlineAugment(method="bilevel", mode="search", val=(torch.rand(4, 3, 8, 8), torch.zeros(4)),
                              optimizer=torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1))  # fmt: skip
    with pytest.raises(ValueError, match="bilevel's"):
        autoaug.OnlineAugment(val=(torch.rand(4, 3, 8, 8), torch.zeros(4)))
    with pytest.raises(ValueError, match="method"):
        autoaug.OnlineAugment(method="optuna")


def test_run_directory_is_analyzable_and_exportable(tmp_path):
    cfg = _cfg(tmp_path, "unused", epochs=1, space="standard")
    # A normalization of the caller's own (not the trainer's), which the analysis must use.
    aug, model = plain_loop(cfg, out=tmp_path / "live", normalize=([0.5, 0.5, 0.5], [0.25, 0.25, 0.25]))
    # end_epoch wrote the search's files as it went
    assert (tmp_path / "live" / "history.json").is_file() and (tmp_path / "live" / "policy.json").is_file()
    run = aug.save_run(tmp_path / "run", model, dataset="glyphs", model_name=cfg.model, train_size=256,
                       val_size=64)  # fmt: skip
    for f in ("history.json", "policy.json", "metrics.jsonl", "config.yaml", "model.pt", "online.json"):
        assert (run / f).is_file(), f
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert metrics[0]["steps"] == 3 and math.isfinite(metrics[0]["train_loss"])
    from autoaug.cli import main

    assert (
        main(["analyze", str(run), "--no-lie", "--no-baseline", "--images", "64", "--magnitudes", "2"]) == 0
    )
    report = json.loads((run / "analysis" / "symmetry_report.json").read_text())
    assert set(report["ops"]) == set(aug.ops)  # every op of the run's space, read with the run's history
    assert report["search"]["epochs"] == 1 and report["model"]["name"] == cfg.model
    # The caller's normalization (online.json), not the trainer's: the clean loss by hand.
    from autoaug.analysis.report import _held_out

    x, y = _held_out(dataset_of(cfg).test, 64)
    with torch.no_grad():
        logits = model.eval()(aug.normalize(x.float() / 255))
    assert report["clean_loss"] == pytest.approx(F.cross_entropy(logits, y).item(), rel=1e-4)
    # A normalization the run cannot record is refused with what to do instead.
    (run / "online.json").write_text(json.dumps({"normalize": "callable"}))
    with pytest.raises(ValueError, match="callable"):
        from autoaug.analysis.invariance import load_run_model

        load_run_model(run)
    assert main(["export", str(run / "policy.json"), "--out", str(tmp_path / "p.py")]) == 0
    assert "transforms" in (tmp_path / "p.py").read_text()


def test_state_dict_continues_the_search(tmp_path):
    """Checkpointed after the first epoch and continued: the same search as one without a break."""
    g = torch.Generator().manual_seed(0)
    batches = [
        (torch.rand(32, 3, 16, 16, generator=g), torch.randint(5, (32,), generator=g)) for _ in range(6)
    ]
    index = [torch.arange(32) + 32 * (i % 3) for i in range(6)]

    def run(split: bool) -> list:
        torch.manual_seed(0)
        net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 16 * 16, 5))
        aug = autoaug.OnlineAugment(space="standard", seed=1, levels=4)
        for i, (x, y) in enumerate(batches):
            if split and i == 3:
                state = aug.state_dict()
                aug = autoaug.OnlineAugment(space="standard", seed=1, levels=4)
                aug.load_state_dict(state)
            aug.loss(net, x, y, index=index[i]).backward()
            if i % 3 == 2:
                aug.end_epoch()
        return aug.history

    assert run(True) == run(False)
    other = autoaug.OnlineAugment(space="symmetry", seed=1)
    with pytest.raises(ValueError, match="space"):
        other.load_state_dict(autoaug.OnlineAugment(space="standard", seed=1).state_dict())


def test_inputs_and_settings_are_checked():
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 4))
    with pytest.raises(ValueError, match="epsilon"):
        autoaug.OnlineAugment(epsilon=-1)
    with pytest.raises(ValueError, match=r"unknown|epsilonn"):
        autoaug.OnlineAugment(epsilonn=0.5)
    with pytest.raises(ValueError, match="training loop"):
        autoaug.OnlineAugment(epochs=3)
    aug = autoaug.OnlineAugment(seed=0)
    with pytest.raises(ValueError, match="B×C×H×W"):
        aug.loss(net, torch.rand(3, 8, 8), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="labels"):
        aug.loss(net, torch.rand(4, 3, 8, 8), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="no epoch"):
        aug.policy()
    # uint8 in, the same loss as the same images as float in [0, 1]
    x = torch.randint(0, 256, (8, 3, 8, 8), dtype=torch.uint8)
    y = torch.randint(4, (8,))
    a = autoaug.OnlineAugment(seed=0).loss(net, x, y)
    b = autoaug.OnlineAugment(seed=0).loss(net, x.float() / 255, y)
    assert torch.equal(a, b)


def test_criterion_autocast_and_steps_per_epoch():
    """The caller's criterion is the clean term; under the caller's autocast the ops run in float32
    and the loss is finite; steps_per_epoch closes epochs without an epoch loop."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten(), torch.nn.Linear(4 * 6 * 6, 4))
    x, y = torch.rand(16, 3, 8, 8), torch.randint(4, (16,))
    aug = autoaug.OnlineAugment(seed=0, steps_per_epoch=2, n_aug=1.0)
    seen = []

    def criterion(logits, labels):
        seen.append(logits.shape)
        return F.cross_entropy(logits, labels) * 0.0

    loss = aug.loss(net, x, y, criterion=criterion)
    assert seen == [torch.Size([16, 4])]
    # the clean term is zero, so the loss is the augmented term alone: λ starts at 0
    assert loss.item() == 0.0 and aug.last["clean_loss"] == 0.0
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = aug.loss(net, x, y)
    assert torch.isfinite(loss) and len(aug.history) == 1  # two steps: one epoch closed
    assert set(aug.dual) == set(aug.ops)
    # a channels_last model and batch: the same loss as contiguous ones
    a = autoaug.OnlineAugment(seed=5).loss(net, x, y)
    b = autoaug.OnlineAugment(seed=5).loss(
        net.to(memory_format=torch.channels_last), x.to(memory_format=torch.channels_last), y
    )
    assert torch.allclose(a, b, atol=1e-5)


@pytest.mark.parametrize("example", ["plain_loop.py", "torchvision_model.py"])
def test_examples_run(tmp_path, example):
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "examples" / example), "--out", str(out),
                           "--quick"], capture_output=True, text=True, cwd=REPO, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (out / "policy.json").is_file() and (out / "history.json").is_file()
    autoaug.load_policy(str(out / "policy.json"))


def test_lightning_example_runs(tmp_path):
    pytest.importorskip(
        "lightning", reason="the Lightning example needs pip install -e '.[lightning]' (dev has it)"
    )
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "examples" / "lightning_module.py"), "--out",
                           str(out), "--quick"], capture_output=True, text=True, cwd=REPO, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    history = json.loads((out / "history.json").read_text())
    assert len(history["epochs"]) == 2
    autoaug.load_policy(str(out / "policy.json"))


def test_distributed_data_parallel_loop_keeps_the_ranks_together(tmp_path):
    """Two gloo processes, each its shard: the dual step and the epoch's statistics are all-reduced,
    so both ranks hold the same duals, chains, history and policy (and DDP the same weights)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "ddp"
    out.mkdir()
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={port}",
           str(REPO / "tests" / "online_ddp_worker.py"), str(out)]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                            env=dict(os.environ, OMP_NUM_THREADS="1"))  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    r0, r1 = (json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1))
    assert any(v > 0 for v in r0["lam"])  # the duals moved, so the equality says something
    assert r0["lam"] == r1["lam"] and r0["relax"] == r1["relax"]
    assert r0["history"] == r1["history"] and r0["policy"] == r1["policy"]
    seen = r0["chains"]["seen"]
    assert r0["chains"] == r1["chains"] and sum(seen) > 0.5 * len(
        seen
    )  # both ranks' images (n_aug 0.5: about 3 in 4 met in 2 epochs), on both
    assert r0["weights"] == r1["weights"]
    assert json.loads((out / "policy.json").read_text())["name"] == r0["policy"]["name"]  # rank 0 wrote it


def test_vacuous_ops_are_left_out_of_the_search(tmp_path):
    """On grey images the colour ops change nothing: with drop_vacuous every searcher leaves them
    out and says so in its policy's meta and history (by default they are searched)."""
    from autoaug.data import Split
    from autoaug.search.base import vacuous_ops

    g = torch.Generator().manual_seed(0)
    # 28×28 and not flat: equalize moves it (on fewer than about 255 pixels it is the identity too)
    grey = (torch.rand(16, 1, 28, 28, generator=g) ** 2 * 255).to(torch.uint8)
    assert vacuous_ops("symmetry", grey) == ["color", "hue", "grayscale"]
    assert vacuous_ops("symmetry", grey.repeat(1, 3, 1, 1)) == ["color", "hue", "grayscale"]
    assert vacuous_ops("symmetry", (torch.rand(16, 3, 28, 28, generator=g) ** 2 * 255).to(torch.uint8)) == []
    cfg = SearchConfig.of(dataset="fashion-mnist", train_size=256, val_size=64, batch_size=64, epochs=1, levels=4,
                          progress=False, out=str(tmp_path / "mcmc"), seed=0, drop_vacuous=True)  # fmt: skip
    try:
        ops, left = searched_ops(cfg, Split(grey, torch.zeros(16, dtype=torch.long)))
    except FileNotFoundError:  # pragma: no cover
        pytest.skip("Fashion-MNIST is not installed")
    assert left == ["color", "hue", "grayscale"] and "hflip" in ops
    assert (
        searched_ops(cfg.replace(drop_vacuous=False), Split(grey, torch.zeros(16, dtype=torch.long)))[1] == []
    )
    result = get_searcher("mcmc")(cfg).run()
    history = json.loads((tmp_path / "mcmc" / "history.json").read_text())
    assert history["vacuous"] == left and not set(left) & set(history["ops"])
    assert result.policy.meta["vacuous"] == left and not set(left) & set(result.policy.ops)
    bcfg = cfg.replace(method="bilevel", out=str(tmp_path / "bilevel"), stages=1)
    policy = get_searcher("bilevel")(bcfg).run().policy
    assert policy.meta["vacuous"] == left and not set(left) & set(policy.ops)


def test_the_samplers_scoring_passes_leave_batch_norm_statistics_alone(tmp_path):
    """Only the two training forwards (clean, augmented) fold into the running statistics: the
    no-grad passes that score the chains' states and proposals are not training on the data."""
    cfg = _cfg(tmp_path, "stats", chain_length=2, n_aug=1.0)
    ds = dataset_of(cfg)
    torch.manual_seed(0)
    model = build_model(cfg.model, ds.channels, ds.num_classes).train()
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    aug = autoaug.OnlineAugment(config=cfg, normalize=(0.5, 0.25))
    images, labels = ds.train.images[:32].float() / 255.0, ds.train.labels[:32]
    before = [m.running_mean.clone() for m in bns]
    loss = aug.loss(model, images, labels, index=torch.arange(32))
    loss.backward()  # the kept statistics do not break the backward pass
    assert all(int(m.num_batches_tracked) == 2 for m in bns)
    assert not torch.equal(before[0], bns[0].running_mean)  # the training forwards did move them
    # A function around the module keeps them too, when the module is named.
    count = [int(m.num_batches_tracked) for m in bns]
    aug.loss(lambda x: model(x), images, labels, index=torch.arange(32), net=model)
    assert [int(m.num_batches_tracked) for m in bns] == [c + 2 for c in count]
