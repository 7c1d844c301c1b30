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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch

from autoaug.policy import Policy
from autoaug.train import Limit, TrainConfig


@dataclass
class SearchConfig(TrainConfig):
    """Settings of a search: the trainer's, plus the search method and its knobs."""

    epochs: int = 8  # the default search: about 4.5 minutes on 2 CPU cores (10 epochs took 5.4)
    method: str = "mcmc"
    space: str = "symmetry"
    levels: int = 30  # magnitude levels of the sampler (DESIGN.md: 30)
    # MCMC (Hounie, Chamon & Ribeiro, ICML 2023)
    constraint: str = "per_op"  # "single": one dual variable; "per_op": one per op, resilient
    epsilon: float = 0.6  # margin of the invariance constraint
    dual_lr: float = 0.02  # step of the total multiplier; per op, each λ_g moves by dual_lr / (number of ops)
    chain_length: int = 1  # Metropolis-Hastings steps per image per visit
    n_aug: float = 0.5  # augmented copies per image; below 1, only that fraction of each batch gets one
    fused: bool = False  # one forward over the clean and augmented images (BatchNorm statistics over both)
    relax_alpha: float = 0.1  # resilient relaxation cost h(u) = alpha·u²/2 per op; at equilibrium alpha·u = λ
    relax_lr: float = 0.4
    policy_epochs: int = 0  # the learned policy is what the model trained on over the last K epochs; 0: all
    interpolation: str = "bilinear"
    # optuna (black-box search, autoaug/search/optuna.py): TPE over policies, each scored by a proxy
    n_trials: int = 20  # the study's budget: finished (complete or pruned) trials over all workers
    proxy: str = "density"  # "density": one model, policies scored on augmented held-out data; "train"
    proxy_holdout: float = 0.5  # of the training images, held out to score on (the rest trains the proxy)
    proxy_draws: int = 3  # density: augmented draws per held-out image
    proxy_score: str = "best"  # density: "best" (some draw right, Fast AA), "acc", "loss", "min_loss"
    trial_epochs: int = 3  # proxy "train": epochs of each trial's proxy training
    optuna_space: str = "families"  # RandAugment's N, M, a probability, op families; "policy"; "randaugment"
    pruner: str = "median"  # proxy "train": "median", "hyperband" or "none" (density: nothing to prune)
    storage: str | None = None  # an Optuna storage URL (postgresql://...); default sqlite:///OUT/study.db
    study_name: str | None = None  # the study to create, join or resume; default autoaug-DATASET-SPACE
    heartbeat: int = 10  # seconds between a running trial's heartbeats; silent for 2x that = failed
    # bilevel (differentiable, hypergradient: Faster AutoAugment, DADA; autoaug/search/bilevel.py)
    mode: str = "search"  # "search": a policy learned on a proxy; "online": the model and the policy together
    stages: int = 2  # ops applied one after the other
    temperature: float = 0.5  # of the Gumbel-softmax and the relaxed Bernoulli
    relaxation: str = "hard"  # "hard": one op per image, straight-through; "soft": every op, mixed (K x cost)
    unroll: str = "second_order"  # hypergradient through the inner step; "first_order": finite differences
    policy_lr: float = 0.03  # Adam on the policy's logits
    policy_every: int = 2  # a policy update every k model steps
    proxy_data: float = 0.5  # search mode: the proxy trains on this fraction of the training images
    proxy_epochs: float = 0.3  # search mode: and for this fraction of `epochs`
    init_prob: float = 0.5
    init_magnitude: float = 0.3
    probe_size: int = 128  # training images on which each op's loss is measured per epoch
    out: str = "runs/search"

    LIMITS: ClassVar[dict[str, Limit]] = TrainConfig.LIMITS | {
        "levels": Limit(1),
        "epsilon": Limit(0),
        "dual_lr": Limit(0),
        "chain_length": Limit(0),
        "n_aug": Limit(0, low_open=True),
        "relax_alpha": Limit(0),
        "relax_lr": Limit(0),
        "policy_epochs": Limit(0),
        "n_trials": Limit(1),
        "trial_epochs": Limit(1),
        "proxy_holdout": Limit(0, 1, low_open=True, high_open=True),
        "proxy_draws": Limit(1),
        "heartbeat": Limit(1),
        "stages": Limit(1),
        "temperature": Limit(0, low_open=True),
        "policy_lr": Limit(0, low_open=True),
        "policy_every": Limit(1),
        "proxy_data": Limit(0, 1, low_open=True),
        "proxy_epochs": Limit(0, 1, low_open=True),
        "init_prob": Limit(0, 1),
        "init_magnitude": Limit(0, 1),
        "probe_size": Limit(1),
    }
    # n_trials: an optuna study may be given more trials when it is joined again.
    RESUMABLE_CHANGES: ClassVar[tuple[str, ...]] = (*TrainConfig.RESUMABLE_CHANGES, "n_trials", "heartbeat")
    IDENTITY: ClassVar[tuple[str, ...]] = (*TrainConfig.IDENTITY, "method", "space", "levels", "constraint",
                                           "mode", "stages", "relaxation", "optuna_space")  # fmt: skip


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


__all__ = ["SearchConfig", "SearchResult", "Searcher", "get_searcher", "register"]
