"""torchrun, checked: two CPU processes (gloo) train on disjoint shards of one seeded order,
end with the weights of one process at the same global batch, and resume a killed run to the
weights of an uninterrupted one.

Rank r keeps batches r, r + 2, r + 4, ... of the loader's order at batch B, so the two batches
of a step are batches 2k and 2k + 1: together, batch k of the same order at batch 2B (the
order is one ``randperm`` of the split, whatever the batch size). With BatchNorm frozen, the
two ranks' averaged gradient is then the gradient of one process's 2B batch, and the weights
agree to float rounding. With BatchNorm in train mode (as shipped) each rank normalizes with
its own batch's statistics; there the reference is a hand-written step that averages the
gradients of the two halves, each normalized on its own, and keeps rank 0's running
statistics (DistributedDataParallel broadcasts rank 0's buffers before every forward).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import train_ddp_worker as worker

from autoaug.data import DeviceLoader
from autoaug.train import Trainer

ROOT = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, OMP_NUM_THREADS="1")
B = 32  # per rank; the one-process reference trains at 2B
ATOL = 1e-5  # float32 rounding of sums taken in another order; seen: 5e-7 over 8 SGD steps


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun(*args: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={_free_port()}",
            *args]  # fmt: skip


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory) -> list[dict]:
    """Each rank's record (batches seen, final weights) of the worker's two trainings."""
    out = tmp_path_factory.mktemp("ddp")
    cmd = _torchrun(str(ROOT / "tests" / "train_ddp_worker.py"), str(out), str(B))
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=ENV)
    assert result.returncode == 0, result.stderr[-3000:]
    return [torch.load(out / f"rank{r}.pt", weights_only=True) for r in (0, 1)]


def _shards() -> list[list[list[int]]]:
    """Per epoch, the batches of the seeded order at batch B: rank r should train on [r::2]."""
    loader = DeviceLoader(worker.dataset().train, B, seed=0)
    epochs = []
    for _ in range(worker.EPOCHS):
        epochs.append([])
        for _batch in loader:
            epochs[-1].append(loader.last_index.tolist())
    return epochs


def _max_diff(a: dict, b: dict) -> float:
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a if a[k].is_floating_point())


@pytest.mark.slow
def test_ranks_train_on_disjoint_shards_of_one_order(two_ranks):
    shards = _shards()
    n = len(worker.dataset().train)
    for run in ("frozen_bn", "train_bn"):
        seen = [two_ranks[r][run]["seen"] for r in (0, 1)]
        assert [two_ranks[r][run]["world"] for r in (0, 1)] == [2, 2]
        per_epoch = len(seen[0]) // worker.EPOCHS
        assert len(seen[0]) == len(seen[1]) == worker.EPOCHS * (n // (2 * B)) == 8
        for e, batches in enumerate(shards):
            mine = [seen[r][e * per_epoch : (e + 1) * per_epoch] for r in (0, 1)]
            assert mine[0] == batches[0::2] and mine[1] == batches[1::2]
            flat = [sorted(i for batch in m for i in batch) for m in mine]
            assert not set(flat[0]) & set(flat[1])
            assert sorted(flat[0] + flat[1]) == list(range(n))  # each image once an epoch
        assert seen[0][:per_epoch] != seen[0][per_epoch:]  # a new order each epoch


@pytest.mark.slow
def test_two_ranks_equal_one_process_at_the_same_global_batch(two_ranks, tmp_path):
    """BatchNorm frozen: 2 ranks × 32 against the real trainer in one process at 64."""
    one = worker.train(tmp_path / "one", 2 * B, frozen_bn=True)
    assert one["world"] == 1
    ranks = [two_ranks[r]["frozen_bn"] for r in (0, 1)]
    # The same images at every optimizer step: the one process's batch k is the ranks' k-th two.
    assert [sorted(b) for b in one["seen"]] == [
        sorted(a + b) for a, b in zip(ranks[0]["seen"], ranks[1]["seen"])
    ]
    initial = Trainer(worker.config(tmp_path / "init", B), dataset=worker.dataset()).model.state_dict()
    assert _max_diff(one["model"], initial) > 1000 * ATOL  # it trained (by 0.02): the equality says something
    assert _max_diff(ranks[0]["model"], ranks[1]["model"]) == 0.0  # the ranks stayed in step
    assert _max_diff(ranks[0]["model"], one["model"]) < ATOL


@pytest.mark.slow
def test_two_ranks_average_their_gradients_with_batchnorm_in_train_mode(two_ranks, tmp_path):
    """BatchNorm as shipped: against a step that averages the two halves' gradients by hand."""
    # One process at 2B: the ranks' initial weights, optimizer and cosine schedule (8 steps). One
    # thread, as the workers: with BatchNorm in train mode the two threads' other summation order
    # grows from 1e-7 to 3e-3 in 8 steps, so the reference must add up as the workers do.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _reference_steps(worker, tmp_path, two_ranks)
    finally:
        torch.set_num_threads(threads)


