"""The MCMC search inside the user's own training step: a few lines, no autoaug trainer.

The invariance-constrained search (:mod:`autoaug.search.mcmc`) is an online method: its
augmentation follows the model while it trains. :class:`OnlineAugment` puts it in any loop
(plain PyTorch, Lightning, a mixed-precision or DistributedDataParallel loop) around any
``nn.Module`` classifier::

    aug = autoaug.OnlineAugment(space="symmetry", normalize=(mean, std), out="runs/online")
    for epoch in range(epochs):
        for x, y in loader:                      # x: float in [0, 1] (or uint8), not normalized
            loss = aug.loss(model, x, y)         # clean + constrained augmented terms
            optimizer.zero_grad(); loss.backward(); optimizer.step()
        aug.end_epoch()                          # history.json and policy.json in out
    aug.save_run("runs/online", model, dataset="fashion-mnist", model_name="small_cnn")
    aug.policy().save("policy.json")             # the learned policy so far

``aug.loss`` draws each image's augmentation with Metropolis-Hastings steps under the model
(no-grad forwards), computes ``criterion(model(x), y) + Σ_g λ_g·ℓ_g`` and takes the dual step;
the model's own optimizer does the rest. The device, autocast, channels_last and
DistributedDataParallel are the caller's: the ops run in float32 whatever autocast says, and
under ``torch.distributed`` the dual step and the epoch's statistics are all-reduced (every rank
calls ``loss`` once per step and ``end_epoch`` at each epoch's end, as with any collective).

The autoaug trainer runs its mcmc search through this class (:meth:`OnlineAugment.trainer_step`),
so a plain loop that feeds the trainer's batches in the trainer's order reproduces
``autoaug search --method mcmc`` (tests/test_online.py).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from autoaug.data import Split
from autoaug.policy import Policy, atomic_write_text
from autoaug.search.base import SearchConfig
from autoaug.search.bilevel import BilevelStep
from autoaug.search.mcmc import MCMCStep
from autoaug.settings import to_yaml

Normalize = Callable[[Tensor], Tensor]
_NOT_SETTINGS = ("out", "dataset", "model", "epochs", "policy")  # the loop's, not the search's
METHODS = ("mcmc", "bilevel")


def _rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def _world() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def _split(name: str, data: Any) -> Split:
    """``(images, labels)`` as a :class:`~autoaug.data.Split` of uint8 images."""
    try:
        images, labels = data
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected (images, labels) tensors, got {type(data).__name__}") from None
    if not isinstance(images, Tensor) or images.dim() != 4 or len(labels) != len(images) or len(images) < 2:
        raise ValueError(f"{name}: expected (B×C×H×W images, B labels) with B >= 2, got "
                         f"{tuple(getattr(images, 'shape', ()))} and {len(labels)} labels")  # fmt: skip
    if images.is_floating_point():
        images = (images.clamp(0, 1) * 255).round().to(torch.uint8)
    elif images.dtype != torch.uint8:
        raise ValueError(f"{name}: images must be uint8 or float in [0, 1], got {images.dtype}")
    return Split(images.cpu(), torch.as_tensor(labels).cpu().long())


class _Loop:
    """What :class:`~autoaug.search.bilevel.BilevelStep` reads of a trainer, from the caller's loop:
    their model and optimizer (its learning rate now), the normalization, the held-out images."""

    def __init__(self, aug: OnlineAugment, model: Callable[[Tensor], Tensor], device: torch.device):
        self.net = model
        self.model = getattr(model, "module", model)  # the weights (DistributedDataParallel's inner module)
        self.normalize = aug.normalize
        self.optimizer = aug.optimizer
        self.dataset = aug.data
        self.device = device
        self.cuda = False  # autocast is the caller's: their region covers the step
        self.config = aug.config
        self.rank, self.world = _rank(), _world()

    def forward(self, images: Tensor, net: Callable[[Tensor], Tensor] | None = None) -> Tensor:
        return (net or self.net)(self.normalize(images)).float()


def _normalizer(
    normalize: Normalize | tuple[Sequence[float], Sequence[float]] | None,
) -> tuple[Normalize, Any]:
    """The callable that turns images in [0, 1] into the model's input, and what to record of it."""
    if normalize is None:
        return (lambda x: x), "none"
    if callable(normalize):
        return normalize, "callable"
    try:
        mean, std = (torch.as_tensor(v, dtype=torch.float32).flatten() for v in normalize)
    except (TypeError, ValueError):
        raise ValueError(
            f"normalize {normalize!r}: expected None, a callable, or (mean, std) per channel"
        ) from None
    if len(mean) != len(std) or (std <= 0).any():
        raise ValueError(f"normalize: mean {mean.tolist()} and std {std.tolist()} must have one value per "
                         "channel each, std > 0")  # fmt: skip

    def apply(x: Tensor) -> Tensor:
        m = mean.to(x.device, x.dtype).view(1, -1, 1, 1)
        s = std.to(x.device, x.dtype).view(1, -1, 1, 1)
        return (x - m) / s

    return apply, {"mean": mean.tolist(), "std": std.tolist()}


