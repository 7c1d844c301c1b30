"""What a task needs, per op: a verdict from a model's invariance profile and a search's history.

Two kinds of evidence, read together (DESIGN.md, "Measuring symmetry"):

* **The profile** (:class:`~autoaug.analysis.invariance.InvarianceProfile`) of the trained model
  on held-out images says *at which magnitudes* the model handles an op: the loss gap
  ``ℓ(f(g·x)) − ℓ(f(x))`` per signed magnitude. A magnitude is *safe* when the gap at both
  signs stays under :func:`gap_threshold` of the clean loss. :func:`safe_magnitude` walks the
  magnitudes upwards and stops at the first that fails.
* **The search** (:class:`SearchStats`, from a run's ``history.json`` and ``metrics.jsonl``)
  says *whether a failure is the task's or the model's*: an op that changes the label leaves a
  floor under its augmented loss that more training does not lower, while a symmetry that is
  merely hard keeps falling. Each op gets votes for "changes the label": its augmented loss in
  the last epoch is well above that epoch's clean loss (the *excess*); the loss does not fall
  over the second half of the search (relative least-squares slope per epoch); its dual
  variable and its relaxation (per-op constraints) stay up; the sampler picks it more than the
  uniform proposal does (one shared constraint); a searcher gives it little weight. A *floor*
  is an excess with more than half of the votes; the loss's trend alone is too noisy (a
  label-changing op's loss can still be coming down towards its floor while its dual variable
  keeps rising).

Two answers are kept apart (issue 17): whether *the task* keeps its label under an op (the
verdict), and how invariant *this model* is (``model_status``, ``model_max_safe``: the profile's
walk alone). A model that is not invariant yet does not make an op label-changing.

The task's answer, per op (:func:`task_verdicts`), walks the magnitudes upwards (skipping those
where the op changes nothing) and stops at the first that is not decided as keeping the label:

==========================================================  ==================================
at magnitude m                                              then
==========================================================  ==================================
at least :data:`SUPPORT_MIN` of the images sent inside the  the label changes from m: ``breaks``
support of another class (:mod:`autoaug.analysis.support`)  at the first magnitude, else ``partial``
the model keeps its loss there, or the search met the       the label is kept at m: go on
op's constraint
the model fails there and the search saw a floor, with at   the label changes from m (as above)
least :data:`FLOOR_SUPPORT` of the images inside another
class's support (or no support measured)
the model fails there, the search still learning or absent  ``undecided``: the images lie outside
                                                            the data; "search longer" decides it
the model fails there, a floor, no image of another class   ``undecided``: "look at the images"
==========================================================  ==================================

An op that reaches its largest magnitude is a ``symmetry``. A model's guess on an image outside
the data (a quarter turn of an upright glyph, an image the data never shows) is no evidence of a
label change, however consistent: the relabelling fraction of
:func:`~autoaug.analysis.invariance.class_swap` (:func:`swap_at_failure`) is reported but no longer
decides. Without support evidence only a search's floor says ``breaks``.

``score`` in [0, 1] is how strongly the evidence supports the verdict: 0.5 is evidence that
sits on a threshold, 1 is every measurement far on the verdict's side. It is the mean of the
parts that are present: the profile's margin (for ``symmetry``: ``1 − gap/(2·threshold)`` at the
worst magnitude; for ``breaks``: ``1 − threshold/(2·gap)`` at the first failing one; for
``partial``: the smaller of the two at the boundary), and the search's agreement (the fraction
of its votes that point the verdict's way: towards "changes the label" for ``breaks``, away
from it otherwise).

Nothing here reads a dataset's name or its declared ground truth.

Example:
    >>> from autoaug.analysis.invariance import InvarianceProfile
    >>> p = InvarianceProfile(ops=["rotate", "hflip"], magnitudes=[-1.0, -0.5, 0.5, 1.0],
    ...     op_magnitudes={"rotate": [-1.0, -0.5, 0.5, 1.0], "hflip": [1.0]},
    ...     invariance={"rotate": [0.9] * 4, "hflip": [0.1]}, consistency={"rotate": [1.0] * 4,
    ...     "hflip": [0.0]}, accuracy={"rotate": [1.0] * 4, "hflip": [0.0]},
    ...     loss={"rotate": [0.45, 0.25, 0.25, 0.45], "hflip": [2.0]}, clean_accuracy=1.0, clean_loss=0.2)
    >>> v = task_verdicts(p)  # no search, no support evidence: nothing says the label changes
    >>> v["rotate"].verdict, v["rotate"].max_safe_magnitude, v["rotate"].model_max_safe, v["hflip"].verdict
    ('undecided', 0.5, 0.5, 'undecided')
    >>> v["hflip"].decide.startswith("run a search")
    True
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from autoaug._io import json_safe as _json_safe
from autoaug.analysis.invariance import InvarianceProfile
from autoaug.analysis.support import SupportProfile

Verdict = Literal["symmetry", "partial", "breaks", "undecided"]
SearchStatus = Literal["floor", "learning", "met"]

# ------------------------------------------------------------------------------ thresholds
#
# Calibrated on per-op MCMC searches (small_cnn, symmetry space, ε = 0.6, 30 levels): the default
# search of glyphs (10 epochs on 5,400 images; profile on 500 test images: clean accuracy 99.4%,
# clean loss 0.22), a 7-epoch one of glyphs, and an 8-epoch one of arrows on 1,350 images
# (clean accuracy 100%, clean loss 0.23). tests/test_verdicts.py replays the measured series.

GAP_REL = 1.0
"""A magnitude is safe while the loss under the op is at most ``(1 + GAP_REL)`` times the clean
loss. Measured on the default glyphs search: the ops the model learned to ignore (color,
sharpness, posterize, rotate90, grayscale, invert) have gaps of at most 0.06 nats; rotate's
grows to 0.15 at ±15° and 0.26 at ±30° (geometric ops fill the corners with black); the
label-changing mirror flips 1.66 (7.5 times the clean loss); the ops that cut the glyph off or
wash it out grow steeply with the magnitude (translate_x 0.09, 0.26, 0.48, 1.07; contrast 0.05,
0.16, 0.44, 1.24). A relative threshold follows the model's calibration: a search that also
trains on a label-changing op keeps the clean loss (and every gap) up."""

GAP_ABS = 0.05
"""The smallest threshold in nats, for models whose clean loss is near zero (the glyph-rotation
task of DESIGN.md ended at a clean loss of 0.013): a gap of 0.05 nats is a drop of about 5
points in the probability of the right class, below what 300 held-out images resolve."""

VACUOUS_TOL = 1e-5
"""An op changes nothing at a magnitude when every embedding is bit-identical to the clean one
(relative invariance exactly 1), every prediction is kept and the loss gap is within this of 0
(the clean and the per-op losses are summed in different precisions: measured 1.5e-8 for
rotate90 at magnitude 0.25, which rounds to no turn)."""

WEAK_MODEL = 0.75
"""A model whose clean accuracy is less than this fraction of the way from chance (1/K) to 1
gets a warning: an op can look safe because the model never learned the distinction the op
destroys. Measured: a search of 8 epochs on 1,500 glyphs reached 64% (it told the shapes apart
but not their handedness) and was as invariant to mirror flips as to rotations (loss gap 0.18
under a threshold of 0.77); a 3-epoch search on 512 glyphs, at 16%, called every op a symmetry."""

SWAP_MIN = 0.3
"""An op that fails at its smallest magnitude *relabels* when at least this fraction of the
images goes, one class to one other class, where the op sends their class
(:func:`~autoaug.analysis.invariance.class_swap`). Measured (default arrows search, 500 test
images): hflip and vflip swap two of the four directions (0.5 of the images), a quarter turn
all four (1.0), while their augmented losses were still falling; ops that only push a model
off its training distribution scatter its errors or collapse them onto one class."""

SUPPORT_MIN = 0.08
"""An op changes the label at a magnitude when at least this fraction of the held-out images more
than on the untransformed ones goes *inside the support of another class*
(:func:`~autoaug.analysis.support.support_profile`: the model names another class and the image is
as close to real training images of that class as real held-out images are, in pixels and in the
model's embedding). Calibrated on the suite's calibration half only (``scripts/symmetry_suite.py
--half calibration``: default searches, 500 held-out images; quadrants, sizes, stark, textures and
hues measured when it was set, glyphs' and arrows' searches still running), never on the held-out half. At the magnitudes where the truth keeps the
label the rate reached 0.054 (textures' brightness at m = 0.5; 0.044 hue at 0.25, every other op
of the five tasks under 0.03); at the first magnitude that changes it, 0.148 (quadrants' shifts
at 0.75), 0.16 (textures' sharpness at 0.75), 0.20 (stark's equalize) and 0.39-0.91 (blur, contrast,
autocontrast, flips, quarter turns); sizes' zoom-out (0.00-0.01, its images leave the data) is not
seen at all. Every value from 0.06 to 0.10 gives the same verdicts there (66 of 66 decided right,
11 undecided); 0.04 calls two label-keeping ops ``breaks``, 0.15 leaves the shifts undecided. 0.08
is the middle of that interval."""

FLOOR_SUPPORT = 0.02
"""Where the support was measured, a search's floor says the label changes only when at least this
fraction of the images goes inside another class's support at that magnitude (more than on the
untransformed images); below it the op is ``undecided`` (its images leave the data without
becoming another class's: it may destroy what tells the classes apart, or be a symmetry this
model has not learned). Calibrated on the suite's calibration half (default searches, 500 held-out
images; ``scripts/symmetry_suite.py``): with the floor alone deciding (0), quadrants' contrast and
gaussian_blur and hues' brightness, all keeping the label, came out ``partial`` (a floor, no image
in another class's support); every op whose break the support saw was sent there at 0.15 or
more. Any value in (0, :data:`SUPPORT_MIN`] gives the same verdicts there; 0.02 is 10 images of 500."""

SEARCH_EXCESS = 0.1
"""A search sees a floor only when the op's augmented loss in the last epoch is at least this
many nats above that epoch's clean loss. Measured (default glyphs search, clean loss 0.16): the
learned photometric ops ended 0.02–0.05 above it, equalize 0.13, the geometric ones 0.2–0.45,
the mirror flips 1.6."""

FLAT_SLOPE = -0.02
"""An augmented loss (a relaxation, a dual variable) "does not fall" when its least-squares
slope over the second half of the search is at least −2% of its mean per epoch: the rule of
:func:`autoaug.search.mcmc.rejected_ops`. Measured (default glyphs search, epochs 6–10): the
flips' augmented losses −1.6% and −1.2%, their relaxations +0.4% and +1.1%; scale's loss −9%,
its relaxation −12%; erasing's loss −0.2% but its relaxation −6%. Hence the votes."""

