"""Named op sets with their magnitude ranges.

A magnitude is a number in [0, 1]; a :class:`Range` maps it linearly into an op's units
(``low`` at 0, ``high`` at 1). The ranges are torchvision's, declared once as data:

* ``standard``: RandAugment's ``_AUGMENTATION_SPACE`` (Cubuk et al., 2020), also the
  ranges of AutoAugment (Cubuk et al., 2019);
* ``wide``: TrivialAugmentWide's (Müller & Hutter, 2021);
* ``symmetry``: ``standard`` plus invert and the ops that probe a task's symmetries: flips,
  quarter turns, zoom, hue, grayscale, blur and erasing.

Example:
    >>> from autoaug.spaces import get_space
    >>> space = get_space("wide")
    >>> space.ranges["rotate"].value(0.5, height=32, width=32)
    67.5
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from autoaug.ops import OPS, get_op


@dataclass(frozen=True)
class Range:
    """Linear map from a magnitude in [0, 1] to an op value.

    ``per`` makes the range relative to the image size: ``"width"`` multiplies the value by
    the image width (torchvision's RandAugment translates by up to 150/331 of the width).
    """

    low: float
    high: float
    per: Literal["width", "height"] | None = None

    def value(self, magnitude: float, height: int, width: int) -> float:
        v = self.low + magnitude * (self.high - self.low)
        if self.per == "width":
            v *= width
        elif self.per == "height":
            v *= height
        return v

    def to_json(self) -> list:
        return [self.low, self.high] if self.per is None else [self.low, self.high, self.per]

    @staticmethod
    def from_json(data: object, where: str) -> Range:
        """Parse ``[low, high]`` or ``[low, high, "width"|"height"]``; errors name ``where``."""
        ok = isinstance(data, list) and len(data) in (2, 3)
        ok = ok and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in data[:2])
        ok = ok and (len(data) == 2 or data[2] in ("width", "height"))
        if not ok:
            raise ValueError(f"{where}: expected [low, high] or [low, high, 'width'|'height'], got {data!r}")
        return Range(float(data[0]), float(data[1]), data[2] if len(data) == 3 else None)


@dataclass(frozen=True)
class Space:
    """An ordered set of ops; ops with a magnitude carry their :class:`Range`."""

    name: str
    ops: tuple[str, ...]
    ranges: dict[str, Range] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in self.ops:
            op = get_op(name)
            if op.has_magnitude and name not in self.ranges:
                raise ValueError(f"space {self.name!r}: op {name!r} has a magnitude but no range")


_STANDARD_RANGES = {
    "shear_x": Range(0.0, 0.3),
    "shear_y": Range(0.0, 0.3),
    "translate_x": Range(0.0, 150.0 / 331.0, "width"),
    "translate_y": Range(0.0, 150.0 / 331.0, "height"),
    "rotate": Range(0.0, 30.0),
    "brightness": Range(0.0, 0.9),
    "color": Range(0.0, 0.9),
    "contrast": Range(0.0, 0.9),
    "sharpness": Range(0.0, 0.9),
    "posterize": Range(8.0, 4.0),  # bits kept: 8 - round(4·m)
    "solarize": Range(1.0, 0.0),  # threshold
}
_AA_OPS = (
    "identity", "shear_x", "shear_y", "translate_x", "translate_y", "rotate", "brightness", "color",
    "contrast", "sharpness", "posterize", "solarize", "autocontrast", "equalize",
)  # fmt: skip

STANDARD = Space("standard", _AA_OPS, _STANDARD_RANGES)

WIDE = Space(
    "wide",
    _AA_OPS,
    {
        "shear_x": Range(0.0, 0.99),
        "shear_y": Range(0.0, 0.99),
        "translate_x": Range(0.0, 32.0),  # pixels, whatever the image size
        "translate_y": Range(0.0, 32.0),
        "rotate": Range(0.0, 135.0),
        "brightness": Range(0.0, 0.99),
        "color": Range(0.0, 0.99),
        "contrast": Range(0.0, 0.99),
        "sharpness": Range(0.0, 0.99),
        "posterize": Range(8.0, 2.0),  # bits kept: 8 - round(6·m)
        "solarize": Range(1.0, 0.0),
    },
)

SYMMETRY = Space(
    "symmetry",
    (
        *_AA_OPS,
        "invert",
        "hflip",
        "vflip",
        "rotate90",
        "scale",
        "hue",
        "grayscale",
        "gaussian_blur",
        "erasing",
    ),
    {
        **_STANDARD_RANGES,
        "rotate90": Range(0.0, 2.0),  # quarter turns: 0, ±1 (m ≈ 0.5), 2 (m = 1)
        "scale": Range(0.0, 0.5),  # zoom factor 1 ± 0.5
        "hue": Range(0.0, 0.5),  # the whole colour circle at m = 1
        "gaussian_blur": Range(0.0, 1.5),  # sigma in pixels
        "erasing": Range(0.0, 0.25),  # erased area fraction
    },
)

SPACES: dict[str, Space] = {s.name: s for s in (STANDARD, WIDE, SYMMETRY)}

FAMILIES: dict[str, tuple[str, ...]] = {
    "geometric": ("shear_x", "shear_y", "translate_x", "translate_y", "rotate", "scale"),
    "photometric": ("brightness", "color", "contrast", "sharpness", "posterize", "solarize", "autocontrast",
                    "equalize", "hue", "grayscale", "gaussian_blur"),
    "flip": ("hflip",),
    "erasing": ("erasing",),
    "drastic": ("invert", "vflip", "rotate90"),  # most tasks break these: a choice of its own
}  # fmt: skip
"""The ops by kind: RandAugment draws from the geometric and photometric ones."""


def randaugment_ops(space: str) -> tuple[str, ...]:
    """The ops of ``space`` RandAugment's kind of policy draws from (geometric and photometric),
    in the space's order.

    Example:
        >>> "hflip" in randaugment_ops("symmetry"), "rotate" in randaugment_ops("symmetry")
        (False, True)
    """
    drawn = set(FAMILIES["geometric"]) | set(FAMILIES["photometric"])
    return tuple(op for op in get_space(space).ops if op in drawn)


def get_space(name: str) -> Space:
    """The named space.

    Raises:
        ValueError: for an unknown name, listing the known ones.
    """
    try:
        return SPACES[name]
    except KeyError:
        raise ValueError(f"unknown space {name!r}; known: {', '.join(SPACES)}") from None


def default_range(op: str) -> Range | None:
    """The range an op gets when neither a policy nor its space names one (``symmetry``'s)."""
    return SYMMETRY.ranges.get(op) if get_op(op).has_magnitude else None


assert set(SYMMETRY.ops) == set(OPS), "every registered op belongs to the symmetry space"

__all__ = [
    "FAMILIES",
    "SPACES",
    "STANDARD",
    "SYMMETRY",
    "WIDE",
    "Range",
    "Space",
    "default_range",
    "get_space",
    "randaugment_ops",
]
