"""Image files to uint8 arrays of one size: reading any mode PIL opens, and resizing the way
torchvision does.

Evaluation (and ``train_crop="center"``): the shorter side is scaled so that the image covers
H×W, then the centre H×W is cut out (``transforms.Resize`` then ``transforms.CenterCrop``).
Training with ``train_crop="random"``: ``transforms.RandomResizedCrop((H, W))`` with its
default scale (0.08, 1) and ratio (3/4, 4/3), drawn from a seed per image and epoch, so that
the crops do not depend on which worker decoded the image.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from autoaug.data.base import DatasetError

GRAY_MODES = ("1", "L", "LA", "La")
COLOUR_MODES = ("P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr", "LAB", "HSV")
CROPS = ("center", "random")


def parse_image_size(value: object, what: str = "image_size") -> tuple[int, int] | None:
    """``"HxW"`` (or ``"H"``, square; ``None``: keep the size) as ``(H, W)``.

    Examples:
        >>> parse_image_size("24x32"), parse_image_size("64"), parse_image_size(None)
        ((24, 32), (64, 64), None)
        >>> parse_image_size("big")
        Traceback (most recent call last):
        ...
        ValueError: image_size: expected HxW or H in pixels (e.g. 224 or 64x48), got 'big'
    """
    if value is None:
        return None
    if isinstance(value, (tuple, list)) and len(value) == 2:
        nums = list(value)
    else:
        parts = str(value).lower().replace("×", "x").split("x")
        try:
            nums = [int(p) for p in parts]
        except ValueError:
            nums = []
        nums = nums * 2 if len(nums) == 1 else nums
    if (
        len(nums) != 2
        or not all(isinstance(n, (int, np.integer)) and not isinstance(n, bool) for n in nums)
        or min(nums) <= 0
    ):
        raise ValueError(f"{what}: expected HxW or H in pixels (e.g. 224 or 64x48), got {value!r}")
    return int(nums[0]), int(nums[1])


def probe(path: str | Path) -> tuple[tuple[int, int], int]:
    """A file's (height, width) and channels (1 or 3) from its header, without decoding it.

    Raises:
        DatasetError: not an image PIL can read, or a mode autoaug cannot read as 8-bit pixels.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            w, h = im.size
            return (h, w), _channels(im.mode, path)
    except (UnidentifiedImageError, OSError) as e:
        raise DatasetError(f"{path}: not an image PIL can read ({e})") from None


def _channels(mode: str, path: str | Path) -> int:
    if mode in GRAY_MODES:
        return 1
    if mode in COLOUR_MODES:
        return 3
    raise DatasetError(
        f"{path}: pixel mode {mode!r} (not 8-bit); expected one of {', '.join(GRAY_MODES + COLOUR_MODES)} "
        "(convert it to 8-bit L or RGB first)"
    )


def cover_size(height: int, width: int, size: tuple[int, int]) -> tuple[int, int]:
    """The size that scales ``height``×``width`` by the shorter side's factor to cover ``size``
    (the other side truncated, as ``transforms.Resize`` does)."""
    if size[0] * width >= size[1] * height:  # the height sets the scale
        return size[0], max(size[1], int(size[0] * width / height))
    return max(size[0], int(size[1] * height / width)), size[1]


def read_image(
    path: str | Path,
    channels: int,
    size: tuple[int, int] | None,
    crop: str = "center",
    seed: int | None = None,
) -> np.ndarray:
    """Decode one file as uint8 H×W×C (C = ``channels``), brought to ``size`` (None: as it is).

    Args:
        path: the file.
        channels: 1 (gray) or 3 (RGB; a gray image is repeated into three channels).
        size: (H, W) to resize to, or None.
        crop: ``"center"`` (shorter side, centre crop) or ``"random"`` (RandomResizedCrop).
        seed: seeds the random crop.

    Raises:
        DatasetError: a file that does not decode (corrupt, truncated), naming it.
    """
    from PIL import Image, UnidentifiedImageError
    from torchvision.transforms import RandomResizedCrop
    from torchvision.transforms import functional as TF

    try:
        with Image.open(path) as im:
            im = im.convert("L" if _channels(im.mode, path) == 1 else "RGB")
            if size is not None and crop == "random":
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(0 if seed is None else seed)
                    i, j, h, w = RandomResizedCrop.get_params(im, (0.08, 1.0), (3 / 4, 4 / 3))
                im = TF.resized_crop(im, i, j, h, w, list(size), TF.InterpolationMode.BILINEAR)
            elif size is not None and (im.height, im.width) != size:
                im = TF.resize(im, list(cover_size(im.height, im.width, size)), TF.InterpolationMode.BILINEAR)
                im = TF.center_crop(im, list(size))
            array = np.asarray(im)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise DatasetError(f"{path}: not an image PIL can read ({e})") from None
    if array.ndim == 2:
        array = array[:, :, None]
    if channels == 3 and array.shape[2] == 1:
        array = np.repeat(array, 3, axis=2)
    return array


def resize_tensor(images: torch.Tensor, size: tuple[int, int], chunk: int = 1024) -> torch.Tensor:
    """uint8 N×C×h×w images of one size to N×C×H×W: shorter side, then centre crop (antialiased).

    Shape:
        images: N×C×h×w uint8; returns N×C×H×W uint8.
    """
    from torchvision.transforms.v2 import functional as F2

    h, w = images.shape[-2:]
    if (h, w) == tuple(size):
        return images
    cover = list(cover_size(int(h), int(w), size))
    out = [
        F2.center_crop(F2.resize(images[i : i + chunk], cover, antialias=True), list(size))
        for i in range(0, len(images), chunk)
    ]
    return torch.cat(out) if out else images.new_zeros((0, images.shape[1], *size))
