"""Synthetic tasks whose symmetries are known by construction, so a symmetry report can be checked.

Each image is one glyph, drawn by evaluating its signed distance function on the pixel grid
(anti-aliased over one pixel) after a per-image similarity transform, in a foreground colour
on a background colour. Everything is batched in torch; there is no per-image Python.

* ``glyphs``: six classes, three chiral shapes in both handednesses (L/J, S/Z, b/d), at any
  rotation. Rotations, shifts, zoom and colour changes keep the class; a mirror flip turns each
  class into its partner.
* ``arrows``: four classes, an arrow pointing up, right, down or left, rotated by at most 10°.
  Small rotations, shifts and colour changes keep the class; quarter turns and flips change it.

Sampling the parameters (:func:`sample_params`) is separate from drawing them
(:func:`render`), so an image can be redrawn from explicit parameters: the tests check the
ground truth that way (a flipped ``b`` is exactly a ``d`` with mirrored parameters).

Example:
    >>> import torch
    >>> from autoaug.data.synthetic import glyphs
    >>> train, test = glyphs(600, 200, seed=0)
    >>> train.images.shape, train.images.dtype, test.labels.bincount().tolist()
    (torch.Size([600, 3, 32, 32]), torch.uint8, [34, 34, 33, 33, 33, 33])
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

from autoaug.data.base import Split, Truth, make_generator

SDF = Callable[[Tensor, Tensor], Tensor]

IMAGE_SIZE = 32
GLYPH_RADIUS = 0.3  # one glyph unit in pixels, as a fraction of the image side
SCALE_JITTER = 0.2  # scale uniform in [1 - 0.2, 1 + 0.2]
OFFSET_JITTER = 0.1  # centre offset uniform in ±0.1 of the image side, per axis
ARROW_JITTER = 10.0  # arrows: rotation uniform in ±10°
MIN_LUMA_GAP = 0.3  # foreground and background differ by at least this much in luma
_LUMA = (0.299, 0.587, 0.114)
_CHUNK = 512  # images rendered at once: small passes stay in cache, memory stays bounded


@dataclass
class GlyphParams:
    """Explicit parameters of a batch of synthetic images.

    Attributes:
        labels: N int64 classes.
        angle: N degrees, counter-clockwise on screen: the glyph's rotation for ``glyphs``,
            the deviation from the class direction for ``arrows``.
        offset: N×2 pixels (x right, y down) from the image centre.
        scale: N size factors.
        fg, bg: N×3 foreground and background RGB colours in [0, 1].
    """

    labels: Tensor
    angle: Tensor
    offset: Tensor
    scale: Tensor
    fg: Tensor
    bg: Tensor

    def __getitem__(self, index: Tensor | slice) -> GlyphParams:
        return GlyphParams(*(getattr(self, f)[index] for f in self.__dataclass_fields__))


# ------------------------------------------------------------------- signed distance functions


def _box(u: Tensor, v: Tensor, cu: float, cv: float, hu: float, hv: float) -> Tensor:
    du, dv = (u - cu).abs() - hu, (v - cv).abs() - hv
    outside = torch.sqrt(du.clamp(min=0) ** 2 + dv.clamp(min=0) ** 2)
    return outside + torch.maximum(du, dv).clamp(max=0)


def _ring(u: Tensor, v: Tensor, cu: float, cv: float, r: float, half_width: float) -> Tensor:
    return (torch.sqrt((u - cu) ** 2 + (v - cv) ** 2) - r).abs() - half_width


def _half_plane(u: Tensor, v: Tensor, nu: float, nv: float, c: float) -> Tensor:
    """Signed distance to the line ``nu·u + nv·v = c``, positive on the side ``n`` points to."""
    norm = math.hypot(nu, nv)
    return (nu * u + nv * v - c) / norm


# Glyph units: u right, v down, the glyph inside the unit disc. Tetromino cells are _A wide.
_A = 0.55


def _shape_l(u: Tensor, v: Tensor) -> Tensor:
    # L tetromino: a bar of three cells with a foot to the right of the bottom cell.
    bar = _box(u, v, -0.5 * _A, 0.0, 0.5 * _A, 1.5 * _A)
    foot = _box(u, v, 0.5 * _A, _A, 0.5 * _A, 0.5 * _A)
    return torch.minimum(bar, foot)


def _shape_s(u: Tensor, v: Tensor) -> Tensor:
    # S tetromino: two cells on top, shifted one cell right of the two below.
    top = _box(u, v, 0.5 * _A, -0.5 * _A, _A, 0.5 * _A)
    bottom = _box(u, v, -0.5 * _A, 0.5 * _A, _A, 0.5 * _A)
    return torch.minimum(top, bottom)


def _shape_b(u: Tensor, v: Tensor) -> Tensor:
    # A "b": a full-height stem with a round bowl at the bottom right.
    stem = _box(u, v, -0.43, 0.0, 0.15, 0.92)
    bowl = _ring(u, v, 0.08, 0.4, 0.38, 0.15)
    return torch.minimum(stem, bowl)


def _arrow_right(u: Tensor, v: Tensor) -> Tensor:
    shaft = _box(u, v, -0.4, 0.0, 0.55, 0.14)
    head = torch.maximum(
        _half_plane(u, v, -1.0, 0.0, -0.1),  # behind the base at u = 0.1
        torch.maximum(
            _half_plane(u, v, 0.55, 0.85, 0.55 * 0.95), _half_plane(u, v, 0.55, -0.85, 0.55 * 0.95)
        ),
    )
    return torch.minimum(shaft, head)


def _mirrored(shape: SDF) -> SDF:
    return lambda u, v: shape(-u, v)


GLYPH_CLASSES = ("L", "J", "S", "Z", "b", "d")
# Class 2k is a shape, class 2k + 1 its mirror image: a horizontal flip maps c to c ^ 1.
_GLYPH_SHAPES: tuple[SDF, ...] = (
    _shape_l,
    _mirrored(_shape_l),
    _shape_s,
    _mirrored(_shape_s),
    _shape_b,
    _mirrored(_shape_b),
)

ARROW_CLASSES = ("up", "right", "down", "left")
# Class c points 90° - 90°·c counter-clockwise from "right": the classes go clockwise.
_ARROW_ANGLES = (90.0, 0.0, -90.0, 180.0)

GLYPHS_GROUND_TRUTH: dict[str, Truth] = {
    "translate_x": "symmetry",
    "translate_y": "symmetry",
    "rotate": "symmetry",
    "rotate90": "symmetry",
    "scale": "symmetry",
    "brightness": "symmetry",
    "color": "symmetry",
    "contrast": "symmetry",
    "hue": "symmetry",
    "grayscale": "symmetry",
    "invert": "symmetry",
    "hflip": "breaks",
    "vflip": "breaks",
}

ARROWS_GROUND_TRUTH: dict[str, Truth] = {
    "translate_x": "symmetry",
    "translate_y": "symmetry",
    "rotate": "symmetry",
    "brightness": "symmetry",
    "color": "symmetry",
    "contrast": "symmetry",
    "hue": "symmetry",
    "grayscale": "symmetry",
    "invert": "symmetry",
    "hflip": "breaks",
    "vflip": "breaks",
    "rotate90": "breaks",
}


def glyph_partner(labels: Tensor) -> Tensor:
    """The ``glyphs`` class a mirror flip turns each class into (L↔J, S↔Z, b↔d)."""
    return labels ^ 1


# ------------------------------------------------------------------------------- rendering


def _grid(size: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """Pixel-centre coordinates relative to the image centre, so a flip or a quarter turn of
    the image maps the grid onto itself exactly."""
    c = torch.arange(size, dtype=torch.float32, device=device) - (size - 1) / 2
    y, x = torch.meshgrid(c, c, indexing="ij")
    return x, y


def _draw(params: GlyphParams, angle: Tensor, shapes: tuple[SDF, ...], size: int) -> Tensor:
    x, y = _grid(size, params.angle.device)
    unit = size * GLYPH_RADIUS * params.scale.view(-1, 1, 1)  # pixels per glyph unit
    dx = x - params.offset[:, 0].view(-1, 1, 1)
    dy = y - params.offset[:, 1].view(-1, 1, 1)
    # Glyph coordinates: undo the rotation (counter-clockwise on screen, y pointing down).
    t = torch.deg2rad(angle).view(-1, 1, 1)
    cos, sin = torch.cos(t), torch.sin(t)
    u = (cos * dx - sin * dy) / unit
    v = (sin * dx + cos * dy) / unit
    sdf = torch.empty_like(u)
    for k, shape in enumerate(shapes):
        idx = (params.labels == k).nonzero().squeeze(1)
        if len(idx):
            sdf[idx] = shape(u[idx], v[idx])
    coverage = (0.5 - sdf * unit).clamp(0, 1).unsqueeze(1)  # anti-aliased over one pixel
    fg, bg = params.fg.view(-1, 3, 1, 1), params.bg.view(-1, 3, 1, 1)
    image = bg + coverage * (fg - bg)
    return (image * 255).round_().clamp_(0, 255).to(torch.uint8)


def render(task: str, params: GlyphParams, size: int = IMAGE_SIZE) -> Tensor:
    """Draw a batch of ``glyphs`` or ``arrows`` images from explicit parameters.

    Args:
        task: ``"glyphs"`` or ``"arrows"``.
        params: one set of parameters per image.
        size: image side in pixels.

    Returns:
        N×3×size×size uint8 images.

    Examples:
        >>> import torch
        >>> from autoaug.data.synthetic import GlyphParams, render
        >>> p = GlyphParams(torch.tensor([4]), torch.tensor([0.0]), torch.zeros(1, 2),
        ...                 torch.ones(1), torch.ones(1, 3), torch.zeros(1, 3))
        >>> b = render("glyphs", p)  # a white "b" on black
        >>> b.shape, b.dtype
        (torch.Size([1, 3, 32, 32]), torch.uint8)
    """
    if task == "glyphs":
        angle_of, shapes = (lambda p: p.angle), _GLYPH_SHAPES
    elif task == "arrows":
        base = torch.tensor(_ARROW_ANGLES)
        angle_of, shapes = (lambda p: base.to(p.angle.device)[p.labels] + p.angle), (_arrow_right,) * 4
    else:
        raise ValueError(f"unknown synthetic task {task!r}; known: glyphs, arrows")
    n = len(params.labels)
    if n and not 0 <= int(params.labels.min()) <= int(params.labels.max()) < len(shapes):
        raise ValueError(
            f"{task}: labels span [{int(params.labels.min())}, {int(params.labels.max())}], "
            f"expected classes 0-{len(shapes) - 1}"
        )
    if n == 0:
        return torch.zeros(0, 3, size, size, dtype=torch.uint8)
    chunks = []
    with _one_thread():
        for start in range(0, n, _CHUNK):
            p = params[start : start + _CHUNK]
            chunks.append(_draw(p, angle_of(p), shapes, size))
    return torch.cat(chunks)


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    # Drawing is many small elementwise passes; split across threads they cost more in
    # synchronisation than they gain (3-4x slower on a busy 2-core machine).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


# -------------------------------------------------------------------------------- sampling


def _luma(rgb: Tensor) -> Tensor:
    return rgb @ torch.tensor(_LUMA)


def _colours(n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Uniform RGB foreground/background pairs whose luma differs by at least MIN_LUMA_GAP.

    The gap keeps the glyph visible after grayscale, so grayscale is a symmetry; the law is
    unchanged by ``x -> 1 - x``, so invert is one too.
    """
    fg, bg = torch.rand(n, 3, generator=generator), torch.rand(n, 3, generator=generator)
    bad = (_luma(fg) - _luma(bg)).abs() < MIN_LUMA_GAP
    while bad.any():  # rejection sampling, vectorized; each round keeps about a quarter
        idx = bad.nonzero().squeeze(1)
        fg[idx] = torch.rand(len(idx), 3, generator=generator)
        bg[idx] = torch.rand(len(idx), 3, generator=generator)
        bad[idx] = (_luma(fg[idx]) - _luma(bg[idx])).abs() < MIN_LUMA_GAP
    return fg, bg


