"""A suite of synthetic tasks in which every op of the ``symmetry`` space keeps the label in some
tasks and changes it in others, with the ground truth declared per task.

Each image is a *scene*: one shape (a disc, a square or a bar, :data:`SHAPES`) drawn from its
signed distance function under a per-image linear map and offset, in a foreground colour on a
background colour, anti-aliased over one pixel, then optionally blurred by a gaussian of a
per-image width and covered by a black square. A task is a law over scenes given the label
(:class:`Task`); ``glyphs`` and ``arrows`` (:mod:`autoaug.data.synthetic`) belong to the suite too.

Ground truth is a property of the data (DESIGN.md, "Measuring symmetry"): an op changes the
label when it turns an image of one class into an image that lies in the support of another
class; an op whose images leave the data's support without reaching another class's keeps the
label (a *hard* symmetry: a model need not handle it, but nothing in the data contradicts it).
Each task declares, for the ops where the construction decides it, one of

* ``"symmetry"``: no magnitude turns an image of one class into one of another;
* ``"breaks"``: already the smallest magnitude that changes something does;
* ``"partial"``: the small magnitudes keep the label, the larger change it;
  :attr:`Task.safe` gives the largest safe magnitude on the analysis grid (multiples of 0.25)
  as an interval ``(low, high)`` where the construction leaves the boundary uncertain.

Ops left out of a task's truth are the ones for which the construction decides nothing (an
op that can wipe the only object out, or move a class's defining colour off every class).
Nothing in :mod:`autoaug.analysis` reads a task's name or its truth; the suite is split into
a calibration half (:data:`CALIBRATION`), on which the verdicts' thresholds are set, and a held-out
half (:data:`HELD_OUT`), on which they are checked.

Example:
    >>> from autoaug.data.suite import SUITE, make_task
    >>> train, test = make_task("quadrants", 400, 100, seed=0)
    >>> train.images.shape, train.labels.bincount().tolist()
    (torch.Size([400, 3, 32, 32]), [100, 100, 100, 100])
    >>> SUITE["quadrants"].truth["hflip"], SUITE["sizes"].truth["scale"], SUITE["sizes"].safe["scale"]
    ('breaks', 'partial', (0.5, 0.5))
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import kornia
import torch
from torch import Tensor

from autoaug.data.base import Split, make_generator
from autoaug.data.synthetic import (
    ARROW_CLASSES,
    ARROWS_GROUND_TRUTH,
    GLYPH_CLASSES,
    GLYPHS_GROUND_TRUTH,
    IMAGE_SIZE,
    _box,
    _colours,
    _grid,
    _one_thread,
    arrows,
    glyphs,
)

W = IMAGE_SIZE  # pixels per image side: every length below is a fraction of it

# ------------------------------------------------------------------------------ rendering

SHAPES = ("disc", "square", "bar")
BAR_WIDTH = 0.17  # a bar's half-width in units of its half-length


def _sdf(shape: int, u: Tensor, v: Tensor) -> Tensor:
    if shape == 0:
        return torch.sqrt(u * u + v * v) - 1.0
    if shape == 1:
        return _box(u, v, 0.0, 0.0, 1.0, 1.0)
    return _box(u, v, 0.0, 0.0, 1.0, BAR_WIDTH)


@dataclass
class SceneParams:
    """Explicit parameters of a batch of scenes.

    Attributes:
        labels: N int64 classes.
        shape: N indices into :data:`SHAPES`.
        linear: N×2×2, shape units to pixels: pixel offset ``(x right, y down) = linear @ (u, v)``.
        offset: N×2 pixels of the shape's centre from the image centre.
        fg, bg: N×3 colours in [0, 1].
        blur: N gaussian widths in pixels (0: none), applied to the whole drawn image.
        patch: N×3 integer ``(side, top, left)`` of a black square drawn last (side 0: none).
    """

    labels: Tensor
    shape: Tensor
    linear: Tensor
    offset: Tensor
    fg: Tensor
    bg: Tensor
    blur: Tensor
    patch: Tensor

    def __getitem__(self, index: Tensor | slice) -> SceneParams:
        return SceneParams(*(getattr(self, f)[index] for f in self.__dataclass_fields__))


def _blur(images: Tensor, sigma: Tensor) -> Tensor:
    """Per-image gaussian blur, as :func:`autoaug.ops` blurs (kernel ±3σ, reflected borders)."""
    out = images
    for s in sigma.unique().tolist():
        if s <= 0:
            continue
        idx = (sigma == s).nonzero().squeeze(1)
        k = min(max(3, 2 * math.ceil(3 * s) + 1), 2 * ((images.shape[-1] - 1) // 2) + 1)
        sig = torch.full((len(idx), 2), float(s))
        out = out.index_copy(0, idx, kornia.filters.gaussian_blur2d(images[idx], (k, k), sig, "reflect"))
    return out


def render_scenes(params: SceneParams, size: int = W) -> Tensor:
    """Draw scenes from explicit parameters.

    Returns:
        N×3×size×size uint8 images.

    Examples:
        >>> import torch
        >>> p = SceneParams(torch.tensor([0]), torch.tensor([0]), 8.0 * torch.eye(2)[None], torch.zeros(1, 2),
        ...     torch.ones(1, 3), torch.zeros(1, 3), torch.zeros(1), torch.zeros(1, 3, dtype=torch.long))
        >>> img = render_scenes(p)  # a white disc of radius 8 on black
        >>> img.shape, int(img[0, 0, 16, 16]), int(img[0, 0, 0, 0])
        (torch.Size([1, 3, 32, 32]), 255, 0)
    """
    n = len(params.labels)
    if n == 0:
        return torch.zeros(0, 3, size, size, dtype=torch.uint8)
    chunks = []
    with _one_thread():
        for start in range(0, n, 512):
            p = params[start : start + 512]
            x, y = _grid(size, p.offset.device)
            dx = x - p.offset[:, 0].view(-1, 1, 1)
            dy = y - p.offset[:, 1].view(-1, 1, 1)
            inv = torch.linalg.inv(p.linear)
            u = inv[:, 0, 0].view(-1, 1, 1) * dx + inv[:, 0, 1].view(-1, 1, 1) * dy
            v = inv[:, 1, 0].view(-1, 1, 1) * dx + inv[:, 1, 1].view(-1, 1, 1) * dy
            unit = torch.sqrt(torch.linalg.det(p.linear).abs()).view(-1, 1, 1)  # pixels per unit
            sdf = torch.empty_like(u)
            for k in range(len(SHAPES)):
                idx = (p.shape == k).nonzero().squeeze(1)
                if len(idx):
                    sdf[idx] = _sdf(k, u[idx], v[idx])
            cover = (0.5 - sdf * unit).clamp(0, 1).unsqueeze(1)
            fg, bg = p.fg.view(-1, 3, 1, 1), p.bg.view(-1, 3, 1, 1)
            img = _blur(bg + cover * (fg - bg), p.blur)
            img = (img * 255).round_().clamp_(0, 255)
            side, top, left = p.patch.unbind(1)
            rows = torch.arange(size).view(1, size)
            inside_r = (rows >= top.view(-1, 1)) & (rows < (top + side).view(-1, 1))
            inside_c = (rows >= left.view(-1, 1)) & (rows < (left + side).view(-1, 1))
            mask = inside_r.view(-1, 1, size, 1) & inside_c.view(-1, 1, 1, size)
            chunks.append(img.masked_fill_(mask, 0).to(torch.uint8))
    return torch.cat(chunks)


# ------------------------------------------------------------------------------ sampling


def _u(n: int, lo: float, hi: float, g: torch.Generator) -> Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=g)


def _sign(n: int, g: torch.Generator) -> Tensor:
    return torch.randint(0, 2, (n,), generator=g).float() * 2 - 1


def _iso(radius_px: Tensor) -> Tensor:
    return radius_px.view(-1, 1, 1) * torch.eye(2).expand(len(radius_px), 2, 2)


def _rot(degrees: Tensor) -> Tensor:
    """Counter-clockwise on screen (y down): the unit u axis points to ``(cos θ, −sin θ)``."""
    t = torch.deg2rad(degrees)
    c, s = torch.cos(t), torch.sin(t)
    return torch.stack([torch.stack([c, s], -1), torch.stack([-s, c], -1)], -2)


def _gray(level: Tensor) -> Tensor:
    return level.view(-1, 1).expand(-1, 3).clone()


def _hsv(h: Tensor, s: Tensor, v: Tensor) -> Tensor:
    """HSV (hue in degrees) to RGB, as kornia's adjust_hue reads it."""
    hsv = torch.stack([torch.deg2rad(h % 360.0), s, v], -1).view(-1, 3, 1, 1)
    return kornia.color.hsv_to_rgb(hsv).view(-1, 3).clamp(0, 1)


