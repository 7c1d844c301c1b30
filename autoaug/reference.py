"""torchvision's fixed policies in autoaug's format: the baselines every search is measured against.

* AutoAugment (Cubuk et al., CVPR 2019): the learned CIFAR-10, ImageNet and SVHN policies,
  25 sub-policies of two (op, probability, magnitude level of 10) each, as listed in
  torchvision's ``transforms.v2.AutoAugment``. In autoaug's format they are two stages: stage
  ``i`` holds every op that appears in position ``i`` of a sub-policy, weighted by how often,
  applied with the mean probability, at magnitudes weighted by probability, so that each
  stage applies each (op, magnitude) exactly as often as torchvision does.
* RandAugment (Cubuk et al., NeurIPS 2020 workshops): N=2 ops drawn uniformly from the
  ``standard`` space at magnitude M=9 of 31 levels.
* TrivialAugmentWide (Müller & Hutter, ICCV 2021): one op drawn uniformly from the ``wide``
  space at a uniformly drawn level of 31.

Example:
    >>> from autoaug.reference import builtin_policies
    >>> sorted(builtin_policies())[:3]
    ['autoaugment', 'autoaugment_cifar10', 'autoaugment_imagenet']
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial

import torch

from autoaug.ops import get_op
from autoaug.policy import OpEntry, Policy

# torchvision's transform ids -> autoaug op names
TV_NAMES = {
    "Identity": "identity", "ShearX": "shear_x", "ShearY": "shear_y", "TranslateX": "translate_x",
    "TranslateY": "translate_y", "Rotate": "rotate", "Brightness": "brightness", "Color": "color",
    "Contrast": "contrast", "Sharpness": "sharpness", "Posterize": "posterize", "Solarize": "solarize",
    "AutoContrast": "autocontrast", "Equalize": "equalize", "Invert": "invert",
}  # fmt: skip

AA_LEVELS = 10  # AutoAugment's magnitude levels
RA_NUM_OPS, RA_MAGNITUDE, RA_BINS = 2, 9, 31  # torchvision's RandAugment defaults: N, M, levels

# (op, probability, level of 10) pairs, from torchvision.transforms.v2.AutoAugment._get_policies.
_AA = {
    "imagenet": [
        (("Posterize", 0.4, 8), ("Rotate", 0.6, 9)), (("Solarize", 0.6, 5), ("AutoContrast", 0.6, None)),
        (("Equalize", 0.8, None), ("Equalize", 0.6, None)), (("Posterize", 0.6, 7), ("Posterize", 0.6, 6)),
        (("Equalize", 0.4, None), ("Solarize", 0.2, 4)), (("Equalize", 0.4, None), ("Rotate", 0.8, 8)),
        (("Solarize", 0.6, 3), ("Equalize", 0.6, None)), (("Posterize", 0.8, 5), ("Equalize", 1.0, None)),
        (("Rotate", 0.2, 3), ("Solarize", 0.6, 8)), (("Equalize", 0.6, None), ("Posterize", 0.4, 6)),
        (("Rotate", 0.8, 8), ("Color", 0.4, 0)), (("Rotate", 0.4, 9), ("Equalize", 0.6, None)),
        (("Equalize", 0.0, None), ("Equalize", 0.8, None)), (("Invert", 0.6, None), ("Equalize", 1.0, None)),
        (("Color", 0.6, 4), ("Contrast", 1.0, 8)), (("Rotate", 0.8, 8), ("Color", 1.0, 2)),
        (("Color", 0.8, 8), ("Solarize", 0.8, 7)), (("Sharpness", 0.4, 7), ("Invert", 0.6, None)),
        (("ShearX", 0.6, 5), ("Equalize", 1.0, None)), (("Color", 0.4, 0), ("Equalize", 0.6, None)),
        (("Equalize", 0.4, None), ("Solarize", 0.2, 4)), (("Solarize", 0.6, 5), ("AutoContrast", 0.6, None)),
        (("Invert", 0.6, None), ("Equalize", 1.0, None)), (("Color", 0.6, 4), ("Contrast", 1.0, 8)),
        (("Equalize", 0.8, None), ("Equalize", 0.6, None)),
    ],
    "cifar10": [
        (("Invert", 0.1, None), ("Contrast", 0.2, 6)), (("Rotate", 0.7, 2), ("TranslateX", 0.3, 9)),
        (("Sharpness", 0.8, 1), ("Sharpness", 0.9, 3)), (("ShearY", 0.5, 8), ("TranslateY", 0.7, 9)),
        (("AutoContrast", 0.5, None), ("Equalize", 0.9, None)), (("ShearY", 0.2, 7), ("Posterize", 0.3, 7)),
        (("Color", 0.4, 3), ("Brightness", 0.6, 7)), (("Sharpness", 0.3, 9), ("Brightness", 0.7, 9)),
        (("Equalize", 0.6, None), ("Equalize", 0.5, None)), (("Contrast", 0.6, 7), ("Sharpness", 0.6, 5)),
        (("Color", 0.7, 7), ("TranslateX", 0.5, 8)), (("Equalize", 0.3, None), ("AutoContrast", 0.4, None)),
        (("TranslateY", 0.4, 3), ("Sharpness", 0.2, 6)), (("Brightness", 0.9, 6), ("Color", 0.2, 8)),
        (("Solarize", 0.5, 2), ("Invert", 0.0, None)), (("Equalize", 0.2, None), ("AutoContrast", 0.6, None)),
        (("Equalize", 0.2, None), ("Equalize", 0.6, None)), (("Color", 0.9, 9), ("Equalize", 0.6, None)),
        (("AutoContrast", 0.8, None), ("Solarize", 0.2, 8)), (("Brightness", 0.1, 3), ("Color", 0.7, 0)),
        (("Solarize", 0.4, 5), ("AutoContrast", 0.9, None)), (("TranslateY", 0.9, 9), ("TranslateY", 0.7, 9)),
        (("AutoContrast", 0.9, None), ("Solarize", 0.8, 3)), (("Equalize", 0.8, None), ("Invert", 0.1, None)),
        (("TranslateY", 0.7, 9), ("AutoContrast", 0.9, None)),
    ],
    "svhn": [
        (("ShearX", 0.9, 4), ("Invert", 0.2, None)), (("ShearY", 0.9, 8), ("Invert", 0.7, None)),
        (("Equalize", 0.6, None), ("Solarize", 0.6, 6)), (("Invert", 0.9, None), ("Equalize", 0.6, None)),
        (("Equalize", 0.6, None), ("Rotate", 0.9, 3)), (("ShearX", 0.9, 4), ("AutoContrast", 0.8, None)),
        (("ShearY", 0.9, 8), ("Invert", 0.4, None)), (("ShearY", 0.9, 5), ("Solarize", 0.2, 6)),
        (("Invert", 0.9, None), ("AutoContrast", 0.8, None)), (("Equalize", 0.6, None), ("Rotate", 0.9, 3)),
        (("ShearX", 0.9, 4), ("Solarize", 0.3, 3)), (("ShearY", 0.8, 8), ("Invert", 0.7, None)),
        (("Equalize", 0.9, None), ("TranslateY", 0.6, 6)), (("Invert", 0.9, None), ("Equalize", 0.6, None)),
        (("Contrast", 0.3, 3), ("Rotate", 0.8, 4)), (("Invert", 0.8, None), ("TranslateY", 0.0, 2)),
        (("ShearY", 0.7, 6), ("Solarize", 0.4, 8)), (("Invert", 0.6, None), ("Rotate", 0.8, 4)),
        (("ShearY", 0.3, 7), ("TranslateX", 0.9, 3)), (("ShearX", 0.1, 6), ("Invert", 0.6, None)),
        (("Solarize", 0.7, 2), ("TranslateY", 0.6, 7)), (("ShearY", 0.8, 4), ("Invert", 0.8, None)),
        (("ShearX", 0.7, 9), ("TranslateY", 0.8, 3)), (("ShearY", 0.8, 5), ("AutoContrast", 0.7, None)),
        (("ShearX", 0.7, 2), ("Invert", 0.1, None)),
    ],
}  # fmt: skip


def autoaugment(dataset: str = "imagenet") -> Policy:
    """torchvision's AutoAugment policy for ``dataset`` (``imagenet``, ``cifar10``, ``svhn``)."""
    if dataset not in _AA:
        raise ValueError(f"unknown AutoAugment policy {dataset!r}; known: {', '.join(_AA)}")
    subpolicies = _AA[dataset]
    stages = []
    for position in range(2):
        # op -> [count, sum of probabilities, probability mass per level]
        acc: dict[str, list] = {}
        for sub in subpolicies:
            tv_name, p, level = sub[position]
            name = TV_NAMES[tv_name]
            count, psum, per_level, seen = acc.setdefault(name, [0, 0.0, [0.0] * AA_LEVELS, [0] * AA_LEVELS])
            acc[name][0] = count + 1
            acc[name][1] = psum + p
            if level is not None:
                per_level[level] += p
                seen[level] += 1
        stage = []
        for name, (count, psum, per_level, seen) in acc.items():
            weight = count / len(subpolicies)
            prob = psum / count
            if not get_op(name).has_magnitude:
                stage.append(OpEntry(name, weight, prob))
                continue
            # Magnitude matters only when the op is applied; an op never applied keeps its levels.
            hist = per_level if sum(per_level) > 0 else [float(s) for s in seen]
            stage.append(OpEntry.histogram(name, hist, weight, prob))
        stages.append(stage)
    return Policy(
        stages,
        space="standard",
        name=f"autoaugment_{dataset}",
        meta={"source": f"torchvision.transforms.v2.AutoAugment(AutoAugmentPolicy.{dataset.upper()})"},
    )