def sample_params(task: str, n: int, generator: torch.Generator, *, size: int = IMAGE_SIZE) -> GlyphParams:
    """Draw ``n`` images' parameters, classes exactly balanced (in a random order).

    Args:
        task: ``"glyphs"`` (full 360° rotation) or ``"arrows"`` (±10° around the class direction).
        n: how many.
        generator: the source of randomness.
        size: image side in pixels (offsets scale with it).

    Examples:
        >>> import torch
        >>> p = sample_params("arrows", 8, torch.Generator().manual_seed(0))
        >>> p.labels.bincount().tolist(), bool(p.angle.abs().max() <= 10)
        ([2, 2, 2, 2], True)
    """
    if task not in ("glyphs", "arrows"):
        raise ValueError(f"unknown synthetic task {task!r}; known: glyphs, arrows")
    k = len(GLYPH_CLASSES) if task == "glyphs" else len(ARROW_CLASSES)
    labels = (torch.arange(n) % k)[torch.randperm(n, generator=generator)]
    u = torch.rand(n, generator=generator)
    angle = 360.0 * u if task == "glyphs" else ARROW_JITTER * (2 * u - 1)
    offset = OFFSET_JITTER * size * (2 * torch.rand(n, 2, generator=generator) - 1)
    scale = 1 + SCALE_JITTER * (2 * torch.rand(n, generator=generator) - 1)
    fg, bg = _colours(n, generator)
    return GlyphParams(labels, angle, offset, scale, fg, bg)