def _offsets(n: int, jitter: float, g: torch.Generator) -> Tensor:
    return jitter * W * (2 * torch.rand(n, 2, generator=g) - 1)


def _base(labels: Tensor, g: torch.Generator) -> SceneParams:
    n = len(labels)
    fg, bg = _colours(n, g)
    return SceneParams(
        labels=labels,
        shape=torch.randint(0, 2, (n,), generator=g),  # disc or square
        linear=_iso(_u(n, 0.18, 0.28, g) * W),
        offset=_offsets(n, 0.1, g),
        fg=fg,
        bg=bg,
        blur=torch.zeros(n),
        patch=torch.zeros(n, 3, dtype=torch.long),
    )


def _quadrants(p: SceneParams, g: torch.Generator) -> None:
    n = len(p.labels)
    p.shape[:] = 0
    p.linear = _iso(_u(n, 0.12, 0.16, g) * W)
    sx = torch.where(p.labels % 2 == 1, 1.0, -1.0)  # 0 up-left, 1 up-right, 2 down-left, 3 down-right
    sy = torch.where(p.labels >= 2, 1.0, -1.0)
    p.offset = W * torch.stack([sx * _u(n, 0.15, 0.3, g), sy * _u(n, 0.15, 0.3, g)], 1)


ORIENTATION_JITTER = 3.0  # degrees around the class's angle