RELAX_MIN = 0.05
"""A per-op relaxation counts as "the constraint is not met" from this size on (the threshold
of :func:`autoaug.search.mcmc.rejected_ops`; the ops whose constraint was met ended under 0.01
on glyphs, the flips at 1.19)."""

MASS_HIGH = 1.0
"""With one shared constraint the sampler's law is proportional to the loss, so an op whose
share of the trained states exceeds the uniform proposal's (ratio > 1) is harder than average."""

WEIGHT_LOW = 0.5
"""A searcher's op weight (a bilevel policy's op probability) below half the uniform share
counts as the searcher avoiding the op."""

# ----------------------------------------------------------------------------- the profile


def gap_threshold(clean_loss: float) -> float:
    """The loss gap (nats) under which a magnitude is safe: ``max(GAP_REL·clean_loss, GAP_ABS)``.

    Examples:
        >>> gap_threshold(0.25), gap_threshold(0.01)
        (0.25, 0.05)
    """
    if not math.isfinite(clean_loss):
        return GAP_ABS
    return max(GAP_REL * clean_loss, GAP_ABS)


@dataclass
class SafeMagnitude:
    """What :func:`safe_magnitude` found for one op.

    Attributes:
        status: ``"safe"`` (every magnitude that changes something is safe), ``"partial"``
            (safe up to ``max_safe``, then not) or ``"fails"`` (the first magnitude that changes
            something already fails).
        max_safe: the largest safe magnitude before the first failure (0 when ``"fails"``; 1
            when ``"safe"``).
        first_fail: the first failing magnitude, or ``None``.
        threshold: the gap threshold used (nats).
        magnitudes: the unsigned magnitudes, ascending.
        gaps: per magnitude, the larger loss gap of the two signs (NaN counts as failing).
        accuracies: per magnitude, the lower accuracy of the two signs.
        vacuous: per magnitude, whether the op left every image unchanged there.
    """

    status: Literal["safe", "partial", "fails"]
    max_safe: float
    first_fail: float | None
    threshold: float
    magnitudes: list[float]
    gaps: list[float]
    accuracies: list[float]
    vacuous: list[bool]

    @property
    def worst_safe_gap(self) -> float:
        """The largest gap among the safe magnitudes that change something (NaN if none)."""
        vals = [
            g for m, g, v in zip(self.magnitudes, self.gaps, self.vacuous) if m <= self.max_safe and not v
        ]
        return max(vals) if vals else math.nan

    @property
    def fail_gap(self) -> float:
        """The gap at the first failing magnitude (NaN if none)."""
        return math.nan if self.first_fail is None else self.gaps[self.magnitudes.index(self.first_fail)]

    def margin(self) -> float:
        """The profile's part of the score, in [0, 1] (see the module doc)."""
        t = self.threshold
        safe_part = 1.0 if math.isnan(self.worst_safe_gap) else 1.0 - 0.5 * max(self.worst_safe_gap, 0.0) / t
        g = self.fail_gap
        fail_part = 0.5 if not math.isfinite(g) else 1.0 - 0.5 * t / max(g, t)
        if self.status == "safe":
            return _clip(safe_part)
        if self.status == "fails":
            return _clip(fail_part)
        return _clip(min(safe_part, fail_part))


