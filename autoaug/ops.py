"""The op registry: every image transformation autoaug knows, defined once.

Each :class:`Op` is a batched implementation on float images in [0, 1] (B×C×H×W, C = 1 or 3)
built on kornia and torch, taking one value per image in the op's own units (degrees, pixels,
a blend factor offset, bits, a threshold). Ranges, magnitudes in [0, 1] and signs live in
:mod:`autoaug.spaces`; this module only says what an op does at a given value and what its
torchvision ``transforms.v2`` twin is.

The semantics follow torchvision's AutoAugment/RandAugment/TrivialAugment implementation
(``torchvision/transforms/v2/_auto_augment.py``), so that a policy exported to torchvision
does what ``Policy.apply`` does:

* shear: ``x' = x - v·y`` about the top-left corner (torchvision ``shear=degrees(atan(v))``,
  ``center=[0, 0]``);
* translate: whole pixels, truncated toward zero as torchvision's ``int(magnitude)``;
* rotate: degrees, counter-clockwise, about the image centre;
* brightness, color, contrast, sharpness: a blend with factor ``1 + v`` (PIL ``ImageEnhance``);
* posterize: ``bits`` kept, float semantics of ``F.posterize``; solarize: pixels ``>= v``
  inverted; equalize: PIL's histogram equalization on the uint8 image.

Gradients with respect to the value: exact for rotate, shear, scale, brightness, color,
contrast, sharpness, hue and gaussian_blur (geometric ops need ``interpolation="bilinear"``;
nearest-neighbour sampling has zero gradient); straight-through for translate (integer
shifts), posterize and solarize; none for ops without a magnitude (identity, hflip, vflip,
grayscale, autocontrast, equalize, invert) and for the discrete rotate90 and erasing.

Example:
    >>> import torch
    >>> from autoaug.ops import get_op
    >>> x = torch.rand(4, 3, 32, 32)
    >>> get_op("rotate")(x, torch.tensor([10.0, -10.0, 0.0, 30.0])).shape
    torch.Size([4, 3, 32, 32])
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import kornia
import torch
from torch import Tensor

Interpolation = Literal["nearest", "bilinear"]
Kernel = Callable[[Tensor, Tensor, Tensor, str], Tensor]

# Gray-level weights of torchvision's rgb_to_grayscale (ITU-R 601-2, as PIL).
_GRAY = (0.2989, 0.587, 0.114)


@dataclass(frozen=True)
class TvSpec:
    """A torchvision ``transforms.v2`` object described as data.

    ``target`` is a dotted name under ``torchvision.transforms.v2`` (``"RandomRotation"``) or,
    for a fixed-argument functional call, ``"F.<name>"``, which is wrapped in
    ``v2.Lambda(functools.partial(F.<name>, **kwargs))``. Describing it as data lets one
    description build both the live object and readable Python source (:mod:`autoaug.export`).
    """

    target: str
    kwargs: tuple[tuple[str, object], ...] = ()

    @staticmethod
    def of(target: str, **kwargs: object) -> TvSpec:
        return TvSpec(target, tuple(kwargs.items()))


@dataclass(frozen=True)
class Op:
    """One transformation family.

    Attributes:
        name: registry key, e.g. ``"rotate"``.
        kernel: ``kernel(images, values, aux, interpolation) -> images``. ``values`` holds one
            signed value per image in the op's units; ``aux`` is a B×2 tensor of uniform random
            numbers for ops that need randomness beyond the value (erasing's position), so a
            call can be replayed exactly.
        kind: ``"geometric"`` or ``"photometric"``.
        signed: whether torchvision applies the value with a random sign.
        grad: ``"exact"``, ``"straight-through"`` or ``"none"``: how gradients reach the value.
        has_magnitude: whether the op takes a value at all (ranges live in
            :mod:`autoaug.spaces`).
        unit: what a value means, for people.
        torchvision: ``torchvision(value, interpolation) -> TvSpec``: the torchvision twin at a
            fixed (signed) value, acting on float images.
        affine: for an op that is one affine warp, ``affine(values, height, width)``: its B×2×3
            forward maps (float64, pixel-centre coordinates; see :func:`warp`), so that
            :meth:`Policy.apply <autoaug.policy.Policy.apply>` warps every such op of a stage
            in one call; ``kernel`` is then ``warp(x, affine(v, H, W))``.
    """

    name: str
    kernel: Kernel
    kind: Literal["geometric", "photometric"]
    signed: bool
    grad: Literal["exact", "straight-through", "none"]
    has_magnitude: bool
    unit: str
    torchvision: Callable[[float, str], TvSpec]
    affine: Callable[[Tensor, int, int], Tensor] | None = None

    def __call__(
        self,
        images: Tensor,
        values: Tensor | None = None,
        aux: Tensor | None = None,
        interpolation: Interpolation = "bilinear",
    ) -> Tensor:
        """Apply the op to a batch.

        Shape:
            images: B×C×H×W float in [0, 1]; values: B; aux: B×2 (uniform in [0, 1)).
        """
        b = images.shape[0]
        if values is None:
            values = images.new_zeros(b)
        if aux is None:
            aux = images.new_full((b, 2), 0.5)
        return self.kernel(images, values.to(images.dtype), aux, interpolation)


# --------------------------------------------------------------------------------- helpers


def _bcast(v: Tensor) -> Tensor:
    return v.view(-1, 1, 1, 1)


def _in_float32(fn: Kernel) -> Kernel:
    """Run a kernel in float32 for half-precision inputs (grid sampling and histograms on CPU
    do not support them), returning the input dtype."""

    def wrapped(x: Tensor, v: Tensor, aux: Tensor, interpolation: str) -> Tensor:
        if x.dtype in (torch.float16, torch.bfloat16):
            return fn(x.float(), v.float(), aux.float(), interpolation).to(x.dtype)
        return fn(x, v, aux, interpolation)

    wrapped.__name__ = fn.__name__
    wrapped.__doc__ = fn.__doc__
    return wrapped


def _gray(x: Tensor) -> Tensor:
    """Luma of an RGB batch (B×1×H×W); a 1-channel batch is its own luma."""
    if x.shape[1] == 1:
        return x
    r, g, b = x.unbind(1)
    return (_GRAY[0] * r + _GRAY[1] * g + _GRAY[2] * b).unsqueeze(1)


def _blend(x: Tensor, other: Tensor, factor: Tensor) -> Tensor:
    f = _bcast(factor)
    return (f * x + (1 - f) * other).clamp(0, 1)


def _needs_grad(*tensors: Tensor) -> bool:
    """Whether autograd will want a gradient through any of ``tensors`` (surrogates skipped if not)."""
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


def _straight_through(hard: Tensor, soft: Tensor) -> Tensor:
    """Forward ``hard``, backward through ``soft``."""
    return hard + (soft - soft.detach())


def warp(x: Tensor, matrix: Tensor, interpolation: str = "bilinear") -> Tensor:
    """Warp a batch by forward affine maps in pixel-centre coordinates (pixel (0, 0) at 0).

    ``output(p) = input(M⁻¹ p)`` with zero fill, as torchvision's ``F.affine``.

    Shape:
        x: B×C×H×W; matrix: B×2×3.
    """
    # The sampling grid is built as torchvision's ``_affine_grid`` builds it (inverse map about
    # the image centre, divided by half the size, ``grid_sample(align_corners=False)``), not by
    # kornia's ``warp_affine``: both sample the same points, but with nearest-neighbour
    # interpolation the many exact half-pixel ties of "nice" values (zoom 1.25: every fifth
    # row and column) must round the same way as torchvision's, or a third of the pixels move.
    b, _, h, w = x.shape
    m = matrix.to(torch.float64)  # invert in double, as torchvision's Python-float matrix
    a, bb, c, d = m[:, 0, 0], m[:, 0, 1], m[:, 1, 0], m[:, 1, 1]
    det = a * d - bb * c
    inverse = torch.stack([torch.stack([d, -bb], -1), torch.stack([-c, a], -1)], -2) / det.view(-1, 1, 1)
    centre = m.new_tensor([(w - 1) / 2, (h - 1) / 2])
    offset = inverse @ (centre - m[:, :, 2]).unsqueeze(-1) - centre.unsqueeze(-1)
    theta = torch.cat([inverse, offset], -1).to(x.dtype)  # centred output -> centred input
    theta = theta / x.new_tensor([0.5 * w, 0.5 * h]).view(1, 2, 1)
    xs = torch.linspace((1.0 - w) * 0.5, (w - 1.0) * 0.5, w, dtype=x.dtype, device=x.device)
    ys = torch.linspace((1.0 - h) * 0.5, (h - 1.0) * 0.5, h, dtype=x.dtype, device=x.device)
    base = torch.stack([xs.expand(h, w), ys.view(h, 1).expand(h, w), torch.ones_like(xs).expand(h, w)], -1)
    grid = base.view(1, h * w, 3).expand(b, -1, -1).bmm(theta.transpose(1, 2)).view(b, h, w, 2)
    return torch.nn.functional.grid_sample(
        x, grid, mode=interpolation, padding_mode="zeros", align_corners=False
    )


def _about(linear: Tensor, center: tuple[float, float], shift: Tensor | None = None) -> Tensor:
    """A B×2×3 affine map applying ``linear`` (B×2×2) about ``center``, then ``shift`` (B×2).

    Built in float64, as torchvision builds its matrix from Python floats, so that the offset of
    a map about the image centre cancels exactly and nearest-neighbour ties round the same way.
    """
    linear = linear.to(torch.float64)
    c = linear.new_tensor(center)
    offset = c - (linear @ c)
    if shift is not None:
        offset = offset + shift.to(torch.float64)
    return torch.cat([linear, offset.unsqueeze(-1)], dim=-1)


_CORNER = (-0.5, -0.5)  # the top-left corner of the image, in pixel-centre coordinates


# --------------------------------------------------------------------------------- kernels


def _identity(x: Tensor, v: Tensor, aux: Tensor, interpolation: str) -> Tensor:
    return x


def _affine_kernel(affine: Callable[[Tensor, int, int], Tensor], name: str) -> Kernel:
    """The kernel of an op that is one affine warp by ``affine(v, H, W)``."""

    @_in_float32
    def kernel(x: Tensor, v: Tensor, aux: Tensor, interpolation: str) -> Tensor:
        return warp(x, affine(v, x.shape[-2], x.shape[-1]), interpolation)

    kernel.__name__ = name
    return kernel


def _shear_x_map(v: Tensor, h: int, w: int) -> Tensor:
    one, zero = torch.ones_like(v), torch.zeros_like(v)
    linear = torch.stack([torch.stack([one, -v], -1), torch.stack([zero, one], -1)], -2)
    return _about(linear, _CORNER)


def _shear_y_map(v: Tensor, h: int, w: int) -> Tensor:
    one, zero = torch.ones_like(v), torch.zeros_like(v)
    linear = torch.stack([torch.stack([one, zero], -1), torch.stack([-v, one], -1)], -2)
    return _about(linear, _CORNER)


def _translate_map(axis: int) -> Callable[[Tensor, int, int], Tensor]:
    def affine(v: Tensor, h: int, w: int) -> Tensor:
        # torchvision shifts by int(value) pixels; keep that in the forward pass.
        shift_1d = _straight_through(torch.trunc(v), v)
        zero = torch.zeros_like(v)
        shift = torch.stack([shift_1d, zero] if axis == 0 else [zero, shift_1d], -1)
        eye = torch.eye(2, dtype=v.dtype, device=v.device).expand(len(v), 2, 2)
        return _about(eye, (0.0, 0.0), shift)

    return affine


def _rotation(degrees: Tensor, scale: Tensor | None = None) -> Tensor:
    t = torch.deg2rad(degrees.to(torch.float64))
    cos, sin = torch.cos(t), torch.sin(t)
    if scale is not None:
        cos, sin = cos * scale, sin * scale
    # Counter-clockwise on screen (y points down), as torchvision's F.rotate.
    return torch.stack([torch.stack([cos, sin], -1), torch.stack([-sin, cos], -1)], -2)


def _rotate_map(v: Tensor, h: int, w: int) -> Tensor:
    return _about(_rotation(v), ((w - 1) / 2, (h - 1) / 2))


def _scale_map(v: Tensor, h: int, w: int) -> Tensor:
    s = 1 + v
    zero = torch.zeros_like(v)
    linear = torch.stack([torch.stack([s, zero], -1), torch.stack([zero, s], -1)], -2)
    return _about(linear, ((w - 1) / 2, (h - 1) / 2))


_shear_x = _affine_kernel(_shear_x_map, "_shear_x")
_shear_y = _affine_kernel(_shear_y_map, "_shear_y")
_rotate = _affine_kernel(_rotate_map, "_rotate")
_scale = _affine_kernel(_scale_map, "_scale")


def _rotate90(x: Tensor, v: Tensor, aux: Tensor, interpolation: str) -> Tensor:
    quarters = torch.round(v).long()
    h, w = x.shape[-2:]
    if h != w:
        # torchvision's F.rotate on a non-square image keeps the size and crops; so do we.
        return _rotate(x, quarters.to(x.dtype) * 90.0, aux, "nearest")
    out = x
    for k in quarters.unique().tolist():
        if k % 4 == 0:
            continue
        idx = (quarters == k).nonzero().squeeze(1)
        out = out.index_copy(0, idx, torch.rot90(x[idx], k, dims=(-2, -1)))
    return out


def _hflip(x: Tensor, v: Tensor, aux: Tensor, interpolation: str) -> Tensor:
    return x.flip(-1)


def _vflip(x: Tensor, v: Tensor, aux: Tensor, interpolation: str) -> Tensor:
    return x.flip(-2)


def _brightness(x: Tensor, v: Tensor, aux: Tensor, interpolation: str) -> Tensor:
    return (x * _bcast(1 + v)).clamp(0, 1)


def _color(x: Tensor, v: Tensor, aux: Tensor, interpolation: str) -> Tensor:
    if x.shape[1] == 1:  # saturation of a gray image is nothing (PIL, torchvision)
        return x
    return _blend(x, _gray(x), 1 + v)


def _contrast(x: Tensor, v: Tensor, aux: Tensor, interpolation: str) -> Tensor:
    mean = _gray(x).mean(dim=(-3, -2, -1), keepdim=True)
    return _blend(x, mean, 1 + v)


def _sharpness(x: Tensor, v: Tensor, aux: Tensor, interpolation: str) -> Tensor:
    h, w = x.shape[-2:]
    if h <= 2 or w <= 2:
        return x
    c = x.shape[1]
    kernel = x.new_tensor([[1.0, 1.0, 1.0], [1.0, 5.0, 1.0], [1.0, 1.0, 1.0]]) / 13.0
    blurred = torch.nn.functional.conv2d(x, kernel.expand(c, 1, 3, 3), groups=c)
    f = _bcast(1 + v)
    inner = f * x[..., 1:-1, 1:-1] + (1 - f) * blurred
    # PIL keeps the one-pixel border as it was.
    out = torch.nn.functional.pad(inner, (1, 1, 1, 1))
    border = torch.ones_like(x[:1, :1])
    border[..., 1:-1, 1:-1] = 0
    return (out + x * border).clamp(0, 1)


def _posterize(x: Tensor, v: Tensor, aux: Tensor, interpolation: str) -> Tensor:
    bits = torch.round(v).clamp(0, 8)
    levels = _bcast(torch.pow(2.0, bits))
    hard = torch.minimum(torch.floor(x * levels), levels - 1) / levels
    if not _needs_grad(x, v):
        return hard
    # Straight-through: the quantization error scales with the step 2^-bits, continuous in v.
    step = _bcast(torch.pow(2.0, -v.clamp(0, 8)))
    soft = (hard - x).detach() / step.detach() * step
    return _straight_through(hard, x + soft)


def _solarize(x: Tensor, v: Tensor, aux: Tensor, interpolation: str) -> Tensor:
    t = _bcast(v)
    hard = torch.where(x >= t, 1 - x, x)
    if not _needs_grad(x, v):
        return hard
    # Straight-through: a sigmoid step of width 1/50 around the threshold.
    soft = x + torch.sigmoid((x - t) * 50.0) * (1 - 2 * x)
    return _straight_through(hard, soft)


def _autocontrast(x: Tensor, v: Tensor, aux: Tensor, interpolation: str) -> Tensor:
    lo = x.amin(dim=(-2, -1), keepdim=True)
    hi = x.amax(dim=(-2, -1), keepdim=True)
    flat = hi == lo
    scale = torch.where(flat, torch.ones_like(hi), hi - lo)
    lo = torch.where(flat, torch.zeros_like(lo), lo)
    return ((x - lo) / scale).clamp(0, 1)


@_in_float32
def _equalize(x: Tensor, v: Tensor, aux: Tensor, interpolation: str) -> Tensor:
    # PIL's equalization on the uint8 image, per channel, as torchvision's F.equalize.
    b, c, h, w = x.shape
    if x.numel() == 0:
        return x
    q = (x.detach() * (255.0 + 1.0 - 1e-3)).to(torch.uint8)  # torchvision's float -> uint8
    flat = q.reshape(b * c, h * w).long()
    hist = torch.zeros(b * c, 256, dtype=torch.long, device=x.device)
    hist.scatter_add_(1, flat, torch.ones_like(flat))
    cum = hist.cumsum(1)
    last = cum.argmax(1, keepdim=True)  # the largest value present
    step = (h * w - hist.gather(1, last)) // 255
    lut = (cum[:, :-1] + step // 2) // step.clamp(min=1)
    lut = torch.cat([torch.zeros_like(lut[:, :1]), lut.clamp(0, 255)], 1)
    equalized = lut.gather(1, flat)
    out = torch.where(step > 0, equalized, flat).reshape(b, c, h, w).to(x.dtype) / 255.0
    return out


def _invert(x: Tensor, v: Tensor, aux: Tensor, interpolation: str) -> Tensor:
    return 1 - x


def _hue(x: Tensor, v: Tensor, aux: Tensor, interpolation: str) -> Tensor:
    if x.shape[1] == 1:
        return x
    # torchvision's hue_factor is a fraction of the colour circle; kornia takes radians.
    return kornia.enhance.adjust_hue(x, v * (2 * math.pi)).clamp(0, 1)


def _grayscale(x: Tensor, v: Tensor, aux: Tensor, interpolation: str) -> Tensor:
    return _gray(x).expand_as(x)


_MIN_SIGMA = 1e-3  # sigma 0 is the identity; the taps need sigma > 0


def blur_kernel_size(sigma: float) -> int:
    """The odd kernel size used for a gaussian blur of ``sigma`` pixels (±3 sigma, at least 3)."""
    return max(3, 2 * math.ceil(3 * sigma) + 1)


def _gaussian_blur(x: Tensor, v: Tensor, aux: Tensor, interpolation: str) -> Tensor:
    # Each image is blurred as its torchvision twin GaussianBlur(blur_kernel_size(sigma), sigma)
    # blurs it: its own taps exp(-n²/2σ²) over its own window, normalized there. The windows of
    # the batch are padded with zero taps to the largest, so that one separable convolution (two
    # grouped conv2d passes, reflect padding) blurs every image whatever its sigma.
    h, w = x.shape[-2:]
    if x.dtype in (torch.float16, torch.bfloat16):
        return _gaussian_blur(x.float(), v.float(), aux, interpolation).to(x.dtype)
    sigma = v.abs().clamp(min=_MIN_SIGMA).to(x.dtype)
    largest_odd = 2 * ((min(h, w) - 1) // 2) + 1  # reflect padding needs the kernel inside the image
    sizes = (2 * torch.ceil(3 * sigma.detach().double()) + 1).clamp(
        min=3, max=largest_odd
    )  # blur_kernel_size
    k = int(sizes.max()) if len(sizes) else 0
    if k < 3:
        return x
    n, c = x.shape[:2]
    offsets = torch.arange(k, dtype=x.dtype, device=x.device) - k // 2
    inside = offsets.abs() <= (sizes.view(-1, 1) - 1) / 2
    taps = torch.where(inside, torch.exp(-(offsets**2) / (2 * sigma.view(-1, 1) ** 2)), 0.0)
    taps = (taps / taps.sum(-1, keepdim=True)).repeat_interleave(c, 0)  # (n·c)×k
    p = k // 2
    y = torch.nn.functional.pad(x, (p, p, p, p), mode="reflect").reshape(1, n * c, h + 2 * p, w + 2 * p)
    y = torch.nn.functional.conv2d(y, taps.view(n * c, 1, 1, k), groups=n * c)
    y = torch.nn.functional.conv2d(y, taps.view(n * c, 1, k, 1), groups=n * c)
    return y.view(n, c, h, w)


def _erasing(x: Tensor, v: Tensor, aux: Tensor, interpolation: str) -> Tensor:
    # A square of v·H·W pixels at a position drawn from aux, filled with 0 (torchvision's
    # RandomErasing with scale=(v, v), ratio=(1, 1), value=0).
    b, _, h, w = x.shape
    side = torch.round(torch.sqrt(v.detach().clamp(min=0) * h * w)).long()
    side = torch.where((side < h) & (side < w), side, torch.zeros_like(side))
    top = torch.floor(aux[:, 0].detach() * (h - side + 1).to(aux.dtype)).long()
    left = torch.floor(aux[:, 1].detach() * (w - side + 1).to(aux.dtype)).long()
    rows = torch.arange(h, device=x.device).view(1, h)
    cols = torch.arange(w, device=x.device).view(1, w)
    in_rows = (rows >= top.view(b, 1)) & (rows < (top + side).view(b, 1))
    in_cols = (cols >= left.view(b, 1)) & (cols < (left + side).view(b, 1))
    mask = (in_rows.view(b, 1, h, 1) & in_cols.view(b, 1, 1, w)).to(x.dtype)
    return x * (1 - mask)


# ----------------------------------------------------------------------- torchvision twins


def _tv_affine(**kw: object) -> Callable[[float, str], TvSpec]:
    return lambda v, interp: TvSpec.of("F.affine", **kw, interpolation=interp)


def _tv_identity(v: float, interp: str) -> TvSpec:
    return TvSpec.of("Identity")


def _tv_shear(axis: int) -> Callable[[float, str], TvSpec]:
    def spec(v: float, interp: str) -> TvSpec:
        deg = math.degrees(math.atan(v))
        shear = (deg, deg, 0.0, 0.0) if axis == 0 else (0.0, 0.0, deg, deg)
        return TvSpec.of(
            "RandomAffine", degrees=0.0, shear=shear, interpolation=interp, center=[0, 0], fill=None
        )

    return spec


def _tv_translate(axis: int) -> Callable[[float, str], TvSpec]:
    def spec(v: float, interp: str) -> TvSpec:
        shift = [int(v), 0] if axis == 0 else [0, int(v)]
        return TvSpec.of(
            "F.affine", angle=0.0, translate=shift, scale=1.0, shear=[0.0, 0.0], interpolation=interp
        )

    return spec


def _tv_rotate(v: float, interp: str) -> TvSpec:
    return TvSpec.of("RandomRotation", degrees=(float(v), float(v)), interpolation=interp, fill=None)


def _tv_rotate90(v: float, interp: str) -> TvSpec:
    deg = 90.0 * round(v)
    return TvSpec.of("RandomRotation", degrees=(deg, deg), interpolation="nearest")


def _tv_scale(v: float, interp: str) -> TvSpec:
    s = 1.0 + v
    return TvSpec.of("RandomAffine", degrees=0.0, scale=(s, s), interpolation=interp, fill=None)


def _tv_jitter(name: str) -> Callable[[float, str], TvSpec]:
    return lambda v, interp: TvSpec.of("ColorJitter", **{name: (1.0 + v, 1.0 + v)})


def _tv_fixed(target: str, **kw: object) -> Callable[[float, str], TvSpec]:
    return lambda v, interp: TvSpec.of(target, **kw)


def _tv_sharpness(v: float, interp: str) -> TvSpec:
    return TvSpec.of("RandomAdjustSharpness", sharpness_factor=1.0 + v, p=1.0)


def _tv_posterize(v: float, interp: str) -> TvSpec:
    return TvSpec.of("RandomPosterize", bits=round(v), p=1.0)


def _tv_solarize(v: float, interp: str) -> TvSpec:
    return TvSpec.of("RandomSolarize", threshold=float(v), p=1.0)


def _tv_hue(v: float, interp: str) -> TvSpec:
    return TvSpec.of("ColorJitter", hue=(float(v), float(v)))


def _tv_blur(v: float, interp: str) -> TvSpec:
    if abs(v) < _MIN_SIGMA:
        return TvSpec.of("Identity")
    s = abs(float(v))
    return TvSpec.of("GaussianBlur", kernel_size=blur_kernel_size(s), sigma=(s, s))


def _tv_erasing(v: float, interp: str) -> TvSpec:
    if v <= 0:
        return TvSpec.of("Identity")
    return TvSpec.of("RandomErasing", p=1.0, scale=(float(v), float(v)), ratio=(1.0, 1.0), value=0)


# ------------------------------------------------------------------------------ registry

_G, _P = "geometric", "photometric"

OPS: dict[str, Op] = {
    op.name: op
    for op in [
        Op("identity", _identity, _P, False, "none", False, "-", _tv_identity),
        Op("shear_x", _shear_x, _G, True, "exact", True, "shear coefficient", _tv_shear(0), _shear_x_map),
        Op("shear_y", _shear_y, _G, True, "exact", True, "shear coefficient", _tv_shear(1), _shear_y_map),
        Op(
            "translate_x",
            _affine_kernel(_translate_map(0), "_translate_x"),
            _G,
            True,
            "straight-through",
            True,
            "pixels",
            _tv_translate(0),
            _translate_map(0),
        ),
        Op(
            "translate_y",
            _affine_kernel(_translate_map(1), "_translate_y"),
            _G,
            True,
            "straight-through",
            True,
            "pixels",
            _tv_translate(1),
            _translate_map(1),
        ),
        Op("rotate", _rotate, _G, True, "exact", True, "degrees", _tv_rotate, _rotate_map),
        Op("brightness", _brightness, _P, True, "exact", True, "factor - 1", _tv_jitter("brightness")),
        Op("color", _color, _P, True, "exact", True, "saturation factor - 1", _tv_jitter("saturation")),
        Op("contrast", _contrast, _P, True, "exact", True, "factor - 1", _tv_jitter("contrast")),
        Op("sharpness", _sharpness, _P, True, "exact", True, "factor - 1", _tv_sharpness),
        Op("posterize", _posterize, _P, False, "straight-through", True, "bits kept", _tv_posterize),
        Op("solarize", _solarize, _P, False, "straight-through", True, "threshold", _tv_solarize),
        Op("equalize", _equalize, _P, False, "none", False, "-", _tv_fixed("RandomEqualize", p=1.0)),
        Op(
            "autocontrast",
            _autocontrast,
            _P,
            False,
            "none",
            False,
            "-",
            _tv_fixed("RandomAutocontrast", p=1.0),
        ),
        Op("invert", _invert, _P, False, "none", False, "-", _tv_fixed("RandomInvert", p=1.0)),
        Op("hflip", _hflip, _G, False, "none", False, "-", _tv_fixed("RandomHorizontalFlip", p=1.0)),
        Op("vflip", _vflip, _G, False, "none", False, "-", _tv_fixed("RandomVerticalFlip", p=1.0)),
        Op("rotate90", _rotate90, _G, True, "none", True, "quarter turns", _tv_rotate90),
        Op("scale", _scale, _G, True, "exact", True, "zoom factor - 1", _tv_scale, _scale_map),
        Op("hue", _hue, _P, True, "exact", True, "fraction of the colour circle", _tv_hue),
        Op("grayscale", _grayscale, _P, False, "none", False, "-", _tv_fixed("RandomGrayscale", p=1.0)),
        Op("gaussian_blur", _gaussian_blur, _P, False, "exact", True, "sigma (pixels)", _tv_blur),
        Op("erasing", _erasing, _G, False, "none", True, "erased area fraction", _tv_erasing),
    ]
}


def get_op(name: str) -> Op:
    """The registered op called ``name``.

    Raises:
        ValueError: for an unknown name, listing the known ones.
    """
    try:
        return OPS[name]
    except KeyError:
        raise ValueError(f"unknown op {name!r}; known: {', '.join(OPS)}") from None


__all__ = ["OPS", "Op", "TvSpec", "blur_kernel_size", "get_op", "warp"]
