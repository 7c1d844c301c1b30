"""Export a :class:`~autoaug.policy.Policy` as a plain torchvision ``transforms.v2`` object.

The export is a drop-in for torchvision's ``AutoAugment`` / ``RandAugment`` /
``TrivialAugmentWide``: it goes where they go in a pipeline (after ``RandomCrop`` and
``RandomHorizontalFlip``, before ``ToDtype(torch.float32, scale=True)`` and ``Normalize``) and
returns what it is given: a uint8 tensor comes back uint8, a float tensor float in [0, 1] (its
dtype kept), a PIL image PIL (its mode kept), a ``tv_tensors.Image`` or ``Video`` its own type;
other tv_tensors (masks, boxes) and values pass through unchanged, as with torchvision's policies.
A batched tensor (…×C×H×W) gets one draw for all its images, as torchvision's policies do
(:meth:`Policy.apply <autoaug.policy.Policy.apply>` draws per image).

It is :class:`KeepInputType` (a dozen lines of torch and torchvision, written out in full into
the exported source) around a ``Compose`` of torchvision classes only (``RandomChoice``,
``RandomApply``, ``RandomRotation``, ``ColorJitter``... and ``Lambda`` around a fixed
``functools.partial`` of a torchvision functional where torchvision has no class for a fixed
value). The wrapper hands the stages a float32 image in [0, 1], the domain autoaug's ops are
defined on, and turns the result back into the input's type, rounding to the nearest level
for integer images as :meth:`Policy.apply` does, so on uint8 images the export and
``Policy.apply`` agree per op to one grey level (tests/test_export.py measures it). Per stage,
a ``RandomChoice`` over ops weighted as the policy, each op wrapped in ``RandomApply`` with its
probability, its magnitude a ``RandomChoice`` over the histogram's levels (and both signs for
signed ops).

One description (a tree of :class:`~autoaug.ops.TvSpec`) builds both the live object
(:func:`to_torchvision`) and readable Python source that rebuilds it (:func:`to_source`). The
source needs only torch and torchvision; the live object, pickled (``.pt``), needs autoaug
importable where it is unpickled, since its wrapper class lives here.

Example:
    >>> import torch
    >>> from autoaug.export import to_torchvision
    >>> from autoaug.policy import load_policy
    >>> t = to_torchvision(load_policy("trivialaugment"))
    >>> t(torch.zeros(3, 32, 32, dtype=torch.uint8)).dtype
    torch.uint8
"""

from __future__ import annotations

import functools
import inspect
import io
import re
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as F

from autoaug import __version__
from autoaug.ops import TvSpec, get_op
from autoaug.policy import OpEntry, Policy, PolicyError, atomic_write_text

_DIGITS = 6  # floats in the export are rounded once, so object and source agree exactly


# ------------------------------------------------------------------------------ the wrapper
# KeepInputType is copied verbatim into the exported source (inspect.getsource), so it may use
# only warnings, torch, tv_tensors, v2 and F, and no annotations that name anything else.


