"""Black-box policy search with Optuna (the Fast AutoAugment / RandAugment-grid family).

Optuna's TPE sampler (Bergstra et al., NeurIPS 2011; multivariate, Falkner et al., ICML 2018)
proposes policy parameters and a proxy scores each policy. Trial 0 is no augmentation, so the
result is never worse than that on the proxy. Trial 1 is the prior (``config.optuna.prior``,
``randaugment``: RandAugment's point of the space, torchvision's N 2 and M 9 over the geometric
and photometric ops), the policy a practitioner starts from: it is the result unless a trial
scores above it by more than one binomial standard error of the score, since the proxies tell
policies apart only that well. On Fashion-MNIST (3 seeds, the exported policy retrained in a plain
loop) the prior lifted the search's policy from 0.8514 to 0.8582 with 1,000 training images
(RandAugment 0.8569), from 0.8749 to 0.8795 with 2,500 and left it level with 6,000 (0.8915,
0.8918; RandAugment 0.8917): BENCHMARKS.md, "The practitioner's default as the searchers' prior".
Otherwise the result is the mixture of the policies of the ``export_top`` best trials (5), stage
by stage (:meth:`Policy.mixture`), as Fast AutoAugment unions the sub-policies of its best trials
rather than keep one: a single best trial of a density score is a mild policy, and the mixture is
as diverse as the good region of the space.

Two proxies (``config.optuna.proxy``):

* ``density`` (the default): Fast AutoAugment's density matching (Lim et al., NeurIPS 2019;
  :mod:`autoaug.search.density`). The training images are split in two (``proxy_holdout``); one
  model is trained once, without augmentation, on the first part for ``config.epochs`` epochs;
  a policy's score is how that model does on the held-out part augmented by the policy
  (``proxy_draws`` draws per image, 3, on a fixed sample of ``proxy_images`` held-out images,
  1000; ``proxy_score="best"``, Fast AA's: the fraction of images some draw gets right). How
  far that score predicts a full training's test accuracy is measured by
  ``scripts/proxy_correlation.py``: in low data, over 16 trained policies it was not chosen on,
  Spearman +0.13 with 3 draws, +0.57 with 5; but with 5 the search's best trials are those with
  the label-breaking ops (one right draw in five is enough) and train worse, so 3 stays.
  No training per trial; a trial is a few forward passes, so there is
  nothing to prune. Each worker trains (or reloads from ``OUT/proxy``) its own model, from the
  same seed and data.
* ``train``: each trial trains a short proxy model (``trial_epochs``) with the policy on the
  first part and reports its accuracy on the held-out part after every epoch; a pruner (median,
  or Hyperband: Li et al., JMLR 2018) stops bad trials, only in the second half of a trial.

On a streamed folder (``--stream``) both proxies split the lists of files, not decoded images
(:func:`~autoaug.search.density.density_split`): the first part streams as the trainer streams
it, and the held-out part, read for every trial, is decoded once when it fits the memory budget
(:func:`~autoaug.search.density.in_memory`), else read from disk by each trial.

Three search spaces (``config.optuna.optuna_space``):

* ``families`` (the default): RandAugment's N (1-3 ops in a row) and M (a level of 31, one for
  every op), an application probability per op (0-1 in steps of 0.05), and which op families
  of ``config.space`` take part (:data:`FAMILIES`: geometric, photometric, flip, erasing, drastic),
  each chosen family equally likely: 8 parameters on ``symmetry``, mild policies included.
* ``policy``: a weight and a magnitude per op of ``config.space`` and how many ops an image
  gets in a row (1-3): the shape of an AutoAugment policy, one magnitude per op.
* ``randaugment``: RandAugment's N (0-3 ops in a row) and M (a level of 31), plus which ops
  of the space are allowed (Cubuk et al., NeurIPS 2020 workshops, searched instead of gridded).

The study lives in an Optuna storage: ``sqlite:///OUT/study.db`` unless ``config.optuna.storage``
names another (``postgresql://user@host/db``). Workers that name the same storage and study
share it: ``autoaug search --method optuna --storage URL`` on several machines. Each worker
loops until the study holds ``n_trials`` finished (complete or pruned) trials; a trial starts
only while the budget has room (:func:`claim_budget`), so the workers together run exactly
``n_trials``. A running trial writes a heartbeat; one that falls silent (its worker was
killed) is marked failed by the next worker that looks, and the others go on. Running the
same command again joins the study where it stopped: that is how a killed search resumes.

The sampler's randomness for a trial is seeded by the seed and the trial's number, so one
worker with the same seed proposes the same trials on CPU, and concurrent workers never
propose the same random trials.

Outputs in ``config.out``: ``policy.json`` (the mixture of the best trials' policies), ``study.json`` (the
storage URL, password hidden, and the study name; ``optuna-dashboard URL`` opens it),
``study.db`` (the default SQLite storage), ``metrics.jsonl`` (one line per trial),
``optimization_history.png``, ``param_importances.png``, ``config.yaml``, ``proxy/`` (the
density proxy's model, its training metrics and settings) and ``trials/NNNN/`` (each trial's
policy, and with the train proxy its metrics and config, from this worker).

A study records, in its ``autoaug`` user attribute, the settings that define its objective
and what its trials are (``schema``: a version, the search space and its parameter names); a
worker that joins with another space, another proxy or other settings, or a study an older
autoaug made, is refused with one line naming the difference.

Example:
    >>> from autoaug.search import OptunaConfig, SearchConfig, get_searcher
    >>> cfg = SearchConfig(method="optuna", dataset="glyphs", train_size=256, epochs=2,
    ...                    optuna=OptunaConfig(n_trials=4), out="runs/optuna_doc")
    >>> result = get_searcher("optuna")(cfg).run()  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import random
import socket
import time
import uuid
import warnings
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import torch
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, TrialState

from autoaug._io import save_figure_atomic
from autoaug.data import Dataset
from autoaug.ops import get_op
from autoaug.policy import OpEntry, Policy, atomic_write_text
from autoaug.reference import RA_BINS, RA_MAGNITUDE, RA_NUM_OPS
from autoaug.search.base import SearchConfig, Searcher, SearchResult, register, searched_ops
from autoaug.search.density import SCORES, DensityProxy, density_split, in_memory
from autoaug.settings import to_yaml
from autoaug.spaces import FAMILIES, get_space, randaugment_ops
from autoaug.train import CONFIG_HEADER, PolicyStep, TrainConfig, Trainer, TrainingDiverged, dataset_of

OPTUNA_SPACES = ("families", "policy", "randaugment")
# The op families of the ``families`` space (each an on/off choice); an op outside them (identity)
# is left out, ops absent from the chosen space are dropped, a family left empty is no choice.
PROB_STEP = 0.05  # the families space's application probability, on a grid that holds 0 and 1
PRUNERS = ("median", "hyperband", "none")
PROXIES = ("density", "train")
MAX_OPS = 3  # ops an image gets in a row, at most
RA_LEVELS = RA_BINS  # RandAugment's magnitude levels (torchvision's num_magnitude_bins)
RA_POINT = {"n_ops": RA_NUM_OPS, "magnitude": RA_MAGNITUDE}  # torchvision's RandAugment defaults
PRIORS = ("randaugment", "none")
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
# Settings that change what a trial measures: workers joining a study must agree on them.
STUDY_KEYS = ("dataset", "train_size", "model", "batch_size", "lr", "weight_decay", "label_smoothing",
              "grad_clip", "seed", "space", "optuna_space", "interpolation", "proxy",
              "proxy_holdout", "prior")  # fmt: skip
PROXY_KEYS = {"density": ("epochs", "proxy_draws", "proxy_score", "proxy_images"), "train": ("trial_epochs",)}
# Settings added to STUDY_KEYS / PROXY_KEYS since schema 2, with the value a study made before
# them behaved as (proxy_images 0: every held-out image was scored), so that such a study is
# joined with that value given (``--proxy-images 0``) and refused, naming it, otherwise.
ADDED_SETTINGS = {"proxy_images": 0, "prior": "none"}
# What a study's trials are: a study made with another schema (an older autoaug: other parameter
# names, another proxy) is refused on join with one line, not a crash inside the sampler.
STUDY_SCHEMA = 2


class BudgetFull(Exception):
    """The study already has ``n_trials`` finished or running trials: this one does not run."""


# ------------------------------------------------------------------------- search spaces


def families_of(space: str) -> dict[str, tuple[str, ...]]:
    """The families of :data:`FAMILIES` with the ops of ``space`` they hold (empty ones left out).

    Example:
        >>> list(families_of("standard"))
        ['geometric', 'photometric']
    """
    ops = set(get_space(space).ops)
    kept = {name: tuple(op for op in members if op in ops) for name, members in FAMILIES.items()}
    return {name: members for name, members in kept.items() if members}


def suggest_params(trial: optuna.Trial, optuna_space: str, space: str) -> dict[str, Any]:
    """Draw a trial's policy parameters (every parameter, every trial: a fixed search space).

    ``families`` (the default): ``n_ops`` (int 1-3, RandAugment's N), ``magnitude`` (int 0-30,
    RandAugment's M, one for every op), ``prob`` (float 0-1 in steps of 0.05, each op's
    application probability) and ``family:NAME`` (bool) for each family of :data:`FAMILIES`
    that has ops in ``space``. ``policy``: ``n_ops`` (int 1-3), ``weight:OP`` (float [0, 1]) for every op of ``space`` and
    ``magnitude:OP`` (float [0, 1]) for those with a magnitude. ``randaugment``: ``n_ops``
    (int 0-3), ``magnitude`` (int 0-30, RandAugment's M) and ``use:OP`` (bool) for every op.
    """
    ops = get_space(space).ops
    if optuna_space == "families":
        trial.suggest_int("n_ops", 1, MAX_OPS)
        trial.suggest_int("magnitude", 0, RA_LEVELS - 1)
        trial.suggest_float("prob", 0.0, 1.0, step=PROB_STEP)
        for family in families_of(space):
            trial.suggest_categorical(f"family:{family}", (True, False))
    elif optuna_space == "policy":
        trial.suggest_int("n_ops", 1, MAX_OPS)
        for name in ops:
            trial.suggest_float(f"weight:{name}", 0.0, 1.0)
            if get_op(name).has_magnitude:
                trial.suggest_float(f"magnitude:{name}", 0.0, 1.0)
    elif optuna_space == "randaugment":
        trial.suggest_int("n_ops", 0, MAX_OPS)
        trial.suggest_int("magnitude", 0, RA_LEVELS - 1)
        for name in ops:
            trial.suggest_categorical(f"use:{name}", (True, False))
    else:
        raise ValueError(f"unknown optuna space {optuna_space!r}; known: {', '.join(OPTUNA_SPACES)}")
    return dict(trial.params)


def policy_from_params(
    params: dict[str, Any],
    optuna_space: str,
    space: str,
    interpolation: str = "bilinear",
    name: str = "optuna",
    skip: Collection[str] = (),
) -> Policy:
    """The :class:`Policy` a trial's parameters describe: ``n_ops`` stages, each the same
    categorical over the ops (``families``: each chosen family equally likely, uniform over its
    ops, every op at magnitude ``M / 30`` applied with probability ``prob``; ``policy``: weights
    and magnitudes as drawn; ``randaugment``: uniform over the allowed ops at magnitude
    ``M / 30``). No op, or no stage, or ``prob`` 0, is the identity. Ops in ``skip`` (those
    that change no image of the dataset) are left out; the study's parameters stay the same.

    Example:
        >>> p = policy_from_params({"n_ops": 2, "magnitude": 9, "use:rotate": True,
        ...                         "use:hflip": False}, "randaugment", "symmetry")
        >>> len(p.stages), p.ops, round(p.stages[0][0].magnitudes[0], 2)
        (2, ['rotate'], 0.3)
    """
    sp = get_space(space)
    entries: list[OpEntry] = []
    if optuna_space == "families":
        m, p = int(params["magnitude"]) / (RA_LEVELS - 1), float(params["prob"])
        for family, ops in families_of(space).items():
            if not params.get(f"family:{family}", False) or p <= 0:
                continue
            ops = tuple(op for op in ops if op not in skip)
            for op in ops:  # each chosen family equally likely, its ops equally likely within it
                magnitudes = (m,) if get_op(op).has_magnitude else (0.0,)
                entries.append(OpEntry(op, 1.0 / len(ops), p, magnitudes, (1.0,)))
    elif optuna_space == "policy":
        for op in sp.ops:
            w = float(params.get(f"weight:{op}", 0.0))
            if w <= 0 or op in skip:
                continue
            if get_op(op).has_magnitude:
                entries.append(OpEntry(op, w, 1.0, (float(params[f"magnitude:{op}"]),), (1.0,)))
            else:
                entries.append(OpEntry(op, w, 1.0))
    elif optuna_space == "randaugment":
        m = int(params["magnitude"]) / (RA_LEVELS - 1)
        for op in sp.ops:
            if params.get(f"use:{op}", False) and op not in skip:
                entries.append(
                    OpEntry(op, 1.0, 1.0, (m,), (1.0,)) if get_op(op).has_magnitude else OpEntry(op)
                )
    else:
        raise ValueError(f"unknown optuna space {optuna_space!r}; known: {', '.join(OPTUNA_SPACES)}")
    n_ops = int(params["n_ops"])
    if not entries or n_ops == 0:
        return Policy([], space=space, interpolation=interpolation, name=name)
    return Policy([list(entries) for _ in range(n_ops)], space=space, interpolation=interpolation, name=name)


def prior_params(optuna_space: str, space: str) -> dict[str, Any] | None:
    """RandAugment's point of a space (torchvision's defaults: N 2, M 9 of 31, every op applied)
    over the geometric and photometric ops of ``space``, the ops RandAugment draws from: the
    search's second trial, and its result unless a trial scores above it by more than the noise
    (``optuna.prior``). None where ``space`` has no such ops.

    Example:
        >>> p = policy_from_params(prior_params("families", "symmetry"), "families", "symmetry")
        >>> len(p.stages), "rotate" in p.ops, "hflip" in p.ops
        (2, True, False)
    """
    sp = get_space(space)
    ops = randaugment_ops(space)
    if not ops:
        return None
    point: dict[str, Any] = {"n_ops": RA_POINT["n_ops"]}
    if optuna_space == "families":
        return (
            point
            | {"magnitude": RA_POINT["magnitude"], "prob": 1.0}
            | {f"family:{f}": f in ("geometric", "photometric") for f in families_of(space)}
        )
    if optuna_space == "policy":
        for name in sp.ops:
            point[f"weight:{name}"] = 1.0 if name in ops else 0.0
            if get_op(name).has_magnitude:
                point[f"magnitude:{name}"] = RA_POINT["magnitude"] / (RA_LEVELS - 1)
        return point
    if optuna_space == "randaugment":
        return point | {"magnitude": RA_POINT["magnitude"]} | {f"use:{name}": name in ops for name in sp.ops}
    raise ValueError(f"unknown optuna space {optuna_space!r}; known: {', '.join(OPTUNA_SPACES)}")


def identity_params(optuna_space: str, space: str) -> dict[str, Any]:
    """The point of a space that is no augmentation: the search's first trial, so that its
    result is never worse than training without augmentation (on the proxy).

    Example:
        >>> policy_from_params(identity_params("randaugment", "standard"), "randaugment", "standard").stages
        []
    """
    ops = get_space(space).ops
    if optuna_space == "families":
        return {"n_ops": 1, "magnitude": 0, "prob": 0.0} | {f"family:{f}": False for f in families_of(space)}
    if optuna_space == "policy":
        params: dict[str, Any] = {"n_ops": 1}
        for name in ops:
            params[f"weight:{name}"] = 1.0 if name == "identity" else 0.0
            if get_op(name).has_magnitude:
                params[f"magnitude:{name}"] = 0.0
        if "identity" not in ops:
            raise ValueError(
                f"space {space!r} has no identity op: the policy space cannot express no augmentation"
            )
        return params
    if optuna_space == "randaugment":
        return {"n_ops": 0, "magnitude": 0} | {f"use:{name}": False for name in ops}
    raise ValueError(f"unknown optuna space {optuna_space!r}; known: {', '.join(OPTUNA_SPACES)}")


# --------------------------------------------------------------- sampler, pruner, storage


class TrialSeededTPE(optuna.samplers.BaseSampler):
    """Optuna's TPE sampler with a random stream per trial, seeded by ``(seed, trial.number)``.

    A trial's number is unique in a study, so workers that share a study and a seed do not
    propose the same random trials, and one worker reproduces its trials from the seed.
    Each trial gets a fresh :class:`optuna.samplers.TPESampler` (TPE keeps no state between
    trials besides its generator; the history comes from the study). ``fixed[i]`` fixes trial
    ``i``'s parameters (the searcher's anchors: no augmentation, then its prior).
    """

    def __init__(self, seed: int, fixed: Sequence[dict[str, Any]] = (), **tpe_kwargs: Any):
        self.seed = seed
        self.fixed = list(fixed)
        self.tpe_kwargs = tpe_kwargs
        self._tpe: dict[int, optuna.samplers.BaseSampler] = {}

    def _for(self, trial: FrozenTrial) -> optuna.samplers.BaseSampler:
        if trial.number not in self._tpe:
            # SeedSequence mixes (seed, number) into unrelated streams; consecutive integer
            # seeds of numpy's Mersenne Twister start with visibly similar draws.
            seed = int(np.random.SeedSequence([self.seed, trial.number]).generate_state(1)[0])
            with warnings.catch_warnings():  # multivariate TPE and PartialFixedSampler are "experimental"
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                sampler: optuna.samplers.BaseSampler = optuna.samplers.TPESampler(
                    seed=seed, **self.tpe_kwargs
                )
                if trial.number < len(self.fixed) and self.fixed[trial.number]:
                    sampler = optuna.samplers.PartialFixedSampler(self.fixed[trial.number], sampler)
            self._tpe[trial.number] = sampler
        return self._tpe[trial.number]

    def infer_relative_search_space(
        self, study: optuna.Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        return self._for(trial).infer_relative_search_space(study, trial)

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        return self._for(trial).sample_relative(study, trial, search_space)

    def sample_independent(
        self, study: optuna.Study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution
    ) -> Any:
        return self._for(trial).sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self._for(trial).before_trial(study, trial)

    def after_trial(
        self, study: optuna.Study, trial: FrozenTrial, state: TrialState, values: Sequence[float] | None
    ) -> None:
        self._for(trial).after_trial(study, trial, state, values)
        self._tpe.pop(trial.number, None)

    def reseed_rng(self) -> None:
        self.seed = int(torch.randint(2**31, ()).item())


def make_pruner(name: str, epochs: int) -> optuna.pruners.BasePruner:
    """``median``: stop a trial whose validation accuracy is below the median of earlier
    trials at the same epoch, after 5 finished trials and only in the second half of a trial
    (augmented trainings start behind: an early epoch's accuracy says little about the last);
    ``hyperband``: successive halving over ``epochs // 2``..``epochs`` epochs, factor 3; ``none``.
    The density proxy scores in one step: nothing to prune (see :meth:`OptunaSearcher.pruner`)."""
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=epochs // 2)
    if name == "hyperband":
        low = max(1, epochs // 2)
        return optuna.pruners.HyperbandPruner(
            min_resource=low, max_resource=max(epochs, low), reduction_factor=3
        )
    if name == "none":
        return optuna.pruners.NopPruner()
    raise ValueError(f"unknown pruner {name!r}; known: {', '.join(PRUNERS)}")


def storage_url(config: SearchConfig) -> str:
    """``config.optuna.storage``, or the SQLite file ``OUT/study.db``."""
    if config.optuna.storage:
        return config.optuna.storage
    return f"sqlite:///{(Path(config.out) / 'study.db').resolve()}"


def public_url(url: str) -> str:
    """The storage URL with its password hidden, fit to print and write down."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL SQLAlchemy reads: say nothing about it beyond its scheme
        return url.split("://", 1)[0] + "://..."


def _with_driver(url: str) -> str:
    """``postgresql://`` means psycopg (3) to SQLAlchemy 2.1; where only psycopg2 is installed
    (autoaug's ``dev`` extra), use that."""
    import importlib.util

    find = importlib.util.find_spec
    if url.startswith("postgresql://") and find("psycopg") is None and find("psycopg2") is not None:
        return "postgresql+psycopg2://" + url[len("postgresql://") :]
    return url


SCHEMA_ATTEMPTS = 5  # tries at opening a storage whose tables another worker is creating
# What PostgreSQL (and SQLite) say when two processes create the same tables at once.
_SCHEMA_RACE = ("duplicate key value", "already exists", "UniqueViolation", "database is locked")


def make_storage(url: str, heartbeat: int) -> optuna.storages.RDBStorage:
    """An RDB storage with heartbeats: a trial silent for ``2 × heartbeat`` seconds is failed."""
    if heartbeat < 1:
        raise ValueError(f"heartbeat must be a positive number of seconds, got {heartbeat}")

    def report(study: optuna.Study, trial: FrozenTrial) -> None:
        who = trial.user_attrs.get("worker", "a worker")
        print(f"trial {trial.number} ({who}) stopped sending heartbeats: marked failed", flush=True)

    engine = {"pool_pre_ping": True} if url.startswith("postgresql") else {}
    for attempt in range(SCHEMA_ATTEMPTS):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(
                    _with_driver(url),
                    engine_kwargs=engine,
                    heartbeat_interval=heartbeat,
                    grace_period=2 * heartbeat,
                    heartbeat_stale_trial_callback=report,
                )
        except (ImportError, ModuleNotFoundError) as e:
            raise ValueError(f"storage {public_url(url)}: its database driver is missing ({e})") from None
        except Exception as e:  # SQLAlchemy's connection errors carry the reason in their text
            text = str(e)
            if attempt + 1 < SCHEMA_ATTEMPTS and any(m in text for m in _SCHEMA_RACE):
                # Another worker is creating the same tables in a new database right now: once it
                # has, opening the storage finds them.
                time.sleep(0.2 + random.random() * (attempt + 1))
                continue
            reason = text.strip().splitlines()[0] if text.strip() else type(e).__name__
            raise ValueError(f"cannot open storage {public_url(url)}: {reason}") from None
    raise AssertionError("unreachable")


# ---------------------------------------------------------------------------- the budget


def _count(study: optuna.Study) -> tuple[list[FrozenTrial], list[FrozenTrial]]:
    trials = study.get_trials(deepcopy=False, states=(*FINISHED, TrialState.RUNNING))
    return [t for t in trials if t.state in FINISHED], [t for t in trials if t.state == TrialState.RUNNING]


def claim_budget(study: optuna.Study, trial: optuna.Trial, n_trials: int) -> None:
    """Let ``trial`` run only if the study's budget has room for it.

    Finished trials count; running ones count in the order of their numbers. Optuna numbers
    a study's trials under a row lock on the study, so a trial created after another one looked
    has a larger number and sees it: concurrent workers never start more than ``n_trials``.

    Raises:
        BudgetFull: the finished trials and the running ones numbered before this one fill it.
    """
    finished, running = _count(study)
    ahead = sum(1 for t in running if t.number <= trial.number)
    if len(finished) + ahead > n_trials:
        raise BudgetFull(f"trial {trial.number}: the study already has its {n_trials} trials")


# ------------------------------------------------------------------------------ a trial


class _ReportingStep(PolicyStep):
    """A fixed policy's step that reports validation accuracy to Optuna after each epoch."""

    def __init__(self, policy: Policy, seed: int, trial: optuna.Trial, epochs: int):
        super().__init__(policy, seed)
        self.trial = trial
        self.epochs = epochs
        self.values: list[float] = []

    def end_epoch(self, trainer: Trainer, epoch: int) -> dict[str, Any]:
        acc = trainer.last_val["val_acc"]  # what the trainer measured this epoch (_TrialTrainer)
        self.values.append(acc)
        self.trial.report(acc, step=epoch + 1)
        # The last epoch's value is the trial's result; pruning it would throw that away.
        if epoch + 1 < self.epochs and self.trial.should_prune():
            raise optuna.TrialPruned(f"validation accuracy {acc:.4f} after epoch {epoch + 1}")
        return {}


class _TrialTrainer(Trainer):
    """A trainer that keeps the validation metrics of its last evaluation for the step to report
    (the epoch's validation is measured once, by the trainer)."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.last_val: dict[str, float] = {}

    def evaluate(self, split_name: str) -> dict[str, float]:
        metrics = super().evaluate(split_name)
        if split_name == "val":
            self.last_val = metrics
        return metrics


def _trial_config(config: SearchConfig, out: Path, images: int) -> TrainConfig:
    """A trial's training settings: the search's, for ``trial_epochs``, in batches of at most the
    ``images`` the trial trains on (a small dataset's part still gives a batch an epoch)."""
    fields = TrainConfig.fields()
    values = {k: v for k, v in dataclasses.asdict(config).items() if k in fields}
    values.update(
        epochs=config.optuna.trial_epochs,
        out=str(out),
        progress=False,
        policy="none",
        test_every=10**9,
        batch_size=min(config.batch_size, images),
    )
    return TrainConfig.from_dict(values)


def _tidy_trial_dir(out: Path) -> None:
    for name in ("checkpoint.pt", "model.pt"):  # the proxy model is not kept; its numbers are
        (out / name).unlink(missing_ok=True)


def density_proxy(config: SearchConfig, data: Dataset, draws: int | None = None) -> DensityProxy:
    """The searcher's density proxy for ``config`` (its model in ``OUT/proxy``, the search's
    training settings), with ``draws`` instead of ``config.optuna.proxy_draws`` where given."""
    own = ("out", "dataset", "seed")  # the proxy's own
    values = dataclasses.asdict(config)
    train = {k: v for k, v in values.items() if k in TrainConfig.fields() and k not in own}
    return DensityProxy(data, holdout=config.optuna.proxy_holdout, draws=draws or config.optuna.proxy_draws, seed=config.seed,
                        out=Path(config.out) / "proxy", images=config.optuna.proxy_images, **train)  # fmt: skip


# ----------------------------------------------------------------------------- searcher


@register
class OptunaSearcher(Searcher):
    """``autoaug search --method optuna``: TPE over policies, each scored by a proxy (density
    matching by default, or a short training)."""

    method = "optuna"

    def __init__(self, config: SearchConfig):
        super().__init__(config)
        if config.optuna.optuna_space not in OPTUNA_SPACES:
            raise ValueError(
                f"unknown optuna space {config.optuna.optuna_space!r}; known: {', '.join(OPTUNA_SPACES)}"
            )
        if config.optuna.proxy not in PROXIES:
            raise ValueError(f"unknown proxy {config.optuna.proxy!r}; known: {', '.join(PROXIES)}")
        if config.optuna.prior not in PRIORS:
            raise ValueError(f"unknown prior {config.optuna.prior!r}; known: {', '.join(PRIORS)}")
        if config.optuna.proxy_score not in SCORES:
            raise ValueError(f"unknown proxy score {config.optuna.proxy_score!r}; known: {', '.join(SCORES)}")
        get_space(config.space)
        make_pruner(config.optuna.pruner, config.optuna.trial_epochs)
        if config.optuna.n_trials < 1 or config.optuna.trial_epochs < 1:
            raise ValueError(
                f"n_trials and trial_epochs must be >= 1, got {config.optuna.n_trials} and {config.optuna.trial_epochs}"
            )
        self.out = Path(config.out)
        self.url = storage_url(config)
        self.study_name = config.optuna.study_name or f"autoaug-{config.dataset}-{config.optuna.optuna_space}"
        self.worker = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"  # host:pid:run
        self.dataset: Dataset | None = None  # what the train proxy trains (D_M) and validates on (D_A)
        self.proxy: DensityProxy | None = None
        self.vacuous: list[str] = []  # ops that change no training image: left out of every policy
        self.diverged = 0  # this worker's trials in a row whose training diverged

    # ------------------------------------------------------------------------- study

    def study_settings(self) -> dict[str, Any]:
        """The settings that define the study's objective; joining workers must agree."""
        values = dataclasses.asdict(self.config) | dataclasses.asdict(
            self.config.optuna
        )  # flat, as studies hold them
        keys = STUDY_KEYS + PROXY_KEYS[self.config.optuna.proxy]
        return {k: values[k] for k in keys}

    def schema(self) -> dict[str, Any]:
        """What the study's trials are: the schema version, the space and its parameter names."""
        cfg = self.config
        return {"version": STUDY_SCHEMA, "optuna_space": cfg.optuna.optuna_space, "space": cfg.space,
                "params": sorted(identity_params(cfg.optuna.optuna_space, cfg.space))}  # fmt: skip

    def anchors(self) -> list[dict[str, Any]]:
        """The parameters of the study's first trials: no augmentation, then (``prior``
        randaugment, where the space has RandAugment's ops) RandAugment's point."""
        cfg = self.config
        fixed = [identity_params(cfg.optuna.optuna_space, cfg.space)]
        prior = (
            prior_params(cfg.optuna.optuna_space, cfg.space) if cfg.optuna.prior == "randaugment" else None
        )
        return [*fixed, prior] if prior else fixed

    def pruner(self) -> optuna.pruners.BasePruner:
        """The density proxy scores a policy in one step: nothing to prune before it means something."""
        if self.config.optuna.proxy == "density":
            return optuna.pruners.NopPruner()
        return make_pruner(self.config.optuna.pruner, self.config.optuna.trial_epochs)

    def open_study(self) -> optuna.Study:
        """Create the study, or join it if it exists (checking that its schema and settings match)."""
        cfg = self.config
        self.out.mkdir(parents=True, exist_ok=True)
        storage = make_storage(self.url, self.config.optuna.heartbeat)
        startup = min(10, max(4, cfg.optuna.n_trials // 4))  # TPE's random start-up, a quarter of the budget
        study = optuna.create_study(
            storage=storage,
            study_name=self.study_name,
            sampler=TrialSeededTPE(
                cfg.seed,
                fixed=self.anchors(),
                n_startup_trials=startup,
                multivariate=True,
            ),
            pruner=self.pruner(),
            direction="maximize",
            load_if_exists=True,
        )
        # One attribute holds the schema and the settings, so that workers creating the study at
        # once never see half of it.
        mine = self.study_settings() | {"schema": self.schema()}
        theirs = study.user_attrs.get("autoaug")
        made = study.get_trials(deepcopy=False)
        if (theirs is None and made) or (theirs is not None and "schema" not in theirs):
            names = sorted({k for t in made for k in t.params})
            raise ValueError(
                f"study {self.study_name!r} in {public_url(self.url)} was made by an older autoaug "
                f"(parameters {', '.join(names[:4]) or 'none'}{', ...' if len(names) > 4 else ''}; this "
                f"version searches {self.config.optuna.optuna_space!r}); give a new --study-name"
            )
        if theirs is None:
            study.set_user_attr("autoaug", mine)
            return study
        if theirs["schema"] != mine["schema"]:
            schema, old = mine["schema"], theirs["schema"]
            diff = {k: (old.get(k), schema[k]) for k in schema if old.get(k) != schema[k]}
            if len(diff) > 1:  # the parameter names follow from the space
                diff.pop("params", None)
            raise ValueError(
                f"study {self.study_name!r} in {public_url(self.url)} holds other trials (study's, this "
                f"run's): {diff}; give a new --study-name"
            )
        # A setting added since the study was made: it held the value that means the former behaviour.
        theirs = {k: v for k, v in ADDED_SETTINGS.items() if k in mine} | theirs
        if theirs != mine:
            keys = sorted(set(mine) | set(theirs))
            diff = {k: (theirs.get(k), mine.get(k)) for k in keys if theirs.get(k) != mine.get(k)}
            raise ValueError(
                f"study {self.study_name!r} in {public_url(self.url)} was made with other settings "
                f"(study's, this run's): {diff}; use the same settings or another --study-name"
            )
        return study

    def fit_proxy(self, study: optuna.Study) -> None:
        """Load the data; for the density proxy, train (or reload) its model and record its clean
        accuracy in the study, so that workers can tell whether their models agree."""
        cfg = self.config
        data = dataset_of(cfg)
        self.vacuous = searched_ops(cfg, data.train)[1]
        fit, held = density_split(data, cfg.optuna.proxy_holdout, cfg.seed, cfg.workers)
        if cfg.optuna.proxy == "train":  # every trial validates on D_A each epoch: decoded once if it may be
            held = in_memory(held, cfg.stream, cfg.memory_budget, cfg.workers)
        self.dataset = Dataset(data.name, fit, held, data.test, data.num_classes, data.class_names,
                               data.ground_truth, data.source)  # fmt: skip
        if cfg.optuna.proxy != "density":
            return
        self.proxy = density_proxy(cfg, data)
        fitted = self.proxy.fit()
        how = "loaded" if fitted["reused"] else f"trained in {fitted['seconds']:.0f}s"
        scored = fitted["scored_images"]
        print(f"density proxy: {cfg.model} {how} on {fitted['fit_images']} images, clean accuracy "
              f"{fitted['clean_acc']:.4f} on the {fitted['held_out_images']} held out"
              + (f" (trials score {scored} of them)" if scored < fitted["held_out_images"] else ""), flush=True)  # fmt: skip
        theirs = study.user_attrs.get("proxy_model")
        if theirs is None:
            study.set_user_attr("proxy_model", {"clean_acc": fitted["clean_acc"], "worker": self.worker,
                                                "scored_images": scored})  # fmt: skip
        elif abs(theirs["clean_acc"] - fitted["clean_acc"]) > 0.005:
            print(f"note: this worker's proxy model scores {fitted['clean_acc']:.4f} clean, the study's first "
                  f"{theirs['clean_acc']:.4f} ({theirs['worker']}): other hardware; its scores compare "
                  "only roughly", flush=True)  # fmt: skip

    # ------------------------------------------------------------------------ trials

    def objective(self, trial: optuna.Trial) -> float:
        cfg = self.config
        trial.set_user_attr("worker", self.worker)
        try:
            claim_budget(trial.study, trial, cfg.optuna.n_trials)
        except BudgetFull:
            trial.set_user_attr("surplus", True)  # not a failure of the trial: it never ran
            raise
        params = suggest_params(trial, cfg.optuna.optuna_space, cfg.space)
        policy = policy_from_params(params, cfg.optuna.optuna_space, cfg.space, cfg.interpolation,
                                    name=f"optuna_trial{trial.number}", skip=self.vacuous)  # fmt: skip
        out = self.out / "trials" / f"{trial.number:04d}"
        out.mkdir(parents=True, exist_ok=True)
        policy.save(out / "policy.json")
        if self.proxy is not None:
            scores = self.proxy.score(policy)
            for key in ("acc", "loss", "min_loss", "best", "seconds"):
                trial.set_user_attr(key, scores[key])
            print(f"trial {trial.number}: {cfg.optuna.proxy_score} {scores[cfg.optuna.proxy_score]:.4f} (mean accuracy "
                  f"{scores['acc']:.4f} over {cfg.optuna.proxy_draws} draws, {scores['seconds']:.0f}s)", flush=True)  # fmt: skip
            return float(scores[cfg.optuna.proxy_score]) * (
                -1 if cfg.optuna.proxy_score.endswith("loss") else 1
            )
        step = _ReportingStep(policy, cfg.seed, trial, cfg.optuna.trial_epochs)
        trainer = _TrialTrainer(
            _trial_config(cfg, out, len(self.dataset.train)), dataset=self.dataset, step=step
        )
        t0 = time.perf_counter()
        try:
            metrics = trainer.fit()
        except optuna.TrialPruned:
            trial.set_user_attr("seconds", time.perf_counter() - t0)
            print(f"trial {trial.number}: pruned after epoch {len(step.values)} "
                  f"(val acc {step.values[-1]:.4f}, {time.perf_counter() - t0:.0f}s)", flush=True)  # fmt: skip
            self.diverged = 0
            raise
        except TrainingDiverged as e:
            self.diverged += 1
            print(f"trial {trial.number}: failed: {e}", flush=True)
            raise
        finally:
            _tidy_trial_dir(out)
        seconds = time.perf_counter() - t0
        self.diverged = 0
        trial.set_user_attr("seconds", seconds)
        trial.set_user_attr("test_acc", metrics.get("test_acc"))
        print(f"trial {trial.number}: val acc {metrics['val_acc']:.4f}, test acc "
              f"{metrics.get('test_acc', math.nan):.4f} ({seconds:.0f}s)", flush=True)  # fmt: skip
        return float(metrics["val_acc"])

    def work(self, study: optuna.Study) -> None:
        """Run trials until the study holds ``n_trials`` finished ones (this worker's share)."""
        poll = min(self.config.optuna.heartbeat, 5)
        while True:
            finished, running = _count(study)
            if len(finished) >= self.config.optuna.n_trials:
                return
            if len(finished) + len(running) >= self.config.optuna.n_trials:
                # The budget is spoken for; wait in case a running trial's worker dies.
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                    optuna.storages.fail_stale_trials(study)
                time.sleep(poll)
                continue
            study.optimize(self.objective, n_trials=1, catch=(BudgetFull, TrainingDiverged))
            self.write_outputs(study)  # after every trial: a killed search leaves its best policy so far
            if self.diverged >= 3:
                raise TrainingDiverged("three trials in a row diverged (NaN loss); try a lower --lr")

    # ----------------------------------------------------------------------- outputs

    def _scored_images(self, study: optuna.Study) -> int | str:
        """The held-out images a trial is scored on: this worker's proxy's, else as the study
        recorded them when its proxy model was first fitted ("?" for a study from before)."""
        if self.config.optuna.proxy == "train":
            return len(self.dataset.val) if self.dataset is not None else "?"
        if self.proxy is not None:
            return len(self.proxy.rows)
        return study.user_attrs.get("proxy_model", {}).get("scored_images", "?")

    def _kept_prior(
        self, study: optuna.Study, complete: list[FrozenTrial], best: FrozenTrial
    ) -> FrozenTrial | None:
        """The prior's trial where it scores within one binomial standard error of the best
        trial (:func:`tied_with_best`: the scores cannot tell them apart), else None (also for a
        loss score, whose noise is not known here, and for ``prior`` none)."""
        cfg = self.config
        want = self.anchors()[1:]
        if not want or (cfg.optuna.proxy == "density" and cfg.optuna.proxy_score.endswith("loss")):
            return None
        found = [t for t in complete if t.number == 1 and t.params == want[0]]
        images = self._scored_images(study)
        if not found or not isinstance(images, int) or not images:
            return None
        se = tied_with_best([best.value], images)[1]
        return found[0] if found[0].value >= best.value - se else None

    def _noise_line(self, study: optuna.Study, best: FrozenTrial | None) -> str | None:
        """A line saying how many complete trials score within the noise of the best one (the
        binomial standard error of an accuracy over the images the trials are scored on), for
        the scores that are accuracies; None where that is not known here (a loss score, or a
        worker that scored no trial)."""
        cfg = self.config
        if best is None or (cfg.optuna.proxy == "density" and cfg.optuna.proxy_score.endswith("loss")):
            return None
        images = self._scored_images(study)
        values = [t.value for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))]
        if not isinstance(images, int) or not images or not values:
            return None
        tied, se = tied_with_best(values, images)
        noise = f"(one binomial standard error over the {images} images they are scored on)"
        if tied == 1:
            return f"no other of the {len(values)} complete trials scores within {se:.4f} of the best {noise}"
        return (f"{tied} of {len(values)} complete trials score within {se:.4f} of the best {noise}: the scores "
                "do not tell those apart")  # fmt: skip

    def write_outputs(self, study: optuna.Study) -> dict[str, Any]:
        """Write the best policy, the trial table, the plots and the study's address."""
        cfg = self.config
        trials = study.get_trials(deepcopy=False)
        rows = [_trial_row(t) for t in trials]
        atomic_write_text(self.out / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
        shown = dataclasses.replace(
            cfg,
            optuna=dataclasses.replace(cfg.optuna, storage=public_url(self.url), study_name=self.study_name),
        )
        atomic_write_text(self.out / "config.yaml", to_yaml(shown, CONFIG_HEADER))
        record = {"storage": public_url(self.url), "study_name": self.study_name,
                  "dashboard": f"optuna-dashboard {public_url(self.url)}"}  # fmt: skip
        atomic_write_text(self.out / "study.json", json.dumps(record, indent=2) + "\n")
        complete = [t for t in trials if t.state == TrialState.COMPLETE]
        if not complete:
            policy = Policy.identity()
            best = None
        else:
            ranked = sorted(complete, key=lambda t: (-t.value, t.number))  # ties: the earlier trial
            best, top = ranked[0], ranked[: cfg.optuna.export_top]
            prior = self._kept_prior(study, complete, best)
            if prior is not None:  # the scores do not tell the best from the prior: the prior stands
                beaten_by, best, top = best, prior, [prior]
            members = [policy_from_params(t.params, cfg.optuna.optuna_space, cfg.space, cfg.interpolation,
                                          name=f"optuna_{cfg.dataset}", skip=self.vacuous) for t in top]  # fmt: skip
            policy = members[0] if len(members) == 1 else Policy.mixture(members, name=members[0].name)
            policy.meta = {"searcher": "optuna", "study": self.study_name, "trial": best.number,
                           "mixture_of_trials": [t.number for t in top], "mixture_scores": [t.value for t in top],
                           "proxy": cfg.optuna.proxy, "score": best.value, "test_acc": best.user_attrs.get("test_acc"),
                           "optuna_space": cfg.optuna.optuna_space, "space": cfg.space, "seed": cfg.seed,
                           "dataset": cfg.dataset, "params": best.params, "prior": cfg.optuna.prior,
                           "prior_kept": prior is not None}  # fmt: skip
            if cfg.optuna.proxy == "density":
                policy.meta |= {"proxy_score": cfg.optuna.proxy_score, "proxy_draws": cfg.optuna.proxy_draws,
                                "proxy_epochs": cfg.epochs, "mean_acc": best.user_attrs.get("acc")}  # fmt: skip
            else:
                policy.meta |= {"val_acc": best.value, "trial_epochs": cfg.optuna.trial_epochs}
            if self.dataset is not None:  # translations are a fraction of it; `autoaug export` reads it
                policy.meta["image_size"] = list(self.dataset.image_size)
            if self.vacuous:
                policy.meta["vacuous"] = list(self.vacuous)
            if prior is not None and beaten_by is not prior:
                policy.meta["prior_over"] = {"trial": beaten_by.number, "score": beaten_by.value}
        policy.save(self.out / "policy.json")
        counts = {s.name.lower(): sum(t.state == s for t in trials) for s in TrialState}
        return {"best": best, "policy": policy, "counts": counts}

    def plot(self, study: optuna.Study) -> list[Path]:
        """Optimization history and parameter importances as PNG files (where there is enough
        to draw: importances need two complete trials)."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from optuna.visualization import matplotlib as ovm

        complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        written = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            plots = [("optimization_history.png", ovm.plot_optimization_history)]
            if len(complete) >= 2 and len({t.value for t in complete}) >= 2:
                plots.append(("param_importances.png", ovm.plot_param_importances))
            for name, fn in plots:
                ax = fn(study)
                fig = ax.figure
                fig.set_size_inches(9, 6 if name.startswith("optimization") else 8)
                fig.tight_layout()
                written.append(save_figure_atomic(fig, self.out / name, dpi=100))  # workers may share OUT
                plt.close(fig)
        return written

    # --------------------------------------------------------------------------- run

    def run(self, resume: bool = False) -> SearchResult:
        """Create or join the study, run trials until it has ``n_trials``, write the outputs.

        ``resume`` changes nothing: an existing study is always joined (that is how workers
        share it and how a killed search continues).
        """
        cfg = self.config
        optuna.logging.set_verbosity(optuna.logging.ERROR)  # each trial prints its own line
        study = self.open_study()
        finished, running = _count(study)
        print(f"study {self.study_name!r} in {public_url(self.url)}: {len(finished)} of {cfg.optuna.n_trials} "
              f"trials finished, {len(running)} running; worker {self.worker}", flush=True)  # fmt: skip
        if len(finished) < cfg.optuna.n_trials:
            self.fit_proxy(study)
            self.work(study)
        outputs = self.write_outputs(study)
        plots = self.plot(study)
        best: FrozenTrial | None = outputs["best"]
        counts = outputs["counts"]
        mixed = outputs["policy"].meta.get("mixture_of_trials", [])
        kept = (
            outputs["policy"].meta.get("prior_over", {}) if outputs["policy"].meta.get("prior_kept") else None
        )
        finished_here = sum(1 for t in study.get_trials(deepcopy=False, states=FINISHED)
                            if t.user_attrs.get("worker") == self.worker)  # fmt: skip
        metrics = {"score": best.value if best else None,
                   "test_acc": best.user_attrs.get("test_acc") if best else None}  # fmt: skip
        if cfg.optuna.proxy == "train":
            metrics["val_acc"] = metrics["score"]
        if cfg.optuna.proxy == "density":
            what = (
                (
                    f"density score {best.value:.4f} ({cfg.optuna.proxy_score} over {cfg.optuna.proxy_draws} augmented draws of "
                    f"each of {self._scored_images(study)} held-out images; mean accuracy {best.user_attrs.get('acc', math.nan):.4f})"
                )
                if best
                else ""
            )
        else:
            what = (f"validation accuracy {best.value:.4f} after {cfg.optuna.trial_epochs} epochs "
                    f"(test {best.user_attrs.get('test_acc', math.nan):.4f})") if best else ""  # fmt: skip
        noise = self._noise_line(study, best)
        lines = [
            f"study {self.study_name!r}: {counts['complete']} complete, {counts['pruned']} pruned, "
            f"{counts['fail']} failed trials ({finished_here} finished by this worker)",
            (
                f"best: trial {best.number}, {what}"
                if kept is None
                else f"result: trial {best.number}, RandAugment's point (the prior), {what}; kept because "
                + (
                    f"trial {kept['trial']}'s {kept['score']:.4f} is within the noise of it"
                    if kept.get("trial") is not None
                    else "no trial scores above it"
                )
            )
            if best
            else "no trial completed: policy.json is the identity",
            f"files in {self.out}: policy.json ("
            + (
                f"the mixture of the {len(mixed)} best trials' policies: {', '.join(map(str, mixed))}"
                if len(mixed) > 1
                else "the best trial's policy"
            )
            + "), study.json (storage and study name), "
            f"metrics.jsonl (one line per trial), {', '.join(p.name for p in plots)}, config.yaml, trials/",
            f"the study: optuna-dashboard {public_url(self.url)}",
        ]
        if noise:
            lines.insert(2, noise)
        summary = {**metrics, "study": self.study_name, "storage": public_url(self.url),
                   "best_trial": best.number if best else None, "trials": counts,
                   "finished_by_worker": finished_here, "lines": lines}  # fmt: skip
        return SearchResult(policy=outputs["policy"], metrics=metrics, out=self.out, summary=summary)


def tied_with_best(values: list[float], images: int) -> tuple[int, float]:
    """How many of ``values`` (accuracies, each over the same ``images`` images) lie within one
    binomial standard error of the best of them, and that error: scores that close are not told
    apart by the images they were measured on.

    Examples:
        >>> tied_with_best([0.80, 0.78, 0.70], 100)
        (2, 0.04)
    """
    best = max(values)
    se = math.sqrt(best * (1 - best) / images)
    return sum(v >= best - se for v in values), se


def _trial_row(t: FrozenTrial) -> dict[str, Any]:
    def iso(d: Any) -> str | None:
        return d.isoformat() if d is not None else None

    return {
        "trial": t.number,
        "state": t.state.name.lower(),
        "score": t.value,
        "val_acc": t.value if "acc" not in t.user_attrs else None,  # the train proxy's value
        "mean_acc": t.user_attrs.get("acc"),
        "test_acc": t.user_attrs.get("test_acc"),
        "val_acc_per_epoch": [t.intermediate_values[k] for k in sorted(t.intermediate_values)],
        "seconds": t.user_attrs.get("seconds"),
        "worker": t.user_attrs.get("worker"),
        "surplus": bool(t.user_attrs.get("surplus", False)),
        "start": iso(t.datetime_start),
        "complete": iso(t.datetime_complete),
        "params": t.params,
    }


def best_so_far(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """From ``metrics.jsonl`` rows: each complete trial that raised the best score (validation
    accuracy with the train proxy), in the order trials completed (for curves of accuracy against wall time)."""
    done = sorted(
        (r for r in rows if r["state"] == "complete" and r["complete"]), key=lambda r: r["complete"]
    )
    out, best = [], -math.inf
    for r in done:
        value = r.get("score", r.get("val_acc"))
        if value > best:
            best = value
            out.append(r)
    return out


__all__ = [
    "FAMILIES",
    "OPTUNA_SPACES",
    "PROXIES",
    "PRUNERS",
    "BudgetFull",
    "OptunaSearcher",
    "TrialSeededTPE",
    "best_so_far",
    "claim_budget",
    "density_proxy",
    "families_of",
    "identity_params",
    "make_pruner",
    "make_storage",
    "policy_from_params",
    "public_url",
    "storage_url",
    "suggest_params",
]
