"""The Searcher contract: a dataset in, a policy (and a trained model) out.

Every searcher is constructed from a :class:`SearchConfig`, owns a random generator seeded
in its constructor (the same seed gives the same policy on CPU), and writes its outputs into
``config.out``: ``policy.json`` (autoaug's policy format), ``history.json`` (what changed
over the search), ``metrics.jsonl``, ``config.yaml``, ``model.pt`` where it trains one.

Lifecycle: ``searcher = get_searcher(config.method)(config)``; ``result = searcher.run()``;
``run(resume=True)`` continues a killed search from its checkpoint.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch

from autoaug.policy import Policy
from autoaug.settings import Limit, Settings, setting
from autoaug.train import TrainConfig

VACUOUS_TOL = 0.5 / 255
"""An op is vacuous on a dataset when no pixel of a sample of its images moves by more than half
a grey level at any magnitude tried (colour, hue and grayscale on single-channel or grey images)."""


def vacuous_ops(space: str, images: torch.Tensor, seed: int = 0) -> list[str]:
    """The ops of ``space`` that leave every one of ``images`` unchanged (within
    :data:`VACUOUS_TOL`) at magnitudes 1/3, 2/3 and 1, both signs: searching them spends
    augmented copies, trials or probability on the identity. ``identity`` is not counted.

    Args:
        space: the space whose ops and ranges to try.
        images: a sample of the training images, B×C×H×W, uint8 or float in [0, 1].
        seed: seeds the ops' auxiliary draws (erasing's position).

    Example:
        >>> vacuous_ops("symmetry", torch.rand(8, 1, 16, 16))
        ['color', 'hue', 'grayscale']
    """
    from autoaug.ops import get_op
    from autoaug.spaces import get_space

    x = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
    sp = get_space(space)
    g = torch.Generator().manual_seed(seed)
    aux = torch.rand(len(x), 2, generator=g)
    h, w = x.shape[-2:]
    out = []
    for name in sp.ops:
        if name == "identity":
            continue
        op = get_op(name)
        r = sp.ranges.get(name)
        values = [0.0] if r is None else [s * r.value(m, h, w) for m in (1 / 3, 2 / 3, 1.0) for s in (1, -1)]
        moved = False
        for v in values:
            y = op(x, x.new_full((len(x),), v), aux)
            if (y - x).abs().max().item() > VACUOUS_TOL:
                moved = True
                break
        if not moved:
            out.append(name)
    return out


def sample_images(split: Any, n: int = 256, seed: int = 0) -> torch.Tensor:
    """Up to ``n`` seeded images of a split (decoded, for a streamed one), uint8."""
    g = torch.Generator().manual_seed(seed + 0x7AC)
    idx = torch.randperm(len(split), generator=g)[:n].sort().values
    return split.images[idx]


def searched_ops(config: SearchConfig, split: Any) -> tuple[list[str], list[str]]:
    """``(ops to search, vacuous ops left out)`` of ``config.space`` on a training split."""
    from autoaug.spaces import get_space

    ops = list(get_space(config.space).ops)
    if not config.drop_vacuous:
        return ops, []
    left = vacuous_ops(config.space, sample_images(split, seed=config.seed), seed=config.seed)
    return [o for o in ops if o not in left], left


@dataclass
class McmcConfig(Settings):
    """``mcmc:`` settings: MCMC under an invariance constraint (Hounie, Chamon & Ribeiro, ICML 2023;
    resilient relaxations, NeurIPS 2023): autoaug/search/mcmc.py."""

    SECTION: ClassVar[str] = "mcmc"

    levels: int = setting(30, limit=Limit(1),
        help="magnitude levels of each op's chain states (DESIGN.md: 30)")  # fmt: skip
    constraint: str = setting("per_op",
        help="per_op: one dual variable and one resilient relaxation per op; single: one dual variable")  # fmt: skip
    epsilon: float = setting(0.6, limit=Limit(0),
        help="margin ε of the invariance constraint: the augmented cross-entropy held under it, in nats")  # fmt: skip
    dual_lr: float = setting(0.02, limit=Limit(0),
        help="dual step per batch: the total multiplier moves by dual_lr times the excess loss (per_op: "
             "each op's by dual_lr / the number of ops)")  # fmt: skip
    chain_length: int = setting(1, limit=Limit(0),
        help="Metropolis-Hastings steps per image per visit (0: no step, the state the chain starts from)")  # fmt: skip
    n_aug: float = setting(0.5, limit=Limit(0, low_open=True),
        help="augmented copies per image and batch; below 1, that fraction of each batch gets one")  # fmt: skip
    fused: bool = setting(False,
        help="one forward pass over the clean and augmented images (BatchNorm statistics over both)")  # fmt: skip
    # 0.05, set on the suite's calibration half (glyphs: at 0.1 the flips, which the task breaks, kept
    # λ ≈ 0.12 each and the 8-epoch search reached 96.2% test accuracy, at 0.05 97.3% on one thread,
    # 96.9% on two); checked on the held-out half (results/symmetry_suite/).
    relax_alpha: float = setting(0.05, limit=Limit(0),
        help="cost α of the resilient relaxation h(u) = α·u²/2 per op; at equilibrium α·u = λ, so an op "
             "the task breaks keeps λ ≈ α·(ℓ − ε) in training")  # fmt: skip
    relax_lr: float = setting(0.4, limit=Limit(0), help="step of the relaxations u per batch")
    # prior, by a rule fixed before its last runs (results/prior/PREDICTIONS.md): its development
    # accuracy (Fashion-MNIST training images no run drew, plain_train.py, seeds 0-2) at least
    # randaugment's in low data (0.8660 against 0.8626) and at 2,500 images (0.8852 / 0.8846), and
    # within the seeds' spread of it reduced (0.9010 ± 0.0014 / 0.9024 ± 0.0040). randaugment with
    # one op had been chosen the same way over mixture (low data, seed 0: 0.8625 against 0.8443).
    export: str = setting("prior",
        help="the policy written: prior (RandAugment's point, N 2 and M 9, over the geometric and "
             "photometric ops that met the constraint, each at M or lower where it met it lower), "
             "randaugment (each image gets export_ops ops picked uniformly among identity and the ops "
             "that met the constraint, at magnitudes uniform up to where they met it, over the search's "
             "second half) or mixture (what the model was trained on)")  # fmt: skip
    export_ops: int = setting(1, limit=Limit(1),
        help="with export randaugment: ops applied to each image, one after the other (RandAugment's N)")  # fmt: skip
    policy_epochs: int = setting(0, limit=Limit(0),
        help="with export mixture: the policy is what the model trained on over the last K epochs (0: all)")  # fmt: skip

    # Settings that make another search: a checkpoint made with other values is refused.
    IDENTITY: ClassVar[tuple[str, ...]] = ("levels", "constraint")


@dataclass
class BilevelConfig(Settings):
    """``bilevel:`` settings: a differentiable policy by one-step unrolled hypergradient (Faster
    AutoAugment, DADA): autoaug/search/bilevel.py."""

    SECTION: ClassVar[str] = "bilevel"

    mode: str = setting("search",
        help="search: learn a policy on a proxy model, for autoaug train --policy; online: train the model "
             "and the policy together")  # fmt: skip
    stages: int = setting(2, limit=Limit(1), help="ops applied one after the other to each image")
    temperature: float = setting(0.5, limit=Limit(0, low_open=True),
        help="temperature τ of the Gumbel-softmax (which op) and the relaxed Bernoulli (whether)")  # fmt: skip
    relaxation: str = setting("hard",
        help="hard: one op per image, straight-through; soft: every op on every image, mixed (K times the cost)")  # fmt: skip
    unroll: str = setting("second_order",
        help="the hypergradient: second_order (autograd through the inner step) or first_order (finite "
             "differences)")  # fmt: skip
    policy_lr: float = setting(
        0.03, limit=Limit(0, low_open=True), help="Adam's learning rate on the policy's logits"
    )
    policy_every: int = setting(2, limit=Limit(1), help="a policy update every K model steps")
    epsilon: float = setting(0.6, limit=Limit(0),
        help="target ε of the two-sided constraint: the augmented cross-entropy is held at it, in nats")  # fmt: skip
    dual_lr: float = setting(0.02, limit=Limit(0),
        help="step of the signed dual variable per batch, times the augmented loss's distance from ε")  # fmt: skip
    proxy_data: float = setting(0.5, limit=Limit(0, 1, low_open=True),
        help="mode search: the proxy trains on this fraction of the training images")  # fmt: skip
    proxy_epochs: float = setting(0.3, limit=Limit(0, 1, low_open=True),
        help="mode search: the proxy trains for this fraction of epochs")  # fmt: skip
    init_prob: float = setting(0.5, limit=Limit(0, 1), help="the application probability every op starts at")
    init_magnitude: float = setting(
        0.3, limit=Limit(0, 1), help="the magnitude (in [0, 1]) every op starts at"
    )
    probe_size: int = setting(128, limit=Limit(1),
        help="training images on which each op's augmented loss is measured per epoch")  # fmt: skip
    export: str = setting("auto",
        help="the policy written: learned (each stage's op weights, probabilities and magnitudes), prior "
             "(RandAugment's point, N 2 and M 9, over the geometric and photometric ops the search did not "
             "avoid) or auto (learned, unless a search-mode run's weights stayed near uniform, every stage's "
             "largest under 1.5x the uniform share: then prior)")  # fmt: skip

    IDENTITY: ClassVar[tuple[str, ...]] = ("mode", "stages", "relaxation")


@dataclass
class OptunaConfig(Settings):
    """``optuna:`` settings: TPE over policies, each scored by a proxy (Fast AutoAugment's density
    matching by default): autoaug/search/optuna.py."""

    SECTION: ClassVar[str] = "optuna"

    n_trials: int = setting(20, limit=Limit(1),
        help="the study's budget: finished (complete or pruned) trials over all workers")  # fmt: skip
    optuna_space: str = setting("families",
        help="what TPE searches: families (RandAugment's N and M, a probability, which op families), "
             "policy (a weight and magnitude per op), randaugment (N, M, which ops)")  # fmt: skip
    proxy: str = setting("density",
        help="density: one model trained once (epochs), policies scored on augmented held-out images; "
             "train: a short training per trial")  # fmt: skip
    proxy_holdout: float = setting(0.5, limit=Limit(0, 1, low_open=True, high_open=True),
        help="fraction of the training images held out to score policies on (the rest trains the proxy)")  # fmt: skip
    # 3: over 5 draws "best" ranks arbitrary policies better (low data, 16 held-out policies: Spearman
    # +0.57 against +0.13), but the searches it steers pick the label-breaking ops (invert, vflip,
    # rotate90: one right draw of five is enough) and their policies train worse (low data, 3 seeds,
    # development set: 0.8574 against 0.8655); results/accuracy_lowdata_amd, BENCHMARKS.md.
    proxy_draws: int = setting(3, limit=Limit(1), help="proxy density: augmented draws per held-out image")
    # 1000: the low-data proxy scores all its 500 held-out images and predicts no worse than the
    # reduced one did on 3000; on larger data a trial then costs the same whatever the size
    # (draws x 1000 forwards).
    proxy_images: int = setting(1000, limit=Limit(0),
        help="proxy density: held-out images each trial is scored on (a fixed seeded sample; 0: all)")  # fmt: skip
    proxy_score: str = setting("best",
        help="proxy density: best (an image counts when some draw is right, Fast AA), acc, loss or min_loss")  # fmt: skip
    prior: str = setting("randaugment",
        help="randaugment: RandAugment's point (N 2, M 9, geometric and photometric ops) is the second trial, "
             "and the result unless a trial scores above it by more than one binomial standard error; "
             "none: the best trials' mixture")  # fmt: skip
    export_top: int = setting(5, limit=Limit(1),
        help="the written policy: the mixture of the policies of this many best trials, stage by stage "
             "(Fast AutoAugment's union of its best sub-policies); 1: the best trial's policy")  # fmt: skip
    trial_epochs: int = setting(3, limit=Limit(1), help="proxy train: epochs of each trial's training")
    pruner: str = setting("median",
        help="proxy train: median, hyperband or none (stops bad trials in their second half)")  # fmt: skip
    storage: str | None = setting(None,
        help="an Optuna storage URL (postgresql://...) that workers share (empty: sqlite:///OUT/study.db)")  # fmt: skip
    study_name: str | None = setting(None,
        help="the study to create, join or resume (empty: autoaug-DATASET-OPTUNA_SPACE)")  # fmt: skip
    heartbeat: int = setting(10, limit=Limit(1),
        help="seconds between a running trial's heartbeats; silent for twice that, it counts as failed")  # fmt: skip

    IDENTITY: ClassVar[tuple[str, ...]] = ("optuna_space",)
    # n_trials: a study may be given more trials when it is joined again.
    RESUMABLE_CHANGES: ClassVar[tuple[str, ...]] = ("n_trials", "heartbeat", "export_top")


SECTIONS: dict[str, type[Settings]] = {"mcmc": McmcConfig, "bilevel": BilevelConfig, "optuna": OptunaConfig}
"""Each search method's section of settings, by method."""


