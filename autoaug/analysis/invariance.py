"""The invariance profile of a trained model: how much each op changes what the model computes.

For each op of a space and each signed magnitude, on a fixed set of images:

* relative invariance of the penultimate embedding (Bouchacourt, Ibrahim & Morcos, "Grounding
  inductive biases in natural images: invariance stems from variations in data", NeurIPS 2021):
  ``inv = [d(z(x), z(g·x')) − d(z(x), z(g·x))] / d(z(x), z(g·x'))``, d the cosine distance and
  x' another image of the same batch; 1 = fully invariant, 0 = as different as a random pair;
* prediction consistency, accuracy and cross-entropy under the op (the loss gap);
* the same invariance for an untrained copy of the architecture, which separates what was
  learned from what the architecture gives for free;
* the Lie derivative ``d/dt f(T_t x)|_{t=0}`` for the continuous geometric generators
  (Gruver, Finzi, Goldblum & Wilson, "The Lie Derivative for Measuring Learned Equivariance",
  ICLR 2023), by ``torch.func.jvp`` through the model along the warp's image tangent.

Choices, stated once:

* invariance is a ratio of means, ``1 − E[d(z(x), z(g·x))] / E[d(z(x), z(g·x'))]``, as the
  paper's expectations; a mean of per-image ratios divides by near-zero distances;
* x' is ``x`` under a fixed seeded derangement within each batch, and ``z(g·x')`` is the
  embedding of the transformed batch under that derangement: the op is applied at the same
  value to every image; only erasing's position (``aux``, drawn once from the seed) is the
  partner's own;
* the Lie derivative is taken of the softmax probabilities (as Gruver et al.'s end-to-end
  measurement), which keeps trained and untrained models comparable; logits grow with training;
* the image tangent ``d/dt T_t x`` is the central difference ``(T_eps x − T_−eps x) / 2eps``:
  bilinear sampling is linear in ``t`` on each side of ``t = 0`` and has a kink at every
  pixel centre, so this is exactly the mean of the two one-sided derivatives (at ``t = 0``
  itself float rounding decides per pixel which side a derivative sees), and it needs no
  forward-mode rule for ``grid_sample``, which some torch builds lack; the model's jvp
  along that tangent is taken at ``T_0 x``.

Example:
    >>> import torch
    >>> from autoaug.analysis import invariance_profile
    >>> from autoaug.models import build_model
    >>> model = build_model("small_cnn", in_channels=1, num_classes=10)
    >>> x, y = torch.rand(16, 1, 28, 28), torch.randint(0, 10, (16,))
    >>> p = invariance_profile(model, x, y, ops=["identity", "rotate"], magnitudes=2, progress=False)
    >>> p.op_magnitudes["rotate"], p.invariance["identity"]
    ([-1.0, -0.5, 0.5, 1.0], [1.0])
"""

from __future__ import annotations

import copy
import json
import math
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from autoaug._io import json_safe, save_figure_atomic
from autoaug.data import Dataset
from autoaug.data.stream import pixel_stats
from autoaug.models import Classifier, build_model
from autoaug.ops import get_op, warp
from autoaug.policy import atomic_write_text
from autoaug.settings import read_config
from autoaug.spaces import default_range, get_space

LIE_GENERATORS: tuple[str, ...] = ("translate_x", "translate_y", "rotate", "scale", "shear_x", "shear_y")
LIE_EPS = 1e-3  # the offsets of the warp's central difference (the image tangent; see the module doc)

Normalize = Callable[[Tensor], Tensor]
Embed = Callable[[Tensor], Tensor]
Size = int | tuple[int, int]


# --------------------------------------------------------------------------------- profile


