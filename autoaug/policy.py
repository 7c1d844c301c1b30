"""Policy: a distribution over ops and magnitudes that applies itself to a batch.

A policy is a sequence of stages. Each stage picks one op per image from a categorical over
its entries (``weight``), applies it with probability ``prob``, at a magnitude drawn from the
entry's histogram over magnitude levels in [0, 1]; signed ops take a random sign. RandAugment
is two stages with one magnitude; TrivialAugment one stage with a uniform histogram;
AutoAugment's 25 sub-policies become two stages with the exact per-stage op and magnitude
frequencies (the pairing of ops within a sub-policy is not kept).

Sampling is separate from applying (as kornia's ``forward_parameters``/``apply_transform``):
:meth:`Policy.sample` draws :class:`PolicyParams`, :meth:`Policy.apply` applies them, grouped
by op, never looping over images, so a call can be replayed with ``params=``.

File format (JSON, ``"autoaug_policy": 1``)::

    {
      "autoaug_policy": 1,
      "name": "trivialaugment",
      "space": "wide",                      # where ranges come from unless given below
      "interpolation": "nearest",           # or "bilinear" (needed for gradients)
      "ranges": {"rotate": [0, 135], "translate_x": [0, 0.453, "width"]},
      "stages": [
        {"ops": [
          {"op": "rotate", "weight": 1.0, "prob": 1.0, "hist": [1, 1, 1]},   # levels 0, 0.5, 1
          {"op": "shear_x", "weight": 2.0, "prob": 0.5, "magnitude": 0.3},   # one magnitude
          {"op": "equalize", "weight": 1.0, "prob": 1.0}                      # no magnitude
        ]}
      ],
      "meta": {}
    }

``hist`` has one entry per level; level ``k`` of ``n`` is magnitude ``k / (n - 1)``. Weights
and histograms need not sum to one.

Example:
    >>> import torch
    >>> from autoaug.policy import load_policy
    >>> policy = load_policy("trivialaugment")
    >>> g = torch.Generator().manual_seed(0)
    >>> x = torch.rand(8, 3, 32, 32)
    >>> params = policy.sample(8, generator=g)
    >>> torch.equal(policy.apply(x, params=params), policy.apply(x, params=params))
    True
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from autoaug.ops import OPS, get_op, warp
from autoaug.spaces import SPACES, Range, default_range, get_space

FORMAT_VERSION = 1
INTERPOLATIONS = ("nearest", "bilinear")
POLICY_DIR = Path(__file__).resolve().parent.parent / "policies"
_HALF = (torch.float16, torch.bfloat16)  # image dtypes the affine ops warp in float32


class PolicyError(ValueError):
    """A policy that cannot be read or built; the message names the bad field."""


@dataclass(frozen=True)
class OpEntry:
    """One op of a stage: how likely it is picked, applied, and at which magnitudes."""

    op: str
    weight: float = 1.0
    prob: float = 1.0
    magnitudes: tuple[float, ...] = (0.0,)  # levels in [0, 1]
    probs: tuple[float, ...] = (1.0,)  # one per level

    @staticmethod
    def histogram(op: str, hist: Sequence[float], weight: float = 1.0, prob: float = 1.0) -> OpEntry:
        """An entry whose magnitude is level ``k`` of ``len(hist)`` with odds ``hist[k]``."""
        n = len(hist)
        levels = tuple(k / (n - 1) for k in range(n)) if n > 1 else (0.0,)
        return OpEntry(op, weight, prob, levels, tuple(float(h) for h in hist))

    def mean_magnitude(self) -> float:
        total = sum(self.probs)
        return sum(m * p for m, p in zip(self.magnitudes, self.probs)) / total if total else 0.0


@dataclass
class PolicyParams:
    """Everything random about one application of a policy to a batch (S stages, B images).

    Attributes:
        op: S×B long, index into each stage's entries.
        applied: S×B bool.
        magnitude: S×B float in [0, 1] (may require grad).
        sign: S×B float, ±1 (always +1 for unsigned ops).
        aux: S×B×2 float uniform in [0, 1), for ops with extra randomness (erasing's position).
    """

    op: Tensor
    applied: Tensor
    magnitude: Tensor
    sign: Tensor
    aux: Tensor

    def to(self, device: torch.device | str) -> PolicyParams:
        return PolicyParams(
            *(t.to(device) for t in (self.op, self.applied, self.magnitude, self.sign, self.aux))
        )


@dataclass
class _StageTables:
    weights: Tensor  # K
    probs: Tensor  # K
    levels: Tensor  # K×L
    level_probs: Tensor  # K×L
    signed: Tensor  # K bool


@dataclass
class Policy:
    """A distribution over ops and magnitudes, stage by stage.

    Args:
        stages: one list of :class:`OpEntry` per stage.
        ranges: op name to :class:`Range`, overriding the space's.
        space: the space the ranges come from (``standard``, ``wide``, ``symmetry``).
        interpolation: ``"nearest"`` (torchvision's default) or ``"bilinear"``.
        name: a label for people and files.
        meta: free-form provenance (searcher, settings), kept in the file.
    """

    stages: list[list[OpEntry]]
    ranges: dict[str, Range] = field(default_factory=dict)
    space: str = "symmetry"
    interpolation: str = "nearest"
    name: str = "policy"
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.stages = [list(s) for s in self.stages]
        self._validate()
        self._tables: dict[str, list[_StageTables]] = {}

    # ---------------------------------------------------------------- construction helpers

    @classmethod
    def uniform(
        cls,
        space: str = "wide",
        *,
        stages: int = 1,
        bins: int = 31,
        prob: float = 1.0,
        ops: Sequence[str] | None = None,
        name: str | None = None,
        interpolation: str = "nearest",
    ) -> Policy:
        """Every op of a space equally likely at uniformly drawn levels (TrivialAugment when
        ``space="wide"``, one stage, 31 bins)."""
        sp = get_space(space)
        names = list(ops) if ops is not None else list(sp.ops)
        stage = [
            OpEntry.histogram(n, [1.0] * bins if get_op(n).has_magnitude else [1.0], 1.0, prob) for n in names
        ]
        return cls([list(stage) for _ in range(stages)], space=space, name=name or f"uniform_{space}",
                   interpolation=interpolation)  # fmt: skip

    @classmethod
    def identity(cls) -> Policy:
        """The policy that changes nothing (the ``none`` baseline)."""
        return cls([], name="none")

    @classmethod
    def mixture(cls, policies: Sequence[Policy], name: str = "mixture") -> Policy:
        """``policies`` equally likely, stage by stage: stage ``s`` of the mixture is, with
        probability ``1/k`` each, the ``s``-th stage of policy ``j`` (nothing where ``j`` has fewer
        stages), as Fast AutoAugment unions the sub-policies of its best trials. The stages draw
        their policy independently (an image may take stage 0 of one and stage 1 of another).

        Raises:
            PolicyError: no policies, or policies of different spaces, interpolations or ranges.

        Example:
            >>> a = Policy([[OpEntry("hflip")]], space="symmetry")
            >>> m = Policy.mixture([a, Policy.identity()])
            >>> [(e.op, e.weight) for e in m.stages[0]]
            [('hflip', 0.5), ('identity', 0.5)]
        """
        if not policies:
            raise PolicyError("mixture: no policies")
        first = policies[0]
        ranges: dict[str, Range] = {}
        for p in policies:
            if p.stages and (p.space, p.interpolation) != (first.space, first.interpolation):
                raise PolicyError(f"mixture: policy {p.name!r} is of space {p.space!r} with {p.interpolation} "
                                  f"interpolation, {first.name!r} of {first.space!r} with {first.interpolation}")  # fmt: skip
            for op, r in p.ranges.items():
                if ranges.setdefault(op, r) != r:
                    raise PolicyError(f"mixture: two ranges for {op!r}")
        k, depth = len(policies), max(len(p.stages) for p in policies)
        stages = []
        for s in range(depth):
            entries: list[OpEntry] = []
            for p in policies:
                if s >= len(p.stages):
                    entries.append(OpEntry("identity", 1.0 / k))
                    continue
                total = sum(e.weight for e in p.stages[s])
                entries += [dataclasses.replace(e, weight=e.weight / total / k) for e in p.stages[s]]
            stages.append(entries)
        if all(e.op == "identity" for st in stages for e in st):
            stages = []
        return cls(stages, ranges=ranges, space=first.space, interpolation=first.interpolation, name=name)

    # ---------------------------------------------------------------------------- queries

    @property
    def ops(self) -> list[str]:
        """Names of the ops used, in first-use order."""
        seen: dict[str, None] = {}
        for stage in self.stages:
            for e in stage:
                seen.setdefault(e.op, None)
        return list(seen)

    def range_of(self, op: str) -> Range | None:
        """The range used for ``op``: the policy's own, else its space's, else the default."""
        if op in self.ranges:
            return self.ranges[op]
        space = SPACES.get(self.space)
        if space is not None and op in space.ranges:
            return space.ranges[op]
        return default_range(op)

    def op_probabilities(self) -> list[dict[str, float]]:
        """Per stage, the probability that each op is applied to an image."""
        out = []
        for stage in self.stages:
            total = sum(e.weight for e in stage)
            probs: dict[str, float] = {}
            for e in stage:
                probs[e.op] = probs.get(e.op, 0.0) + (e.weight / total) * e.prob if total else 0.0
            out.append(probs)
        return out

    # ----------------------------------------------------------------------------- sample

    def _stage_tables(self, device: torch.device) -> list[_StageTables]:
        key = str(device)
        if key not in self._tables:
            tables = []
            for stage in self.stages:
                width = max(len(e.magnitudes) for e in stage)
                levels = torch.zeros(len(stage), width)
                level_probs = torch.zeros(len(stage), width)
                for i, e in enumerate(stage):
                    levels[i, : len(e.magnitudes)] = torch.tensor(e.magnitudes)
                    level_probs[i, : len(e.probs)] = torch.tensor(e.probs)
                tables.append(
                    _StageTables(
                        weights=torch.tensor([e.weight for e in stage], device=device),
                        probs=torch.tensor([e.prob for e in stage], device=device),
                        levels=levels.to(device),
                        level_probs=level_probs.to(device),
                        signed=torch.tensor([get_op(e.op).signed for e in stage], device=device),
                    )
                )
            self._tables[key] = tables
        return self._tables[key]

    def sample(
        self,
        batch_size: int,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
    ) -> PolicyParams:
        """Draw the random parameters for ``batch_size`` images.

        Sampling happens on ``generator``'s device (CPU when none), then moves to ``device``.
        """
        gdev = generator.device if generator is not None else torch.device(device or "cpu")
        s, b = len(self.stages), batch_size
        op = torch.zeros(s, b, dtype=torch.long, device=gdev)
        applied = torch.zeros(s, b, dtype=torch.bool, device=gdev)
        magnitude = torch.zeros(s, b, device=gdev)
        sign = torch.ones(s, b, device=gdev)
        aux = torch.rand(s, b, 2, generator=generator, device=gdev)
        if b > 0:
            for i, t in enumerate(self._stage_tables(gdev)):
                op[i] = torch.multinomial(t.weights, b, replacement=True, generator=generator)
                applied[i] = torch.rand(b, generator=generator, device=gdev) < t.probs[op[i]]
                level = torch.multinomial(t.level_probs[op[i]], 1, generator=generator).squeeze(1)
                magnitude[i] = t.levels[op[i], level]
                flip = torch.rand(b, generator=generator, device=gdev) < 0.5
                sign[i] = torch.where(t.signed[op[i]] & flip, -1.0, 1.0)
        params = PolicyParams(op, applied, magnitude, sign, aux)
        return params.to(device) if device is not None else params

    def values(
        self, stage: int, entry: int, magnitude: Tensor, sign: Tensor, height: int, width: int
    ) -> Tensor:
        """Signed op values for magnitudes in [0, 1], in the units of the entry's op."""
        name = self.stages[stage][entry].op
        r = self.range_of(name)
        if r is None:
            return torch.zeros_like(magnitude)
        scale = width if r.per == "width" else height if r.per == "height" else 1.0
        return (r.low + magnitude * (r.high - r.low)) * scale * sign

    # ------------------------------------------------------------------------------ apply

    def apply(
        self,
        images: Tensor,
        generator: torch.Generator | None = None,
        params: PolicyParams | None = None,
    ) -> Tensor:
        """Augment a batch: a different op per image, grouped by op.

        Args:
            images: B×C×H×W, float in [0, 1] (float32, float16 or bfloat16) or uint8; C is 1 or 3.
            generator: source of randomness when ``params`` is not given.
            params: replay these parameters (from :meth:`sample`) instead of drawing new ones.

        Returns:
            The augmented batch, same shape, dtype and device.

        Shape:
            images: B×C×H×W -> B×C×H×W.
        """
        check_images(images)
        if images.dtype == torch.uint8:
            out = self.apply(images.float() / 255.0, generator, params)
            return (out * 255.0).round().clamp(0, 255).to(torch.uint8)
        b, _, h, w = images.shape
        if params is None:
            params = self.sample(b, generator)
        # The images are grouped by op where the draws are (the CPU, usually): grouping on a GPU
        # would wait for it once per op (unique, nonzero) instead of only queueing kernels.
        grouping = params if params.op.device.type == "cpu" else None
        params = params.to(images.device)
        if params.op.shape[-1] != b or params.op.shape[0] != len(self.stages):
            raise ValueError(
                f"params are for {params.op.shape[0]} stages x {params.op.shape[-1]} images, "
                f"got a policy of {len(self.stages)} stages and {b} images"
            )
        x = images
        for s, stage in enumerate(self.stages):
            source = grouping if grouping is not None else params
            chosen = torch.where(source.applied[s], source.op[s], -1)
            present = chosen.unique().tolist()
            idx_parts, out_parts = [], []
            warps: list[tuple[Tensor, Tensor]] = []  # the affine ops' images and maps: one warp for all
            for k in present:
                if k < 0 or stage[k].op == "identity":
                    continue
                idx = (chosen == k).nonzero().squeeze(1).to(images.device, non_blocking=True)
                v = self.values(s, k, params.magnitude[s, idx], params.sign[s, idx], h, w)
                op = get_op(stage[k].op)
                if op.affine is not None:  # its values as op() gives them to the kernel
                    v = v.to(x.dtype)
                    warps.append((idx, op.affine(v.float() if v.dtype in _HALF else v, h, w)))
                    continue
                out_parts.append(op(x[idx], v, params.aux[s, idx], self.interpolation))
                idx_parts.append(idx)
            if warps:
                idx = torch.cat([i for i, _ in warps])
                out_parts.append(self._warp(x[idx], torch.cat([m for _, m in warps])))
                idx_parts.append(idx)
            if idx_parts:
                x = x.index_copy(0, torch.cat(idx_parts), torch.cat(out_parts).to(x.dtype))
        return x

    __call__ = apply

    def _warp(self, x: Tensor, maps: Tensor) -> Tensor:
        """:func:`~autoaug.ops.warp` in float32 for half-precision images, as each affine op's kernel."""
        if x.dtype in _HALF:
            return warp(x.float(), maps, self.interpolation).to(x.dtype)
        return warp(x, maps, self.interpolation)

    # ------------------------------------------------------------------------------- JSON

    def to_dict(self) -> dict[str, Any]:
        ranges = {}
        for name in self.ops:
            r = self.range_of(name)
            if r is not None:
                ranges[name] = r.to_json()
        return {
            "autoaug_policy": FORMAT_VERSION,
            "name": self.name,
            "space": self.space,
            "interpolation": self.interpolation,
            "ranges": ranges,
            "stages": [{"ops": [_entry_to_json(e) for e in stage]} for stage in self.stages],
            "meta": self.meta,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def save(self, path: str | Path) -> Path:
        """Write the policy as JSON, atomically (a temporary file, then a rename)."""
        return atomic_write_text(Path(path), self.to_json() + "\n")

    @classmethod
    def from_dict(cls, data: Any, source: str = "policy") -> Policy:
        """Build a policy from its JSON form; errors name ``source`` and the bad field."""
        return _policy_from_json(data, source)

    @classmethod
    def load(cls, path: str | Path) -> Policy:
        """Read a policy file.

        Raises:
            PolicyError: the file is missing, not JSON, or not a valid policy.
        """
        p = Path(path)
        if not p.is_file():
            raise PolicyError(f"policy file not found: {p}")
        try:
            data = json.loads(p.read_text())
        except json.JSONDecodeError as e:
            raise PolicyError(f"{p}: not valid JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
        except UnicodeDecodeError:
            raise PolicyError(f"{p}: not a text file") from None
        except RecursionError:  # Python's JSON parser recurses once per nesting level
            raise PolicyError(f"{p}: nested too deeply to be a policy (not an autoaug policy file)") from None
        return cls.from_dict(data, source=str(p))

    # --------------------------------------------------------------------------- checking

    def _validate(self) -> None:
        if self.interpolation not in INTERPOLATIONS:
            raise PolicyError(f"interpolation: expected one of {INTERPOLATIONS}, got {self.interpolation!r}")
        for s, stage in enumerate(self.stages):
            if not stage:
                raise PolicyError(f"stages[{s}]: a stage needs at least one op")
            if sum(e.weight for e in stage) <= 0:
                raise PolicyError(f"stages[{s}]: op weights sum to 0; at least one must be positive")
            for i, e in enumerate(stage):
                where = f"stages[{s}].ops[{i}]"
                try:
                    get_op(e.op)
                except ValueError as err:
                    raise PolicyError(f"{where}.op: {err}") from None
                _check_number(e.weight, f"{where}.weight", 0.0, math.inf)
                _check_number(e.prob, f"{where}.prob", 0.0, 1.0)
                if len(e.magnitudes) != len(e.probs) or not e.magnitudes:
                    raise PolicyError(f"{where}: magnitudes and their probabilities differ in length")
                for m in e.magnitudes:
                    _check_number(m, f"{where}.magnitude", 0.0, 1.0)
                for p in e.probs:
                    _check_number(p, f"{where}.hist", 0.0, math.inf)
                if sum(e.probs) <= 0:
                    raise PolicyError(f"{where}.hist: all zero; at least one level needs a positive weight")
                if self.range_of(e.op) is None and get_op(e.op).has_magnitude:
                    raise PolicyError(f"{where}: op {e.op!r} has no range")


# ---------------------------------------------------------------------------------- JSON IO


def _entry_to_json(e: OpEntry) -> dict[str, Any]:
    d: dict[str, Any] = {"op": e.op, "weight": e.weight, "prob": e.prob}
    if not get_op(e.op).has_magnitude:
        return d
    n = len(e.magnitudes)
    if n == 1:
        d["magnitude"] = e.magnitudes[0]
    elif all(abs(m - k / (n - 1)) < 1e-9 for k, m in enumerate(e.magnitudes)):
        d["hist"] = list(e.probs)
    else:
        d["magnitudes"] = list(e.magnitudes)
        d["hist"] = list(e.probs)
    return d


def _check_number(value: Any, where: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise PolicyError(f"{where}: expected a number, got {value!r}")
    if not low <= value <= high or math.isinf(value):
        bounds = f"in [{low:g}, {high:g}]" if math.isfinite(high) else f">= {low:g}"
        raise PolicyError(f"{where}: expected a number {bounds}, got {value!r}")
    return float(value)


def _policy_from_json(data: Any, source: str) -> Policy:
    def fail(msg: str) -> PolicyError:
        return PolicyError(f"{source}: {msg}")

    if not isinstance(data, dict):
        raise fail(f"expected a JSON object, got {type(data).__name__}")
    version = data.get("autoaug_policy")
    if version is None:
        raise fail("missing field 'autoaug_policy' (the format version); is this an autoaug policy file?")
    if version != FORMAT_VERSION:
        raise fail(f"autoaug_policy: format version {version!r} is not supported (expected {FORMAT_VERSION})")
    known = {"autoaug_policy", "name", "space", "interpolation", "ranges", "stages", "meta"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise fail(f"unknown field(s) {unknown}; known: {sorted(known)}")
    space = data.get("space", "symmetry")
    if space not in SPACES:
        raise fail(f"space: unknown space {space!r}; known: {', '.join(SPACES)}")
    ranges_raw = data.get("ranges", {})
    if not isinstance(ranges_raw, dict):
        raise fail("ranges: expected an object of op name -> [low, high]")
    ranges = {}
    for name, r in ranges_raw.items():
        if name not in OPS:
            raise fail(f"ranges.{name}: unknown op {name!r}; known: {', '.join(OPS)}")
        try:
            ranges[name] = Range.from_json(r, f"ranges.{name}")
        except ValueError as e:
            raise fail(str(e)) from None
    stages_raw = data.get("stages")
    if not isinstance(stages_raw, list):
        raise fail("stages: expected a list of stages")
    stages = []
    for s, st in enumerate(stages_raw):
        if not isinstance(st, dict) or not isinstance(st.get("ops"), list):
            raise fail(f"stages[{s}]: expected an object with a list 'ops'")
        entries = []
        for i, e in enumerate(st["ops"]):
            entries.append(_entry_from_json(e, f"stages[{s}].ops[{i}]", fail))
        stages.append(entries)
    meta = data.get("meta", {})
    if not isinstance(meta, dict):
        raise fail("meta: expected an object")
    try:
        return Policy(
            stages,
            ranges=ranges,
            space=space,
            interpolation=data.get("interpolation", "nearest"),
            name=str(data.get("name", Path(source).stem)),
            meta=meta,
        )
    except PolicyError as e:
        raise fail(str(e)) from None


def _entry_from_json(e: Any, where: str, fail: Any) -> OpEntry:
    if not isinstance(e, dict):
        raise fail(f"{where}: expected an object with 'op', 'weight', 'prob'")
    unknown = sorted(set(e) - {"op", "weight", "prob", "hist", "magnitude", "magnitudes"})
    if unknown:
        raise fail(f"{where}: unknown field(s) {unknown}")
    name = e.get("op")
    if not isinstance(name, str):
        raise fail(f"{where}.op: expected an op name, got {name!r}")
    if name not in OPS:
        raise fail(f"{where}.op: unknown op {name!r}; known: {', '.join(OPS)}")
    try:
        weight = _check_number(e.get("weight", 1.0), f"{where}.weight", 0.0, math.inf)
        prob = _check_number(e.get("prob", 1.0), f"{where}.prob", 0.0, 1.0)
        if not get_op(name).has_magnitude:
            if any(k in e for k in ("hist", "magnitude", "magnitudes")):
                raise PolicyError(f"{where}: op {name!r} takes no magnitude")
            return OpEntry(name, weight, prob)
        if "magnitude" in e:
            if "hist" in e or "magnitudes" in e:
                raise PolicyError(f"{where}: give either 'magnitude' or 'hist', not both")
            m = _check_number(e["magnitude"], f"{where}.magnitude", 0.0, 1.0)
            return OpEntry(name, weight, prob, (m,), (1.0,))
        hist = e.get("hist")
        if not isinstance(hist, list) or not hist:
            raise PolicyError(
                f"{where}: op {name!r} needs 'magnitude' (a number in [0, 1]) or 'hist' (a list)"
            )
        probs = tuple(_check_number(h, f"{where}.hist[{k}]", 0.0, math.inf) for k, h in enumerate(hist))
        if "magnitudes" in e:
            mags = e["magnitudes"]
            if not isinstance(mags, list) or len(mags) != len(hist):
                raise PolicyError(f"{where}.magnitudes: expected a list as long as 'hist' ({len(hist)})")
            levels = tuple(_check_number(m, f"{where}.magnitudes[{k}]", 0.0, 1.0) for k, m in enumerate(mags))
            return OpEntry(name, weight, prob, levels, probs)
        return OpEntry.histogram(name, probs, weight, prob)
    except PolicyError as err:
        raise fail(str(err)) from None


# ------------------------------------------------------------------------------ utilities


def check_images(images: Any) -> None:
    """Raise a ValueError naming the problem unless ``images`` is a B×C×H×W image batch."""
    if not isinstance(images, Tensor):
        raise ValueError(f"expected a torch.Tensor of images, got {type(images).__name__}")
    if images.ndim != 4:
        raise ValueError(f"expected images of shape B×C×H×W, got shape {tuple(images.shape)}")
    if images.shape[1] not in (1, 3):
        raise ValueError(f"expected 1 or 3 channels (B×C×H×W), got shape {tuple(images.shape)}")
    ok = (torch.float32, torch.float16, torch.bfloat16, torch.float64, torch.uint8)
    if images.dtype not in ok:
        raise ValueError(f"expected float images in [0, 1] or uint8, got dtype {images.dtype}")


def atomic_write_text(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; a policy file is meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_policy(name_or_path: str | Path) -> Policy:
    """A policy by file path or by the name of a built-in one (see :func:`builtin_policies`).

    Raises:
        PolicyError: no such file or name, or an invalid file.
    """
    from autoaug import reference

    p = Path(name_or_path)
    if p.suffix == ".json" or p.exists():
        if p.is_dir() and (p / "policy.json").is_file():
            p = p / "policy.json"
        return Policy.load(p)
    name = str(name_or_path)
    builtins = reference.builtin_policies()
    if name in builtins:
        return builtins[name]()
    shipped = POLICY_DIR / f"{name}.json"
    if shipped.is_file():
        return Policy.load(shipped)
    raise PolicyError(
        f"no policy file or built-in policy called {name!r}; built-in: {', '.join(builtins)} "
        "(autoaug policies lists them)"
    )


__all__ = [
    "FORMAT_VERSION",
    "OpEntry",
    "Policy",
    "PolicyError",
    "PolicyParams",
    "atomic_write_text",
    "check_images",
    "load_policy",
]
