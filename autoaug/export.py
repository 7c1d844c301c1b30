"""Export a :class:`~autoaug.policy.Policy` as a plain torchvision ``transforms.v2`` object.

The exported transform is made only of torchvision classes (``Compose``, ``RandomChoice``,
``RandomApply``, ``RandomRotation``, ``ColorJitter``... and ``Lambda`` around a fixed
``functools.partial`` of a torchvision functional where torchvision has no class for a fixed
value), so it pickles, runs in ``DataLoader`` workers and needs no autoaug at training time.

It first turns its input (a PIL image, a uint8 or a float tensor) into a float32
``tv_tensors.Image`` in [0, 1], the domain autoaug's ops are defined on, then applies the
stages: per stage a ``RandomChoice`` over ops weighted as the policy, each op wrapped in
``RandomApply`` with its probability, its magnitude a ``RandomChoice`` over the histogram's
levels (and both signs for signed ops). Follow it with ``v2.Normalize`` as usual.

One description (a tree of :class:`~autoaug.ops.TvSpec`) builds both the live object
(:func:`to_torchvision`) and readable Python source that rebuilds it (:func:`to_source`).

Example:
    >>> from autoaug.export import to_torchvision
    >>> from autoaug.policy import load_policy
    >>> t = to_torchvision(load_policy("trivialaugment"))
    >>> type(t).__name__
    'Compose'
"""

from __future__ import annotations

import functools
import io
from pathlib import Path

import torch
from torchvision.transforms import v2
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as F

from autoaug import __version__
from autoaug.ops import TvSpec, get_op
from autoaug.policy import OpEntry, Policy, PolicyError, atomic_write_text

_DIGITS = 6  # floats in the export are rounded once, so object and source agree exactly


def _r(x: float) -> float:
    return round(float(x), _DIGITS)


def _needs_size(policy: Policy) -> bool:
    return any((r := policy.range_of(op)) is not None and r.per is not None for op in policy.ops)


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


def to_spec(policy: Policy, image_size: tuple[int, int] | None = None) -> TvSpec:
    """The torchvision description of ``policy`` (a tree of :class:`TvSpec`).

    Args:
        policy: the policy to export.
        image_size: ``(height, width)`` of the images; needed only when a range is relative to
            the image size (the ``standard`` space's translations are).

    Raises:
        PolicyError: a size-relative range and no ``image_size``.
    """
    if image_size is None and _needs_size(policy):
        raise PolicyError(
            f"policy {policy.name!r} translates by a fraction of the image size; "
            "give the image size (image_size=(H, W), or --image-size HxW)"
        )
    steps = [TvSpec.of("ToImage"), TvSpec.of("ToDtype", dtype="float32", scale=True)]
    for s, stage in enumerate(policy.stages):
        live = [(k, e) for k, e in enumerate(stage) if e.weight > 0]
        total = sum(e.weight for _, e in live)
        specs = [_entry_spec(policy, s, k, e, image_size) for k, e in live]
        if len(specs) == 1:
            steps.append(specs[0])
        else:
            steps.append(
                TvSpec.of("RandomChoice", transforms=specs, p=[_r(e.weight / total) for _, e in live])
            )
    return TvSpec.of("Compose", transforms=steps)


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


def to_torchvision(policy: Policy, image_size: tuple[int, int] | None = None) -> v2.Compose:
    """A torchvision ``v2.Compose`` that samples and applies ``policy``.

    Takes a PIL image, a uint8 tensor or a float tensor in [0, 1] (C×H×W, C = 1 or 3) and
    returns a float32 ``tv_tensors.Image`` in [0, 1].

    Examples:
        >>> import torch
        >>> from autoaug.policy import load_policy
        >>> t = to_torchvision(load_policy("randaugment"), image_size=(32, 32))
        >>> t(torch.zeros(3, 32, 32, dtype=torch.uint8)).dtype
        torch.float32
    """
    return build(to_spec(policy, image_size))


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


def to_source(policy: Policy, image_size: tuple[int, int] | None = None) -> str:
    """Readable Python source that rebuilds :func:`to_torchvision`'s object as ``transform``."""
    spec = to_spec(policy, image_size)
    lines = [
        f'"""Augmentation policy {policy.name!r}, exported by autoaug {__version__}.',
        "",
        "Needs only torch and torchvision. `transform` takes a PIL image, a uint8 tensor or a float",
        "tensor in [0, 1] (C×H×W) and returns a float32 tv_tensors.Image in [0, 1]:",
        "",
        "    from this_module import transform",
        "    train_tf = v2.Compose([transform, v2.Normalize(mean, std)])",
        "",
        "Stages: each picks one op (RandomChoice), applies it with its probability (RandomApply),",
        "at a magnitude drawn from the policy's histogram (RandomChoice over fixed values).",
    ]
    if image_size is not None:
        lines.append(f"Built for images of {image_size[0]}×{image_size[1]} pixels (translations in pixels).")
    lines += [
        '"""',
        "",
        "import functools",
        "",
        "import torch",
        "from torchvision.transforms import v2",
        "from torchvision.transforms.v2 import InterpolationMode",
        "from torchvision.transforms.v2 import functional as F",
        "",
        "# fmt: off",
        f"transform = {_src(spec)}",
        "",
    ]
    return "\n".join(lines)


def export(policy: Policy, out: str | Path, image_size: tuple[int, int] | None = None) -> Path:
    """Write the torchvision export of ``policy`` to ``out``: ``.py`` source or a pickled ``.pt``.

    Raises:
        ValueError: ``out`` ends in neither ``.py`` nor ``.pt``.
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


__all__ = ["build", "export", "to_source", "to_spec", "to_torchvision"]