def _orientation(p: SceneParams, g: torch.Generator) -> None:
    n = len(p.labels)
    p.shape[:] = 2
    angle = 30.0 * p.labels + _u(n, -ORIENTATION_JITTER, ORIENTATION_JITTER, g)
    p.linear = _rot(angle) * (0.35 * W)
    p.offset = _offsets(n, 0.05, g)


SMALL, LARGE = (0.10, 0.13), (0.20, 0.26)  # disc radii, fractions of the side


def _sizes(p: SceneParams, g: torch.Generator) -> None:
    n = len(p.labels)
    p.shape[:] = 0
    r = torch.where(p.labels == 0, _u(n, *SMALL, g), _u(n, *LARGE, g))
    p.linear = _iso(r * W)


DIM, BRIGHT = (0.25, 0.35), (0.48, 0.7)  # object levels on black


def _levels(p: SceneParams, g: torch.Generator) -> None:
    n = len(p.labels)
    p.fg = _gray(torch.where(p.labels == 0, _u(n, *DIM, g), _u(n, *BRIGHT, g)))
    p.bg = torch.zeros(n, 3)


FAINT_BG, FAINT_DELTA = (0.1, 0.9), (0.06, 0.12)


def _stark(p: SceneParams, g: torch.Generator) -> None:
    n = len(p.labels)
    b = _u(n, *FAINT_BG, g)
    f = (b + _sign(n, g) * _u(n, *FAINT_DELTA, g)).clamp(0, 1)
    black = torch.randint(0, 2, (n,), generator=g).float()
    stark = p.labels == 1
    p.bg = _gray(torch.where(stark, black, b))
    p.fg = _gray(torch.where(stark, 1 - black, f))