class KeepInputType(v2.Transform):
    """Runs ``inner`` on the image as float32 in [0, 1] and returns it in the type it came in.

    uint8 (any integer) tensor in, the same dtype out, rounded to the nearest level; float in,
    float out (its dtype); PIL in (mode L, RGB, LA or RGBA), PIL out, the alpha channel moved by
    the geometric ops (as a mask is) and left alone by the others; ``tv_tensors.Image``/``Video``
    keep their type. Other tv_tensors (masks, boxes) and non-image values pass through, as in
    torchvision's AutoAugment. A batch (…×C×H×W) is one draw for all its images.
    """

    image_types = (tv_tensors.Image, tv_tensors.Video)

    def __init__(self, inner: v2.Transform) -> None:
        super().__init__()
        self.inner = inner

    def transform(self, inpt: object, params: dict) -> object:
        if isinstance(inpt, tv_tensors.TVTensor) and not isinstance(inpt, self.image_types):
            return inpt  # a mask, boxes: not an image
        if not isinstance(inpt, torch.Tensor):  # a PIL image
            if inpt.mode in ("LA", "RGBA"):  # the alpha channel moves with the geometric ops only
                x = F.pil_to_tensor(inpt)
                with warnings.catch_warnings():  # erasing says it leaves a mask alone: as meant here
                    warnings.filterwarnings(
                        "ignore", message=".*passing through inputs of type tv_tensors.Mask"
                    )
                    out, alpha = self.inner(
                        tv_tensors.Image(x[:-1].to(torch.float32) / 255), tv_tensors.Mask(x[-1:])
                    )
                out = (out.as_subclass(torch.Tensor) * 255).round().clamp(0, 255).to(torch.uint8)
                return F.to_pil_image(torch.cat([out, alpha.as_subclass(torch.Tensor)]), mode=inpt.mode)
            if inpt.mode not in ("L", "RGB"):
                raise ValueError(
                    f"expected a PIL image in mode 'L', 'RGB', 'LA' or 'RGBA', got mode {inpt.mode!r}"
                )
            return F.to_pil_image(self.transform(F.pil_to_tensor(inpt), params), mode=inpt.mode)
        x = inpt.as_subclass(torch.Tensor)
        if x.is_floating_point():
            out = self.inner(x.to(torch.float32)).to(x.dtype)
        else:
            top = torch.iinfo(x.dtype).max
            out = (self.inner(x.to(torch.float32) / top) * top).round().clamp(0, top).to(x.dtype)
        out = out.as_subclass(torch.Tensor)
        return tv_tensors.wrap(out, like=inpt) if isinstance(inpt, tv_tensors.TVTensor) else out

    _transform = transform  # the name torchvision < 0.21 calls


# ---------------------------------------------------------------------------- description


def _r(x: float) -> float:
    return round(float(x), _DIGITS)


def _needs_size(policy: Policy) -> bool:
    return any((r := policy.range_of(op)) is not None and r.per is not None for op in policy.ops)


def image_size_of(policy: Policy, image_size: Sequence[int] | None = None) -> tuple[int, int] | None:
    """The image size an export of ``policy`` is built for: ``image_size`` when given, else the
    size the policy was learned at (``policy.meta["image_size"]``, ``[H, W]``), else None.

    Raises:
        PolicyError: a size that is not two positive integers (the message names it).
    """
    where = "image_size"
    if image_size is None:
        image_size, where = policy.meta.get("image_size"), f"policy {policy.name!r}: meta.image_size"
        if image_size is None:
            return None
    ok = isinstance(image_size, (list, tuple)) and len(image_size) == 2
    ok = ok and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in image_size)
    if not ok:
        raise PolicyError(f"{where}: expected [height, width], two positive integers, got {image_size!r}")
    return int(image_size[0]), int(image_size[1])


def _entry_spec(policy: Policy, s: int, k: int, e: OpEntry, size: tuple[int, int] | None) -> TvSpec:
    op = get_op(e.op)
    if not op.has_magnitude:
        inner = op.torchvision(0.0, policy.interpolation)
    else:
        h, w = size or (0, 0)
        mags = torch.tensor(e.magnitudes)
        total = sum(e.probs)
        choices: dict[str, tuple[TvSpec, float]] = {}  # keyed by source: equal specs merge
        for sign in (1.0, -1.0) if op.signed else (1.0,):
            values = policy.values(s, k, mags, torch.full_like(mags, sign), h, w)
            for v, p in zip(values.tolist(), e.probs):
                if p <= 0:
                    continue
                spec = op.torchvision(_r(v), policy.interpolation)
                share = p / total / (2 if op.signed else 1)
                key = _src(spec)
                choices[key] = (spec, choices.get(key, (spec, 0.0))[1] + share)
        if len(choices) == 1:
            inner = next(iter(choices.values()))[0]
        else:
            specs, shares = zip(*choices.values())
            inner = TvSpec.of("RandomChoice", transforms=list(specs), p=[_r(p) for p in shares])
    if e.prob >= 1.0 or inner.target == "Identity":
        return inner
    return TvSpec.of("RandomApply", transforms=[inner], p=_r(e.prob))


