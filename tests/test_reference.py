"""The shipped reference policies reproduce torchvision's op and magnitude frequencies.

torchvision's own AutoAugment, RandAugment and TrivialAugmentWide run unchanged; a subclass
only records which (op, magnitude) each call applies (``_apply_image_or_video_transform`` is
the one place every applied op passes through) instead of transforming the image. The
counts per (op, value) over many calls are compared with the counts from ``Policy.sample``.
"""

import functools
import math
from collections import Counter
from pathlib import Path

import pytest
import torch
from torchvision.transforms import v2

from autoaug.policy import Policy
from autoaug.reference import TV_NAMES, builtin_policies

N = 20_000
SIZE = (32, 32)
ROOT = Path(__file__).resolve().parent.parent


def _recording(cls):
    class Recording(cls):
        calls: list

        def _apply_image_or_video_transform(self, image, transform_id, magnitude, interpolation, fill):
            self.calls.append((transform_id, magnitude))
            return image

    return Recording


def _key(op: str, value: float):
    # The kernels (and torchvision) truncate translations and round posterize bits. No rounding
    # before the truncation: torchvision's float32 linspace(0, 32, 31)[15] is 15.999999, a shift
    # of 15 pixels, and the shipped policy must shift by 15 there too.
    if op.startswith("translate"):
        value = int(value)
    elif op == "posterize":
        value = round(value)
    return op, round(float(value), 4)


def _torchvision_counts(transform) -> Counter:
    transform.calls = []
    image = torch.zeros(3, *SIZE, dtype=torch.uint8)
    torch.manual_seed(0)
    for _ in range(N):
        transform(image)
    return Counter(_key(TV_NAMES[t], m) for t, m in transform.calls)


def _autoaug_counts(policy: Policy) -> Counter:
    params = policy.sample(N, generator=torch.Generator().manual_seed(1))
    counts: Counter = Counter()
    for s, stage in enumerate(policy.stages):
        for k, entry in enumerate(stage):
            idx = ((params.op[s] == k) & params.applied[s]).nonzero().squeeze(1)
            values = policy.values(s, k, params.magnitude[s, idx], params.sign[s, idx], *SIZE)
            counts.update(_key(entry.op, v) for v in values.tolist())
    return counts


def _assert_same_frequencies(tv: Counter, ours: Counter):
    keys = set(tv) | set(ours)
    # Every key torchvision produces with some regularity, we produce, and vice versa.
    frequent = {k for k in keys if tv[k] + ours[k] > 40}
    assert {k for k in frequent if tv[k] == 0} == set(), "ops/magnitudes torchvision never applies"
    assert {k for k in frequent if ours[k] == 0} == set(), "ops/magnitudes autoaug never applies"
    # Two-sample chi-square over keys with enough mass (same N on both sides): a wrong weight,
    # probability or level table shifts it far beyond its expectation (degrees of freedom).
    stat = sum((tv[k] - ours[k]) ** 2 / (tv[k] + ours[k]) for k in frequent)
    dof = len(frequent) - 1
    assert stat < dof + 5 * math.sqrt(2 * dof), f"chi-square {stat:.1f} for {dof} degrees of freedom"


@functools.cache
def _randaugment_counts() -> Counter:
    return _torchvision_counts(_recording(v2.RandAugment)())


@pytest.mark.parametrize(
    "name, make_tv",
    [
        ("randaugment", None),
        ("trivialaugment", lambda: _recording(v2.TrivialAugmentWide)()),
        ("autoaugment_imagenet", lambda: _recording(v2.AutoAugment)(v2.AutoAugmentPolicy.IMAGENET)),
        ("autoaugment_cifar10", lambda: _recording(v2.AutoAugment)(v2.AutoAugmentPolicy.CIFAR10)),
        ("autoaugment_svhn", lambda: _recording(v2.AutoAugment)(v2.AutoAugmentPolicy.SVHN)),
    ],
)
def test_sampling_reproduces_torchvision(name, make_tv):
    tv = _randaugment_counts() if make_tv is None else _torchvision_counts(make_tv())
    ours = _autoaug_counts(builtin_policies()[name]())
    _assert_same_frequencies(tv, ours)
    # Also the total number of ops applied per image.
    assert abs(sum(tv.values()) - sum(ours.values())) < 5 * math.sqrt(sum(tv.values())) + 10


def test_a_wrong_policy_is_caught():
    """The comparison has teeth: RandAugment at magnitude 8 instead of 9 fails it."""
    from autoaug.reference import randaugment

    tv = _randaugment_counts()
    with pytest.raises(AssertionError):
        _assert_same_frequencies(tv, _autoaug_counts(randaugment(magnitude=8)))


@pytest.mark.parametrize(
    "name",
    ["randaugment", "trivialaugment", "autoaugment_imagenet", "autoaugment_cifar10", "autoaugment_svhn"],
)
def test_shipped_files_are_the_reference_policies(name):
    shipped = Policy.load(ROOT / "policies" / f"{name}.json")
    assert shipped.to_dict() == builtin_policies()[name]().to_dict(), (
        "policies/ is stale: run python scripts/make_reference_policies.py"
    )


@pytest.mark.parametrize("name, tv_name", [("translate_x", "TranslateX"), ("translate_y", "TranslateY")])
@pytest.mark.parametrize("size", [(32, 32), (224, 160)])
def test_trivialaugment_translates_as_torchvision_at_every_level(name, tv_name, size):
    """Level by level, the pixels autoaug's kernel shifts by (it truncates, as torchvision's
    ``int(magnitude)``) equal torchvision's: 15, not 16, at level 15 of 31."""
    bins = 31
    table, signed = v2.TrivialAugmentWide()._AUGMENTATION_SPACE[tv_name]
    expected = [int(v) for v in table(bins, *size)]
    assert signed and expected[15] == 15
    for policy in (
        builtin_policies()["trivialaugment"](),
        Policy.load(ROOT / "policies" / "trivialaugment.json"),
    ):
        k = [e.op for e in policy.stages[0]].index(name)
        entry = policy.stages[0][k]
        assert len(entry.magnitudes) == bins
        magnitude = torch.tensor(entry.magnitudes, dtype=torch.float32)
        for sign in (1, -1):  # torchvision negates the magnitude, then truncates
            values = policy.values(0, k, magnitude, torch.full((bins,), float(sign)), *size)
            assert torch.trunc(values).int().tolist() == [sign * e for e in expected]
