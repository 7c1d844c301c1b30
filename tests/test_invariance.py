"""The invariance profile: models invariant by construction score 1, the Lie derivative agrees
with finite differences, and the profile runs end to end on torchvision models and on a run."""

import json
import math

import pytest
import torch
import torchvision
from torch import nn

from autoaug.analysis import (
    LIE_GENERATORS,
    InvarianceProfile,
    invariance_profile,
    lie_derivative,
    lie_generator_matrix,
    load_checkpoint_model,
    load_run_model,
    plot_profile,
    untrained_copy,
)
from autoaug.data import load_dataset
from autoaug.models import build_model
from autoaug.ops import get_op, warp
from autoaug.train import TrainConfig, Trainer


class Embedded(nn.Module):
    """A "model" whose embedding is a fixed function of the image, with a linear head."""

    def __init__(self, embed, dim, num_classes=3):
        super().__init__()
        self._embed = embed
        self.head = nn.Linear(dim, num_classes)

    def embed(self, x):
        return self._embed(x)

    def forward(self, x):
        return self.head(self.embed(x))


class Constant(nn.Module):
    """Logits and embedding that ignore the image."""

    def __init__(self, num_classes=3):
        super().__init__()
        self.bias = nn.Parameter(torch.arange(num_classes, dtype=torch.float32))

    def embed(self, x):
        return self.bias.expand(len(x), -1)

    def forward(self, x):
        return self.bias.expand(len(x), -1) * 1.0


def _standardized(x):
    flat = x.flatten(1)
    return (flat - flat.mean(1, keepdim=True)) / flat.std(1, keepdim=True)


def _blobs(n=6, size=16, dtype=torch.float64):
    """Smooth gaussian blobs at different places: images whose derivatives are well defined."""
    ys, xs = torch.meshgrid(torch.arange(size, dtype=dtype), torch.arange(size, dtype=dtype), indexing="ij")
    blobs = [torch.exp(-((xs - 5 - i) ** 2 + (ys - 9 + i) ** 2) / (2 * 2.5**2)) for i in range(n)]
    return torch.stack(blobs).unsqueeze(1)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Small tensors on a shared 2-core machine: a second thread only waits for the first."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def images():
    g = torch.Generator().manual_seed(0)
    x = 0.3 + 0.2 * torch.rand(12, 1, 16, 16, generator=g)  # brightness and contrast never clamp
    return x, torch.arange(12) % 3


def test_identity_features_are_invariant_to_identity_only(images):
    x, y = images
    model = Embedded(lambda x: x.flatten(1), 16 * 16)
    p = invariance_profile(model, x, y, ops=["identity", "rotate", "hflip"], magnitudes=2, lie=False)
    assert p.invariance["identity"] == [1.0]
    assert p.consistency["identity"] == [1.0] and p.loss["identity"] == [pytest.approx(p.clean_loss)]
    assert all(v < 0.9 for v in p.invariance["rotate"] + p.invariance["hflip"])
    # Rotating more moves the image further.
    assert p.invariance["rotate"][0] < p.invariance["rotate"][1]  # -30° vs -15°


def test_standardized_features_are_invariant_to_brightness_and_contrast(images):
    x, y = images
    model = Embedded(_standardized, 16 * 16)
    p = invariance_profile(model, x, y, ops=["brightness", "contrast", "rotate"], lie=False, progress=False)
    assert p.invariance["brightness"] == pytest.approx([1.0] * 8, abs=1e-5)
    assert p.invariance["contrast"] == pytest.approx([1.0] * 8, abs=1e-5)
    assert max(p.invariance["rotate"]) < 0.9


def test_constant_model_is_consistent_and_has_no_lie_derivative(images):
    x, y = images
    p = invariance_profile(Constant(), x, y, ops=["rotate", "invert", "erasing", "translate_x"], magnitudes=2,
                           progress=False)  # fmt: skip
    assert all(v == 1.0 for op in p.ops for v in p.consistency[op])
    assert all(v == 1.0 for op in p.ops for v in p.invariance[op])
    assert p.lie_derivative == {"translate_x": 0.0, "rotate": 0.0}
    for g in LIE_GENERATORS:
        assert torch.equal(lie_derivative(Constant(), x, g), torch.zeros(len(x), 3))


