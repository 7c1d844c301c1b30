"""Does an op turn real images into images *of another class*, or only into images the data never shows?

A model's prediction on a transformed image ``g·x`` is evidence about the task only where
``g·x`` looks like the data: outside the data's support the model guesses (a quarter turn of an
upright glyph is an image it never saw, whatever class it names). This module measures, per op
and magnitude, the fraction of held-out images that the op sends *inside the support of another
class*: the model names another class for ``g·x``, and ``g·x`` is as close to real training
images as real held-out images are, in two feature spaces:

* **pixels** (2×2-pooled, so one-pixel jitter counts little): the distance from ``g·x`` to its
  k-th nearest training image. Where a warp brings in pixels from outside the frame (translate,
  rotate, scale, shear fill them with black), those pixels are unknown, not black: the distance
  is taken over the pixels the op kept, and the filled pixels are completed from the nearest
  training image before the model sees the image.
* **the model's embedding** (L2-normalized, as deep nearest-neighbour out-of-distribution tests
  use it; Sun et al., ICML 2022, "Out-of-distribution detection with deep nearest neighbors"): the
  distance to the k-th nearest training image *of the class the model names*.

An image is in support in a space when its distance is at most the :data:`QUANTILE` quantile of
the same distance for real held-out images (per class in the embedding). A label-changing op
passes both (its images *are* images of another class: every feature space sees them as data);
an op whose images leave the data fails at least one. The rate on the untransformed images (the
model's own in-support mistakes) is subtracted.

Nothing here reads a dataset's name or its declared ground truth.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from autoaug.analysis.invariance import _last_linear, _op_grid
from autoaug.ops import get_op
from autoaug.spaces import default_range, get_space

QUANTILE = 0.95
"""A transformed image is in support when its nearest-neighbour distance is at most this quantile
of the real held-out images' (so about 5% of real images count as outside)."""

NEIGHBOURS = 5
"""The k of the k-th nearest training image (k = 1 is noisy: one near-duplicate decides)."""

REFERENCE = 2000
"""Training images the distances are taken to (a seeded random subset)."""

FILLING_OPS = ("translate_x", "translate_y", "rotate", "scale", "shear_x", "shear_y")
"""Ops that warp the image and fill what comes from outside the frame with black."""

Normalize = Callable[[Tensor], Tensor]


@dataclass
class SupportProfile:
    """What :func:`support_profile` measured.

    Attributes:
        op_magnitudes: op -> the signed magnitudes measured (as the invariance profile's).
        relabelled: op -> per magnitude, the fraction of images sent inside the support of a
            class other than their own, minus the same fraction for the untransformed images.
        outside: op -> per magnitude, the fraction of transformed images outside the support
            (in either space).
        base_relabelled: the fraction for the untransformed images.
        num_images, num_reference: held-out images measured, training images compared with.
    """

    op_magnitudes: dict[str, list[float]]
    relabelled: dict[str, list[float]]
    outside: dict[str, list[float]]
    base_relabelled: float
    num_images: int = 0
    num_reference: int = 0
    meta: dict[str, Any] = field(default_factory=dict)

    def at(self, op: str, magnitude: float) -> tuple[float, float] | None:
        """(relabelled, outside) at ``|magnitude|``, the larger relabelling of the two signs;
        ``None`` when not measured."""
        if op not in self.op_magnitudes:
            return None
        rows = [
            (r, o)
            for m, r, o in zip(self.op_magnitudes[op], self.relabelled[op], self.outside[op])
            if round(abs(m), 9) == round(abs(magnitude), 9)
        ]
        return max(rows) if rows else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "op_magnitudes": self.op_magnitudes,
            "relabelled": self.relabelled,
            "outside": self.outside,
            "base_relabelled": self.base_relabelled,
            "num_images": self.num_images,
            "num_reference": self.num_reference,
            "quantile": QUANTILE,
            "neighbours": NEIGHBOURS,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SupportProfile:
        return cls(
            {k: list(map(float, v)) for k, v in d["op_magnitudes"].items()},
            {k: [math.nan if x is None else float(x) for x in v] for k, v in d["relabelled"].items()},
            {k: [math.nan if x is None else float(x) for x in v] for k, v in d["outside"].items()},
            float(d["base_relabelled"]),
            int(d.get("num_images", 0)),
            int(d.get("num_reference", 0)),
        )