@dataclass
class InvarianceProfile:
    """What :func:`invariance_profile` measured.

    Attributes:
        ops: the ops, in order.
        magnitudes: the signed magnitude grid shared by all ops (the heatmap columns), e.g.
            ``[-1, -0.75, -0.5, -0.25, 0.25, 0.5, 0.75, 1]`` for 4 levels per sign.
        op_magnitudes: op -> the magnitudes it was measured at: the whole grid for a signed
            op, its positive half for an unsigned one, ``[1.0]`` for an op without a magnitude.
            Every per-op list below is aligned with it.
        invariance: op -> relative invariance of the embedding (1 invariant, 0 random pair).
        consistency: op -> fraction of images whose predicted class the op leaves unchanged.
        accuracy: op -> accuracy on the transformed images.
        loss: op -> mean cross-entropy on the transformed images.
        swap: op -> the fraction of images that the op sends, one class to one other class, to
            the class their own class is most often mistaken for under the op (see
            :func:`class_swap`): near 1 for a relabelling such as a mirror flip on a task of
            mirror-image pairs, small for scattered errors or a collapse onto one class; or
            ``None`` (profiles written before it was measured).
        clean_accuracy, clean_loss: the same on the untransformed images.
        baseline_invariance: op -> invariance of the untrained baseline, or ``None``.
        lie_derivative: generator -> mean over images of ``‖d/dt softmax(f(T_t x))|_{t=0}‖₂``
            (t in pixels for translations, radians for rotate, log-scale for scale, the shear
            coefficient for shears), or ``None``.
        baseline_lie_derivative: the same for the baseline, or ``None``.
        per_layer: layer name -> op -> invariance of that layer's flattened output, or ``None``.
        space: the space whose ranges were used.
        num_images: how many images were measured.
        seed: seeds the partner images and erasing's positions.
    """

    ops: list[str]
    magnitudes: list[float]
    op_magnitudes: dict[str, list[float]]
    invariance: dict[str, list[float]]
    consistency: dict[str, list[float]]
    accuracy: dict[str, list[float]]
    loss: dict[str, list[float]]
    clean_accuracy: float
    clean_loss: float
    baseline_invariance: dict[str, list[float]] | None = None
    lie_derivative: dict[str, float] | None = None
    baseline_lie_derivative: dict[str, float] | None = None
    per_layer: dict[str, dict[str, list[float]]] | None = None
    swap: dict[str, list[float]] | None = None
    space: str = "symmetry"
    num_images: int = 0
    seed: int = 0

    def loss_gap(self, op: str) -> list[float]:
        """``loss − clean_loss`` at each of the op's magnitudes."""
        return [v - self.clean_loss for v in self.loss[op]]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serializable dict (a NaN or infinite value becomes ``None``)."""
        return {f.name: json_safe(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InvarianceProfile:
        """The inverse of :meth:`to_dict` (``None`` inside per-op lists becomes NaN).

        Raises:
            ValueError: for missing or unknown keys.
        """
        if not isinstance(data, dict):
            raise ValueError(f"invariance profile: expected a dict, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        missing = sorted(set(_REQUIRED) - set(data))
        if unknown or missing:
            raise ValueError(f"invariance profile: unknown keys {unknown}, missing keys {missing}")
        values = {k: _from_json(v) for k, v in data.items()}
        return cls(**values)

    def save(self, path: str | Path) -> Path:
        """Write the profile as JSON, atomically."""
        return atomic_write_text(Path(path), json.dumps(self.to_dict(), indent=1) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> InvarianceProfile:
        """Read a profile written by :meth:`save`; errors name the file."""
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"invariance profile not found: {p}")
        try:
            return cls.from_dict(json.loads(p.read_text()))
        except (json.JSONDecodeError, ValueError, TypeError) as e:
            raise ValueError(f"{p}: not an invariance profile: {e}") from None


_REQUIRED = ("ops", "magnitudes", "op_magnitudes", "invariance", "consistency", "accuracy", "loss",
             "clean_accuracy", "clean_loss")  # fmt: skip


def _from_json(v: Any) -> Any:
    """``None`` inside a list is a NaN that JSON could not hold; ``None`` elsewhere stays."""
    if isinstance(v, dict):
        return {k: _from_json(x) for k, x in v.items()}
    if isinstance(v, list):
        return [math.nan if x is None else _from_json(x) for x in v]
    return v


# ------------------------------------------------------------------------------- probing


def _last_linear(model: nn.Module) -> nn.Linear:
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(
            f"{type(model).__name__} has no embed() and no nn.Linear whose input could serve as the "
            "embedding; pass embed=..."
        )
    return linears[-1]


def layer_modules(model: nn.Module) -> dict[str, nn.Module]:
    """The layers whose outputs ``per_layer`` measures: the children of ``model.features`` when
    it is a module with children (autoaug's models), else the model's top-level children."""
    features = getattr(model, "features", None)
    if isinstance(features, nn.Module) and len(list(features.children())) > 0:
        return {f"features.{n}": m for n, m in features.named_children()}
    return dict(model.named_children())


class _Probe:
    """Runs one model on float images in [0, 1]: resize, normalize, then the embedding, the
    logits and, when asked, each layer's flattened output (cosine-normalized)."""

    def __init__(
        self,
        model: nn.Module,
        embed: Embed | None,
        normalize: Normalize | None,
        input_size: tuple[int, int] | None,
        layers: dict[str, nn.Module] | None = None,
    ) -> None:
        self.model, self.embed, self.normalize, self.input_size = model, embed, normalize, input_size
        self.layers = layers or {}
        self.captured: dict[str, Tensor] = {}
        self.hook_linear = (
            None
            if embed is not None or isinstance(model, Classifier) or callable(getattr(model, "embed", None))
            else _last_linear(model)
        )

    def prepare(self, x: Tensor) -> Tensor:
        if self.input_size is not None and tuple(x.shape[-2:]) != self.input_size:
            x = F.interpolate(x, size=self.input_size, mode="bilinear", align_corners=False)
        return x if self.normalize is None else self.normalize(x)

    @contextmanager
    def hooks(self) -> Iterator[None]:
        handles = []
        if self.hook_linear is not None:

            def grab_input(module: nn.Module, args: tuple) -> None:
                self.captured["__embedding__"] = args[0]

            handles.append(self.hook_linear.register_forward_pre_hook(grab_input))
        for name, module in self.layers.items():

            def grab_output(module: nn.Module, args: tuple, out: Tensor, name: str = name) -> None:
                # Normalized (a new tensor) right away: a later in-place ReLU would change `out`.
                self.captured[name] = F.normalize(out.flatten(1).float(), dim=1)

            handles.append(module.register_forward_hook(grab_output))
        try:
            yield
        finally:
            for h in handles:
                h.remove()

    def __call__(self, images: Tensor) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """(embedding B×D, logits B×K, layer name -> B×P unit vectors) of float images in [0, 1]."""
        self.captured = {}
        x = self.prepare(images)
        if self.embed is not None:
            z, logits = self.embed(x), self.model(x)
        elif isinstance(self.model, Classifier):
            z = self.model.embed(x)
            logits = self.model.head(z)
        elif self.hook_linear is None:
            z, logits = self.model.embed(x), self.model(x)
        else:
            logits = self.model(x)
            if "__embedding__" not in self.captured:
                raise ValueError(
                    f"the last nn.Linear of {type(self.model).__name__} was not called; pass embed=..."
                )
            z = self.captured.pop("__embedding__")
        return z.flatten(1).float(), logits.float(), {n: self.captured[n] for n in self.layers}


def _cosine_distances(clean: Tensor, moved: Tensor, partner: Tensor) -> tuple[Tensor, Tensor]:
    """Cosine distances of unit vectors: ``d(clean_i, moved_i)`` and ``d(clean_i, moved_partner(i))``.

    Identical vectors get exactly 0 (not the rounding error of ``1 − ‖v‖²``).
    """
    same = (1 - (clean * moved).sum(1)).clamp(0, 2)
    same = torch.where((clean == moved).all(1), torch.zeros_like(same), same)
    other = (1 - (clean * moved[partner]).sum(1)).clamp(0, 2)
    return same, other


def _relative_invariance(same: float, other: float) -> float:
    """``1 − E[d same] / E[d other]``: 1 when nothing moved, NaN when nothing is comparable."""
    if other > 1e-12:
        return 1.0 - same / other
    return 1.0 if same <= 1e-12 else math.nan


# -------------------------------------------------------------------------- the profile


def _as_float_images(images: Tensor) -> Tensor:
    if not isinstance(images, Tensor) or images.ndim != 4:
        raise ValueError(f"images: expected a B×C×H×W tensor, got {getattr(images, 'shape', type(images))}")
    if images.dtype == torch.uint8:
        return images.float() / 255.0
    if not images.is_floating_point():
        raise ValueError(f"images: expected uint8 or float in [0, 1], got {images.dtype}")
    return images


def class_swap(confusion: Tensor) -> float:
    """How much of a confusion matrix (rows: true class, columns: predicted class) is a
    one-to-one relabelling: each class's largest off-diagonal cell, taken greedily from the
    largest down while no two classes are sent to the same one, summed, over the total.

    A label-changing op such as a mirror flip on a task of mirror-image pairs sends every class
    to its partner (near 1; half the images when it swaps only two classes of four); a model that
    merely is not invariant scatters its errors or collapses them onto one class (small).

    Examples:
        >>> class_swap(torch.tensor([[0, 10, 0], [10, 0, 0], [0, 0, 10]]))  # two classes swapped
        0.6666666666666666
        >>> class_swap(torch.tensor([[10, 0, 0], [10, 0, 0], [10, 0, 0]]))  # a collapse onto class 0
        0.3333333333333333
    """
    c = confusion.double().clone()
    total = float(c.sum())
    if total <= 0:
        return 0.0
    c.fill_diagonal_(0)
    best, target = c.max(dim=1)
    taken: set[int] = set()
    moved = 0.0
    for row in torch.argsort(best, descending=True).tolist():
        t = int(target[row])
        if best[row] > 0 and t not in taken:
            taken.add(t)
            moved += float(best[row])
    return moved / total


def _as_size(input_size: Size | None) -> tuple[int, int] | None:
    if input_size is None:
        return None
    size = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
    if len(size) != 2 or not all(isinstance(s, int) and s > 0 for s in size):
        raise ValueError(f"input_size: expected a positive int or (height, width), got {input_size!r}")
    return size  # type: ignore[return-value]


def _batches(n: int, batch_size: int) -> list[tuple[int, int]]:
    """Batch bounds, none of one image (a lone image has no partner)."""
    bounds = [(s, min(s + batch_size, n)) for s in range(0, n, batch_size)]
    if len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] == 1:
        bounds[-2:] = [(bounds[-2][0], n)]
    return bounds