def test_profile_shape_baseline_per_layer_and_json_round_trip(images, tmp_path):
    x, y = images
    torch.manual_seed(0)
    model = build_model("small_cnn", 1, 3)
    with torch.no_grad():  # a "trained" model: anything but the initial weights
        for prm in model.parameters():
            prm.add_(0.05 * torch.randn_like(prm))
    baseline = untrained_copy(model, seed=0)
    assert not torch.equal(baseline.features[0].weight, model.features[0].weight)
    ops = ["identity", "rotate", "solarize", "hflip"]
    p = invariance_profile(model, x, y, ops=ops, magnitudes=3, baseline=baseline, per_layer=True, batch_size=5,
                           progress=False)  # fmt: skip
    signed = [-1.0, -2 / 3, -1 / 3, 1 / 3, 2 / 3, 1.0]
    assert p.ops == ops and p.magnitudes == pytest.approx(signed) and p.num_images == 12
    assert p.op_magnitudes == {"identity": [1.0], "rotate": pytest.approx(signed),
                               "solarize": pytest.approx(signed[3:]), "hflip": [1.0]}  # fmt: skip
    for table in (p.invariance, p.baseline_invariance, p.consistency, p.accuracy, p.loss):
        assert table.keys() == set(ops)
        assert all(len(table[op]) == len(p.op_magnitudes[op]) for op in ops)
        assert all(math.isfinite(v) for op in ops for v in table[op])
    assert p.baseline_invariance["identity"] == [1.0]
    assert p.lie_derivative.keys() == p.baseline_lie_derivative.keys() == {"rotate"}
    assert set(p.per_layer) == {f"features.{i}" for i in range(len(model.features))}
    assert all(p.per_layer[layer]["identity"] == [1.0] for layer in p.per_layer)
    # (Invariance <= 1 holds by construction; what can fail: rotation moves every layer's features.)
    assert all(-1.5 <= v < 1 - 1e-3 for layer in p.per_layer.values() for v in layer["rotate"])

    p.invariance["rotate"][0] = math.nan  # NaN (nothing comparable) survives JSON as null
    back = InvarianceProfile.from_dict(json.loads(json.dumps(p.to_dict(), allow_nan=False)))
    assert math.isnan(back.invariance["rotate"][0])
    back.invariance["rotate"][0] = p.invariance["rotate"][0] = 0.0
    assert back == p
    assert InvarianceProfile.load(p.save(tmp_path / "profile.json")) == p
    with pytest.raises(ValueError, match="unknown keys"):
        InvarianceProfile.from_dict({**p.to_dict(), "extra": 1})
    out = plot_profile(p, tmp_path / "profile.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_lie_derivative_matches_central_differences():
    x = _blobs()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.Tanh(), nn.Flatten(), nn.Linear(4 * 16 * 16, 5))
    model = model.double().eval()
    h = 1e-3
    for g in LIE_GENERATORS:
        for output in ("logits", "probs"):

            def f(t, g=g, output=output):
                m = lie_generator_matrix(g, torch.tensor(t, dtype=torch.float64), 16, 16)
                logits = model(warp(x, m.expand(len(x), 2, 3)))
                return logits.softmax(-1) if output == "probs" else logits

            with torch.no_grad():
                fd = (f(h) - f(-h)) / (2 * h)
            d = lie_derivative(model, x, g, output=output)
            assert fd.abs().max() > 1e-3, g
            torch.testing.assert_close(d, fd, rtol=1e-3, atol=1e-3 * fd.abs().max().item())


def test_lie_generators_follow_the_ops_conventions():
    x = torch.rand(2, 1, 16, 16)
    turned = warp(x, lie_generator_matrix("rotate", torch.tensor(math.radians(10.0)), 16, 16).expand(2, 2, 3))
    torch.testing.assert_close(turned, get_op("rotate")(x, torch.tensor([10.0, 10.0])), atol=1e-5, rtol=0)
    shifted = warp(x, lie_generator_matrix("translate_x", torch.tensor(3.0), 16, 16).expand(2, 2, 3))
    torch.testing.assert_close(shifted, get_op("translate_x")(x, torch.tensor([3.0, 3.0])), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="unknown Lie generator"):
        lie_generator_matrix("hflip", torch.tensor(0.0), 4, 4)