def randaugment_point(ops: Iterable[str], caps: dict[str, float] | None = None) -> list[list[OpEntry]]:
    """RandAugment's point (torchvision's defaults: N 2 stages, M 9 of 31, every op applied) over
    ``ops``, uniform among them, each at M or at ``caps[op]`` (a magnitude in [0, 1]) where that is
    lower; no stages for no ops. The searchers' prior.

    Example:
        >>> [(e.op, e.magnitudes) for e in randaugment_point(["rotate", "shear_x"], {"shear_x": 0.1})[0]]
        [('rotate', (0.3,)), ('shear_x', (0.1,))]
    """
    m = RA_MAGNITUDE / (RA_BINS - 1)
    caps = caps or {}
    stage = [
        OpEntry(op, 1.0, 1.0, (min(m, caps.get(op, m)),), (1.0,)) if get_op(op).has_magnitude else OpEntry(op)
        for op in ops
    ]
    return [list(stage) for _ in range(RA_NUM_OPS)] if stage else []


def randaugment(num_ops: int = RA_NUM_OPS, magnitude: int = RA_MAGNITUDE, bins: int = RA_BINS) -> Policy:
    """torchvision's RandAugment: ``num_ops`` stages, uniform over the ``standard`` space, one
    magnitude (level ``magnitude`` of ``bins``)."""
    if not 0 <= magnitude < bins:
        raise ValueError(f"magnitude must be a level in [0, {bins - 1}], got {magnitude}")
    from autoaug.spaces import STANDARD

    m = magnitude / (bins - 1)
    stage = [
        OpEntry(n, 1.0, 1.0, (m,), (1.0,)) if get_op(n).has_magnitude else OpEntry(n, 1.0, 1.0)
        for n in STANDARD.ops
    ]
    return Policy(
        [list(stage) for _ in range(num_ops)],
        space="standard",
        name="randaugment",
        meta={"source": f"torchvision.transforms.v2.RandAugment(num_ops={num_ops}, magnitude={magnitude}, "
              f"num_magnitude_bins={bins})"},
    )  # fmt: skip


