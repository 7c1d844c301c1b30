"""torchrun on two "nodes": two launchers (``--nnodes 2 --nproc_per_node 1``) on localhost meet
by a c10d rendezvous and run an MCMC search on a streamed folder (gloo). Each rank must decode
only its shard of every epoch, and both must end with the same weights and the same policy
(the gradients and the searcher's statistics are all-reduced).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from test_stream import make_photo_folder

ROOT = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, OMP_NUM_THREADS="1")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_nodes_end_with_the_same_weights_and_policy(tmp_path: Path) -> None:
    folder = make_photo_folder(tmp_path / "photos")
    port = _free_port()
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes=2", "--nproc_per_node=1",
           "--rdzv-backend=c10d", f"--rdzv-endpoint=127.0.0.1:{port}", "--rdzv-id=autoaug-test",
           str(ROOT / "tests" / "multinode_worker.py"), str(tmp_path / "out"), str(folder)]  # fmt: skip
    nodes = [
        subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
        for _ in (0, 1)
    ]
    results = [node.communicate(timeout=600) for node in nodes]
    for node, (_, err) in zip(nodes, results):
        assert node.returncode == 0, err[-3000:]
    ranks = [torch.load(tmp_path / "out" / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    assert [r["world"] for r in ranks] == [2, 2]
    seen = [[i for batch in r["seen"] for i in batch] for r in ranks]
    assert seen[0] and seen[1] and len(ranks[0]["seen"]) == len(ranks[1]["seen"])
    per_epoch = len(seen[0]) // 2
    assert not set(seen[0][:per_epoch]) & set(seen[1][:per_epoch])  # disjoint shards of one epoch
    assert ranks[0]["policy"] == ranks[1]["policy"]
    # The weights; BatchNorm's running statistics are each rank's own after its last forward
    # (DistributedDataParallel broadcasts rank 0's before each forward, and rank 0 saves the model).
    a, b = ranks[0]["model"], ranks[1]["model"]
    weights = [k for k in a if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))]
    assert len(weights) > 4 and all(torch.equal(a[k], b[k]) for k in weights)