def test_torchvision_resnet_through_the_last_linear_hook():
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=10)
    grabbed = []
    model.avgpool.register_forward_hook(lambda m, i, o: grabbed.append(o.flatten(1)))
    x, y = torch.rand(8, 3, 32, 32), torch.arange(8)
    p = invariance_profile(model, x, y, ops=["identity", "rotate", "brightness"], magnitudes=1, input_size=64,
                           progress=False)  # fmt: skip
    assert grabbed[0].shape == (8, 512)  # the resized images went through the whole network
    assert p.invariance["identity"] == [1.0]
    assert all(-1 <= v < 1 for v in p.invariance["rotate"])
    # Untrained, in eval mode, the network is positively homogeneous (no biases before the
    # head, BatchNorm's running statistics at 0 and 1), so darkening can leave the embedding's
    # direction unchanged: invariance up to exactly 1.
    # Darkening (brightness at -1) is then exactly invariant; brightening saturates pixels
    # (clamped at 1), which no homogeneity undoes.
    assert p.op_magnitudes["brightness"] == [-1.0, 1.0]
    # (to float32 rounding: 1 − 2e-6 on one x86 CPU's kernels, 1 − 1e-7 on another's)
    assert p.invariance["brightness"][0] == pytest.approx(1.0, abs=1e-5)
    assert p.invariance["brightness"][1] < 0.99
    assert set(p.lie_derivative) == {"rotate"} and math.isfinite(p.lie_derivative["rotate"])
    # The same embedding through an explicit embed callable.
    embed = nn.Sequential(*list(model.children())[:-1], nn.Flatten())
    q = invariance_profile(model, x, y, ops=["identity", "rotate", "brightness"], magnitudes=1, input_size=64,
                           lie=False, embed=embed, progress=False)  # fmt: skip
    assert all(q.invariance[op] == pytest.approx(p.invariance[op], abs=1e-5) for op in p.ops)


def test_partners_are_other_images_of_the_same_batch():
    from autoaug.analysis.invariance import _batches, _derangement

    for n, bs in ((2, 2), (7, 3), (10, 3), (256, 256), (257, 256)):
        bounds = _batches(n, bs)
        assert bounds[0][0] == 0 and bounds[-1][1] == n and all(e - s >= 2 for s, e in bounds)
        local = _derangement(bounds, torch.Generator().manual_seed(n))
        for s, e in bounds:
            part = local[s:e]
            assert sorted(part.tolist()) == list(range(e - s))  # a permutation of the batch
            assert not (part == torch.arange(e - s)).any()  # without fixed points


def test_bad_arguments_are_named(images):
    x, y = images
    model = Embedded(lambda x: x.flatten(1), 16 * 16)
    with pytest.raises(ValueError, match="unknown op 'spin'"):
        invariance_profile(model, x, y, ops=["spin"], progress=False)
    with pytest.raises(ValueError, match="at least 2"):
        invariance_profile(model, x[:1], y[:1], ops=["identity"], progress=False)
    with pytest.raises(ValueError, match="baseline_embed"):
        invariance_profile(model, x, y, ops=["identity"], baseline=model, embed=model.embed, progress=False)
    with pytest.raises(ValueError, match="no embed"):
        invariance_profile(nn.Conv2d(1, 2, 3), x, y, ops=["identity"], progress=False)