def _pool(x: Tensor) -> Tensor:
    return nn.functional.avg_pool2d(x, 2) if min(x.shape[-2:]) >= 8 else x


def _standardize(x: Tensor) -> Tensor:
    """Pooled, each image less its per-channel mean, over its own spread: what is drawn where,
    not in which colours (colour dominates raw pixel distances and hides a small object)."""
    p = _pool(x)
    p = p - p.mean(dim=(-2, -1), keepdim=True)
    return (p / p.flatten(1).std(dim=1).clamp(min=1e-3).view(-1, 1, 1, 1)).flatten(1)


def _kth(d2: Tensor, k: int) -> Tensor:
    k = min(k, d2.shape[1])
    return d2.topk(k, dim=1, largest=False).values[:, -1].clamp(min=0).sqrt()


def _class_kth(d2: Tensor, ref_y: Tensor, cls: Tensor, classes: int) -> Tensor:
    """Per row, the k-th nearest distance among the reference images of that row's class."""
    out = torch.full((len(d2),), math.inf)
    for c in range(classes):
        rows, cols = cls == c, ref_y == c
        if rows.any() and cols.any():
            out[rows] = _kth(d2[rows][:, cols], NEIGHBOURS)
    return out


def _pixel_d2(moved: Tensor, keep: Tensor | None, ref: Tensor) -> Tensor:
    """Squared distances B×R over the kept pixels (keep: D, 1 kept, 0 filled), rescaled to all."""
    if keep is None:
        return torch.cdist(moved, ref).pow(2)
    w = keep.view(1, -1)
    return torch.cdist(moved * w, ref * w).pow(2) / float(w.mean().clamp(min=1e-6))


def _embedder(model: nn.Module) -> Callable[[Tensor], tuple[Tensor, Tensor]]:
    """x -> (logits, embedding) with one forward pass."""
    lin = _last_linear(model)
    grabbed: list[Tensor] = []

    def run(x: Tensor) -> tuple[Tensor, Tensor]:
        handle = lin.register_forward_pre_hook(lambda m, args: grabbed.append(args[0].flatten(1)))
        try:
            logits = model(x)
        finally:
            handle.remove()
        return logits, grabbed.pop()

    return run