VIVID, GRAYISH = (0.7, 1.0), (0.0, 0.12)  # HSV saturation


def _saturation(p: SceneParams, g: torch.Generator) -> None:
    n = len(p.labels)
    s = torch.where(p.labels == 0, _u(n, *VIVID, g), _u(n, *GRAYISH, g))
    p.fg = _hsv(_u(n, 0, 360, g), s, _u(n, 0.6, 1.0, g))
    p.bg = _gray(_u(n, 0.05, 0.35, g))
    p.linear = _iso(_u(n, 0.2, 0.3, g) * W)


HUE_JITTER = 10.0  # degrees around 0 (red), 120 (green), 240 (blue)


def _hues(p: SceneParams, g: torch.Generator) -> None:
    n = len(p.labels)
    h = 120.0 * p.labels + _u(n, -HUE_JITTER, HUE_JITTER, g)
    p.bg = _hsv(h, _u(n, 0.6, 1.0, g), _u(n, 0.7, 1.0, g))  # the whole background carries the class
    p.fg = _gray(torch.rand(n, generator=g))
    p.linear = _iso(_u(n, 0.12, 0.2, g) * W)
    p.offset = _offsets(n, 0.15, g)


SOFT = (0.5, 1.6)  # gaussian widths of the soft class, pixels


def _textures(p: SceneParams, g: torch.Generator) -> None:
    n = len(p.labels)
    p.blur = torch.where(p.labels == 1, _u(n, *SOFT, g), torch.zeros(n))
    p.linear = _iso(_u(n, 0.2, 0.3, g) * W)


PATCH_SIDE = (11, 16)  # pixels, inclusive: the erasing op's squares at m = 0.5 ... 1


def _patches(p: SceneParams, g: torch.Generator) -> None:
    n = len(p.labels)
    fg, bg = _colours(n, g)
    light = (bg @ torch.tensor([0.299, 0.587, 0.114])) < 0.35
    bg[light] = 1 - bg[light]  # a background the black square shows on (luma at least 0.35)
    p.fg, p.bg = fg, bg
    p.linear = _iso(_u(n, 0.1, 0.16, g) * W)
    p.offset = _offsets(n, 0.25, g)
    side = torch.randint(PATCH_SIDE[0], PATCH_SIDE[1] + 1, (n,), generator=g)
    top = (torch.rand(n, generator=g) * (W - side + 1)).long()
    left = (torch.rand(n, generator=g) * (W - side + 1)).long()
    p.patch = torch.stack([side * (p.labels == 1), top, left], 1)


MARK_BG, MARK_DELTA = (0.3, 0.7), (0.035, 0.05)


def _faint(p: SceneParams, g: torch.Generator) -> None:
    n = len(p.labels)
    b = _u(n, *MARK_BG, g)
    delta = _sign(n, g) * _u(n, *MARK_DELTA, g)
    p.bg = _gray(b)
    p.fg = _gray(torch.where(p.labels == 1, b + delta, b))


SHEAR, SHEAR_JITTER = 0.3, 0.03