def _derangement(bounds: list[tuple[int, int]], generator: torch.Generator) -> Tensor:
    """For each batch, a random permutation without fixed points, as indices local to the batch."""
    parts = []
    for s, e in bounds:
        p = torch.randperm(e - s, generator=generator)
        partner = torch.empty_like(p)
        partner[p] = p.roll(-1)  # a single cycle through a random order
        parts.append(partner)
    return torch.cat(parts)


def _levels(magnitudes: int) -> list[float]:
    return [k / magnitudes for k in range(1, magnitudes + 1)]


def _op_grid(op: str, magnitudes: int) -> list[float]:
    o = get_op(op)
    if not o.has_magnitude:
        return [1.0]
    pos = _levels(magnitudes)
    return [-m for m in reversed(pos)] + pos if o.signed else pos


def _model_device(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


@contextmanager
def _hooks(probe: _Probe | None) -> Iterator[None]:
    if probe is None:
        yield
    else:
        with probe.hooks():
            yield


@contextmanager
def _eval_mode(*models: nn.Module | None) -> Iterator[None]:
    modes = [(m, m.training) for m in models if m is not None]
    for m, _ in modes:
        m.eval()
    try:
        yield
    finally:
        for m, training in modes:
            m.train(training)


def invariance_profile(
    model: nn.Module,
    images: Tensor,
    labels: Tensor,
    *,
    ops: Sequence[str] | None = None,
    space: str = "symmetry",
    magnitudes: int = 4,
    normalize: Normalize | None = None,
    input_size: Size | None = None,
    batch_size: int = 256,
    seed: int = 0,
    baseline: nn.Module | None = None,
    lie: bool = True,
    per_layer: bool = False,
    progress: bool = True,
    embed: Embed | None = None,
    baseline_embed: Embed | None = None,
) -> InvarianceProfile:
    """Measure how each op of a space changes a model's embedding and predictions.

    Each op is applied by its kernel (:mod:`autoaug.ops`) at ``Range.value(|m|, h, w)·sign(m)``
    for ``m`` in ``±1/n, ±2/n, ..., ±1`` (``n = magnitudes``; the positive half for unsigned
    ops; once for ops without a magnitude), with bilinear interpolation, at the images' own
    size; then the images are resized to ``input_size`` (when given), normalized, and fed to
    the model in eval mode.

    The embedding is ``embed(x)`` when given, else ``model.embed(x)``, else the input of the
    model's last ``nn.Linear`` (a forward hook; a torchvision ``resnet18``'s pooled features).

    Args:
        model: the classifier; its device is used.
        images: B×C×H×W, uint8 or float in [0, 1].
        labels: B class indices.
        ops: op names (default: all ops of ``space``).
        space: where the ranges come from (ops outside it take the ``symmetry`` range).
        magnitudes: levels per sign.
        normalize: float images in [0, 1] -> model input (autoaug's trainer: per-channel
            mean/std of the training split, see :func:`load_run_model`).
        input_size: resize transformed images to this (int or (height, width)) before the model.
        batch_size: images per forward pass; partners x' are drawn within a batch.
        seed: seeds the partners and erasing's positions.
        baseline: an untrained copy of the architecture (:func:`load_run_model` with
            ``untrained=True``, or :func:`untrained_copy`), measured for invariance and the Lie
            derivative.
        lie: measure the Lie derivative for the generators in :data:`LIE_GENERATORS` among ``ops``.
        per_layer: also measure the invariance of each layer's output (:func:`layer_modules`);
            keeps one batch of every layer's output in memory.
        progress: a tqdm bar over ops.
        embed: x (resized, normalized) -> B×D embedding of ``model``.
        baseline_embed: the same for ``baseline``; required with ``embed`` and ``baseline``.

    Returns:
        The :class:`InvarianceProfile`.

    Raises:
        ValueError: for an unknown op or space, fewer than 2 images, or mismatched labels.

    Shape:
        images: B×C×H×W; labels: B.

    Examples:
        >>> import torch
        >>> from torch import nn
        >>> model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 4))
        >>> x, y = torch.rand(6, 3, 8, 8), torch.arange(6) % 4
        >>> p = invariance_profile(model, x, y, ops=["hflip"], lie=False, progress=False)
        >>> p.invariance["hflip"][0] < 1, p.clean_accuracy >= 0
        (True, True)
    """
    from tqdm import tqdm

    sp = get_space(space)
    op_names = list(sp.ops if ops is None else ops)
    if not op_names:
        raise ValueError("ops: expected at least one op name, got none")
    for name in op_names:
        get_op(name)  # unknown names fail here, before any work
    if isinstance(magnitudes, bool) or not isinstance(magnitudes, int) or magnitudes < 1:
        raise ValueError(f"magnitudes: expected a positive number of levels per sign, got {magnitudes!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 2:
        raise ValueError(f"batch_size: expected an integer >= 2, got {batch_size!r}")
    if embed is not None and baseline is not None and baseline_embed is None:
        raise ValueError("embed= is given for the model, so give baseline_embed= for the baseline too")
    x_all = _as_float_images(images)
    labels = torch.as_tensor(labels).long()
    n = len(x_all)
    if n < 2:
        raise ValueError(f"images: need at least 2 (each is compared with another), got {n}")
    if labels.shape != (n,):
        raise ValueError(f"labels: expected {n} labels, got shape {tuple(labels.shape)}")
    size = _as_size(input_size)
    h, w = x_all.shape[-2:]
    device = _model_device(model)

    g = torch.Generator().manual_seed(seed)
    bounds = _batches(n, batch_size)
    partner = _derangement(bounds, g).to(device)
    aux = torch.rand(n, 2, generator=g).to(device, x_all.dtype)
    layers = layer_modules(model) if per_layer else None
    probe = _Probe(model, embed, normalize, size, layers)
    base_probe = None if baseline is None else _Probe(baseline, baseline_embed, normalize, size)

    grids = {op: _op_grid(op, magnitudes) for op in op_names}
    inv: dict[str, list[float]] = {}
    base_inv: dict[str, list[float]] = {}
    cons: dict[str, list[float]] = {}
    acc: dict[str, list[float]] = {}
    loss: dict[str, list[float]] = {}
    swap: dict[str, list[float]] = {}
    layer_inv: dict[str, dict[str, list[float]]] = {name: {} for name in layers or {}}
    lie_gens = [gname for gname in LIE_GENERATORS if gname in op_names] if lie else []

    lie_models = [model] if baseline is None else [model, baseline]
    bar = tqdm(total=len(op_names) + len(lie_gens) * len(lie_models), desc="invariance",
               disable=not progress or None, leave=False, dynamic_ncols=True)  # fmt: skip
    with _eval_mode(model, baseline), torch.no_grad(), probe.hooks(), _hooks(base_probe):
        # The clean pass: reference embeddings and predictions, clean accuracy and loss.
        clean_z, clean_pred, base_z = [], [], []
        num_classes = int(labels.max()) + 1 if n else 1
        clean_loss = clean_correct = 0.0
        for s, e in bounds:
            xb, yb = x_all[s:e].to(device), labels[s:e].to(device)
            z, logits, _ = probe(xb)
            num_classes = max(num_classes, logits.shape[1])
            clean_z.append(F.normalize(z, dim=1))
            clean_pred.append(logits.argmax(1))
            clean_loss += F.cross_entropy(logits, yb, reduction="sum").item()
            clean_correct += (logits.argmax(1) == yb).sum().item()
            if base_probe is not None:
                base_z.append(F.normalize(base_probe(xb)[0], dim=1))

        for op_name in op_names:
            bar.set_postfix(op=op_name)
            op, grid = get_op(op_name), grids[op_name]
            rng = sp.ranges.get(op_name) or default_range(op_name)
            values = [0.0 if rng is None else rng.value(abs(m), h, w) * math.copysign(1.0, m) for m in grid]
            # Per magnitude: summed distances (same, other) of the model, the baseline and each
            # layer; consistent and correct predictions; summed loss.
            sums = torch.zeros(len(grid), 7, dtype=torch.float64, device=device)
            confusion = torch.zeros(len(grid), num_classes * num_classes, dtype=torch.int64, device=device)
            layer_sums = {
                name: torch.zeros(len(grid), 2, dtype=torch.float64, device=device) for name in layer_inv
            }
            for b, (s, e) in enumerate(bounds):
                xb, yb = x_all[s:e].to(device), labels[s:e].to(device)
                local = partner[s:e]
                clean_layers = probe(xb)[2] if layers else {}
                for j, value in enumerate(values):
                    moved = op(xb, xb.new_full((e - s,), value), aux[s:e], "bilinear")
                    z, logits, feats = probe(moved)
                    row = [*_cosine_distances(clean_z[b], F.normalize(z, dim=1), local)]
                    if base_probe is not None:
                        zb = F.normalize(base_probe(moved)[0], dim=1)
                        row += _cosine_distances(base_z[b], zb, local)
                    else:
                        row += [z.new_zeros(()), z.new_zeros(())]
                    pred = logits.argmax(1)
                    confusion[j] += torch.bincount(yb * num_classes + pred, minlength=num_classes**2)
                    row += [pred == clean_pred[b], pred == yb, F.cross_entropy(logits, yb, reduction="none")]
                    sums[j] += torch.stack([r.double().sum() for r in row])
                    for name, f in feats.items():
                        distances = _cosine_distances(clean_layers[name], f, local)
                        layer_sums[name][j] += torch.stack([d.double().sum() for d in distances])
            t = sums.cpu().tolist()
            inv[op_name] = [_relative_invariance(r[0], r[1]) for r in t]
            if base_probe is not None:
                base_inv[op_name] = [_relative_invariance(r[2], r[3]) for r in t]
            cons[op_name] = [r[4] / n for r in t]
            acc[op_name] = [r[5] / n for r in t]
            loss[op_name] = [r[6] / n for r in t]
            swap[op_name] = [class_swap(c.view(num_classes, num_classes)) for c in confusion.cpu()]
            for name, ls in layer_sums.items():
                layer_inv[name][op_name] = [_relative_invariance(a, c) for a, c in ls.cpu().tolist()]
            bar.update(1)

    lie_out: dict[str, float] | None = {} if lie else None
    base_lie: dict[str, float] | None = {} if lie and baseline is not None else None
    for gname in lie_gens:
        for m, out in zip(lie_models, (lie_out, base_lie)):
            bar.set_postfix(op=f"lie {gname}")
            out[gname] = _mean_lie_norm(m, x_all, gname, normalize, size, batch_size, device)  # type: ignore[index]
            bar.update(1)
    bar.close()

    return InvarianceProfile(
        ops=op_names,
        magnitudes=sorted(set().union(*grids.values())),
        op_magnitudes=grids,
        invariance=inv,
        consistency=cons,
        accuracy=acc,
        loss=loss,
        swap=swap,
        clean_accuracy=clean_correct / n,
        clean_loss=clean_loss / n,
        baseline_invariance=base_inv if baseline is not None else None,
        lie_derivative=lie_out,
        baseline_lie_derivative=base_lie,
        per_layer=layer_inv if per_layer else None,
        space=space,
        num_images=n,
        seed=seed,
    )


# ------------------------------------------------------------------------ Lie derivative


def lie_generator_matrix(name: str, t: Tensor, height: int, width: int) -> Tensor:
    """The forward affine map ``T_t`` of a one-parameter group, as :func:`autoaug.ops.warp` takes it.

    ``translate_x``/``translate_y``: t pixels; ``rotate``: t radians counter-clockwise about the
    image centre (the direction of the ``rotate`` op); ``scale``: zoom by ``exp(t)`` about the
    centre; ``shear_x``/``shear_y``: ``x' = x − t·y`` (resp. ``y' = y − t·x``) about the centre,
    the sign of the shear ops (which shear about the top-left corner; about the centre, the
    generator has no translation part).

    Shape:
        t: a scalar tensor; returns 2×3 (differentiable in t).

    Examples:
        >>> import torch
        >>> lie_generator_matrix("translate_x", torch.tensor(2.0), 8, 8)
        tensor([[1., 0., 2.],
                [0., 1., 0.]])
    """
    one, zero = torch.ones_like(t), torch.zeros_like(t)
    if name == "translate_x":
        linear, shift = [[one, zero], [zero, one]], [t, zero]
    elif name == "translate_y":
        linear, shift = [[one, zero], [zero, one]], [zero, t]
    elif name == "rotate":
        c, s = torch.cos(t), torch.sin(t)
        linear, shift = [[c, s], [-s, c]], [zero, zero]
    elif name == "scale":
        e = torch.exp(t)
        linear, shift = [[e, zero], [zero, e]], [zero, zero]
    elif name == "shear_x":
        linear, shift = [[one, -t], [zero, one]], [zero, zero]
    elif name == "shear_y":
        linear, shift = [[one, zero], [-t, one]], [zero, zero]
    else:
        raise ValueError(f"unknown Lie generator {name!r}; known: {', '.join(LIE_GENERATORS)}")
    a = torch.stack([torch.stack(row) for row in linear])
    centre = torch.stack([zero + (width - 1) / 2, zero + (height - 1) / 2])
    offset = centre - a @ centre + torch.stack(shift)
    return torch.cat([a, offset.unsqueeze(1)], 1)


def lie_derivative(
    model: Callable[[Tensor], Tensor],
    images: Tensor,
    generator: str,
    *,
    normalize: Normalize | None = None,
    input_size: Size | None = None,
    output: Literal["probs", "logits"] = "probs",
    eps: float = LIE_EPS,
) -> Tensor:
    """``d/dt f(T_t x)`` at ``t = 0`` per image, by ``torch.func.jvp`` of the model along the
    tangent of the bilinear warp.

    ``f`` is the softmax of the model's logits (``output="probs"``) or the logits. The image
    tangent is the warp's central difference at ``t = ±eps`` (bilinear sampling has a kink at
    each pixel centre; the central difference is the mean of the two one-sided derivatives).
    The model runs in eval mode (restored afterwards).

    Args:
        model: images (resized, normalized) -> B×K logits.
        images: float in [0, 1] (or uint8).
        generator: one of :data:`LIE_GENERATORS` (see :func:`lie_generator_matrix` for units).
        normalize, input_size: as in :func:`invariance_profile`.
        output: ``"probs"`` or ``"logits"``.
        eps: the offset of the central difference, in the generator's units.

    Shape:
        images: B×C×H×W; returns B×K.

    Examples:
        >>> import torch
        >>> from torch import nn
        >>> model = nn.Sequential(nn.Flatten(), nn.Linear(64, 3)).eval()
        >>> lie_derivative(model, torch.rand(2, 1, 8, 8), "rotate").shape
        torch.Size([2, 3])
    """
    if output not in ("probs", "logits"):
        raise ValueError(f"output: expected 'probs' or 'logits', got {output!r}")
    x = _as_float_images(images)
    size = _as_size(input_size)
    b, _, h, w = x.shape
    lie_generator_matrix(generator, x.new_zeros(()), h, w)  # unknown names fail before any work

    def moved(t0: float) -> Tensor:
        t = torch.tensor(t0, dtype=x.dtype, device=x.device)
        return warp(x, lie_generator_matrix(generator, t, h, w).expand(b, 2, 3), "bilinear")

    def f(image: Tensor) -> Tensor:
        if size is not None and (h, w) != size:
            image = F.interpolate(image, size=size, mode="bilinear", align_corners=False)
        if normalize is not None:
            image = normalize(image)
        logits = model(image)
        return logits.softmax(-1) if output == "probs" else logits

    with (
        _eval_mode(model if isinstance(model, nn.Module) else None),
        torch.no_grad(),
        warnings.catch_warnings(),
    ):
        # torch's first forward-mode call registers its decompositions with torch.jit.script and
        # warns that it is deprecated: torch's own business, not the user's
        warnings.filterwarnings(
            "ignore", message=r"`torch\.jit\.script` is deprecated", category=FutureWarning
        )
        tangent = (moved(eps) - moved(-eps)) / (2 * eps)
        return torch.func.jvp(f, (moved(0.0),), (tangent,))[1]


def _mean_lie_norm(
    model: nn.Module,
    images: Tensor,
    generator: str,
    normalize: Normalize | None,
    size: tuple[int, int] | None,
    batch_size: int,
    device: torch.device,
) -> float:
    total = 0.0
    for s in range(0, len(images), batch_size):
        d = lie_derivative(model, images[s : s + batch_size].to(device), generator, normalize=normalize,
                           input_size=size)  # fmt: skip
        total += d.norm(dim=1).sum().item()
    return total / len(images)


# ------------------------------------------------------------------------------ loading


def untrained_copy(model: nn.Module, seed: int = 0) -> nn.Module:
    """A copy of ``model`` with every module's ``reset_parameters()`` called under ``seed``.

    PyTorch's default initialization, not necessarily the one the model was trained from; for
    an autoaug run, ``load_run_model(run_dir, untrained=True)`` rebuilds the trainer's exact
    initial weights. Parameters of modules without ``reset_parameters`` are kept (a warning
    names them).
    """
    fresh = copy.deepcopy(model)
    kept = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for name, module in fresh.named_modules():
            if callable(getattr(module, "reset_parameters", None)):
                module.reset_parameters()
            elif any(True for _ in module.parameters(recurse=False)):
                kept.append(name or type(module).__name__)
    if kept:
        warnings.warn(f"untrained_copy: parameters of {kept} have no reset_parameters() and are kept",
                      stacklevel=2)  # fmt: skip
    return fresh


def load_checkpoint_model(path: str | Path, model_name: str, in_channels: int, num_classes: int) -> nn.Module:
    """An autoaug model with the weights of a state dict file, in eval mode on the CPU.

    ``path`` is a ``model.pt`` (a state dict) or a trainer ``checkpoint.pt`` (its ``"model"``);
    either is read with ``torch.load(weights_only=True)``.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file holds no state dict, or one that does not fit the model.

    Examples:
        >>> import tempfile, torch
        >>> from autoaug.models import build_model
        >>> path = tempfile.mkdtemp() + "/model.pt"
        >>> torch.save(build_model("small_cnn", 1, 10).state_dict(), path)
        >>> type(load_checkpoint_model(path, "small_cnn", 1, 10)).__name__
        'Classifier'
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"model weights not found: {p}")
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # a corrupt file or a pickle weights_only refuses
        raise ValueError(f"{p}: cannot be read as a state dict: {e}") from None
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ValueError(
            f"{p}: expected a model state dict (or a trainer checkpoint), got {type(state).__name__}"
        )
    model = build_model(model_name, in_channels, num_classes)
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise ValueError(
            f"{p}: does not fit {model_name} with in_channels={in_channels}, num_classes={num_classes}: {e}"
        ) from None
    return model.eval()


def run_dataset(config: dict[str, Any], source: str | Path = "config.yaml") -> Dataset:
    """The dataset of a run, loaded as its saved settings (``config``, read from ``source``)
    say: the trainer's :func:`autoaug.train.dataset_of` of its data settings (dataset, root,
    sizes, image size, crop, streaming, workers) and its seed, so the splits, the image size
    and whether a folder streams are the run's own.

    Raises:
        ValueError: a data setting the trainer would not take, naming ``source`` and the setting.
    """
    from autoaug.train import TrainConfig, dataset_of

    fields = TrainConfig.fields()
    data = {k: v for k, v in config.items() if k in fields and (fields[k].metadata.get("group") == "data"
                                                                or k == "seed")}  # fmt: skip
    return dataset_of(TrainConfig.from_dict(data, source=str(source)))


def train_normalizer(dataset: Dataset, seed: int = 0) -> Normalize:
    """The trainer's input normalization of ``dataset``: its training split's per-channel mean
    and std (:func:`autoaug.data.stream.pixel_stats`, with the run's ``seed``)."""
    mean, std = pixel_stats(dataset.train, seed=seed)
    mean, std = mean.view(1, -1, 1, 1), std.clamp(min=1e-3).view(1, -1, 1, 1)

    def normalize(x: Tensor) -> Tensor:
        return (x - mean.to(x.device, x.dtype)) / std.to(x.device, x.dtype)

    return normalize


def _online_normalizer(run: Path) -> Normalize | None:
    """The normalization a run written by :meth:`autoaug.OnlineAugment.save_run` recorded in its
    ``online.json`` (the caller's, not the trainer's), or None for a trainer's run.

    Raises:
        ValueError: it was a Python callable (which a file cannot hold), or the file is malformed.
    """
    path = run / "online.json"
    if not path.is_file():
        return None
    try:
        recorded = json.loads(path.read_text())["normalize"]
    except (ValueError, KeyError, TypeError):
        raise ValueError(
            f'{path}: expected {{"normalize": ...}} as OnlineAugment.save_run writes it'
        ) from None
    if recorded is None or recorded == "none":
        return lambda x: x
    if recorded == "callable":
        raise ValueError(
            f"{run}: the model was trained with a normalization given as a Python callable, which the run "
            "cannot record; measure it from Python: invariance_profile(model, images, labels, normalize=...)"
        )
    try:
        mean = torch.tensor(recorded["mean"], dtype=torch.float32).view(1, -1, 1, 1)
        std = torch.tensor(recorded["std"], dtype=torch.float32).view(1, -1, 1, 1)
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"{path}: normalize must hold 'mean' and 'std' lists, got {recorded!r}") from None

    def normalize(x: Tensor) -> Tensor:
        return (x - mean.to(x.device, x.dtype)) / std.to(x.device, x.dtype)

    return normalize


def load_run_model(
    run_dir: str | Path,
    *,
    untrained: bool = False,
    dataset: Dataset | None = None,
) -> tuple[nn.Module, Normalize, str, dict[str, Any]]:
    """The model of a training run, with the trainer's input normalization.

    Reads ``config.yaml`` and ``model.pt`` from ``run_dir``; the normalization is the trainer's
    per-channel mean and std of the run's training split (of a seeded sample of it, for a
    streamed folder), recomputed by loading the dataset as the run did (:func:`run_dataset`),
    or, for a run written by :meth:`autoaug.OnlineAugment.save_run`, the one its ``online.json``
    recorded.

    Args:
        run_dir: a directory written by :class:`autoaug.train.Trainer`.
        untrained: rebuild the run's initial weights instead (the same seed, as the trainer
            does before training): the baseline for :func:`invariance_profile`.
        dataset: the run's already loaded :class:`autoaug.data.Dataset`, to skip loading it.

    Returns:
        ``(model, normalize, dataset_name, config)``; the model is in eval mode on the CPU.

    Raises:
        FileNotFoundError: ``config.yaml`` or ``model.pt`` is missing.
        ValueError: the config or the weights do not describe a model.

    Examples:
        >>> model, normalize, name, config = load_run_model("runs/train")  # doctest: +SKIP
    """
    run = Path(run_dir)
    if not run.is_dir():
        raise FileNotFoundError(f"run directory not found: {run}")
    config = read_config(run / "config.yaml")
    for key in ("model", "dataset"):
        if not isinstance(config.get(key), str):
            raise ValueError(f"{run / 'config.yaml'}: expected a string {key!r}, got {config.get(key)!r}")
    name = config["dataset"]
    if dataset is None:
        dataset = run_dataset(config, run / "config.yaml")
    normalize = _online_normalizer(run) or train_normalizer(dataset, int(config.get("seed", 0)))

    if untrained:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(config.get("seed", 0)))
            model = build_model(config["model"], dataset.channels, dataset.num_classes).eval()
    else:
        weights = run / "model.pt"
        if not weights.is_file():
            last = run / "checkpoint.pt"
            hint = f"; the run has not finished, its last checkpoint is {last}" if last.is_file() else ""
            raise FileNotFoundError(f"model weights not found: {weights}{hint}")
        model = load_checkpoint_model(weights, config["model"], dataset.channels, dataset.num_classes)
    return model, normalize, name, config