@torch.no_grad()
def support_profile(
    model: nn.Module,
    train_images: Tensor,
    train_labels: Tensor,
    images: Tensor,
    labels: Tensor,
    *,
    ops: Sequence[str] | None = None,
    space: str = "symmetry",
    magnitudes: int = 4,
    normalize: Normalize | None = None,
    seed: int = 0,
    batch_size: int = 250,
) -> SupportProfile:
    """Measure, per op and magnitude, how many held-out images an op sends inside another class's support.

    Args:
        model: the trained classifier (eval mode is set here).
        train_images, train_labels: the training data (uint8 or float in [0, 1]); a seeded
            subset of :data:`REFERENCE` images is compared with.
        images, labels: the held-out images the invariance profile measured.
        ops: the ops (default: all of ``space``).
        space: where the ranges come from.
        magnitudes: levels per sign (as :func:`~autoaug.analysis.invariance.invariance_profile`).
        normalize: float images in [0, 1] -> model input.
        seed: seeds the reference subset and erasing's positions.

    Shape:
        train_images: N×C×H×W; images: B×C×H×W.
    """
    sp = get_space(space)
    ops = list(sp.ops if ops is None else ops)
    device = next(model.parameters()).device
    norm = normalize or (lambda t: t)
    g = torch.Generator().manual_seed(seed)
    as_float = lambda t: t.float() / 255.0 if not t.is_floating_point() else t.float()  # noqa: E731
    n_ref = min(REFERENCE, len(train_labels))
    idx = torch.randperm(len(train_labels), generator=g)[:n_ref]
    ref_x, ref_y = as_float(train_images[idx]), train_labels[idx].long()
    x, y = as_float(images), labels.long()
    aux = torch.rand(len(y), 2, generator=g)
    k = len(set(ref_y.tolist()) | set(y.tolist()))
    was_training = model.training
    model.eval()
    run = _embedder(model)

    def features(t: Tensor) -> tuple[Tensor, Tensor]:
        logits, emb = [], []
        for s in range(0, len(t), batch_size):
            lo, e = run(norm(t[s : s + batch_size].to(device)))
            logits.append(lo.float().cpu())
            emb.append(nn.functional.normalize(e.float().cpu(), dim=1))
        return torch.cat(logits), torch.cat(emb)

    try:
        ref_pix = _standardize(ref_x)
        ref_raw = _pool(ref_x).flatten(1)
        _, ref_emb = features(ref_x)
        classes = max(k, int(ref_y.max()) + 1)

        def distances(t: Tensor, keep: Tensor | None, cls: Tensor, emb: Tensor) -> tuple[Tensor, Tensor]:
            pix = _class_kth(_pixel_d2(_standardize(t), keep, ref_pix), ref_y, cls, classes)
            return pix, _class_kth(torch.cdist(emb, ref_emb).pow(2), ref_y, cls, classes)

        def quantiles(d: Tensor) -> Tensor:
            tau = torch.full((classes,), math.inf)
            for c in range(classes):
                if (y == c).sum() >= 2:
                    tau[c] = torch.quantile(d[y == c], QUANTILE)
            return tau

        # real held-out images: the thresholds, and the model's own in-support mistakes
        logits0, emb0 = features(x)
        pix_own, emb_own = distances(x, None, y, emb0)
        tau_pix, tau_emb = quantiles(pix_own), quantiles(emb_own)
        pred0 = logits0.argmax(1)
        p0, e0 = distances(x, None, pred0, emb0)
        base = float(((pred0 != y) & (p0 <= tau_pix[pred0]) & (e0 <= tau_emb[pred0])).float().mean())

        op_mags: dict[str, list[float]] = {}
        relabelled: dict[str, list[float]] = {}
        outside: dict[str, list[float]] = {}
        h, w = x.shape[-2:]
        for name in ops:
            op = get_op(name)
            rng = sp.ranges.get(name) or default_range(name)
            grid = _op_grid(name, magnitudes)
            op_mags[name], relabelled[name], outside[name] = grid, [], []
            for m in grid:
                v = 0.0 if rng is None else rng.value(abs(m), h, w) * math.copysign(1.0, m)
                vals = torch.full((len(y),), v)
                moved = op(x, vals, aux).clamp(0, 1)
                keep = None
                if name in FILLING_OPS:  # complete what the warp filled from the nearest real image
                    kept = (op(torch.ones_like(x[:1]), vals[:1], aux[:1])[0] > 0.999).float()
                    keep = _pool(kept.unsqueeze(0)).flatten(1)[0].ge(0.999).float()
                    nearest = _pixel_d2(_pool(moved).flatten(1), keep, ref_raw).argmin(1)
                    moved = moved * kept + ref_x[nearest] * (1 - kept)
                logits, emb = features(moved)
                pred = logits.argmax(1)
                pix, e = distances(moved, keep, pred, emb)
                inside = (pix <= tau_pix[pred]) & (e <= tau_emb[pred])
                relabelled[name].append(float(((pred != y) & inside).float().mean()) - base)
                outside[name].append(float((~inside).float().mean()))
    finally:
        model.train(was_training)
    return SupportProfile(op_mags, relabelled, outside, base, len(y), n_ref)


__all__ = ["FILLING_OPS", "NEIGHBOURS", "QUANTILE", "REFERENCE", "SupportProfile", "support_profile"]
