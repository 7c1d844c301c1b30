"""autoaug.models: shapes for any input, head(embed(x)) == forward, the standard sizes."""

from __future__ import annotations

import time

import pytest
import torch
import torch.nn.functional as F

from autoaug.data import load_dataset, to_float
from autoaug.models import MODELS, build_model

FAST = ("small_cnn", "resnet18", "wrn-40-2")
EMBED_DIM = {"small_cnn": 256, "resnet18": 512, "wrn-40-2": 128, "wrn-28-10": 640}


@pytest.mark.parametrize("name", FAST)
@pytest.mark.parametrize(("channels", "size"), [(1, 28), (3, 32), (1, 32), (3, 28)])
def test_output_and_embedding_shapes(name: str, channels: int, size: int) -> None:
    torch.manual_seed(0)
    model = build_model(name, in_channels=channels, num_classes=7).eval()
    x = torch.rand(2, channels, size, size)
    with torch.no_grad():
        logits, z = model(x), model.embed(x)
    assert logits.shape == (2, 7) and z.shape == (2, EMBED_DIM[name])
    assert torch.allclose(model.head(z), logits, atol=1e-6)
    assert isinstance(model.head, torch.nn.Linear) and model.head.in_features == EMBED_DIM[name]


@pytest.mark.parametrize("name", FAST)
def test_head_of_embed_equals_forward_in_training_mode(name: str) -> None:
    torch.manual_seed(0)
    model = build_model(name, 3, 4).train()
    x = torch.rand(4, 3, 20, 24)  # not square, not a power of two
    assert torch.allclose(model(x), model.head(model.embed(x)), atol=1e-5)


def test_wrn_28_10_is_the_standard_size_and_runs() -> None:
    model = build_model("wrn-28-10", 3, 10).eval()
    assert 36.4e6 < sum(p.numel() for p in model.parameters()) < 36.6e6  # 36.5M in the paper
    start = time.perf_counter()
    with torch.no_grad():
        x = torch.rand(2, 3, 32, 32)
        z = model.embed(x)
        assert z.shape == (2, 640) and model.head(z).shape == (2, 10)
    assert time.perf_counter() - start < 20


@pytest.mark.parametrize(("name", "millions"), [("wrn-40-2", 2.2), ("resnet18", 11.2)])
def test_reference_parameter_counts(name: str, millions: float) -> None:
    count = sum(p.numel() for p in build_model(name, 3, 10).parameters())
    assert abs(count / 1e6 - millions) < 0.05, count


def test_names_and_errors() -> None:
    assert MODELS == ("small_cnn", "resnet18", "wrn-40-2", "wrn-28-10")
    assert sum(p.numel() for p in build_model("small-cnn", 1, 10).parameters()) > 0  # - and _ alike
    with pytest.raises(
        ValueError, match="unknown model 'vgg16'; known: small_cnn, resnet18, wrn-40-2, wrn-28-10"
    ):
        build_model("vgg16", 3, 10)
    with pytest.raises(ValueError, match="num_classes: expected a positive integer, got 0"):
        build_model("small_cnn", 3, 0)


def test_small_cnn_learns_glyphs_quickly() -> None:
    # A few steps on a fixed batch must lower the loss a lot: the model can fit the task.
    torch.manual_seed(0)
    ds = load_dataset("glyphs", train_size=48, val_size=0)
    x, y = to_float(ds.train.images), ds.train.labels
    model = build_model("small_cnn", 3, ds.num_classes)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = None
    for _ in range(15):
        loss = F.cross_entropy(model(x), y)
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.5 * first


def test_running_stats_kept_restores_batch_norm_statistics():
    from autoaug.models import running_stats_kept

    torch.manual_seed(0)
    model = build_model("small_cnn", 3, 4).train()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.rand(8, 3, 32, 32)
    with running_stats_kept(model), torch.no_grad():
        model(x)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())
    model(x)  # outside, a training forward moves them as usual
    assert any(not torch.equal(v, model.state_dict()[k]) for k, v in state.items() if "running_mean" in k)