def _reference_steps(worker, tmp_path, two_ranks):
    trainer = Trainer(worker.config(tmp_path / "ref", 2 * B), dataset=worker.dataset())
    model, data = trainer.model, trainer.dataset.train
    model.train()
    for epoch in _shards():
        for k in range(0, len(epoch) - 1, 2):
            trainer.optimizer.zero_grad(set_to_none=True)
            for r, index in enumerate(epoch[k : k + 2]):
                kept = {name: b.clone() for name, b in model.named_buffers()}
                images, labels = data.images[index].float() / 255.0, data.labels[index]
                loss, _ = trainer.step.loss(trainer, images, labels)
                (loss / 2).backward()
                if r == 1:  # rank 1's running statistics are overwritten by rank 0's before each forward
                    for name, b in model.named_buffers():
                        b.copy_(kept[name])
            trainer.optimizer.step()
            trainer.scheduler.step()
    ranks = [two_ranks[r]["train_bn"] for r in (0, 1)]
    params = {name for name, _ in model.named_parameters()}
    assert _max_diff(*({k: w[k] for k in params} for w in (ranks[0]["model"], ranks[1]["model"]))) == 0.0
    assert _max_diff(ranks[0]["model"], model.state_dict()) < ATOL


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (torchrun's workers: it starts each in a session of
    its own, so killing torchrun's process group would not reach them)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _records(path: Path) -> list[dict]:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in ("seconds", "images_per_s")} for r in rows]


@pytest.mark.slow
def test_killed_torchrun_run_resumes_under_torchrun_to_the_same_weights(tmp_path):
    args = ["-m", "autoaug", "train", "--dataset", "glyphs", "--train-size", "256", "--val-size", "0.125",
            "--batch-size", "32", "--epochs", "2", "--test-every", "2", "--policy", "trivialaugment",
            "--device", "cpu", "--no-progress"]  # fmt: skip
    full, cut = tmp_path / "full", tmp_path / "cut"
    result = subprocess.run(
        _torchrun(*args, "--out", str(full)), capture_output=True, text=True, timeout=600, env=ENV
    )
    assert result.returncode == 0, result.stderr[-3000:]

    proc = subprocess.Popen(_torchrun(*args, "--out", str(cut)), env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.time() + 600
    while time.time() < deadline and proc.poll() is None and not (cut / "checkpoint.pt").exists():
        time.sleep(0.05)  # kill both ranks once epoch 1's checkpoint is on disk
    workers = _children(proc.pid)
    assert proc.poll() is None and len(workers) == 2, "the run ended before it could be killed"
    for pid in workers:
        os.kill(pid, signal.SIGKILL)
    proc.communicate(timeout=120)
    assert proc.returncode != 0
    assert torch.load(cut / "checkpoint.pt", weights_only=True)["epoch"] == 1
    assert not (cut / "model.pt").exists()
    epoch_1 = (cut / "metrics.jsonl").read_text().splitlines()[0]

    result = subprocess.run(_torchrun(*args, "--out", str(cut), "--resume"), capture_output=True, text=True,
                            timeout=600, env=ENV)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    # Epoch 1 came from the checkpoint, not from training again (its timing is the killed run's).
    assert (cut / "metrics.jsonl").read_text().splitlines()[0] == epoch_1
    assert _records(cut / "metrics.jsonl") == _records(full / "metrics.jsonl")
    assert len(_records(full / "metrics.jsonl")) == 2  # rank 0 alone writes, a line an epoch
    a, b = (torch.load(d / "model.pt", weights_only=True) for d in (full, cut))
    assert all(torch.equal(a[k], b[k]) for k in a)