@dataclass
class SearchConfig(TrainConfig):
    """Settings of a search: the trainer's, the method and space, and one section per method
    (``mcmc``, ``bilevel``, ``optuna``) of which the run uses its method's.

    In YAML a section is a mapping under its method's name; on the command line its settings
    are plain flags (``--epsilon``), which go to the chosen method's section. The resolved
    ``config.yaml`` of a run holds the common settings and its method's section only.

    Examples:
        >>> cfg = SearchConfig(method="bilevel", bilevel=BilevelConfig(stages=1), epochs=4)
        >>> cfg.bilevel.stages, cfg.section.epsilon
        (1, 0.6)
        >>> sorted(k for k in cfg.to_dict() if k in SECTIONS)
        ['bilevel']
        >>> SearchConfig.from_dict({"n_trials": 5})
        Traceback (most recent call last):
        ...
        ValueError: config: config key 'n_trials' is now 'optuna.n_trials' (each method's settings are in its own section)
    """

    epochs: int = setting(8, group="training", limit=Limit(1),  # about 4.5 minutes on 2 CPU cores
        help="passes over the training images (optuna proxy density: its proxy's; bilevel mode search: "
             "the schedule the proxy takes proxy_epochs of)")  # fmt: skip
    out: str = setting("runs/search", group="run",
        help="the run's directory: policy.json, history.json, metrics.jsonl, model.pt, config.yaml")  # fmt: skip
    method: str = setting("mcmc", group="search",
        help="mcmc (sampler under an invariance constraint, trains the model), bilevel (hypergradient on a "
             "differentiable policy) or optuna (TPE over policies)")  # fmt: skip
    space: str = setting("symmetry", group="search",
        help="the ops and their magnitude ranges: standard (RandAugment's), wide (TrivialAugmentWide's), "
             "symmetry (standard plus flips, 90° turns, scale, hue, ...)")  # fmt: skip
    interpolation: str = setting("bilinear", group="search",
        help="resampling of geometric ops: bilinear (gradients flow) or nearest")  # fmt: skip
    drop_vacuous: bool = setting(False, group="search",
        help="leave out of the search and its policy the ops that change no training image (colour ops on "
             "grey images)")  # fmt: skip
    mcmc: McmcConfig = setting(factory=McmcConfig, help="settings of --method mcmc")
    bilevel: BilevelConfig = setting(factory=BilevelConfig, help="settings of --method bilevel")
    optuna: OptunaConfig = setting(factory=OptunaConfig, help="settings of --method optuna")

    RESUMABLE_CHANGES: ClassVar[tuple[str, ...]] = (
        *TrainConfig.RESUMABLE_CHANGES,
        *(f"optuna.{k}" for k in OptunaConfig.RESUMABLE_CHANGES),
    )
    IDENTITY: ClassVar[tuple[str, ...]] = (
        *TrainConfig.IDENTITY, "method", "space", "drop_vacuous",
        *(f"{name}.{k}" for name, section in SECTIONS.items() for k in section.IDENTITY),
    )  # fmt: skip

    def validate(self) -> None:
        super().validate()
        if self.method not in SECTIONS:
            raise ValueError(f"unknown search method {self.method!r}; known: {', '.join(sorted(SECTIONS))}")

    @property
    def section(self) -> Any:
        """The settings of this search's method (``self.mcmc`` for ``method="mcmc"``, ...)."""
        return getattr(self, self.method)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str | None = "config") -> SearchConfig:
        """A config from a mapping of settings, the method's under its section. A setting of an
        older, flat config (``n_trials`` at the top) is refused naming its new key."""
        moved = {k: new_keys(k, data.get("method")) for k in data if k not in cls.fields()}
        moved = {k: v for k, v in moved.items() if v}
        if moved:
            where = f"{source}: " if source else ""
            said = "; ".join(
                f"config key {k!r} is now {' or '.join(repr(n) for n in v)}" for k, v in moved.items()
            )
            raise ValueError(f"{where}{said} (each method's settings are in its own section)")
        return super().from_dict(data, source)  # type: ignore[return-value]

    @classmethod
    def place(
        cls, settings: dict[str, Any], method: str, spell: Callable[[str], str] = repr
    ) -> dict[str, Any]:
        """Settings named as the command line names them, flat (the common ones and
        ``method``'s), as a nested mapping: ``{"stages": 1}`` -> ``{"bilevel": {"stages": 1}}``.

        Raises:
            ValueError: a setting of another method, or of none (named by ``spell``).
        """
        nested: dict[str, Any] = {}
        own = SECTIONS.get(method)
        for key, value in settings.items():
            if key in cls.fields() and key not in SECTIONS:
                nested[key] = value
            elif own is not None and key in own.fields():
                nested.setdefault(method, {})[key] = value
            else:
                owners = [name for name, section in SECTIONS.items() if key in section.fields()]
                if not owners:
                    raise ValueError(f"unknown setting {spell(key)}")
                raise ValueError(
                    f"{spell(key)}: a setting of --method {' or '.join(owners)}, not of this search's method {method!r}"
                )
        return nested

    @classmethod
    def of(cls, **settings: Any) -> SearchConfig:
        """A config from flat settings, as the command line takes them: the common ones and the
        method's, wherever they belong (``SearchConfig.of(method="bilevel", stages=1)``)."""
        return cls.from_dict(cls.place(settings, settings.get("method", "mcmc")), source=None)

    def replace(self, **settings: Any) -> SearchConfig:
        """A copy with flat settings changed, the method's going to its section
        (``cfg.replace(epochs=2, n_aug=1)``); checked as on construction."""
        method = settings.get("method", self.method)
        values: dict[str, Any] = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        for key, value in self.place(settings, method).items():
            values[key] = dataclasses.replace(values[key], **value) if key in SECTIONS else value
        return type(self)(**values)

    def to_dict(self) -> dict[str, Any]:
        """The settings that apply to the run: the common ones and its method's section (not the
        other methods', nor the fixed ``policy`` a search does not train with)."""
        values = super().to_dict()
        for name in SECTIONS:
            if name != self.method:
                values.pop(name)
        values.pop("policy", None)
        return values

    @classmethod
    def upgrade(cls, saved: dict[str, Any]) -> dict[str, Any]:
        """A run's saved settings in this version's shape: a run saved by an older autoaug (one
        flat mapping of every method's settings) has its method's settings moved into its
        section and the other methods' dropped, so that an old run resumes."""
        method = saved.get("method", "mcmc")
        own = SECTIONS.get(method)
        values: dict[str, Any] = {}
        for k, v in saved.items():
            if k in cls.fields() or own is None:
                values[k] = v
            elif k in own.fields():
                values.setdefault(method, {})[k] = v
        return values