def safe_magnitude(profile: InvarianceProfile, op: str, threshold: float | None = None) -> SafeMagnitude:
    """The largest magnitude of ``op`` at which ``profile``'s model keeps its loss.

    Magnitudes are taken in increasing order; one is safe when the loss gap at both signs is at
    most ``threshold`` (default :func:`gap_threshold` of the clean loss); the walk stops at the
    first that is not. Magnitudes where the op leaves every image unchanged are skipped.

    Raises:
        ValueError: ``op`` is not in the profile.

    Examples:
        >>> from autoaug.analysis.invariance import InvarianceProfile
        >>> p = InvarianceProfile(ops=["scale"], magnitudes=[0.5, 1.0], op_magnitudes={"scale": [0.5, 1.0]},
        ...     invariance={"scale": [0.9, 0.5]}, consistency={"scale": [1.0, 0.6]},
        ...     accuracy={"scale": [1.0, 0.6]}, loss={"scale": [0.15, 0.9]}, clean_accuracy=1.0, clean_loss=0.1)
        >>> s = safe_magnitude(p, "scale")
        >>> s.status, s.max_safe, s.first_fail
        ('partial', 0.5, 1.0)
    """
    if op not in profile.op_magnitudes:
        raise ValueError(f"op {op!r} is not in the profile; it has: {', '.join(profile.ops)}")
    t = gap_threshold(profile.clean_loss) if threshold is None else float(threshold)
    gaps = profile.loss_gap(op)
    by_mag: dict[float, list[int]] = {}
    for i, m in enumerate(profile.op_magnitudes[op]):
        by_mag.setdefault(round(abs(m), 9), []).append(i)
    mags = sorted(by_mag)
    worst, accs, vacuous = [], [], []
    for m in mags:
        idx = by_mag[m]
        g = [gaps[i] for i in idx]
        worst.append(math.nan if any(math.isnan(x) for x in g) else max(g))
        accs.append(min(profile.accuracy[op][i] for i in idx))
        vacuous.append(all(_vacuous(profile, op, i) for i in idx))
    max_safe, first_fail, changed = 0.0, None, False
    for m, g, v in zip(mags, worst, vacuous):
        if v:
            continue
        if not (g <= t):  # NaN fails
            first_fail = m
            break
        changed, max_safe = True, m
    if first_fail is None:  # every magnitude safe, or the op never changes anything
        status, max_safe = "safe", 1.0
    elif not changed:
        status, max_safe = "fails", 0.0
    else:
        status = "partial"
    return SafeMagnitude(status, max_safe, first_fail, t, mags, worst, accs, vacuous)


def _vacuous(profile: InvarianceProfile, op: str, i: int) -> bool:
    inv = profile.invariance[op][i]
    return (
        abs(profile.loss[op][i] - profile.clean_loss) <= VACUOUS_TOL
        and profile.consistency[op][i] >= 1.0
        and (math.isnan(inv) or inv >= 1.0 - 1e-12)
    )


def weak_model(clean_accuracy: float, num_classes: int) -> bool:
    """Whether a model is too weak for its loss gaps to say much about the task (:data:`WEAK_MODEL`).

    Examples:
        >>> weak_model(0.64, 6), weak_model(0.95, 6)
        (True, False)
    """
    chance = 1.0 / max(num_classes, 1)
    return clean_accuracy - chance < WEAK_MODEL * (1.0 - chance)


# ------------------------------------------------------------------------------ the search


def relative_slope(values: Sequence[float]) -> float:
    """Least-squares slope of a series per step, relative to its mean (0 for < 2 points or a
    mean ≤ 0).

    Examples:
        >>> round(relative_slope([2.0, 1.5, 1.0]), 3), relative_slope([1.8, 1.8])
        (-0.333, 0.0)
    """
    v = [x for x in values if x is not None and math.isfinite(x)]
    n = len(v)
    if n < 2:
        return 0.0
    mx, my = (n - 1) / 2, sum(v) / n
    slope = sum((i - mx) * (y - my) for i, y in enumerate(v)) / sum((i - mx) ** 2 for i in range(n))
    return slope / my if my > 1e-9 else 0.0