def _shears(p: SceneParams, g: torch.Generator) -> None:
    n = len(p.labels)
    p.shape[:] = 1
    s = _u(n, -SHEAR_JITTER, SHEAR_JITTER, g)
    lean = torch.tensor([0.0, SHEAR, -SHEAR, SHEAR, -SHEAR])[p.labels] + s
    x_lean = (p.labels == 1) | (p.labels == 2) | (p.labels == 0)
    one, zero = torch.ones(n), torch.zeros(n)
    sx, sy = torch.where(x_lean, lean, zero), torch.where(x_lean, zero, lean)
    shear = torch.stack([torch.stack([one, sx], -1), torch.stack([sy, one], -1)], -2)
    p.linear = shear * (_u(n, 0.9, 1.1, g) * 0.22 * W).view(-1, 1, 1)
    # The shear ops shear about the top-left corner (as PIL's), which also moves the centre by up
    # to 0.3·(half the side): offsets as wide keep a sheared upright square in the data.
    p.offset = _offsets(n, 0.15, g)


LIGHT, DARK = (0.7, 1.0), (0.0, 0.3)


def _polarity(p: SceneParams, g: torch.Generator) -> None:
    n = len(p.labels)
    light, dark = _u(n, *LIGHT, g), _u(n, *DARK, g)
    on_dark = p.labels == 0
    p.fg = _gray(torch.where(on_dark, light, dark))
    p.bg = _gray(torch.where(on_dark, dark, light))
    p.shape = torch.randint(0, 3, (n,), generator=g)
    p.linear = _rot(_u(n, 0, 360, g)) * (_u(n, 0.18, 0.28, g) * W).view(-1, 1, 1)


# --------------------------------------------------------------------------------- tasks

PHOTOMETRIC = ("brightness", "color", "contrast", "sharpness", "posterize", "solarize", "autocontrast",
               "equalize", "invert", "hue", "grayscale", "gaussian_blur")  # fmt: skip
"""Ops that change no pixel's position: none of them can change a label that is a position,
a size, an orientation or a shape."""

_GEOMETRIC_KEEP = ("hflip", "vflip", "rotate90")  # move no content out of the frame, fill nothing


@dataclass(frozen=True)
class Task:
    """One task of the suite.

    Attributes:
        name: the dataset name.
        classes: the class names.
        description: one line for ``autoaug datasets``.
        truth: op -> ``"symmetry"``, ``"breaks"`` or ``"partial"`` (see the module doc).
        safe: for the ``"partial"`` ops, the largest safe magnitude, ``(low, high)``.
        half: ``"calibration"`` or ``"held-out"``.
        draw: ``(labels, generator) -> SceneParams`` (``None`` for glyphs and arrows, which
            :mod:`autoaug.data.synthetic` draws).
    """

    name: str
    classes: tuple[str, ...]
    description: str
    truth: dict[str, str]
    safe: dict[str, tuple[float, float]] = field(default_factory=dict)
    half: str = "calibration"
    draw: Callable[[SceneParams, torch.Generator], None] | None = None


def _all(ops: tuple[str, ...], verdict: str = "symmetry") -> dict[str, str]:
    return dict.fromkeys(ops, verdict)