class OnlineAugment:
    """The MCMC augmentation search (or bilevel's online mode), driven from the caller's training step.

    Args:
        space: the policy space (``autoaug spaces``).
        method: ``mcmc`` (the invariance-constrained sampler, the default) or ``bilevel`` (a
            differentiable policy by one-step unrolled hypergradient on ``val``, trained with
            the model: ``autoaug search --method bilevel --mode online``).
        normalize: what turns images in [0, 1] into the model's input: ``(mean, std)`` per
            channel, a callable, or None (the model takes [0, 1] images).
        out: a directory where :meth:`end_epoch` writes ``history.json`` and ``policy.json``
            (rank 0 only), or None.
        steps_per_epoch: close an epoch (:meth:`end_epoch`) by itself every this many
            :meth:`loss` calls, for loops without epochs; None: the caller calls ``end_epoch``.
        seed: seeds the sampler's draws (the same seed and batches give the same search).
        val: bilevel only, required: ``(images, labels)`` held out from training (uint8 or float
            in [0, 1]), whose loss after an unrolled step the policy descends.
        optimizer: bilevel only, required: the model's optimizer (the unrolled step takes its
            learning rate of the moment).
        probe: bilevel only: ``(images, labels)`` of training images on which each epoch's
            per-op losses are measured (default: ``val``).
        ops: search only these ops of ``space`` (default: all; ``autoaug.search.base.searched_ops``
            leaves out those that change no image of a dataset, as ``autoaug search`` does).
        config: a whole :class:`~autoaug.search.base.SearchConfig` instead of the keywords.
        **settings: the method's settings by name (mcmc: ``epsilon``, ``dual_lr``, ``levels``,
            ``constraint``, ``n_aug``, ``chain_length``, ``relax_alpha``, ``relax_lr``,
            ``policy_epochs``, ``fused``; bilevel: ``stages``, ``policy_lr``, ``policy_every``,
            ``unroll``, ...) and ``interpolation``, ``label_smoothing``; ``autoaug search
            --method M --help`` gives each one's meaning and default.

    Raises:
        ValueError: an unknown setting or a value out of its range (named in the message).

    Examples:
        >>> import torch, autoaug
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 4))
        >>> aug = autoaug.OnlineAugment(space="symmetry", seed=0)
        >>> loss = aug.loss(model, torch.rand(16, 3, 8, 8), torch.randint(4, (16,)))
        >>> loss.backward()
        >>> record = aug.end_epoch()
        >>> sorted(aug.last)
        ['acc', 'aug_acc', 'aug_loss', 'clean_loss', 'loss']
    """

    def __init__(
        self,
        space: str = "symmetry",
        *,
        method: str = "mcmc",
        normalize: Normalize | tuple[Sequence[float], Sequence[float]] | None = None,
        out: str | Path | None = None,
        steps_per_epoch: int | None = None,
        seed: int = 0,
        val: tuple[Tensor, Tensor] | None = None,
        optimizer: torch.optim.Optimizer | None = None,
        probe: tuple[Tensor, Tensor] | None = None,
        ops: Sequence[str] | None = None,
        config: SearchConfig | None = None,
        **settings: Any,
    ):
        if config is None:
            bad = [k for k in settings if k in _NOT_SETTINGS]
            if bad:
                raise ValueError(f"OnlineAugment does not take {', '.join(map(repr, bad))}: the training "
                                 "loop is the caller's")  # fmt: skip
            if method not in METHODS:
                raise ValueError(f"method {method!r}: expected one of {', '.join(METHODS)}")
            if method == "bilevel":
                settings.setdefault("mode", "online")
            config = SearchConfig.of(method=method, space=space, seed=seed, **settings)
        elif settings:
            raise ValueError(
                f"give the settings either in config or as keywords, not both ({sorted(settings)})"
            )
        if config.method not in METHODS:
            raise ValueError(
                f"OnlineAugment runs {' or '.join(METHODS)}; the config says method {config.method!r}"
            )
        if config.method == "bilevel" and config.bilevel.mode != "online":
            raise ValueError("bilevel's search mode trains a proxy model of its own: use autoaug search --method "
                             "bilevel; in a loop of yours it runs online (mode='online')")  # fmt: skip
        if steps_per_epoch is not None and steps_per_epoch < 1:
            raise ValueError(f"steps_per_epoch must be >= 1 or None, got {steps_per_epoch}")
        self.config = config
        self.method = config.method
        self.core: MCMCStep | BilevelStep
        self.optimizer = optimizer
        self.data: Any = None
        self._loop: _Loop | None = None
        if self.method == "mcmc":
            if val is not None or optimizer is not None or probe is not None:
                raise ValueError("val, optimizer and probe are bilevel's; the mcmc search takes none of them")
            self.core = MCMCStep(config, list(ops) if ops is not None else None)
        else:
            if val is None or optimizer is None:
                raise ValueError("method='bilevel' needs val=(images, labels) held out from training and "
                                 "optimizer= (the model's, for its learning rate)")  # fmt: skip
            held = _split("val", val)
            self.data = _Data(held, _split("probe", probe) if probe is not None else held)
            self.core = BilevelStep(config, list(ops) if ops is not None else None)
        self.normalize, self._normalize_record = _normalizer(normalize)
        self.out = Path(out) if out is not None else None
        self.steps_per_epoch = steps_per_epoch
        self._steps = 0  # loss calls in the current epoch
        self.last: dict[str, float] = {}  # the last batch's numbers
        self.epoch_numbers: dict[str, float] = {}  # sums over the current epoch's batches
        self.epoch_logs: list[dict[str, Any]] = []  # one per closed epoch (means of the batches' numbers)
        self.closed: dict[str, Any] = {}  # what the search logged of the last closed epoch

    # ---------------------------------------------------------------------- the step

    def loss(
        self,
        model: Callable[[Tensor], Tensor],
        images: Tensor,
        labels: Tensor,
        criterion: Callable[[Tensor, Tensor], Tensor] | None = None,
        index: Tensor | None = None,
        net: nn.Module | None = None,
    ) -> Tensor:
        """The loss of one training batch: ``criterion(model(x), y) + Σ_g λ_g·ℓ_g`` over the
        augmented copies the sampler drew; backpropagate it as usual. Also moves the sampler and
        the dual variables (not the model: that is the caller's optimizer).

        Args:
            model: the classifier (any callable from a batch to logits: an ``nn.Module``, a
                DistributedDataParallel wrapper, a compiled model). It gets ``normalize(x)``.
            images: B×C×H×W, float in [0, 1] or uint8, on the model's device, not normalized.
            labels: B class indices.
            criterion: the clean term, ``criterion(logits, labels)`` (default: cross-entropy with
                ``label_smoothing``).
            index: each image's index in the dataset: keeps a chain per image across epochs
                (the method's sampler); without it a chain starts from a uniform draw each visit.
            net: the module whose batch-norm running statistics the sampler's scoring passes
                leave as they were (default: ``model`` when it is an ``nn.Module``); give it when
                ``model`` is a function around the module.

        Raises:
            ValueError: images that are not a B×C×H×W batch in [0, 1] or uint8, or labels of
                another length.
        """
        if not isinstance(images, Tensor) or images.dim() != 4:
            raise ValueError(
                f"images: expected a B×C×H×W tensor, got {getattr(images, 'shape', type(images))}"
            )
        if len(labels) != len(images):
            raise ValueError(f"labels: {len(labels)} for {len(images)} images")
        if images.dtype == torch.uint8:
            images = images.float() / 255.0
        elif not images.is_floating_point():
            raise ValueError(f"images: expected float in [0, 1] or uint8, got {images.dtype}")
        if isinstance(self.core, MCMCStep):
            normalize = self.normalize

            def forward(x: Tensor) -> Tensor:
                return model(normalize(x))

            if net is None and isinstance(model, nn.Module):
                net = model
            total, numbers = self.core.step(
                forward, images, labels, index=index, criterion=criterion, net=net
            )
        else:
            if criterion is not None:
                raise ValueError("criterion: the bilevel search's training loss is its cross-entropy")
            first = self._loop is None
            self._loop = _Loop(self, model, images.device)
            if first:
                self.data.image_size = (int(images.shape[-2]), int(images.shape[-1]))
                self.core.bind(self._loop)  # type: ignore[arg-type]
            total, numbers = self.core.loss(self._loop, images, labels)  # type: ignore[arg-type]
        self.last = numbers
        for k, v in numbers.items():
            self.epoch_numbers[k] = self.epoch_numbers.get(k, 0.0) + v
        self._steps += 1
        if self.steps_per_epoch is not None and self._steps >= self.steps_per_epoch:
            self.end_epoch()
        return total

    def end_epoch(self) -> dict[str, Any]:
        """Close an epoch: record its statistics in :attr:`history` (all-reduced under
        torch.distributed: call it on every rank) and, with ``out``, write ``history.json`` and
        ``policy.json`` there (rank 0). Returns the epoch's record."""
        epoch = len(self.core.history)
        if isinstance(self.core, MCMCStep):
            numbers = self.core.close_epoch(epoch)
        elif self._loop is None:
            raise ValueError("end_epoch before any loss: the bilevel search probes the model it has seen")
        else:
            numbers = self.core.close_epoch(self._loop, epoch)  # type: ignore[arg-type]
        self.closed = numbers
        steps = max(self._steps, 1)
        self.epoch_logs.append({"epoch": epoch + 1, "steps": self._steps,
                                **{f"train_{k}": v / steps for k, v in self.epoch_numbers.items()}, **numbers})  # fmt: skip
        self._steps, self.epoch_numbers = 0, {}
        if self.out is not None and _rank() == 0:
            self.core.write_outputs(self.out)
        return self.core.history[-1]

    # -------------------------------------------------------------------- what it learned

    @property
    def history(self) -> list[dict[str, Any]]:
        """One record per closed epoch: acceptance, λ and relaxation per op, each op's augmented
        loss, the histogram of the states trained on (what ``autoaug analyze`` reads)."""
        return self.core.history

    @property
    def ops(self) -> list[str]:
        return self.core.states.ops if isinstance(self.core, MCMCStep) else self.core.policy.ops

    @property
    def dual(self) -> dict[str, float]:
        """The current dual variable of each op (one ``all`` with a single constraint, or bilevel's)."""
        if isinstance(self.core, BilevelStep):
            return {"all": float(self.core.lam)}
        lam = self.core.lam.tolist()
        return dict(zip(self.ops, lam)) if self.core.per_op else {"all": lam[0]}

    def policy(self) -> Policy:
        """The learned policy so far (over the closed epochs): what the model was trained on, as a
        policy for ``autoaug export`` or a new training.

        Raises:
            ValueError: no epoch has been closed yet.
        """
        return self.core.learned_policy()

    # ------------------------------------------------------------------- checkpoints

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue the search (for the caller's checkpoint)."""
        return {"core": self.core.state_dict(), "steps": self._steps, "epoch_numbers": dict(self.epoch_numbers),
                "epoch_logs": json.dumps(self.epoch_logs), "config": json.dumps(self.config.to_dict())}  # fmt: skip

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`state_dict`.

        Raises:
            ValueError: a state of a search with another space, number of levels or constraint.
        """
        theirs = json.loads(state.get("config", "{}"))
        mine = self.config.to_dict()
        differ = [k for k in ("space", "method") if theirs.get(k, mine[k]) != mine[k]]
        if not differ and self.method == "mcmc":
            differ += [f"mcmc.{k}" for k in ("levels", "constraint")
                       if theirs.get("mcmc", {}).get(k, mine["mcmc"][k]) != mine["mcmc"][k]]  # fmt: skip
        if differ:
            raise ValueError(f"this state is of another search: {', '.join(differ)} differ")
        self.core.load_state_dict(state["core"])
        self._steps = int(state.get("steps", 0))
        self.epoch_numbers = dict(state.get("epoch_numbers", {}))
        self.epoch_logs = json.loads(state.get("epoch_logs", "[]"))

    # ----------------------------------------------------------------------- run files

    def save_run(
        self,
        out: str | Path,
        model: nn.Module | None = None,
        *,
        dataset: str | None = None,
        model_name: str | None = None,
        **info: Any,
    ) -> Path:
        """Write a run directory that ``autoaug analyze`` and ``autoaug export`` read:
        ``history.json``, ``policy.json``, ``metrics.jsonl`` (one line per epoch), ``config.yaml``
        (the search's settings, ``dataset`` and ``model_name`` where given: ``autoaug analyze``
        rebuilds the model from an autoaug model name and loads the dataset by its name) and
        ``model.pt`` (the weights, unwrapped from DistributedDataParallel). Rank 0 writes; the
        others return at once.

        Args:
            out: the directory.
            model: the trained model (None: no ``model.pt``).
            dataset, model_name: what ``autoaug analyze`` needs to rebuild the run's data and model.
            **info: other settings to record (``train_size``, ``data_root``, ``epochs``, ...).

        Returns:
            ``out``.
        """
        out = Path(out)
        if _rank() != 0:
            return out
        out.mkdir(parents=True, exist_ok=True)
        changes: dict[str, Any] = dict(info)
        if dataset is not None:
            changes["dataset"] = dataset
        if model_name is not None:
            changes["model"] = model_name
        changes.setdefault("epochs", len(self.core.history))
        config = self.config.replace(out=str(out), **changes)
        header = ("Written by autoaug.OnlineAugment.save_run: the search's settings; the training loop was the "
                  "caller's (dataset and model as they were given).")  # fmt: skip
        atomic_write_text(out / "config.yaml", to_yaml(config, header))
        # The caller's normalization, for autoaug analyze (which otherwise assumes the trainer's).
        atomic_write_text(out / "online.json", json.dumps({"normalize": self._normalize_record}) + "\n")
        atomic_write_text(out / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in self.epoch_logs))
        if self.core.history:
            self.core.write_outputs(out)
        if model is not None:
            net = getattr(model, "module", model)  # DistributedDataParallel / compiled wrappers
            net = getattr(net, "_orig_mod", net)
            tmp = out / ".model.pt.tmp"
            torch.save(net.state_dict(), tmp)
            tmp.replace(out / "model.pt")
        return out

    # ------------------------------------------------------------------- the trainer's

    def trainer_step(self) -> _TrainerStep:
        """This search as a :class:`autoaug.train.Step`: how ``autoaug search --method mcmc`` runs it."""
        if not isinstance(self.core, MCMCStep):
            raise ValueError(
                "trainer_step is the mcmc search's; autoaug's trainer runs bilevel by BilevelStep"
            )
        return _TrainerStep(self)


class _Data:
    """The held-out images (``val``) and the probe images (``train``) of a bilevel search in a loop."""

    def __init__(self, val: Split, train: Split):
        self.val, self.train = val, train
        self.image_size: tuple[int, int] | None = None


class _TrainerStep:
    """:class:`OnlineAugment` in :class:`autoaug.train.Trainer`: its forward (normalization,
    autocast), its batches' dataset indices, its outputs in its run directory."""

    def __init__(self, aug: OnlineAugment):
        self.aug = aug

    def loss(self, trainer: Any, images: Tensor, labels: Tensor) -> tuple[Tensor, dict[str, float]]:
        total = self.aug.loss(
            trainer.forward, images, labels, index=getattr(trainer, "batch_index", None), net=trainer.net
        )
        return total, self.aug.last

    def end_epoch(self, trainer: Any, epoch: int) -> dict[str, Any]:
        if len(self.aug.core.history) != epoch:
            raise RuntimeError(
                f"the search has {len(self.aug.core.history)} epochs, the trainer is at {epoch}"
            )
        self.aug.end_epoch()
        if trainer.rank == 0:
            self.aug.core.write_outputs(Path(trainer.config.out))
        return self.aug.closed

    def state_dict(self) -> dict[str, Any]:
        # The trainer's checkpoints hold the sampler's state as they always have.
        return self.aug.core.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.aug.core.load_state_dict(state)


__all__ = ["OnlineAugment"]