@dataclass
class SearchEvidence:
    """What a search recorded about one op.

    Attributes:
        status: ``"floor"`` (the augmented loss is well above the clean loss and most votes say
            it is not going down: the op looks label-changing), ``"learning"`` (well above, but
            most votes say it is going down), ``"met"`` (close to the clean loss), ``"unknown"``
            (nothing recorded); see :func:`_status`. A per-op constraint that holds at the end
            (λ = 0, relaxation under :data:`RELAX_MIN`) is ``"met"`` whatever the votes.
        loss_first, loss_last: the op's augmented loss in the first and the last epoch (uniform
            proposals when recorded, else the states trained on).
        clean_loss_last: the clean training loss of the last epoch (``metrics.jsonl``, else the
            ``identity`` op's augmented loss), or ``None``.
        excess: ``loss_last − clean_loss_last``; without a clean loss, ``loss_last − ε`` (the
            constraint's margin; then any positive excess votes for a floor).
        loss_slope: relative slope per epoch of the augmented loss over the second half.
        lambda_last, lambda_slope: the op's dual variable (per-op constraints) and its trend.
        relaxation_last, relaxation_slope: its resilient relaxation and trend.
        mass_ratio: with one shared constraint, the op's share of the trained states over the
            last third of the epochs times the number of ops (1 = the uniform proposal).
        level_mass_high: the share of the op's trained states on the upper half of the levels
            (0.5 = uniform; above, the sampler found large magnitudes harder).
        weight_ratio: a searcher's op weight times the number of ops over the total (1 = uniform).
        votes: indicator -> whether it points to "changes the label": ``excess`` (at least
            :data:`SEARCH_EXCESS` above the clean loss), ``flat`` (augmented loss not falling,
            :data:`FLAT_SLOPE`), ``lambda_held`` (the dual variable positive and not falling),
            ``relaxation_held`` (the relaxation at least :data:`RELAX_MIN` and not falling),
            ``mass_high`` (one shared constraint: the sampler picks the op more than uniformly),
            ``weight_low`` (a searcher's weight under :data:`WEIGHT_LOW` × uniform).
    """

    status: Literal["floor", "learning", "met", "unknown"]
    loss_first: float | None = None
    loss_last: float | None = None
    clean_loss_last: float | None = None
    excess: float | None = None
    loss_slope: float | None = None
    lambda_last: float | None = None
    lambda_slope: float | None = None
    relaxation_last: float | None = None
    relaxation_slope: float | None = None
    mass_ratio: float | None = None
    level_mass_high: float | None = None
    weight_ratio: float | None = None
    votes: dict[str, bool] = field(default_factory=dict)

    def agreement(self, breaks: bool) -> float | None:
        """The fraction of votes pointing to "changes the label" (``breaks=True``) or away from
        it; ``None`` without votes."""
        if not self.votes:
            return None
        return sum(v == breaks for v in self.votes.values()) / len(self.votes)

    def to_dict(self) -> dict[str, Any]:
        return _json_safe(asdict(self))