_TASKS = (
    Task("glyphs", GLYPH_CLASSES, "L/J, S/Z, b/d at any rotation; hflip/vflip change the label",
         dict(GLYPHS_GROUND_TRUTH), half="calibration"),
    Task("arrows", ARROW_CLASSES, "arrow up/right/down/left (±10°); rotate90 and flips change it",
         dict(ARROWS_GROUND_TRUTH), half="calibration"),
    Task("quadrants", ("up-left", "up-right", "down-left", "down-right"),
         "a disc in one of four quadrants; shifts past the gap, flips, quarter turns change it",
         {**_all(PHOTOMETRIC), "rotate": "symmetry", "scale": "symmetry", "shear_x": "symmetry",
          "shear_y": "symmetry", "hflip": "breaks", "vflip": "breaks", "rotate90": "breaks",
          "translate_x": "partial", "translate_y": "partial"},
         {"translate_x": (0.5, 0.5), "translate_y": (0.5, 0.5)}, "calibration", _quadrants),
    Task("sizes", ("small", "large"), "a small or a large disc; zooming out by half changes it",
         {**_all(PHOTOMETRIC), **_all(_GEOMETRIC_KEEP), "translate_x": "symmetry", "translate_y": "symmetry",
          "rotate": "symmetry", "shear_x": "symmetry", "shear_y": "symmetry", "scale": "partial"},
         {"scale": (0.5, 0.5)}, "calibration", _sizes),
    Task("stark", ("faint", "stark"), "gray shape at a low contrast or black/white; autocontrast, "
         "equalize and strong contrast reduction change it",
         {**_all(_GEOMETRIC_KEEP), "color": "symmetry", "hue": "symmetry", "grayscale": "symmetry",
          "invert": "symmetry", "sharpness": "symmetry", "autocontrast": "breaks", "equalize": "breaks",
          "contrast": "partial"},
         {"contrast": (0.75, 0.75)}, "calibration", _stark),
    Task("textures", ("sharp", "soft"), "a sharp or a blurred shape; blur and strong softening change it",
         {**_all(_GEOMETRIC_KEEP), "hue": "symmetry", "color": "symmetry", "grayscale": "symmetry",
          "invert": "symmetry", "brightness": "symmetry", "gaussian_blur": "partial", "sharpness": "partial"},
         {"gaussian_blur": (0.25, 0.25), "sharpness": (0.25, 0.5)}, "calibration", _textures),
    Task("hues", ("red", "green", "blue"), "a red, green or blue background; hue shifts past 90° change it",
         {**_all(_GEOMETRIC_KEEP), "translate_x": "symmetry", "translate_y": "symmetry", "rotate": "symmetry",
          "scale": "symmetry", "shear_x": "symmetry", "shear_y": "symmetry", "brightness": "symmetry",
          "sharpness": "symmetry", "gaussian_blur": "symmetry", "erasing": "symmetry", "hue": "partial"},
         {"hue": (0.5, 0.5)}, "calibration", _hues),
    Task("orientation", tuple(f"{30 * k}°" for k in range(6)),
         "a bar at 0°, 30°, ..., 150° (±3°); a 30° turn, quarter turns and flips change it",
         {**_all(PHOTOMETRIC), "translate_x": "symmetry", "translate_y": "symmetry", "scale": "symmetry",
          "hflip": "breaks", "vflip": "breaks", "rotate90": "breaks", "rotate": "partial"},
         {"rotate": (0.75, 0.75)}, "held-out", _orientation),
    Task("levels", ("dim", "bright"), "a dim or a bright gray shape on black; brightness and solarize change it",
         {**_all(_GEOMETRIC_KEEP), "translate_x": "symmetry", "translate_y": "symmetry", "rotate": "symmetry",
          "scale": "symmetry", "shear_x": "symmetry", "shear_y": "symmetry", "color": "symmetry",
          "hue": "symmetry", "grayscale": "symmetry", "sharpness": "symmetry", "posterize": "symmetry",
          "gaussian_blur": "symmetry", "brightness": "partial", "solarize": "breaks"},
         {"brightness": (0.25, 0.25)}, "held-out", _levels),
    Task("saturation", ("vivid", "grayish"), "a vivid or a grayish shape; grayscale and desaturation change it",
         {**_all(_GEOMETRIC_KEEP), "translate_x": "symmetry", "translate_y": "symmetry", "rotate": "symmetry",
          "scale": "symmetry", "hue": "symmetry", "brightness": "symmetry", "posterize": "symmetry",
          "grayscale": "breaks", "color": "partial"},
         {"color": (0.75, 0.75)}, "held-out", _saturation),
    Task("patches", ("plain", "patched"), "a scene with or without a black square; erasing changes it",
         {**_all(_GEOMETRIC_KEEP), "hue": "symmetry", "color": "symmetry", "grayscale": "symmetry",
          "posterize": "symmetry", "erasing": "partial"},
         {"erasing": (0.25, 0.25)}, "held-out", _patches),
    Task("faint", ("blank", "marked"), "a gray field, blank or with a faint shape; 4-bit posterize changes it",
         {**_all(_GEOMETRIC_KEEP), "color": "symmetry", "hue": "symmetry", "grayscale": "symmetry",
          "invert": "symmetry", "sharpness": "symmetry", "gaussian_blur": "symmetry", "posterize": "partial"},
         {"posterize": (0.75, 0.75)}, "held-out", _faint),
    Task("shears", ("upright", "x-lean+", "x-lean-", "y-lean+", "y-lean-"),
         "a square, upright or sheared by ±0.3; the largest shears, quarter turns and flips change it",
         {**_all(PHOTOMETRIC), "translate_x": "symmetry", "translate_y": "symmetry", "scale": "symmetry",
          "hflip": "breaks", "vflip": "breaks", "rotate90": "breaks", "shear_x": "partial", "shear_y": "partial"},
         {"shear_x": (0.75, 0.75), "shear_y": (0.75, 0.75)}, "held-out", _shears),
    Task("polarity", ("light-on-dark", "dark-on-light"), "a light shape on dark or the reverse; invert changes it",
         {**_all(_GEOMETRIC_KEEP), "color": "symmetry", "hue": "symmetry", "grayscale": "symmetry",
          "contrast": "symmetry", "sharpness": "symmetry", "posterize": "symmetry", "autocontrast": "symmetry",
          "equalize": "symmetry", "gaussian_blur": "symmetry", "invert": "breaks"},
         half="held-out", draw=_polarity),
)  # fmt: skip