def new_keys(key: str, method: Any = None) -> list[str]:
    """Where an older, flat config's ``key`` is now: ``["optuna.n_trials"]``; only the
    ``method``'s section where ``key`` is in several (``epsilon``); ``[]`` for no setting."""
    found = [f"{name}.{key}" for name, section in SECTIONS.items() if key in section.fields()]
    mine = [k for k in found if k.startswith(f"{method}.")]
    return mine or found


@dataclass
class SearchResult:
    policy: Policy
    metrics: dict[str, Any]
    out: Path
    summary: dict[str, Any]


class Searcher(abc.ABC):
    """Base class of the search methods (``mcmc``, ``bilevel``, ``optuna``)."""

    method: ClassVar[str]

    def __init__(self, config: SearchConfig):
        self.config = config
        self.generator = torch.Generator().manual_seed(config.seed)

    @abc.abstractmethod
    def run(self, resume: bool = False) -> SearchResult:
        """Search, write the outputs into ``config.out``, return the learned policy."""


_SEARCHERS: dict[str, type[Searcher]] = {}


def register(cls: type[Searcher]) -> type[Searcher]:
    _SEARCHERS[cls.method] = cls
    return cls


def get_searcher(method: str) -> type[Searcher]:
    """The searcher class for ``method``.

    Raises:
        ValueError: an unknown method, listing the known ones.
    """
    from autoaug.search import bilevel, mcmc, optuna  # noqa: F401  (register themselves)

    if method not in _SEARCHERS:
        raise ValueError(f"unknown search method {method!r}; known: {', '.join(sorted(_SEARCHERS))}")
    return _SEARCHERS[method]


__all__ = [
    "SECTIONS",
    "BilevelConfig",
    "McmcConfig",
    "OptunaConfig",
    "SearchConfig",
    "SearchResult",
    "Searcher",
    "get_searcher",
    "new_keys",
    "register",
    "sample_images",
    "searched_ops",
    "vacuous_ops",
]
