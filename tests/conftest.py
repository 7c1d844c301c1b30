"""Shared fixtures: small image batches (synthetic RGB, real Fashion-MNIST) and ``build_tv``."""

from __future__ import annotations

import functools
import gzip
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from autoaug.ops import TvSpec

FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz")


def build_tv(spec: TvSpec) -> v2.Transform:
    """The live torchvision object a :class:`TvSpec` describes."""
    kwargs = dict(spec.kwargs)
    if spec.target.startswith("F."):
        return v2.Lambda(functools.partial(getattr(F, spec.target[2:]), **kwargs))
    return getattr(v2, spec.target)(**kwargs)


def read_idx_images(path: Path, count: int) -> torch.Tensor:
    """The first ``count`` images of a gzipped IDX file as float N×1×H×W in [0, 1]."""
    with gzip.open(path, "rb") as f:
        header = np.frombuffer(f.read(16), dtype=">u4")
        if header[0] != 2051:
            raise ValueError(f"{path}: not an IDX image file (magic {header[0]}, expected 2051)")
        h, w = int(header[2]), int(header[3])
        n = min(count, int(header[1]))
        pixels = np.frombuffer(f.read(n * h * w), dtype=np.uint8).reshape(n, 1, h, w)
    return torch.from_numpy(pixels.astype(np.float32) / 255.0)


@pytest.fixture(scope="session")
def rgb_images() -> torch.Tensor:
    """Four smooth-plus-noise RGB images, 4×3×16×16 float32 in [0, 1], the same every run.

    Strictly inside (0, 1), with gradients and edges, so geometric ops move real structure and
    photometric ops are not hidden by clamping.
    """
    g = torch.Generator().manual_seed(0)
    ys, xs = torch.meshgrid(torch.linspace(0, 1, 16), torch.linspace(0, 1, 16), indexing="ij")
    base = torch.stack([xs, ys, (xs + ys) / 2])  # 3×16×16 ramps
    noise = torch.rand(4, 3, 16, 16, generator=g)
    return (0.05 + 0.9 * (0.5 * base + 0.5 * noise)).contiguous()


@pytest.fixture(scope="session")
def fashion_mnist() -> torch.Tensor:
    """The first 16 Fashion-MNIST test images, 16×1×28×28 float32 in [0, 1]."""
    if not FASHION_MNIST.is_file():
        pytest.skip("Fashion-MNIST not installed: apt-get install dataset-fashion-mnist")
    return read_idx_images(FASHION_MNIST, 16)


# Skips for want of a service that CI must provide (.ci/run sets AUTOAUG_REQUIRE_SERVICES=1):
# there they fail, so that a green CI has run the tests of PostgreSQL and Fashion-MNIST.
SERVICE_SKIPS = ("PostgreSQL", "Fashion-MNIST")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if not report.skipped or os.environ.get("AUTOAUG_REQUIRE_SERVICES") != "1":
        return
    reason = str(report.longrepr[-1] if isinstance(report.longrepr, tuple) else report.longrepr)
    if any(service in reason for service in SERVICE_SKIPS) and "xfail" not in report.keywords:
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, where it must run (AUTOAUG_REQUIRE_SERVICES=1): {reason}"


def write_bar_idx(root: Path, train: int, test: int, gzip_train: bool = False) -> Path:
    """A Fashion-MNIST-shaped IDX directory: ``train`` and ``test`` images, 1×28×28, 10 classes
    (a bright bar whose row is the class, on noise); the training files gzipped if asked, the
    test files not (both occur)."""
    rng = np.random.default_rng(0)
    for part, n in (("train", train), ("t10k", test)):
        labels = np.arange(n) % 10
        rng.shuffle(labels)
        images = rng.integers(0, 60, (n, 28, 28))
        for i, c in enumerate(labels):
            images[i, 2 + 2 * c : 4 + 2 * c, 4:24] = 250
        suffix = ".gz" if gzip_train and part == "train" else ""
        for kind, array in (("images-idx3", images), ("labels-idx1", labels)):
            header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
            data = header + array.astype(np.uint8).tobytes()
            path = root / f"{part}-{kind}-ubyte{suffix}"
            path.write_bytes(gzip.compress(data) if suffix else data)
    return root