def to_spec(policy: Policy, image_size: Sequence[int] | None = None) -> TvSpec:
    """The torchvision description of ``policy``'s stages (a tree of :class:`TvSpec`), acting
    on float32 images in [0, 1]; :func:`to_torchvision` wraps it in :class:`KeepInputType`.

    Args:
        policy: the policy to export.
        image_size: ``(height, width)`` of the images; needed only when a range is relative to
            the image size (translations in the ``standard`` and ``symmetry`` spaces are), and
            then taken from ``policy.meta["image_size"]`` when not given.

    Raises:
        PolicyError: a size-relative range and no image size, or a malformed one.
    """
    size = image_size_of(policy, image_size)
    if size is None and _needs_size(policy):
        raise PolicyError(
            f"policy {policy.name!r} translates by a fraction of the image size and does not say "
            "the size it was learned at (meta.image_size); give the image size "
            "(image_size=(H, W), or --image-size HxW)"
        )
    steps = []
    for s, stage in enumerate(policy.stages):
        live = [(k, e) for k, e in enumerate(stage) if e.weight > 0]
        total = sum(e.weight for _, e in live)
        specs = [_entry_spec(policy, s, k, e, size) for k, e in live]
        if len(specs) == 1:
            steps.append(specs[0])
        else:
            steps.append(
                TvSpec.of("RandomChoice", transforms=specs, p=[_r(e.weight / total) for _, e in live])
            )
    return TvSpec.of("Compose", transforms=steps) if steps else TvSpec.of("Identity")  # Compose needs one


# ------------------------------------------------------------------------------ building


def _build_value(v: object, key: str) -> object:
    if isinstance(v, TvSpec):
        return build(v)
    if isinstance(v, list) and v and all(isinstance(i, TvSpec) for i in v):
        return [build(i) for i in v]
    if key == "interpolation":
        return InterpolationMode(v)
    if key == "dtype":
        return getattr(torch, str(v))
    return v


def build(spec: TvSpec) -> v2.Transform:
    """The live torchvision object a :class:`TvSpec` describes."""
    kwargs = {k: _build_value(v, k) for k, v in spec.kwargs}
    if spec.target.startswith("F."):
        return v2.Lambda(functools.partial(getattr(F, spec.target[2:]), **kwargs))
    return getattr(v2, spec.target)(**kwargs)


def to_torchvision(policy: Policy, image_size: Sequence[int] | None = None) -> KeepInputType:
    """A torchvision transform that samples and applies ``policy``: a drop-in for
    ``v2.TrivialAugmentWide()`` and the like.

    Takes a PIL image (mode L or RGB), a uint8 tensor or a float tensor in [0, 1] (C×H×W with
    C = 1 or 3, or a batch …×C×H×W that gets one draw), or a ``tv_tensors.Image``, and returns
    the same type, dtype and range. ``image_size`` defaults to ``policy.meta["image_size"]``.

    Raises:
        PolicyError: see :func:`to_spec`.

    Examples:
        >>> import torch
        >>> from autoaug.policy import load_policy
        >>> t = to_torchvision(load_policy("randaugment"), image_size=(32, 32))
        >>> t(torch.zeros(3, 32, 32, dtype=torch.uint8)).dtype
        torch.uint8
        >>> t(torch.zeros(3, 32, 32)).dtype
        torch.float32
    """
    return KeepInputType(build(to_spec(policy, image_size)))


# -------------------------------------------------------------------------------- source


def _src_value(v: object, key: str, indent: int) -> str:
    if isinstance(v, TvSpec):
        return _src(v, indent)
    if isinstance(v, list) and v and all(isinstance(i, TvSpec) for i in v):
        pad = "    " * (indent + 1)
        items = "".join(f"{pad}{_src(i, indent + 1)},\n" for i in v)
        return "[\n" + items + "    " * indent + "]"
    if key == "interpolation":
        return f"InterpolationMode.{InterpolationMode(v).name}"
    if key == "dtype":
        return f"torch.{v}"
    return repr(v)