def trivialaugment(bins: int = 31) -> Policy:
    """torchvision's TrivialAugmentWide: one op of the ``wide`` space at a uniform level of ``bins``."""
    p = Policy.uniform("wide", bins=bins, name="trivialaugment")

    # torchvision shifts by int() of its float32 grid, linspace(0, 32, bins): at level 15 of 31
    # that is 15.999999, so 15 pixels, where the exact 16.0 would give 16. The levels of the
    # translations are that grid itself, so every level shifts as torchvision's does.
    def as_torchvision(e: OpEntry) -> OpEntry:
        if e.op not in ("translate_x", "translate_y"):
            return e
        r = p.range_of(e.op)
        grid = torch.linspace(r.low, r.high, bins)  # float32, as torchvision's
        return OpEntry(
            e.op, e.weight, e.prob, tuple((float(v) - r.low) / (r.high - r.low) for v in grid), e.probs
        )

    source = f"torchvision.transforms.v2.TrivialAugmentWide(num_magnitude_bins={bins})"
    return Policy([[as_torchvision(e) for e in stage] for stage in p.stages], space=p.space,
                  interpolation=p.interpolation, name=p.name, meta={"source": source})  # fmt: skip


def builtin_policies() -> dict[str, Callable[[], Policy]]:
    """Built-in policies by name, each a function that builds a fresh :class:`Policy`."""
    return {
        "none": Policy.identity,
        "randaugment": randaugment,
        "trivialaugment": trivialaugment,
        "autoaugment": partial(autoaugment, "imagenet"),
        "autoaugment_imagenet": partial(autoaugment, "imagenet"),
        "autoaugment_cifar10": partial(autoaugment, "cifar10"),
        "autoaugment_svhn": partial(autoaugment, "svhn"),
    }


__all__ = ["TV_NAMES", "autoaugment", "builtin_policies", "randaugment", "trivialaugment"]
