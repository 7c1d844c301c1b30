"""The contract every registered op keeps, in the spirit of torchvision's ``check_kernel``.

Every op in :data:`autoaug.ops.OPS` runs every test: no in-place change, shape/dtype/device
kept, batched equals per-image, empty batches, 1- and 3-channel and non-square images; the
identity at magnitude 0; gradients with respect to the value; and agreement with its torchvision
twin (built from ``op.torchvision(value, interpolation)``) on real and synthetic images.
"""

from __future__ import annotations

from typing import NamedTuple

import pytest
import torch
from conftest import build_tv

from autoaug.ops import OPS, Op, get_op
from autoaug.spaces import SYMMETRY

ALL = sorted(OPS)
GEOMETRIC = [n for n in ALL if OPS[n].kind == "geometric"]
WITH_MAGNITUDE = [n for n in ALL if OPS[n].has_magnitude]
EXACT_GRAD = [n for n in ALL if OPS[n].grad == "exact"]
STRAIGHT_THROUGH = [n for n in ALL if OPS[n].grad == "straight-through"]


def values_for(op: Op, magnitudes: list[float], height: int, width: int) -> torch.Tensor:
    """One value per magnitude in the op's ``symmetry`` range; signed ops alternate signs."""
    if not op.has_magnitude:
        return torch.zeros(len(magnitudes))
    r = SYMMETRY.ranges[op.name]
    sign = [(-1.0) ** i if op.signed else 1.0 for i in range(len(magnitudes))]
    return torch.tensor([s * r.value(m, height, width) for s, m in zip(sign, magnitudes)])