def _src(spec: TvSpec, indent: int = 0) -> str:
    args = ", ".join(f"{k}={_src_value(v, k, indent)}" for k, v in spec.kwargs)
    if spec.target.startswith("F."):
        return f"v2.Lambda(functools.partial(F.{spec.target[2:]}, {args}))"
    return f"v2.{spec.target}({args})"


# The export's imports, in isort's groups (standard library, then torch and torchvision), each with
# what its use looks like (None: always used).
_IMPORTS = (
    (("import functools", r"\bfunctools\."), ("import warnings", r"\bwarnings\.")),
    (
        ("import torch", r"\btorch\."),
        ("from torchvision import tv_tensors", r"\btv_tensors\."),
        ("from torchvision.transforms import v2", None),
        ("from torchvision.transforms.v2 import InterpolationMode", r"\bInterpolationMode\."),
        ("from torchvision.transforms.v2 import functional as F", r"\bF\."),
    ),
)


def to_source(policy: Policy, image_size: Sequence[int] | None = None) -> str:
    """Readable Python source that rebuilds :func:`to_torchvision`'s object as ``transform``;
    it imports only torch and torchvision (and functools)."""
    spec = to_spec(policy, image_size)
    size = image_size_of(policy, image_size)
    lines = [
        f'"""Augmentation policy {policy.name!r}, exported by autoaug {__version__}.',
        "",
        "Needs only torch and torchvision. `transform` is a drop-in for torchvision's",
        "TrivialAugmentWide / RandAugment / AutoAugment: it returns what it is given (a uint8",
        "tensor uint8, a float tensor in [0, 1] float, a PIL image PIL, a tv_tensors.Image an",
        "Image; C×H×W, or a batch …×C×H×W that gets one draw), and goes where they go:",
        "",
        "    from this_module import transform",
        "    train_tf = v2.Compose([v2.RandomCrop(28, padding=4), v2.RandomHorizontalFlip(), transform,",
        "                           v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std)])",
        "",
        "Stages: each picks one op (RandomChoice), applies it with its probability (RandomApply),",
        "at a magnitude drawn from the policy's histogram (RandomChoice over fixed values), on",
        "the image as float32 in [0, 1] (KeepInputType converts it there and back).",
    ]
    if size is not None:
        lines.append(f"Built for images of {size[0]}×{size[1]} pixels (translations in pixels).")
    keep, stages = inspect.getsource(KeepInputType).rstrip(), _src(spec)
    code = keep + "\n" + stages
    # Only what the code uses, so that the file passes a linter where a user puts it.
    groups = [
        [line for line, token in group if token is None or re.search(token, code)] for group in _IMPORTS
    ]
    lines += ['"""', "", "\n\n".join("\n".join(group) for group in groups if group)]
    lines += [
        "",
        "",
        keep,
        "",
        "",
        "# The policy's stages, on float32 images in [0, 1]:",
        "# fmt: off",
        f"transform = {stages}",
        "# fmt: on",
        "# ... taking and returning uint8, float, PIL and tv_tensors images alike:",
        "transform = KeepInputType(transform)",
        "",
    ]
    return "\n".join(lines)


def export(policy: Policy, out: str | Path, image_size: Sequence[int] | None = None) -> Path:
    """Write the torchvision export of ``policy`` to ``out``: ``.py`` source (needs only torch
    and torchvision) or a pickled ``.pt`` (needs autoaug importable to unpickle).

    ``image_size`` defaults to ``policy.meta["image_size"]``, the size it was learned at.

    Raises:
        ValueError: ``out`` ends in neither ``.py`` nor ``.pt``.
        PolicyError: see :func:`to_spec`.
    """
    path = Path(out)
    if path.suffix == ".py":
        return atomic_write_text(path, to_source(policy, image_size))
    if path.suffix == ".pt":
        buffer = io.BytesIO()
        torch.save(to_torchvision(policy, image_size), buffer)
        tmp = path.with_name(f".{path.name}.tmp")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(buffer.getvalue())
        tmp.replace(path)
        return path
    raise ValueError(f"export target must end in .py or .pt, got {str(out)!r}")


__all__ = ["KeepInputType", "build", "export", "image_size_of", "to_source", "to_spec", "to_torchvision"]