def test_trained_run_end_to_end(tmp_path):
    run = tmp_path / "run"
    cfg = TrainConfig(dataset="glyphs", train_size=512, epochs=1, batch_size=64, device="cpu", progress=False,
                      out=str(run))  # fmt: skip
    ds = load_dataset("glyphs", train_size=512, val_size=cfg.val_size, seed=cfg.seed)
    trainer = Trainer(cfg, dataset=ds)
    initial = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trainer.fit()

    model, normalize, name, config = load_run_model(run)  # loads the dataset as the trainer did
    baseline, _, _, _ = load_run_model(run, untrained=True, dataset=ds)
    assert name == "glyphs" and config["train_size"] == 512
    assert all(torch.equal(baseline.state_dict()[k], v) for k, v in initial.items())  # the trainer's init
    x = ds.test.images[:32]
    trainer.model.eval()
    torch.testing.assert_close(  # the trainer's normalization
        model(normalize(x.float() / 255)), trainer.forward(x.float() / 255, net=trainer.model)
    )
    p = invariance_profile(model, x, ds.test.labels[:32], magnitudes=1, normalize=normalize, baseline=baseline,
                           progress=False)  # fmt: skip
    assert len(p.ops) == 23 and set(p.lie_derivative) == set(LIE_GENERATORS)
    for table in (
        p.invariance,
        p.baseline_invariance,
    ):  # (<= 1 by construction; rotation moves the embedding)
        assert table["identity"] == [1.0] and all(-1.5 <= v < 1 - 1e-3 for v in table["rotate"])
    with torch.no_grad():  # accuracy under identity is the model's own accuracy on these images
        own = (model(normalize(x.float() / 255)).argmax(1) == ds.test.labels[:32]).float().mean().item()
    assert p.accuracy["identity"] == [pytest.approx(own)] and p.clean_accuracy == pytest.approx(own)
    assert p.consistency["identity"] == [1.0]
    assert all(math.isfinite(v) for op in p.ops for v in p.loss[op])
    assert all(math.isfinite(v) and v >= 0 for v in p.lie_derivative.values())

    with pytest.raises(FileNotFoundError, match=r"unfinished/model\.pt"):
        load_run_model(_copy_config(run, tmp_path / "unfinished"), dataset=ds)
    with pytest.raises(ValueError, match=r"model\.pt: does not fit small_cnn"):
        load_checkpoint_model(run / "model.pt", "small_cnn", 1, 6)
    with pytest.raises(FileNotFoundError, match=r"missing\.pt"):
        load_checkpoint_model(run / "missing.pt", "small_cnn", 3, 6)


def _copy_config(run, to):
    to.mkdir()
    (to / "config.yaml").write_text((run / "config.yaml").read_text())
    return to


class LeftOrRight(nn.Module):
    """Class 0 when the left half of the image is brighter, class 1 when the right half is."""

    def embed(self, x):
        w = x.shape[-1]
        return torch.stack([x[..., : w // 2].mean((1, 2, 3)), x[..., w // 2 :].mean((1, 2, 3))], 1)

    def forward(self, x):
        return 20.0 * self.embed(x)


def test_class_swap_tells_a_relabelling_from_scattered_errors():
    from autoaug.analysis.invariance import class_swap

    assert class_swap(torch.tensor([[0, 5], [5, 0]])) == 1.0  # every class sent to the other
    assert class_swap(torch.eye(3, dtype=torch.long) * 7) == 0.0  # nothing moved
    assert class_swap(torch.tensor([[0, 9, 0, 0], [9, 0, 0, 0], [0, 0, 9, 0], [0, 0, 0, 9]])) == 0.5
    assert class_swap(torch.tensor([[6, 0, 0], [6, 0, 0], [6, 0, 0]])) == pytest.approx(1 / 3)  # collapse
    assert class_swap(torch.tensor([[4, 1, 1], [1, 4, 1], [1, 1, 4]])) < 0.3  # scattered errors
    assert class_swap(torch.zeros(2, 2)) == 0.0


def test_profile_measures_the_relabelling_of_a_mirror_flip():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(40, 1, 16, 16, generator=g) * 0.2
    y = torch.arange(40) % 2
    for i in range(40):  # a bright blob on the side of the class
        c0 = 2 if y[i] == 0 else 10
        x[i, :, 6:10, c0 : c0 + 4] = 1.0
    p = invariance_profile(
        LeftOrRight(), x, y, ops=["hflip", "vflip"], magnitudes=1, lie=False, progress=False
    )
    assert p.clean_accuracy == 1.0
    assert p.swap["hflip"] == [1.0] and p.accuracy["hflip"] == [0.0]
    assert p.swap["vflip"] == [0.0] and p.accuracy["vflip"] == [1.0]
    assert InvarianceProfile.from_dict(json.loads(json.dumps(p.to_dict()))).swap == p.swap