def images(b: int, c: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    """Random images on the 1/256 grid: exactly representable in float16 and bfloat16 too."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (b, c, h, w), generator=g).float() / 256


def random_aux(b: int, seed: int = 1) -> torch.Tensor:
    return torch.rand(b, 2, generator=torch.Generator().manual_seed(seed))


# --------------------------------------------------------------------------- the contract


@pytest.mark.parametrize("shape", [(4, 3, 16, 16), (4, 1, 16, 16), (3, 3, 24, 40)], ids=str)
@pytest.mark.parametrize("name", ALL)
def test_batched_equals_per_image_and_input_untouched(name: str, shape: tuple[int, ...]) -> None:
    op = OPS[name]
    b, _, h, w = shape
    x = images(*shape)
    before = x.clone()
    v = values_for(op, [0.9, 0.5, 0.3, 1.0][:b], h, w)
    aux = random_aux(b)
    out = op(x, v, aux, "bilinear")
    assert torch.equal(x, before), "the input was changed in place"
    assert out.shape == x.shape and out.dtype == x.dtype and out.device == x.device
    one_by_one = torch.cat([op(x[i : i + 1], v[i : i + 1], aux[i : i + 1], "bilinear") for i in range(b)])
    torch.testing.assert_close(out, one_by_one, atol=1e-6, rtol=0)


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("name", ALL)
def test_empty_batch(name: str, channels: int) -> None:
    x = torch.zeros(0, channels, 12, 20)
    out = OPS[name](x, torch.zeros(0), torch.zeros(0, 2))
    assert out.shape == x.shape and out.dtype == x.dtype


# Half precision against float32 on the same images and values, both exactly representable in
# the half type (values are cast to the image dtype, as torchvision casts a threshold: a solarize
# threshold of 0.7 is 0.6992 in bfloat16 for both). What is left is arithmetic in 11 (float16) or
# 8 (bfloat16) significant bits: about two units in the last place near 1. Hue rotates an angle
# in radians (up to 2π), where half precision's spacing is four to eight times coarser.
HALF_ATOL = {torch.float16: 2e-3, torch.bfloat16: 1.6e-2}
HALF_ATOL_SCALE = {"hue": 4.0}


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("name", ALL)
def test_half_precision_keeps_dtype_and_agrees_with_float32(name: str, dtype: torch.dtype) -> None:
    op = OPS[name]
    x = images(4, 3, 16, 16)
    v = values_for(op, [0.9, 0.5, 0.3, 1.0], 16, 16).to(dtype).float()
    aux = random_aux(4)
    out = op(x.to(dtype), v, aux, "bilinear")
    assert out.dtype == dtype and out.shape == x.shape
    torch.testing.assert_close(
        out.float(), op(x, v, aux, "bilinear"), atol=HALF_ATOL[dtype] * HALF_ATOL_SCALE.get(name, 1.0), rtol=0
    )


# ------------------------------------------------------------------------ magnitude zero


@pytest.mark.parametrize("interpolation", ["nearest", "bilinear"])
@pytest.mark.parametrize("name", [n for n in WITH_MAGNITUDE if n != "posterize"])
def test_identity_at_magnitude_zero(name: str, interpolation: str) -> None:
    # Solarize's magnitude 0 is threshold 1.0, which inverts pixels equal to 1.0 exactly as
    # torchvision's does; on images below 1 (these reach 255/256) it is the identity.
    op = OPS[name]
    x = images(3, 3, 12, 20)
    v = values_for(op, [0.0] * 3, 12, 20)
    tv = build_tv(op.torchvision(v[0].item(), interpolation))
    # Both up to float32 resampling and colour-space round trips (~1e-6).
    torch.testing.assert_close(torch.stack([tv(img) for img in x]), x, atol=1e-5, rtol=0)
    torch.testing.assert_close(op(x, v, random_aux(3), interpolation), x, atol=1e-5, rtol=0)


def test_posterize_at_magnitude_zero_is_torchvision_8_bit_quantization() -> None:
    # Keeping 8 bits on float images quantizes down to the 1/256 grid (F.posterize's float
    # semantics): not the identity, but torchvision's transform at the same magnitude.
    op = get_op("posterize")
    x = torch.rand(3, 3, 12, 20, generator=torch.Generator().manual_seed(0))
    bits = SYMMETRY.ranges["posterize"].value(0.0, 12, 20)
    assert bits == 8
    out = op(x, torch.full((3,), bits))
    tv = build_tv(op.torchvision(bits, "nearest"))
    assert torch.equal(out, torch.stack([tv(img) for img in x]))
    assert ((x - out) >= 0).all() and ((x - out) < 1 / 256).all()


# ------------------------------------------------------------------------------ gradients


# Values away from kinks: no sample point on a pixel boundary, no blend clamped at 0 or 1, a
# blur sigma whose kernel size does not change within gradcheck's step.
GRAD_VALUES = {
    "shear_x": [0.13, -0.21],
    "shear_y": [-0.17, 0.11],
    "rotate": [7.3, -12.9],
    "scale": [0.137, -0.093],
    "brightness": [0.07, -0.11],
    "color": [0.21, -0.33],
    "contrast": [0.19, -0.27],
    "sharpness": [0.31, -0.42],
    "hue": [0.07, -0.13],
    "gaussian_blur": [0.73, 1.21],
}


def test_every_exact_gradient_op_has_gradcheck_values() -> None:
    assert set(GRAD_VALUES) == set(EXACT_GRAD)


@pytest.mark.parametrize("name", EXACT_GRAD)
def test_gradcheck_exact(name: str) -> None:
    op = OPS[name]
    g = torch.Generator().manual_seed(0)
    x = (0.2 + 0.6 * torch.rand(2, 3, 8, 8, generator=g)).double()
    aux = torch.rand(2, 2, generator=g).double()  # frozen: replays the same draw every call
    v = torch.tensor(GRAD_VALUES[name], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda val: op(x, val, aux, "bilinear"), (v,), eps=1e-6, atol=1e-5, fast_mode=True
    )


STRAIGHT_THROUGH_VALUES = {
    "translate_x": [2.4, -3.7],
    "translate_y": [-1.6, 4.2],
    "posterize": [5.0, 3.0],
    "solarize": [0.5, 0.35],
}


@pytest.mark.parametrize("name", STRAIGHT_THROUGH)
def test_straight_through_gradient_exists(name: str) -> None:
    op = OPS[name]
    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    v = torch.tensor(STRAIGHT_THROUGH_VALUES[name], requires_grad=True)
    weights = torch.rand(x.shape, generator=torch.Generator().manual_seed(1))
    (op(x, v, None, "bilinear") * weights).sum().backward()
    assert v.grad is not None and torch.isfinite(v.grad).all() and (v.grad != 0).any()


# ------------------------------------------------------------ agreement with torchvision


class Tol(NamedTuple):
    """Largest |kornia - torchvision| allowed per pixel, and under nearest-neighbour sampling the
    share of pixels that may exceed it."""

    atol: float
    nearest_share: float = 0.0


FLOAT = Tol(1e-6)  # the same arithmetic, up to float32 rounding
# Resampling: the float32 sampling grid puts points ~1e-6 pixel off, which bilinear turns into
# ~1e-6 of a neighbour. Under nearest, "nice" values put sample points exactly on half pixels
# (zoom 1.25: every fifth row and column) where rounding is a tie; `warp` builds its grid as
# torchvision does, so ties round alike (measured: no pixel differs), and the 1% leaves room
# for another platform's float summation order to flip a row of ties.
GRID = Tol(1e-5, nearest_share=0.01)

TOLERANCE: dict[str, Tol] = {
    "identity": Tol(0.0),
    "hflip": Tol(0.0),
    "vflip": Tol(0.0),
    "invert": Tol(0.0),
    "posterize": Tol(0.0),
    "solarize": Tol(0.0),
    "rotate90": Tol(0.0),  # torch.rot90, or nearest sampling at whole quarter turns
    "brightness": FLOAT,
    "color": FLOAT,
    "contrast": FLOAT,
    "sharpness": FLOAT,
    "autocontrast": FLOAT,
    "grayscale": FLOAT,
    "equalize": FLOAT,  # the same uint8 LUT; only the final /255 may round differently
    "shear_x": GRID,
    "shear_y": GRID,
    "translate_x": GRID,
    "translate_y": GRID,
    "rotate": GRID,
    "scale": GRID,
    "hue": Tol(1e-5),  # kornia's RGB -> HSV -> RGB round trip vs torchvision's, in float32
    "gaussian_blur": Tol(1e-5),  # kornia's separable kernel vs torchvision's, summed differently
    # Erasing places its box at a random position (from aux; torchvision draws its own), so the
    # erased area fraction is compared instead of pixels: it must be equal, box for box.
    "erasing": Tol(1e-6),
}


def test_tolerance_table_covers_every_op() -> None:
    assert set(TOLERANCE) == set(OPS)


def agreement_values(op: Op, height: int, width: int) -> list[float]:
    if not op.has_magnitude:
        return [0.0]
    r = SYMMETRY.ranges[op.name]
    vals = [r.value(m, height, width) for m in (0.0, 0.3, 0.7, 1.0)]
    return vals + [-v for v in vals if v != 0] if op.signed else vals


def check_agreement(name: str, x: torch.Tensor, interpolation: str) -> None:
    op = OPS[name]
    tol = TOLERANCE[name]
    b, _, h, w = x.shape
    for v in agreement_values(op, h, w):
        tv = build_tv(op.torchvision(v, interpolation))
        if name == "erasing":
            probe = 0.01 + 0.99 * x  # strictly positive, so erased pixels are the zeros
            ours = op(probe, torch.full((b,), v), random_aux(b), interpolation)
            theirs = torch.stack([tv(img) for img in probe])
            kept = ours != 0
            assert torch.equal(ours[kept], probe[kept]), "erasing changed pixels outside its box"
            torch.testing.assert_close(
                (ours == 0).float().mean((1, 2, 3)),
                (theirs == 0).float().mean((1, 2, 3)),
                atol=tol.atol,
                rtol=0,
            )
            continue
        ours = op(x, torch.full((b,), v), None, interpolation)
        theirs = torch.stack([tv(img) for img in x])
        share = ((ours - theirs).abs() > tol.atol).float().mean().item()
        allowed = tol.nearest_share if interpolation == "nearest" else 0.0
        assert share <= allowed, (
            f"{name} at value {v:g} ({interpolation}): {share:.2%} of pixels differ from torchvision "
            f"by more than {tol.atol:g} (max {(ours - theirs).abs().max().item():.3g})"
        )


def interpolations(names: list[str]) -> list[tuple[str, str]]:
    return [(n, i) for n in names for i in (("nearest", "bilinear") if n in GEOMETRIC else ("nearest",))]


@pytest.mark.parametrize(("name", "interpolation"), interpolations(ALL))
def test_agrees_with_torchvision_on_fashion_mnist(
    name: str, interpolation: str, fashion_mnist: torch.Tensor
) -> None:
    check_agreement(name, fashion_mnist, interpolation)


@pytest.mark.parametrize(("name", "interpolation"), interpolations(ALL))
def test_agrees_with_torchvision_on_rgb(name: str, interpolation: str, rgb_images: torch.Tensor) -> None:
    check_agreement(name, rgb_images, interpolation)


@pytest.mark.parametrize("name", GEOMETRIC)
def test_agrees_with_torchvision_on_non_square_images(name: str) -> None:
    check_agreement(name, images(2, 3, 24, 40), "nearest")


# ------------------------------------------------------------------------------ registry


def test_unknown_op_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match="unknown op 'nope'; known: ") as err:
        get_op("nope")
    assert all(name in str(err.value) for name in OPS)


def test_gaussian_blur_takes_each_images_own_window_in_one_pass():
    """A batch of sigmas from 0.01 to 3 pixels: each image as kornia's gaussian_blur2d blurs it
    alone with its own window (torchvision's kernel size, at most the image), with gradients
    with respect to sigma; half precision through float32."""
    import kornia

    from autoaug.ops import blur_kernel_size

    x = torch.rand(40, 3, 12, 14, generator=torch.Generator().manual_seed(0))
    sigma = torch.linspace(0.01, 3.0, 40)
    out = get_op("gaussian_blur")(x, sigma)
    for i, s in enumerate(sigma.tolist()):
        k = min(blur_kernel_size(s), 11)
        ref = kornia.filters.gaussian_blur2d(x[i : i + 1], (k, k), torch.tensor([[s, s]]), "reflect")
        assert torch.allclose(out[i : i + 1], ref, atol=1e-6), (i, s)
    sigma.requires_grad_(True)
    get_op("gaussian_blur")(x, sigma).square().sum().backward()
    assert torch.isfinite(sigma.grad).all() and sigma.grad[-10:].abs().min() > 0
    half = get_op("gaussian_blur")(x.half(), sigma.detach())
    assert half.dtype == torch.float16 and torch.allclose(half.float(), out, atol=2e-3)