SUITE: dict[str, Task] = {t.name: t for t in _TASKS}
CALIBRATION: tuple[str, ...] = tuple(t.name for t in _TASKS if t.half == "calibration")
HELD_OUT: tuple[str, ...] = tuple(t.name for t in _TASKS if t.half == "held-out")


def sample_scenes(name: str, n: int, generator: torch.Generator) -> SceneParams:
    """Draw ``n`` scenes of suite task ``name``, classes exactly balanced (in a random order).

    Raises:
        ValueError: ``name`` is not a scene task of the suite.
    """
    task = SUITE.get(name)
    if task is None or task.draw is None:
        known = ", ".join(t.name for t in _TASKS if t.draw is not None)
        raise ValueError(f"unknown scene task {name!r}; known: {known}")
    k = len(task.classes)
    labels = (torch.arange(n) % k)[torch.randperm(n, generator=generator)]
    p = _base(labels, generator)
    task.draw(p, generator)
    return p


def make_task(name: str, n_train: int, n_test: int, seed: int = 0) -> tuple[Split, Split]:
    """The training and test splits of suite task ``name`` (the test set depends on neither
    ``seed`` nor ``n_train``).

    Raises:
        ValueError: for an unknown task.
    """
    if name == "glyphs":
        return glyphs(n_train, n_test, seed)
    if name == "arrows":
        return arrows(n_train, n_test, seed)
    train = sample_scenes(name, n_train, make_generator(seed, f"{name}/train"))
    test = sample_scenes(name, n_test, make_generator(0, f"{name}/test"))
    return Split(render_scenes(train), train.labels), Split(render_scenes(test), test.labels)


def coverage() -> dict[str, dict[str, list[str]]]:
    """op -> ``{"keeps": [tasks], "breaks": [tasks]}`` over the suite (``partial`` counts as breaks)."""
    out: dict[str, dict[str, list[str]]] = {}
    for t in _TASKS:
        for op, v in t.truth.items():
            out.setdefault(op, {"keeps": [], "breaks": []})["keeps" if v == "symmetry" else "breaks"].append(
                t.name
            )
    return out


__all__ = [
    "CALIBRATION",
    "HELD_OUT",
    "PHOTOMETRIC",
    "SHAPES",
    "SUITE",
    "SceneParams",
    "Task",
    "coverage",
    "make_task",
    "render_scenes",
    "sample_scenes",
]