def _make(task: str, n_train: int, n_test: int, seed: int) -> tuple[Split, Split]:
    train = sample_params(task, n_train, make_generator(seed, f"{task}/train"))
    # The test set does not depend on the seed, so runs with different seeds are scored on
    # the same images, as with the fixed test split of a real dataset.
    test = sample_params(task, n_test, make_generator(0, f"{task}/test"))
    return Split(render(task, train), train.labels), Split(render(task, test), test.labels)


def glyphs(n_train: int = 10000, n_test: int = 2000, seed: int = 0) -> tuple[Split, Split]:
    """The ``glyphs`` task: chiral shapes whose label survives everything but a mirror.

    Six classes, L, J, S, Z, b, d: three shapes without mirror symmetry (the L and S
    tetrominoes and a "b"), each in both handednesses. Every image is one glyph, 32×32 RGB, at
    a uniformly random rotation (0-360°), scaled by 0.8-1.2, shifted by up to ±3 pixels, in a
    random foreground colour on a random background colour (luma at least 0.3 apart).

    Ground truth (:data:`GLYPHS_GROUND_TRUTH`): since every rotation is already in the data,
    ``rotate`` and ``rotate90`` keep the class, as do shifts, zoom and the colour ops
    (brightness, color, contrast, hue, grayscale, invert), which move neither the glyph's
    outline nor its handedness. ``hflip`` maps each class to its mirror partner (L↔J, S↔Z,
    b↔d), and so does ``vflip`` (a horizontal flip followed by a half turn); no rotation of a
    chiral shape equals its mirror image, so both break the label. The shift and zoom ranges
    of the ``symmetry`` space can push part of a glyph out of the frame at their largest.

    Args:
        n_train: training images (before any validation split).
        n_test: test images; the test set depends on neither ``seed`` nor ``n_train``.
        seed: seeds the training images.

    Returns:
        The training and test splits, uint8 N×3×32×32 images, classes exactly balanced.

    Examples:
        >>> train, test = glyphs(60, 12, seed=1)
        >>> train.labels.bincount().tolist()
        [10, 10, 10, 10, 10, 10]
    """
    return _make("glyphs", n_train, n_test, seed)


