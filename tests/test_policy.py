"""Policy: sampling, applying, replaying, the JSON format and its validation."""

import dataclasses
import json

import pytest
import torch

from autoaug.ops import get_op
from autoaug.policy import OpEntry, Policy, PolicyError, load_policy
from autoaug.spaces import Range


def _images(b=16, c=3, h=20, w=24, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, c, h, w, generator=g)


def test_same_generator_seed_gives_same_batch():
    policy = load_policy("trivialaugment")
    x = _images()
    a = policy.apply(x, generator=torch.Generator().manual_seed(3))
    b = policy.apply(x, generator=torch.Generator().manual_seed(3))
    c = policy.apply(x, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_params_replay_the_same_call():
    policy = load_policy("randaugment")
    x = _images(b=32)
    params = policy.sample(32, generator=torch.Generator().manual_seed(0))
    assert torch.equal(policy.apply(x, params=params), policy.apply(x, params=params))
    assert params.op.shape == (2, 32) and params.aux.shape == (2, 32, 2)


def test_batched_apply_equals_each_image_on_its_own():
    policy = Policy.uniform("symmetry", stages=2, bins=5, prob=0.7)
    x = _images(b=24, h=16, w=16)
    params = policy.sample(24, generator=torch.Generator().manual_seed(1))
    batched = policy.apply(x, params=params)
    for i in range(24):
        one = type(params)(
            *(t[:, i : i + 1] for t in (params.op, params.applied, params.magnitude, params.sign, params.aux))
        )
        assert torch.allclose(policy.apply(x[i : i + 1], params=one), batched[i : i + 1], atol=1e-6), i


def test_apply_matches_the_op_at_the_sampled_value():
    policy = Policy([[OpEntry("rotate", magnitudes=(0.5,), probs=(1.0,))]], space="standard")
    x = _images(b=8)
    params = policy.sample(8, generator=torch.Generator().manual_seed(0))
    out = policy.apply(x, params=params)
    expected = get_op("rotate")(x, 15.0 * params.sign[0], interpolation="nearest")
    assert torch.equal(out, expected)
    assert set(params.sign[0].tolist()) == {-1.0, 1.0}


def test_uint8_in_uint8_out_and_half_precision():
    policy = load_policy("trivialaugment")
    x = (_images(b=8) * 255).to(torch.uint8)
    y = policy.apply(x, generator=torch.Generator().manual_seed(0))
    assert y.dtype == torch.uint8 and y.shape == x.shape
    for dtype in (torch.float16, torch.bfloat16):
        z = policy.apply(_images(b=8).to(dtype), generator=torch.Generator().manual_seed(0))
        assert z.dtype == dtype


def test_empty_policy_and_empty_batch():
    x = _images(b=4)
    assert torch.equal(Policy.identity().apply(x), x)
    empty = load_policy("trivialaugment").apply(x[:0], generator=torch.Generator().manual_seed(0))
    assert empty.shape == (0, 3, 20, 24)


def test_probability_zero_and_one():
    x = _images(b=16)
    never = Policy([[OpEntry("invert", prob=0.0)]])
    always = Policy([[OpEntry("invert", prob=1.0)]])
    assert torch.equal(never.apply(x, generator=torch.Generator().manual_seed(0)), x)
    assert torch.allclose(always.apply(x, generator=torch.Generator().manual_seed(0)), 1 - x)


def test_gradient_reaches_the_magnitudes():
    policy = Policy(
        [
            [
                OpEntry("rotate", magnitudes=(0.5,), probs=(1.0,)),
                OpEntry("brightness", magnitudes=(0.5,), probs=(1.0,)),
            ]
        ],
        interpolation="bilinear",
    )
    x = _images(b=16)
    params = policy.sample(16, generator=torch.Generator().manual_seed(0))
    params.magnitude.requires_grad_(True)
    policy.apply(x, params=params).square().sum().backward()
    grad = params.magnitude.grad
    # The gradient's value, not only that there is one: central differences of the same loss,
    # each image's magnitude moved on its own (the sampled ops and signs replayed).
    m0, eps = params.magnitude.detach(), 1e-3
    numeric = torch.zeros_like(m0)
    for i in range(m0.shape[1]):
        step = torch.zeros_like(m0)
        step[0, i] = eps
        with torch.no_grad():
            up, down = (policy.apply(x, params=dataclasses.replace(params, magnitude=m0 + d)).double().square().sum()
                        for d in (step, -step))  # fmt: skip
        numeric[0, i] = (up - down).item() / (2 * eps)
    assert set(params.op[0].tolist()) == {0, 1}  # both ops, rotate and brightness, are in the batch
    torch.testing.assert_close(grad, numeric, rtol=1e-2, atol=1e-2 * numeric.abs().max().item())


@pytest.mark.parametrize(
    "images, message",
    [
        (torch.rand(3, 32, 32), "B×C×H×W"),
        (torch.rand(2, 4, 8, 8), "1 or 3 channels"),
        (torch.zeros(2, 3, 8, 8, dtype=torch.int32), "dtype"),
        ([[0.0]], "torch.Tensor"),
    ],
)
def test_bad_images_are_named(images, message):
    with pytest.raises(ValueError, match=message):
        load_policy("trivialaugment").apply(images)


def test_json_round_trip_and_atomic_save(tmp_path):
    for name in ("randaugment", "trivialaugment", "autoaugment_svhn"):
        p = load_policy(name)
        path = p.save(tmp_path / f"{name}.json")
        q = Policy.load(path)
        assert q.to_dict() == p.to_dict()
        assert not list(tmp_path.glob("*.tmp"))
    custom = Policy(
        [[OpEntry("rotate", 2.0, 0.5, (0.1, 0.9), (3.0, 1.0)), OpEntry("hflip", 1.0, 1.0)]],
        ranges={"rotate": Range(0, 90)},
        interpolation="bilinear",
        name="custom",
        meta={"searcher": "test"},
    )
    again = Policy.from_dict(json.loads(custom.to_json()))
    assert again.to_dict() == custom.to_dict()
    assert again.range_of("rotate") == Range(0, 90)


def _doc(**entry):
    base = {"op": "rotate", "weight": 1.0, "prob": 1.0, "magnitude": 0.5}
    base.update(entry)
    return {"autoaug_policy": 1, "stages": [{"ops": [{k: v for k, v in base.items() if v is not None}]}]}


@pytest.mark.parametrize(
    "doc, message",
    [
        (_doc(op="rotat"), r"stages\[0\]\.ops\[0\]\.op: unknown op 'rotat'"),
        (_doc(magnitude=1.5), r"magnitude: expected a number in \[0, 1\], got 1.5"),
        (_doc(magnitude=-0.1), r"magnitude: expected a number in \[0, 1\]"),
        (_doc(weight=-1), r"weight: expected a number >= 0, got -1"),
        (_doc(prob=2), r"prob: expected a number in \[0, 1\]"),
        (_doc(weight="a lot"), r"weight: expected a number, got 'a lot'"),
        (_doc(magnitude=None), r"needs 'magnitude'"),
        (_doc(magnitude=None, hist=[0, 0]), r"hist: all zero"),
        (_doc(magnitude=None, hist=[1, -1]), r"hist\[1\]: expected a number >= 0"),
        (_doc(op="hflip"), r"takes no magnitude"),
        (_doc(weight=0), r"weights sum to 0"),
        ({"stages": []}, r"missing field 'autoaug_policy'"),
        ({"autoaug_policy": 99, "stages": []}, r"format version 99"),
        ({"autoaug_policy": 1, "stages": [], "colour": 1}, r"unknown field\(s\) \['colour'\]"),
        ({"autoaug_policy": 1, "stages": "all"}, r"stages: expected a list"),
        ({"autoaug_policy": 1, "stages": [{"ops": []}]}, r"stages\[0\]: a stage needs at least one op"),
        ({"autoaug_policy": 1, "stages": [], "space": "huge"}, r"unknown space 'huge'"),
        ({"autoaug_policy": 1, "stages": [], "ranges": {"rotate": [0]}}, r"ranges\.rotate"),
        ({"autoaug_policy": 1, "stages": [], "interpolation": "cubic"}, r"interpolation"),
        ([1, 2], r"expected a JSON object"),
    ],
)
def test_invalid_documents_name_the_bad_field(doc, message):
    with pytest.raises(PolicyError, match=message):
        Policy.from_dict(doc, source="p.json")


def test_files_that_are_not_policies(tmp_path):
    with pytest.raises(PolicyError, match="policy file not found"):
        Policy.load(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"autoaug_policy": 1,')
    with pytest.raises(PolicyError, match="not valid JSON"):
        Policy.load(bad)
    binary = tmp_path / "bin.json"
    binary.write_bytes(b"\xff\xfe\x00\x81")
    with pytest.raises(PolicyError, match=r"bin\.json: not a text file"):
        Policy.load(binary)
    with pytest.raises(PolicyError, match="no policy file or built-in policy called 'nothing'"):
        load_policy("nothing")


def test_op_probabilities_of_autoaugment_sum_as_torchvision():
    # torchvision's CIFAR-10 policy has Equalize second in 4 of its 25 sub-policies.
    probs = load_policy("autoaugment_cifar10").op_probabilities()
    expected = (0.9 + 0.5 + 0.6 + 0.6) / 25  # Equalize in second position, sub-policies 5, 9, 17, 18
    assert probs[1]["equalize"] == pytest.approx(expected)


def test_mixture_takes_each_policy_stage_by_stage_with_equal_odds():
    a = Policy([[OpEntry("hflip")]], space="symmetry", name="a")
    b = Policy([[OpEntry("vflip"), OpEntry("rotate90", 3.0)], [OpEntry("vflip")]], space="symmetry", name="b")
    m = Policy.mixture([a, b])
    params = m.sample(20000, torch.Generator().manual_seed(0))
    ops0 = [m.stages[0][k].op for k in params.op[0].tolist()]
    ops1 = [m.stages[1][k].op for k in params.op[1].tolist()]
    share = lambda ops, name: ops.count(name) / len(ops)  # noqa: E731
    assert share(ops0, "hflip") == pytest.approx(0.5, abs=0.02)
    assert share(ops0, "vflip") == pytest.approx(0.125, abs=0.01)  # b's stage 0: vflip 1 of 4
    assert share(ops0, "rotate90") == pytest.approx(0.375, abs=0.015)
    assert share(ops1, "identity") == pytest.approx(0.5, abs=0.02)  # a has no second stage
    assert share(ops1, "vflip") == pytest.approx(0.5, abs=0.02)
    # A mixture of one policy is that policy; of identities, the identity.
    one = Policy.mixture([b])
    assert [[(e.op, e.weight) for e in st] for st in one.stages] == [[("vflip", 0.25), ("rotate90", 0.75)],
                                                                     [("vflip", 1.0)]]  # fmt: skip
    assert Policy.mixture([Policy.identity(), Policy.identity()]).stages == []
    with pytest.raises(PolicyError, match="space"):
        Policy.mixture([a, Policy([[OpEntry("hflip")]], space="standard", name="c")])


def test_a_stage_warps_all_its_affine_ops_in_one_call():
    """shear, translate, rotate and scale drawn in one stage: one grid_sample for all of them
    (one kernel launch on a GPU, not one per op), each image as its op alone warps it."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Warps(TorchDispatchMode):
        n = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            Warps.n += func.overloadpacket.__name__ == "grid_sampler_2d"
            return func(*args, **(kwargs or {}))

    affine = ["shear_x", "shear_y", "translate_x", "translate_y", "rotate", "scale"]
    assert all(get_op(name).affine is not None for name in affine)
    assert get_op("rotate90").affine is None and get_op("hflip").affine is None
    policy = Policy.uniform("symmetry", ops=affine, bins=5, interpolation="bilinear")
    x = _images(b=60, h=16, w=20)
    params = policy.sample(60, generator=torch.Generator().manual_seed(2))
    assert len(params.op[0].unique()) == len(affine)
    with Warps():
        out = policy.apply(x, params=params)
    assert Warps.n == 1
    for i in range(60):
        k = int(params.op[0, i])
        v = policy.values(0, k, params.magnitude[0, i : i + 1], params.sign[0, i : i + 1], 16, 20)
        assert torch.equal(out[i : i + 1], get_op(affine[k])(x[i : i + 1], v, interpolation="bilinear")), i