@dataclass
class SearchStats:
    """A search's per-epoch statistics, as :class:`autoaug.search.mcmc.MCMCStep` writes them.

    Attributes:
        ops: the space's ops, in the order of the per-op lists.
        epochs: the ``history.json`` epoch records (``lambda``, ``relaxation``,
            ``op_aug_loss``, ``op_proposal_loss``, ``histogram``).
        constraint: ``"per_op"`` or ``"single"``.
        epsilon: the constraint's margin.
        levels: magnitude levels of the sampler.
        clean_loss: epoch number -> clean training loss (``metrics.jsonl``), may be empty.
    """

    ops: list[str]
    epochs: list[dict[str, Any]]
    constraint: str = "per_op"
    epsilon: float = math.nan
    levels: int = 0
    clean_loss: dict[int, float] = field(default_factory=dict)

    @classmethod
    def from_history(
        cls, history: Mapping[str, Any], metrics: Sequence[Mapping[str, Any]] = (), where: str = "history"
    ) -> SearchStats:
        """Parse a ``history.json`` dict (and the rows of ``metrics.jsonl``).

        Raises:
            ValueError: the history has no ops or no epochs, or malformed ones; the message names
                ``where``.
        """
        if not isinstance(history, Mapping):
            raise ValueError(f"{where}: expected a JSON object, got {type(history).__name__}")
        ops, epochs = history.get("ops"), history.get("epochs")
        if not isinstance(ops, list) or not ops or not all(isinstance(o, str) for o in ops):
            raise ValueError(f"{where}: expected 'ops', a non-empty list of op names, got {ops!r}")
        if not isinstance(epochs, list) or not epochs or not all(isinstance(e, dict) for e in epochs):
            raise ValueError(f"{where}: expected 'epochs', a non-empty list of epoch records")
        clean = {}
        for row in metrics:
            if isinstance(row, Mapping) and isinstance(row.get("train_clean_loss"), (int, float)):
                clean[int(row.get("epoch", len(clean) + 1))] = float(row["train_clean_loss"])
        eps = history.get("epsilon")
        return cls(
            ops=list(ops),
            epochs=list(epochs),
            constraint=str(history.get("constraint", "per_op")),
            epsilon=float(eps) if isinstance(eps, (int, float)) else math.nan,
            levels=int(history.get("levels") or 0),
            clean_loss=clean,
        )

    @classmethod
    def from_run(cls, run_dir: str | Path) -> SearchStats:
        """Read ``history.json`` (and ``metrics.jsonl`` when present) from a search run.

        Raises:
            FileNotFoundError: no run directory or no ``history.json`` in it.
            ValueError: the files are not what a search writes.
        """
        run = Path(run_dir)
        if not run.is_dir():
            raise FileNotFoundError(f"run directory not found: {run}")
        path = run / "history.json"
        if not path.is_file():
            raise FileNotFoundError(
                f"{run} has no history.json: not a search run (autoaug search writes one)"
            )
        try:
            history = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: not valid JSON: {e}") from None
        rows: list[dict[str, Any]] = []
        mpath = run / "metrics.jsonl"
        if mpath.is_file():
            for line in mpath.read_text().splitlines():
                try:
                    rows.append(json.loads(line)) if line.strip() else None
                except json.JSONDecodeError:
                    continue  # a line cut by a killed run
        return cls.from_history(history, rows, where=str(path))

    # --------------------------------------------------------------------------- series

    def _loss_key(self) -> str:
        last = self.epochs[-1]
        return "op_proposal_loss" if last.get("op_proposal_loss") else "op_aug_loss"

    def loss_series(self, op: str) -> list[float]:
        """The op's augmented loss per epoch (NaN where it was not sampled)."""
        key = self._loss_key()
        return [float(e.get(key, {}).get(op, math.nan)) for e in self.epochs]

    def clean_series(self) -> list[float]:
        """The clean training loss per epoch: ``metrics.jsonl``, else the ``identity`` op's
        augmented loss, else NaN."""
        out = []
        key = self._loss_key()
        for i, e in enumerate(self.epochs):
            n = int(e.get("epoch", i + 1))
            losses = e.get(key) or {}
            if n in self.clean_loss:
                out.append(self.clean_loss[n])
            else:
                out.append(float(losses.get("identity", math.nan)))
        return out

    def _per_op(self, key: str, op: str) -> list[float] | None:
        k = self.ops.index(op)
        vals = []
        for e in self.epochs:
            v = e.get(key)
            if not isinstance(v, list) or len(v) != len(self.ops):
                return None
            vals.append(float(v[k]))
        return vals

    def recorded_weights(self) -> dict[str, float] | None:
        """Op weights the searcher recorded in its last epoch (``"op_weights"``: op -> weight, as
        a searcher that learns op probabilities, e.g. a bilevel one, would), or ``None``."""
        w = self.epochs[-1].get("op_weights")
        if isinstance(w, Mapping) and all(isinstance(v, (int, float)) for v in w.values()):
            return {str(k): float(v) for k, v in w.items()}
        return None

    def evidence(self, op: str, weights: Mapping[str, float] | None = None) -> SearchEvidence | None:
        """The search's evidence about ``op``, or ``None`` when the search did not cover it.

        ``weights`` (op -> weight) default to :meth:`recorded_weights`."""
        weights = self.recorded_weights() if weights is None else weights
        if op not in self.ops:
            return weights_evidence(op, weights)
        weight_ratio = _weight_ratio(op, weights)
        series = self.loss_series(op)
        clean = self.clean_series()
        pairs = [(s, c) for s, c in zip(series, clean) if math.isfinite(s)]
        ev = SearchEvidence("unknown", weight_ratio=weight_ratio)
        votes: dict[str, bool] = {}
        if pairs:
            half = series[len(series) // 2 :]
            ev.loss_first, ev.loss_last = pairs[0][0], pairs[-1][0]
            ev.loss_slope = relative_slope(half)
            votes["flat"] = ev.loss_slope >= FLAT_SLOPE
            if math.isfinite(pairs[-1][1]):
                ev.clean_loss_last = pairs[-1][1]
                ev.excess = ev.loss_last - ev.clean_loss_last
                votes["excess"] = ev.excess >= SEARCH_EXCESS
            elif math.isfinite(self.epsilon):  # no clean loss recorded: the constraint's own margin
                ev.excess = ev.loss_last - self.epsilon
                votes["excess"] = ev.excess > 0
        lam, relax = self._per_op("lambda", op), self._per_op("relaxation", op)
        if lam is not None:
            ev.lambda_last, ev.lambda_slope = lam[-1], relative_slope(lam[len(lam) // 2 :])
            votes["lambda_held"] = ev.lambda_last > 0 and ev.lambda_slope >= FLAT_SLOPE
        if relax is not None:
            ev.relaxation_last, ev.relaxation_slope = relax[-1], relative_slope(relax[len(relax) // 2 :])
            votes["relaxation_held"] = ev.relaxation_last >= RELAX_MIN and ev.relaxation_slope >= FLAT_SLOPE
        mass, high = self._mass(op)
        ev.level_mass_high = high
        if lam is None and mass is not None:  # one shared constraint: the sampler picks the op
            ev.mass_ratio = mass
            votes["mass_high"] = mass > MASS_HIGH
        if weight_ratio is not None:
            votes["weight_low"] = weight_ratio < WEIGHT_LOW
        ev.votes = votes
        ev.status = _status(votes)
        if (
            ev.status != "met"
            and lam is not None
            and ev.lambda_last == 0
            and (ev.relaxation_last or 0) < RELAX_MIN
        ):
            ev.status = "met"  # the per-op constraint holds: the loss is within ε of nothing to relax
        return ev

    def _mass(self, op: str) -> tuple[float | None, float | None]:
        recent = self.epochs[-max(1, math.ceil(len(self.epochs) / 3)) :]
        k = self.ops.index(op)
        rows = [e.get("histogram") for e in recent]
        if not all(isinstance(r, list) and len(r) == len(self.ops) for r in rows):
            return None, None
        total = sum(sum(map(float, row)) for r in rows for row in r)
        mine = [sum(float(r[k][i]) for r in rows) for i in range(len(rows[0][k]))]
        if total <= 0 or sum(mine) <= 0:
            return None, None
        levels = len(mine)
        high = sum(mine[levels // 2 :]) / sum(mine) if levels > 1 else None
        return sum(mine) / total * len(self.ops), high


def _status(votes: Mapping[str, bool]) -> Literal["floor", "learning", "met", "unknown"]:
    """A floor: the augmented loss is well above the clean loss (when known) and more than half
    of all votes point to "changes the label"; ties go to "learning". The augmented loss alone
    is too noisy for the trend: a label-changing op's loss can still be falling towards its floor
    from above (rotate90 on arrows: 2.85 → 2.07 over epochs 4–8, its dual variable and
    relaxation still rising), so the dual variables' and the relaxations' trends vote too."""
    if not votes:
        return "unknown"
    if not votes.get("excess", True):
        return "met"
    breaks = sum(votes.values()) > len(votes) / 2
    if "excess" not in votes and "flat" not in votes:  # weights alone
        return "floor" if breaks else "met"
    return "floor" if breaks else "learning"


def _weight_ratio(op: str, weights: Mapping[str, float] | None) -> float | None:
    if not weights or op not in weights:
        return None
    total = sum(max(float(w), 0.0) for w in weights.values())
    return max(float(weights[op]), 0.0) * len(weights) / total if total > 0 else None


def weights_evidence(op: str, weights: Mapping[str, float] | None) -> SearchEvidence | None:
    """The evidence of a searcher's op weights alone (``None`` when ``op`` has none): a weight
    below :data:`WEIGHT_LOW` times the uniform share reads as the searcher avoiding the op."""
    ratio = _weight_ratio(op, weights)
    if ratio is None:
        return None
    votes = {"weight_low": ratio < WEIGHT_LOW}
    return SearchEvidence(_status(votes), weight_ratio=ratio, votes=votes)


# ----------------------------------------------------------------------------- verdicts


@dataclass
class OpVerdict:
    """The verdict on one op.

    Attributes:
        op: the op.
        verdict: the task's answer: ``"symmetry"``, ``"partial"``, ``"breaks"`` or ``"undecided"``
            (see the module doc).
        max_safe_magnitude: in [0, 1], the largest magnitude at which the task keeps its label
            as far as the evidence goes (1 for symmetry, 0 for breaks; for undecided, the largest
            magnitude decided as keeping it).
        score: in [0, 1], how strongly the evidence supports the verdict (0.5: on a threshold).
        evidence: one line for people.
        profile: what :func:`safe_magnitude` found, or ``None``.
        search: what the search recorded, or ``None``.
        invariance: the mean relative invariance over the op's magnitudes (NaN-free ones).
        baseline_invariance: the same for the untrained baseline, or ``None``.
        lie_derivative: the model's Lie derivative norm for this generator, or ``None``.
        decide: for ``"undecided"``, what would decide it.
        model_status, model_max_safe: the other answer, how invariant *this model* is:
            :class:`SafeMagnitude`'s status and largest safe magnitude.
        support: per unsigned magnitude, the fraction of images sent inside another class's
            support and the fraction outside the data (:mod:`autoaug.analysis.support`), or ``None``.
    """

    op: str
    verdict: Verdict
    max_safe_magnitude: float
    score: float
    evidence: str
    profile: SafeMagnitude | None = None
    search: SearchEvidence | None = None
    invariance: float | None = None
    baseline_invariance: float | None = None
    lie_derivative: float | None = None
    decide: str | None = None
    model_status: str | None = None
    model_max_safe: float | None = None
    support: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serializable dict (NaN and infinities become ``None``)."""
        d: dict[str, Any] = {
            "verdict": self.verdict,
            "max_safe_magnitude": self.max_safe_magnitude,
            "score": self.score,
            "evidence": self.evidence,
            "decide": self.decide,
            "model": {"status": self.model_status, "max_safe_magnitude": self.model_max_safe},
            "support": self.support,
            "invariance": self.invariance,
            "baseline_invariance": self.baseline_invariance,
            "lie_derivative": self.lie_derivative,
        }
        if self.profile is not None:
            p = self.profile
            d["profile"] = {
                "status": p.status, "threshold": p.threshold, "first_fail": p.first_fail,
                "magnitudes": p.magnitudes, "loss_gap": p.gaps, "accuracy": p.accuracies, "vacuous": p.vacuous,
            }  # fmt: skip
        else:
            d["profile"] = None
        d["search"] = None if self.search is None else self.search.to_dict()
        return _json_safe(d)


def task_verdicts(
    profile: InvarianceProfile,
    search: SearchStats | Mapping[str, Any] | None = None,
    *,
    metrics: Sequence[Mapping[str, Any]] = (),
    weights: Mapping[str, float] | None = None,
    threshold: float | None = None,
    support: SupportProfile | None = None,
) -> dict[str, OpVerdict]:
    """One verdict per op of ``profile``, from its loss gaps and, when given, a search's history.

    Args:
        profile: the trained model's invariance profile on held-out images.
        search: a :class:`SearchStats` or a ``history.json`` dict (then ``metrics`` are the
            rows of ``metrics.jsonl``), or ``None`` (a checkpoint without a search).
        metrics: the search's ``metrics.jsonl`` rows when ``search`` is a dict.
        weights: op -> how much a searcher chose to use it (e.g. a bilevel policy's op
            probabilities); a weight well below the uniform share votes for "changes the label".
        threshold: the loss-gap threshold in nats (default :func:`gap_threshold`).
        support: where the transformed images lie (:func:`~autoaug.analysis.support.support_profile`
            on the same held-out images), the evidence that an op turns images into images of
            another class; ``None``: only a search's floor can say ``breaks``.

    Returns:
        op -> :class:`OpVerdict`, in the profile's order.

    Examples:
        >>> from autoaug.analysis.invariance import InvarianceProfile
        >>> p = InvarianceProfile(ops=["hflip"], magnitudes=[1.0], op_magnitudes={"hflip": [1.0]},
        ...     invariance={"hflip": [0.2]}, consistency={"hflip": [0.1]}, accuracy={"hflip": [0.1]},
        ...     loss={"hflip": [1.5]}, clean_accuracy=0.95, clean_loss=0.2)
        >>> history = {"ops": ["hflip"], "epsilon": 0.6, "epochs": [{"epoch": i, "op_aug_loss": {"hflip": 1.5},
        ...     "lambda": [1.0 + i], "relaxation": [0.5 * i]} for i in range(1, 5)]}
        >>> v = task_verdicts(p, history)["hflip"]
        >>> v.verdict, v.search.status, v.score > 0.8
        ('breaks', 'floor', True)
    """
    stats = (
        search
        if isinstance(search, SearchStats) or search is None
        else SearchStats.from_history(search, metrics)
    )
    out: dict[str, OpVerdict] = {}
    for op in profile.ops:
        sm = safe_magnitude(profile, op, threshold)
        ev = weights_evidence(op, weights) if stats is None else stats.evidence(op, weights)
        verdict, safe, first, why, rates = _walk(sm, ev, support, op)
        parts = [
            _clip(1.0 - 0.5 * sm.threshold / max(sm.fail_gap, sm.threshold))
            if why == "floor"
            else sm.margin()
        ]
        if why == "support" and first is not None:
            r = rates[first][0]
            parts = [_clip(1.0 - 0.5 * SUPPORT_MIN / max(r, SUPPORT_MIN))]
        agree = (
            None if ev is None else ev.agreement(breaks=verdict in ("breaks", "partial") and why != "support")
        )
        if agree is not None and why != "support":
            parts.append(agree)
        score = 0.5 if verdict == "undecided" else round(sum(parts) / len(parts), 4)
        inv = [v for v in profile.invariance[op] if math.isfinite(v)]
        base = None
        if profile.baseline_invariance is not None and op in profile.baseline_invariance:
            b = [v for v in profile.baseline_invariance[op] if math.isfinite(v)]
            base = sum(b) / len(b) if b else None
        lie = (profile.lie_derivative or {}).get(op)
        decide = None
        if verdict == "undecided":
            decide = (
                "run a search (autoaug search): its augmented loss tells a floor from a symmetry not learned yet"
                if ev is None or ev.status == "unknown"
                else "look at the transformed images: the search saw a floor, but none looks like an image of "
                "another class (the op may destroy what tells the classes apart)"
                if ev.status == "floor"
                else "search longer: the augmented loss is still falling, and no transformed image looks like "
                "an image of another class"
            )
        out[op] = OpVerdict(
            op=op,
            verdict=verdict,
            max_safe_magnitude=safe,
            score=score,
            evidence=_evidence_line(verdict, sm, ev, first, why, rates),
            profile=sm,
            search=ev,
            invariance=sum(inv) / len(inv) if inv else None,
            baseline_invariance=base,
            lie_derivative=lie,
            decide=decide,
            model_status=sm.status,
            model_max_safe=sm.max_safe,
            support=None
            if not rates
            else {f"{m:g}": {"relabelled": r, "outside": o} for m, (r, o) in rates.items()},
        )
    return out


def _walk(
    sm: SafeMagnitude, ev: SearchEvidence | None, support: SupportProfile | None, op: str
) -> tuple[Verdict, float, float | None, str, dict[float, tuple[float, float]]]:
    """The task's answer for one op: walk the magnitudes upwards (see the module doc).

    Returns (verdict, largest magnitude keeping the label, the magnitude where the walk stopped,
    why it stopped: "support", "floor", "undecided" or "" (it did not), per-magnitude support rates)."""
    rates: dict[float, tuple[float, float]] = {}
    status = None if ev is None else ev.status
    kept, changed_any, first, why = 0.0, False, None, ""
    for m, g, vac in zip(sm.magnitudes, sm.gaps, sm.vacuous):
        if vac:
            continue
        at = None if support is None else support.at(op, m)
        if at is not None:
            rates[m] = at
        if at is not None and at[0] >= SUPPORT_MIN:
            first, why = m, "support"
            break
        if g <= sm.threshold or status == "met":
            kept, changed_any = m, True
            continue
        floor = status == "floor" and (at is None or at[0] >= FLOOR_SUPPORT)
        first, why = m, "floor" if floor else "undecided"
        break
    if first is None:
        return "symmetry", 1.0, None, why, rates
    if why == "undecided":
        return "undecided", kept, first, why, rates
    return ("partial" if changed_any else "breaks"), kept, first, why, rates


def swap_at_failure(profile: InvarianceProfile, sm: SafeMagnitude, op: str) -> float | None:
    """The largest :func:`~autoaug.analysis.invariance.class_swap` of ``op`` at the first
    failing magnitude (either sign), or ``None`` (no failure, or a profile without it)."""
    if sm.first_fail is None or not profile.swap or op not in profile.swap:
        return None
    vals = [
        v
        for m, v in zip(profile.op_magnitudes[op], profile.swap[op])
        if round(abs(m), 9) == round(sm.first_fail, 9) and math.isfinite(v)
    ]
    return max(vals) if vals else None


def relabels(profile: InvarianceProfile, sm: SafeMagnitude, op: str) -> bool:
    """Whether ``op`` fails at its smallest magnitude by sending classes one-to-one to other
    classes (:data:`SWAP_MIN`)."""
    swap = swap_at_failure(profile, sm, op)
    return sm.status == "fails" and swap is not None and swap >= SWAP_MIN


_STATUS_WORDS = {"floor": "a floor", "learning": "still learning", "met": "met", "unknown": "no statistics"}


def _trend(slope: float | None) -> str:
    if slope is None:
        return "no trend"
    word = "rising" if slope > -FLAT_SLOPE else "falling" if slope < FLAT_SLOPE else "flat"
    return f"{word} {slope:+.0%}/epoch"


def _n(x: float | None) -> str:
    """A loss for people: three decimals, no ``-0.000``."""
    if x is None or not math.isfinite(x):
        return "n/a"
    return f"{x:.3f}" if abs(x) >= 5e-4 else "0.000"


def _evidence_line(
    verdict: Verdict,
    sm: SafeMagnitude,
    ev: SearchEvidence | None,
    first: float | None = None,
    why: str = "",
    rates: Mapping[float, tuple[float, float]] | None = None,
) -> str:
    """Task first (where the walk stopped and why), then this model's profile, then the search."""
    task = ""
    if rates and first is not None and first in rates:
        r, o = rates[first]
        where = (f"at m={first:g}: {100 * r:+.0f} points of the images inside another class's support (against the "
                 f"clean images), {o:.0%} outside the data")  # fmt: skip
        task = f"{where}; " if why == "support" else f"{where} (no image of another class); "
    elif rates:
        worst = max(rates.values())
        task = f"at most {100 * worst[0]:+.0f} points of the images inside another class's support (against the clean images); "
    t = sm.threshold
    if all(sm.vacuous):
        prof = "leaves these images unchanged"
    elif sm.status == "safe":
        prof = f"largest loss gap {_n(sm.worst_safe_gap)}, under the threshold {_n(t)} at every magnitude"
    elif sm.status == "partial":
        prof = (f"safe to m={sm.max_safe:g} (gap {_n(sm.worst_safe_gap)}); at m={sm.first_fail:g} "
                f"gap {_n(sm.fail_gap)} > {_n(t)}")  # fmt: skip
    else:
        acc = sm.accuracies[sm.magnitudes.index(sm.first_fail)] if sm.first_fail is not None else math.nan
        at = f" at m={sm.first_fail:g}" if len(sm.magnitudes) > 1 else ""
        prof = f"loss gap {_n(sm.fail_gap)}{at} > {_n(t)}, accuracy {acc:.0%}"
    prof = task + "this model: " + prof
    if ev is None:
        return prof
    srch = f"search: {_STATUS_WORDS[ev.status]}"
    parts = []
    if ev.loss_last is not None:
        ref = "clean" if ev.clean_loss_last is not None else "ε"
        excess = "" if ev.excess is None else f", {ev.excess:+.2f} vs {ref}"
        parts.append(f"augmented loss {ev.loss_last:.2f}{excess}, {_trend(ev.loss_slope)}")
    if ev.relaxation_last is not None:
        held = ev.relaxation_last >= RELAX_MIN
        parts.append(
            f"relaxation {ev.relaxation_last:.2f}" + (f", {_trend(ev.relaxation_slope)}" if held else "")
        )
    elif ev.lambda_last is not None:
        parts.append(
            f"λ {ev.lambda_last:.2f}" + (f", {_trend(ev.lambda_slope)}" if ev.lambda_last > 0 else "")
        )
    if ev.mass_ratio is not None:
        parts.append(f"sampled {ev.mass_ratio:.2f}× uniform")
    if ev.weight_ratio is not None:
        parts.append(f"weight {ev.weight_ratio:.2f}× uniform")
    if parts:
        srch += f" ({'; '.join(parts)})"
    note = ""
    if verdict == "symmetry" and sm.status != "safe":
        note = "; the task keeps its label, but this model is not invariant to all of it yet"
    elif verdict != "breaks" and ev.status == "floor" and sm.status == "safe":
        note = "; the search saw a floor, the held-out model did not"
    return f"{prof}; {srch}{note}"


# -------------------------------------------------------------------------------- helpers


def _clip(x: float) -> float:
    return min(1.0, max(0.0, x))


def agreement(
    verdicts: Mapping[str, OpVerdict],
    truth: Mapping[str, str],
    safe: Mapping[str, tuple[float, float]] | None = None,
) -> dict[str, Any]:
    """How many verdicts match a declared ground truth (op -> ``"symmetry"``|``"partial"``|``"breaks"``).

    An ``undecided`` verdict is neither right nor wrong: it is counted apart (``undecided``) and
    left out of both rates. ``exact``: the verdict equals the truth, and a ``partial`` one's
    largest safe magnitude lies in the declared interval ``safe[op] = (low, high)`` (any, without
    one). ``binary`` (keeps vs breaks): whether the op changes the label at some magnitude
    (``partial`` or ``breaks``) or at none (``symmetry``), on both sides. Ops in ``truth`` without
    a verdict are skipped. For checking a report against a synthetic task; verdicts never read
    the truth.

    Examples:
        >>> v = {"hflip": OpVerdict("hflip", "breaks", 0.0, 0.9, ""),
        ...      "scale": OpVerdict("scale", "partial", 0.25, 0.7, ""),
        ...      "rotate": OpVerdict("rotate", "undecided", 0.5, 0.5, "")}
        >>> a = agreement(v, {"hflip": "breaks", "scale": "partial", "rotate": "symmetry"}, {"scale": (0.5, 0.5)})
        >>> a["exact"], a["binary"], a["undecided"], [m["op"] for m in a["misses"]]
        (0.5, 1.0, 1, ['scale'])
    """
    safe = safe or {}
    rows = {op: t for op, t in truth.items() if op in verdicts}
    exact = binary = 0
    undecided, misses = [], []
    for op, t in rows.items():
        v = verdicts[op]
        if v.verdict == "undecided":
            undecided.append(op)
            continue
        low, high = safe.get(op, (0.0, 1.0))
        right = v.verdict == t and (t != "partial" or low - 1e-9 <= v.max_safe_magnitude <= high + 1e-9)
        keeps = (v.verdict == "symmetry") == (t == "symmetry")
        exact += right
        binary += keeps
        if not right:
            misses.append({"op": op, "truth": t, "verdict": v.verdict, "max_safe_magnitude": v.max_safe_magnitude,
                           "safe": list(safe[op]) if op in safe else None, "binary": keeps})  # fmt: skip
    decided = len(rows) - len(undecided)
    return {
        "ops": len(rows),
        "decided": decided,
        "undecided": len(undecided),
        "undecided_ops": undecided,
        "exact": exact / decided if decided else math.nan,
        "binary": binary / decided if decided else math.nan,
        "exact_count": exact,
        "binary_count": binary,
        "misses": misses,
    }


__all__ = [
    "FLAT_SLOPE",
    "FLOOR_SUPPORT",
    "GAP_ABS",
    "GAP_REL",
    "MASS_HIGH",
    "RELAX_MIN",
    "SEARCH_EXCESS",
    "VACUOUS_TOL",
    "WEAK_MODEL",
    "WEIGHT_LOW",
    "OpVerdict",
    "SafeMagnitude",
    "SearchEvidence",
    "SearchStats",
    "agreement",
    "gap_threshold",
    "relative_slope",
    "safe_magnitude",
    "task_verdicts",
    "weak_model",
    "weights_evidence",
]