def arrows(n_train: int = 6000, n_test: int = 2000, seed: int = 0) -> tuple[Split, Split]:
    """The ``arrows`` task: the label is a direction, so quarter turns and flips change it.

    Four classes, an arrow pointing up, right, down or left, 32×32 RGB, rotated by a random
    ±10° around its class direction, scaled by 0.8-1.2, shifted by up to ±3 pixels, in random
    colours (as in :func:`glyphs`).

    Ground truth (:data:`ARROWS_GROUND_TRUTH`): the classes are 90° apart, so ``rotate`` by up
    to 30° (plus the ±10° of the data, < 45°) leaves an arrow pointing the same way, and so
    do shifts and the colour ops. ``rotate90`` turns every class into a neighbour;
    ``hflip`` swaps left and right, ``vflip`` up and down (each keeps the other two classes,
    since an arrow is mirror-symmetric about its own axis). Zoom is left out: at 1.5× the
    arrowhead can leave the frame.

    Args:
        n_train: training images (before any validation split).
        n_test: test images; the test set depends on neither ``seed`` nor ``n_train``.
        seed: seeds the training images.

    Returns:
        The training and test splits, uint8 N×3×32×32 images, classes exactly balanced.

    Examples:
        >>> train, _ = arrows(8, 4)
        >>> train.labels.bincount().tolist()
        [2, 2, 2, 2]
    """
    return _make("arrows", n_train, n_test, seed)


__all__ = [
    "ARROWS_GROUND_TRUTH",
    "ARROW_CLASSES",
    "GLYPHS_GROUND_TRUTH",
    "GLYPH_CLASSES",
    "GlyphParams",
    "arrows",
    "glyph_partner",
    "glyphs",
    "render",
    "sample_params",
]