# ---------------------------------------------------------------------------------- plot


def plot_profile(profile: InvarianceProfile, out_png: str | Path) -> Path:
    """Heatmaps (op × signed magnitude) of the invariance, the baseline's invariance (when
    measured) and the loss gap ``loss − clean_loss``, written as a PNG (atomically).

    Cells an op was not measured at (negative magnitudes of unsigned ops) are blank.
    """
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    cols = {m: i for i, m in enumerate(profile.magnitudes)}

    def grid(values: dict[str, list[float]]) -> np.ndarray:
        a = np.full((len(profile.ops), len(cols)), np.nan)
        for r, op in enumerate(profile.ops):
            for m, v in zip(profile.op_magnitudes[op], values[op]):
                a[r, cols[m]] = np.nan if v is None else v
        return a

    invariances = [("relative invariance", grid(profile.invariance))]
    if profile.baseline_invariance is not None:
        invariances.append(("untrained baseline invariance", grid(profile.baseline_invariance)))
    # One colour scale for both invariance panels, reaching below 0 (further apart than a
    # random pair) when a value does.
    low = min([0.0] + [float(np.nanmin(a)) for _, a in invariances if np.isfinite(a).any()])
    panels = [(title, a, "viridis", (low, 1.0)) for title, a in invariances]
    gap = grid({op: profile.loss_gap(op) for op in profile.ops})
    top = float(np.nanmax(np.abs(gap))) if np.isfinite(gap).any() else 1.0
    panels.append((f"loss gap (clean loss {profile.clean_loss:.3f})", gap, "RdBu_r", (-top, top)))

    fig = Figure(figsize=(1.0 + 3.6 * len(panels), 1.2 + 0.32 * len(profile.ops)), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (title, data, cmap, (lo, hi)) in zip(axes, panels):
        im = ax.imshow(np.ma.masked_invalid(data), cmap=cmap, vmin=lo, vmax=hi, aspect="auto")
        ax.set_title(title, fontsize=9)
        ax.set_xticks(range(len(cols)), [f"{m:g}" for m in profile.magnitudes], fontsize=7, rotation=90)
        ax.set_yticks(range(len(profile.ops)), profile.ops, fontsize=7)
        ax.set_xlabel("signed magnitude", fontsize=8)
        fig.colorbar(im, ax=ax, shrink=0.8)
    return save_figure_atomic(fig, out_png)


__all__ = [
    "LIE_GENERATORS",
    "InvarianceProfile",
    "class_swap",
    "invariance_profile",
    "layer_modules",
    "lie_derivative",
    "lie_generator_matrix",
    "load_checkpoint_model",
    "load_run_model",
    "plot_profile",
    "run_dataset",
    "train_normalizer",
    "untrained_copy",
]
