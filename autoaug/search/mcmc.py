"""Invariance-constrained learning with a Metropolis-Hastings sampler (Hounie, Chamon &
Ribeiro, "Automatic Data Augmentation via Invariance-Constrained Learning", ICML 2023).

Learning is ``min_f E[ℓ(f(x), y)]  s.t.  E_{g~π_f}[ℓ(f(g·x), y)] ≤ ε`` with π_f(g|x) ∝ the loss
of the current model on ``g·x``: augmentation goes where the model is least invariant, image by
image. Solved primal-dual:

* **Sampler: one chain per image.** Each training image keeps a chain state ``(op, level,
  sign)``, keyed by its index in the dataset and kept across epochs (:class:`Chains`). At each
  visit the chain takes Metropolis-Hastings steps *on that image with the current model*: the
  kept state's loss and a uniform proposal's loss are computed without grad, the proposal is
  accepted with probability ``min(1, ℓ_proposal / ℓ_current)``, and the model trains on the
  state the step ends in. So the state an image is trained with is a draw of that image's
  π(g|x), and over the epochs the chain mixes towards it. Why this and not the reference
  code's fresh 2-state chain per batch: the same cost (two no-grad forwards per augmented
  image), but a kept chain starts where that image's mass already is, so its law is close to
  π(g|x) after a few visits rather than one step away from uniform. The no-grad forward of
  the kept state is needed because the model moved since the image's last visit (a stored
  loss would be an epoch old and bias the acceptance). Ops without a magnitude or sign
  (``hflip``) have one state: their chains skip the forwards. Without dataset indices (a step
  driven from outside the trainer) a chain starts from a uniform draw each visit.
* **Primal step.** ``CE(f(x), y) + Σ_g λ_g·ℓ_g`` where ``ℓ_g`` is the mean augmented loss of
  the copies with op g (one constraint: ``λ·ℓ``), SGD. With ``fused=True`` the clean and
  augmented images go through the model as one batch: the same arithmetic in fewer, larger
  kernels (what a GPU wants), but BatchNorm's batch statistics then cover both halves.
* **Dual step,** every batch: ``λ ← max(0, λ + η_λ·(ℓ_aug − ε))``.
* **Per-op constraints** (``constraint="per_op"``, the default, beyond the paper): one dual
  variable per op. Each batch the ops are dealt to the augmented copies in turn (an offset
  that moves on by the number of copies every batch, shuffled within the batch), so every op
  is visited evenly at any batch size, also when there are fewer copies than ops; each chain
  then moves over the levels and signs of the op it is dealt. The relaxation is the resilient
  one of Hounie, Chamon & Ribeiro (NeurIPS 2023): ``min ℓ_0 + Σ_g α·u_g²/2  s.t.  ℓ_g ≤ ε + u_g``,
  so ``λ_g ← max(0, λ_g + η_λ·(ℓ_g − ε − u_g))``, ``u_g ← max(0, u_g − η_u·(α·u_g − λ_g))``, and
  at equilibrium ``α·u_g = λ_g`` with the λ_g that weights ``ℓ_g`` in the primal (the primal is a
  sum over ops, not a mean, so α is the real relaxation cost). An op that changes the label
  cannot meet its constraint; its relaxation grows to about ``ℓ_g − ε`` instead of its λ growing
  without bound, and that size measures how far the task is from being invariant to the op.
* **torchrun:** the per-op loss sums and counts are all-reduced before each dual step (every
  rank holds the same λ and u), the epoch's statistics and the chains an epoch moved are
  all-reduced at its end (every rank writes the same history and policy).

**The learned policy** (``mcmc.export``). By default (``prior``) it is the practitioner's default
less what the search found the task does not allow: RandAugment's point (N 2, M 9 of 31, every op
applied) over the geometric and photometric ops that met the constraint, each at M or at the top
of its met range where that is lower (:func:`prior_randaugment`). ``randaugment`` is what the
search found the task allows, in RandAugment's form: for each op, the magnitudes at which the search's model
met the invariance constraint over the second half of the search (:func:`met_ranges`: the
largest range ``[0, m]`` such that the op at a magnitude uniform in it has a mean augmented loss
``≤ ε``, from the loss recorded per level), then ``export_ops`` ops per image picked uniformly among
``identity`` and the ops with a range, each at a magnitude uniform in its range
(:func:`constrained_randaugment`). Ops that change no training image (colour ops on grey
images) are left out of both. Why ``prior`` by default: on development sets (Fashion-MNIST
training images that no run drew, three seeds) it was above ``randaugment`` at 1,000 and 2,500
training images and within the seeds' spread of it at 6,000 (BENCHMARKS.md). Why not the
sampler's law itself: it is the law of the *hardest* transformations, which the model saw beside
every clean image; applied alone as a fixed policy it was 1.6 points below the ``randaugment``
form on a development set (Fashion-MNIST, 1,000 images).

``export="mixture"`` writes what the model was trained on, as one transform per image
(:func:`policy_weights`): the clean image with weight 1 and op g with weight ``λ̄_g`` (λ
averaged over the search, or its last ``policy_epochs`` epochs), so an op is applied with
probability ``W / (1 + W)``, ``W = Σ_g w_g``, and picked ∝ ``w_g``, at the levels its chains
were trained on. An op whose relaxation stays up may change the label; its weight is tapered by
``max(0, 1 − ū_g/ε)`` (none left once its augmented loss holds at twice the margin). Every step
of this is continuous in the search's state: all λ = 0 is no augmentation, a tiny λ a tiny
probability. With one constraint, ops are picked as often as the sampler trained on them,
applied with probability ``λ̄ / (1 + λ̄)``. A search resumed from a checkpoint made before the
losses per level were recorded writes the mixture.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

from autoaug.models import running_stats_kept
from autoaug.ops import get_op
from autoaug.policy import OpEntry, Policy, PolicyParams, atomic_write_text
from autoaug.reference import RA_NUM_OPS, randaugment_point
from autoaug.search.base import (
    SearchConfig,
    Searcher,
    SearchResult,
    register,
    sample_images,
    searched_ops,
    vacuous_ops,
)
from autoaug.spaces import get_space, randaugment_ops
from autoaug.train import Trainer, dataset_of, epoch_seed

EXPORTS = ("randaugment", "prior", "mixture")  # mcmc.export's forms
MET_EXPORTS = ("randaugment", "prior")  # the forms made of the ops and magnitudes that met the constraint


class StateSpace:
    """Chain states ``(op, level, sign)`` over a space: level ``l`` of ``L`` is magnitude
    ``(l + 1) / L`` (level 0 is not the identity); the sign matters for signed ops only."""

    def __init__(
        self, space: str, levels: int, interpolation: str = "bilinear", ops: list[str] | None = None
    ):
        if levels < 1:
            raise ValueError(f"levels must be >= 1, got {levels}")
        sp = get_space(space)
        if ops is not None:
            unknown = [o for o in ops if o not in sp.ops]
            if unknown or not ops:
                raise ValueError(
                    f"ops {unknown or ops}: expected a non-empty subset of space {space!r}'s ops"
                )
        self.ops = [o for o in sp.ops if ops is None or o in ops]
        self.levels = levels
        stage = [
            OpEntry(n, 1.0, 1.0, (1.0,), (1.0,)) if get_op(n).has_magnitude else OpEntry(n, 1.0, 1.0)
            for n in self.ops
        ]
        self.policy = Policy([stage], space=space, interpolation=interpolation, name=f"{space}_states")
        self.signed = torch.tensor([get_op(n).signed for n in self.ops])
        # Ops with more than one state: a chain over the others' levels and signs cannot move.
        self.movable = torch.tensor([get_op(n).has_magnitude or get_op(n).signed for n in self.ops])

    @property
    def size(self) -> int:
        return len(self.ops)

    def uniform(self, n: int, generator: torch.Generator, ops: Tensor | None = None) -> dict[str, Tensor]:
        op = torch.randint(self.size, (n,), generator=generator) if ops is None else ops
        level = torch.randint(self.levels, (n,), generator=generator)
        sign = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0)
        return {"op": op, "level": level, "sign": sign}

    def apply(self, images: Tensor, state: dict[str, Tensor], aux: Tensor) -> Tensor:
        # The parameters stay where the chains are (the CPU): Policy.apply groups the images by
        # op there and moves the rest to the images' device.
        op = state["op"]
        sign = torch.where(self.signed.to(op.device)[op], state["sign"].to(op.device), 1.0)
        magnitude = (state["level"].to(op.device, images.dtype) + 1) / self.levels
        params = PolicyParams(
            op=op[None],
            applied=torch.ones_like(op, dtype=torch.bool)[None],
            magnitude=magnitude[None],
            sign=sign[None],
            aux=aux[None].to(op.device),
        )
        return self.policy.apply(images, params=params)


def mh_step(
    state: dict[str, Tensor],
    loss: Tensor,
    proposal: dict[str, Tensor],
    proposal_loss: Tensor,
    generator: torch.Generator,
) -> tuple[dict[str, Tensor], Tensor, Tensor]:
    """One Metropolis-Hastings step per chain with a symmetric proposal: accept with
    probability ``min(1, proposal_loss / loss)``, so the chain's law tends to one ∝ the loss.

    Returns the new states, their losses and which chains accepted.
    """
    ratio = (proposal_loss / loss.clamp(min=1e-12)).clamp(max=1.0).cpu()
    accept = torch.rand(len(ratio), generator=generator) < ratio
    new_state = {k: torch.where(accept, proposal[k], state[k]) for k in state}
    new_loss = torch.where(accept.to(loss.device), proposal_loss, loss)
    return new_state, new_loss, accept


class Chains:
    """One Metropolis-Hastings chain per training image, keyed by its index in the dataset.

    ``start`` gives the states a batch's chains are in (kept from the images' last visits;
    a uniform draw for an image not seen yet or without an index), ``propose`` a uniform
    proposal, ``keep`` stores where the chains ended. With per-op constraints the op is not
    the chain's to choose: :meth:`deal` hands the ops out in turn, and the chain keeps its
    level and sign from one op to the next (both are fractions of a range).

    Args:
        states: the state space.
        per_op: deal the ops instead of sampling them.
        generator: the searcher's generator (all draws come from it).
    """

    def __init__(self, states: StateSpace, per_op: bool, generator: torch.Generator):
        self.states = states
        self.per_op = per_op
        self.generator = generator
        self.offset = 0  # where the next batch's dealing of ops starts
        self.table: dict[str, Tensor] = {}  # op, level, sign, seen: one row per dataset index
        self.touched = torch.zeros(0, dtype=torch.bool)  # rows moved this epoch (for torchrun)

    def deal(self, n: int) -> Tensor:
        """Ops for ``n`` copies: ``offset, offset + 1, ...`` modulo the space, shuffled."""
        k = self.states.size
        ops = (torch.arange(n) + self.offset) % k
        self.offset = (self.offset + n) % k
        return ops[torch.randperm(n, generator=self.generator)]

    def _grow(self, size: int) -> None:
        have = len(self.touched)
        if size <= have:
            return
        extra = size - have
        fresh = {
            "op": torch.zeros(extra, dtype=torch.long),
            "level": torch.zeros(extra, dtype=torch.long),
            "sign": torch.ones(extra),
            "seen": torch.zeros(extra, dtype=torch.bool),
        }
        self.table = {k: torch.cat([self.table[k], v]) if self.table else v for k, v in fresh.items()}
        self.touched = torch.cat([self.touched, torch.zeros(extra, dtype=torch.bool)])

    def start(self, n: int, index: Tensor | None) -> dict[str, Tensor]:
        state = self.states.uniform(n, self.generator, self.deal(n) if self.per_op else None)
        if index is not None:
            index = index.cpu()
            self._grow(int(index.max()) + 1)
            seen = self.table["seen"][index]
            keys = ("level", "sign") if self.per_op else ("op", "level", "sign")
            for key in keys:
                state[key] = torch.where(seen, self.table[key][index], state[key])
        return state

    def propose(self, current: dict[str, Tensor]) -> dict[str, Tensor]:
        n = len(current["op"])
        return self.states.uniform(n, self.generator, current["op"] if self.per_op else None)

    def keep(self, index: Tensor | None, state: dict[str, Tensor]) -> None:
        if index is None:
            return
        index = index.cpu()
        for key in ("op", "level", "sign"):
            self.table[key][index] = state[key]
        self.table["seen"][index] = True
        self.touched[index] = True

    def sync(self) -> None:
        """Under torchrun: every rank takes the rows any rank moved this epoch (the ranks see
        disjoint images, so a row is moved by at most one)."""
        if _world() > 1:
            size = torch.tensor([len(self.touched)])
            dist.all_reduce(size, op=dist.ReduceOp.MAX)
            self._grow(int(size))
            mask = self.touched.long()
            rows = torch.stack([self.table["op"], self.table["level"], self.table["sign"].long()]) * mask
            dist.all_reduce(rows)
            dist.all_reduce(mask)
            moved = mask > 0
            rows = rows // mask.clamp(min=1)
            self.table["op"] = torch.where(moved, rows[0], self.table["op"])
            self.table["level"] = torch.where(moved, rows[1], self.table["level"])
            self.table["sign"] = torch.where(moved, rows[2].float(), self.table["sign"])
            self.table["seen"] |= moved
        self.touched.zero_()

    def state_dict(self) -> dict[str, Any]:
        # ``touched`` is not kept: checkpoints follow the epoch's sync, which clears it.
        return {"offset": self.offset, **{k: v.clone() for k, v in self.table.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.offset = int(state.get("offset", 0))
        self.table = {k: state[k].clone() for k in ("op", "level", "sign", "seen") if k in state}
        self.touched = torch.zeros(len(self.table["seen"]) if self.table else 0, dtype=torch.bool)


def _world() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def _all_reduce(t: Tensor) -> Tensor:
    if _world() > 1:
        dist.all_reduce(t)
    return t


def constrained_loss(clean: Tensor, aug: Tensor, group: Tensor, lam: Tensor, counts: Tensor) -> Tensor:
    """The primal objective ``clean + Σ_g λ_g · ℓ_g``, ``ℓ_g`` the mean loss of group g's copies.

    Args:
        clean: the clean loss (a scalar).
        aug: per-copy augmented losses (with grad).
        group: each copy's constraint (its op with per-op constraints, else 0).
        lam: the dual variables, one per group.
        counts: copies per group over every rank (this rank's alone without torchrun): under
            DistributedDataParallel the ranks' gradients are averaged, so each rank's share is
            scaled by the world size.

    Shape:
        aug, group: N; lam, counts: G.
    """
    weight = lam.to(aug.device, aug.dtype) * _world() / counts.to(aug.device, aug.dtype).clamp(min=1)
    return clean + (weight[group.to(aug.device)] * aug).sum()


def per_op_dual_step(
    lam: Tensor, relax: Tensor, loss_sum: Tensor, count: Tensor, config: SearchConfig
) -> tuple[Tensor, Tensor]:
    """The per-op dual ascent with resilient relaxation, for the ops present in the batch
    (``count > 0``; ``loss_sum / count`` is an op's mean augmented loss):
    ``λ_g ← max(0, λ_g + η_λ(ℓ_g − ε − u_g))``, ``u_g ← max(0, u_g − η_u(α u_g − λ_g))``, with
    ``η_λ = dual_lr / K`` for K ops: ``dual_lr`` is the pace of the total multiplier ``Σ_g λ_g``,
    as it is of the one multiplier of a single constraint. Step sizes change the path, not the
    equilibrium: ``α u_g = λ_g`` and ``u_g = ℓ_g − ε`` wherever ``λ_g > 0``."""
    mean = loss_sum.to(lam.dtype) / count.to(lam.dtype).clamp(min=1)
    seen = count > 0
    new_lam = (lam + config.mcmc.dual_lr / len(lam) * (mean - config.mcmc.epsilon - relax)).clamp(min=0)
    lam = torch.where(seen, new_lam, lam)
    new_relax = (relax - config.mcmc.relax_lr * (config.mcmc.relax_alpha * relax - lam)).clamp(min=0)
    return lam, torch.where(seen, new_relax, relax)


def single_dual_step(lam: Tensor, loss_sum: Tensor, count: Tensor, config: SearchConfig) -> Tensor:
    """One constraint: ``λ ← max(0, λ + η_λ(ℓ_aug − ε))``, ``ℓ_aug = loss_sum / count``."""
    mean = loss_sum.to(lam.dtype) / count.to(lam.dtype).clamp(min=1)
    return torch.where(
        count > 0, (lam + config.mcmc.dual_lr * (mean - config.mcmc.epsilon)).clamp(min=0), lam
    )


def policy_weights(lam: Tensor, relax: Tensor | None, epsilon: float) -> Tensor:
    """Each op's weight in the learned policy, next to the clean image's 1: its dual variable,
    tapered by ``max(0, 1 − u/ε)`` where its relaxation u stays up (per-op constraints).

    Continuous in λ and u: all λ = 0 gives no augmentation, a small λ a small weight.

    Examples:
        >>> w = policy_weights(torch.tensor([0.0, 0.2, 0.4]), torch.tensor([0.0, 0.3, 0.9]), 0.6)
        >>> [round(x, 6) for x in w.tolist()]
        [0.0, 0.1, 0.0]
    """
    lam = lam.clamp(min=0)
    if relax is None or epsilon <= 0:
        return lam
    return lam * (1 - relax / epsilon).clamp(0, 1)


def met_ranges(history: list[dict[str, Any]], ops: list[str], levels: int, epsilon: float) -> dict[str, int]:
    """How far each op can go while the search's model met its invariance constraint: the
    largest ``n`` such that the op at a magnitude drawn uniformly from its ``n`` smallest levels
    has a mean augmented loss ``≤ ε`` (the constraint's own test, on the losses the search
    recorded per level over ``history``); 0 where not even the smallest level meets it. An op
    without levels (hflip) is all or nothing: ``levels`` when its mean loss meets ε.

    Levels the chains never trained on are skipped (they neither meet nor break the bar).

    Examples:
        >>> epoch = {"histogram": [[1, 1, 1], [1, 0, 0]], "level_loss": [[0.2, 0.5, 1.4], [0.9, 0, 0]]}
        >>> met_ranges([epoch], ["rotate", "hflip"], 3, 0.6)
        {'rotate': 2, 'hflip': 0}
    """
    counts = torch.tensor([e["histogram"] for e in history], dtype=torch.float64)  # E×K×L
    sums = torch.tensor([e["level_loss"] for e in history], dtype=torch.float64) * counts
    n, total = counts.sum(0), sums.sum(0)
    out = {}
    for k, op in enumerate(ops):
        if not get_op(op).has_magnitude:
            out[op] = levels if n[k].sum() > 0 and total[k].sum() / n[k].sum() <= epsilon else 0
            continue
        seen = n[k] > 0
        mean = torch.where(seen, total[k] / n[k].clamp(min=1), torch.zeros_like(n[k]))
        running = mean.cumsum(0) / seen.double().cumsum(0).clamp(min=1)  # uniform over the seen levels ≤ l
        ok = (running <= epsilon) & (seen.double().cumsum(0) > 0)
        out[op] = int(ok.nonzero().max()) + 1 if ok.any() else 0
    return out


def constrained_randaugment(ranges: dict[str, int], levels: int, n_ops: int) -> list[list[OpEntry]]:
    """RandAugment's form over the ops and magnitudes that met the constraint: ``n_ops`` stages,
    each picking uniformly among ``identity`` and the ops of ``ranges``, always applied, at a
    magnitude uniform over the op's met levels (``ranges[op]`` of ``levels``).

    Examples:
        >>> [(e.op, e.magnitudes) for e in constrained_randaugment({"rotate": 2, "hflip": 3}, 3, 1)[0]]
        [('identity', (0.0,)), ('rotate', (0.3333333333333333, 0.6666666666666666)), ('hflip', (0.0,))]
    """
    stage = [OpEntry("identity")]
    for op, n in ranges.items():
        if op == "identity" or n <= 0:
            continue
        if get_op(op).has_magnitude:
            stage.append(OpEntry(op, 1.0, 1.0, tuple((i + 1) / levels for i in range(n)), (1.0,) * n))
        else:
            stage.append(OpEntry(op))
    return [list(stage) for _ in range(n_ops)]


def prior_randaugment(ranges: dict[str, int], levels: int) -> list[list[OpEntry]]:
    """RandAugment's point over the ops of ``ranges`` (:func:`~autoaug.reference.randaugment_point`),
    each at M or at the top of its met levels (``ranges[op]`` of ``levels``) where that is lower:
    the practitioner's default, less what the search found the task does not allow.

    Examples:
        >>> [(e.op, e.magnitudes) for e in prior_randaugment({"rotate": 30, "shear_x": 3}, 30)[0]]
        [('rotate', (0.3,)), ('shear_x', (0.1,))]
    """
    met = {op: n / levels for op, n in ranges.items() if op != "identity" and n > 0}
    return randaugment_point(met, met)


class _Evaluate:
    """A batch's ``evaluate`` for :meth:`MCMCStep.sample`, in parts: ``draw`` the copies' extra
    randomness, ``transform`` them by their states, ``score`` them (the loss without grad under
    the current model, its batch-norm statistics left as they were), so that the sampler can
    transform the current states and the proposals in one call."""

    def __init__(self, step: MCMCStep, xs: Tensor, ys: Tensor, forward: Callable[[Tensor], Tensor],
                 net: nn.Module | None) -> None:  # fmt: skip
        self.step, self.xs, self.ys, self.forward, self.net = step, xs, ys, forward, net

    def draw(self, n: int) -> Tensor:
        return torch.rand(n, 2, generator=self.step.generator)

    def transform(self, state: dict[str, Tensor], rows: Tensor, aux: Tensor) -> Tensor:
        with torch.autocast(self.xs.device.type, enabled=False):  # the ops in float32 under a user's autocast
            return self.step.states.apply(self.xs[rows.to(self.xs.device)], state, aux)

    def score(self, x: Tensor, rows: Tensor) -> Tensor:
        with torch.no_grad(), running_stats_kept(self.net):
            return F.cross_entropy(
                self.forward(x).float(), self.ys[rows.to(self.xs.device)], reduction="none"
            )

    def __call__(
        self, state: dict[str, Tensor], rows: Tensor, need_loss: bool
    ) -> tuple[Tensor, Tensor | None]:
        x = self.transform(state, rows, self.draw(len(rows)))
        return x, self.score(x, rows) if need_loss else None


class MCMCStep:
    """The primal-dual step with the Metropolis-Hastings sampler (a :class:`~autoaug.train.Step`).

    Args:
        config: the search's settings.
        ops: search only these ops of ``config.space`` (default: all of them).
    """

    def __init__(self, config: SearchConfig, ops: list[str] | None = None):
        check_settings(config)
        self.config = config
        self.states = StateSpace(config.space, config.mcmc.levels, config.interpolation, ops)
        self.vacuous: list[str] = []  # ops of the space left out because they change no training image
        self.inert: list[str] = []  # ops that change no training image, searched or not: not exported
        self.per_op = config.mcmc.constraint == "per_op"
        k, lv = self.states.size, config.mcmc.levels
        # Seeded per epoch and rank (train.epoch_seed): a rank resumed from rank 0's checkpoint
        # continues its own draws.
        self.generator = torch.Generator().manual_seed(epoch_seed(config.seed + 104729, 0))
        self.chains = Chains(self.states, self.per_op, self.generator)
        self.lam = torch.zeros(k if self.per_op else 1, dtype=torch.float64)
        self.relax = torch.zeros(k, dtype=torch.float64)
        self.history: list[dict[str, Any]] = []
        self.image_size: tuple[int, int] | None = None
        self._reset_epoch(k, lv)

    def _reset_epoch(self, k: int, lv: int) -> None:
        self.counts = torch.zeros(k, lv, dtype=torch.float64)  # states trained on
        self.level_loss = torch.zeros(k, lv, dtype=torch.float64)  # their augmented loss, summed
        self.op_loss = torch.zeros(k, dtype=torch.float64)  # augmented loss per op (trained states)
        self.op_n = torch.zeros(k, dtype=torch.float64)
        self.prop_loss = torch.zeros(k, dtype=torch.float64)  # loss of proposals, per op
        self.prop_n = torch.zeros(k, dtype=torch.float64)
        self.accepted = torch.zeros(2, dtype=torch.float64)  # accepted, proposed

    # ------------------------------------------------------------------------ the step

    def sample(self, n: int, index: Tensor | None, evaluate) -> tuple[Tensor | None, dict[str, Tensor]]:
        """Move the chains of ``n`` augmented copies one visit on; return the copies to train
        on (the states their chains ended in) and those states.

        Args:
            n: copies in the batch.
            index: each copy's image index in the dataset (keys its chain), or None.
            evaluate: ``evaluate(state, rows, need_loss) -> (images, loss)``: the copies
                ``rows`` transformed by ``state`` and, when asked, their losses without grad
                under the current model (``images`` may be None where only losses matter).
        """
        state = self.chains.start(n, index)
        steps = self.config.mcmc.chain_length
        moving = self.states.movable[state["op"]] if self.per_op else torch.ones(n, dtype=torch.bool)
        if steps == 0 or not moving.any():
            images, _ = evaluate(state, torch.arange(n), False)
            self.chains.keep(index, state)
            return images, state
        m, still = moving.nonzero().squeeze(1), (~moving).nonzero().squeeze(1)
        sub = {k: v[m] for k, v in state.items()}
        fused = steps == 1 and isinstance(evaluate, _Evaluate)
        if fused:  # the current states and the proposals transformed in one call (the same draws)
            aux = evaluate.draw(len(m))
            proposal = self.chains.propose(sub)
            aux = torch.cat([aux, evaluate.draw(len(m))])
            both = {k: torch.cat([sub[k], proposal[k]]) for k in sub}
            x_m, xp = evaluate.transform(both, torch.cat([m, m]), aux).split(len(m))
            cur_loss = evaluate.score(x_m, m)
        else:
            x_m, cur_loss = evaluate(sub, m, True)
        for _ in range(steps):
            if fused:
                prop_loss = evaluate.score(xp, m)
            else:
                proposal = self.chains.propose(sub)
                xp, prop_loss = evaluate(proposal, m, True)
            self.prop_loss.index_add_(0, proposal["op"], prop_loss.double().cpu())
            self.prop_n.index_add_(0, proposal["op"], torch.ones(len(m), dtype=torch.float64))
            sub, cur_loss, accept = mh_step(sub, cur_loss, proposal, prop_loss, self.generator)
            if x_m is not None:
                x_m = torch.where(accept.to(x_m.device).view(-1, *[1] * (x_m.dim() - 1)), xp, x_m)
            self.accepted += torch.tensor([accept.sum().item(), len(m)], dtype=torch.float64)
        state = {k: v.clone() for k, v in state.items()}
        for k in state:
            state[k][m] = sub[k]
        images = None
        if x_m is not None:
            images = x_m.new_empty((n, *x_m.shape[1:]))
            images[m.to(x_m.device)] = x_m
            if len(still):
                x_s, _ = evaluate({k: v[still] for k, v in state.items()}, still, False)
                images[still.to(x_m.device)] = x_s
        self.chains.keep(index, state)
        return images, state

    def loss(self, trainer: Trainer, images: Tensor, labels: Tensor) -> tuple[Tensor, dict[str, float]]:
        """The trainer's step: :meth:`step` with its forward (normalization, autocast) and its batch's
        dataset indices."""
        return self.step(trainer.forward, images, labels, index=getattr(trainer, "batch_index", None))

    def step(
        self,
        forward: Callable[[Tensor], Tensor],
        images: Tensor,
        labels: Tensor,
        index: Tensor | None = None,
        criterion: Callable[[Tensor, Tensor], Tensor] | None = None,
        net: nn.Module | None = None,
    ) -> tuple[Tensor, dict[str, float]]:
        """One batch: move the chains, then the primal objective ``clean + Σ_g λ_g·ℓ_g`` (to
        backpropagate) and the dual step.

        Args:
            forward: logits of float images in [0, 1] (the model with its normalization).
            images: float in [0, 1].
            labels: class indices.
            index: each image's index in the dataset (keys its chain), or None.
            criterion: the clean term, ``criterion(logits, labels)`` (default: cross-entropy with
                the config's label smoothing). The constraint is on the augmented cross-entropy.
            net: the module behind ``forward``: the chains' scoring passes leave its batch-norm
                running statistics as they were (they are not training on the data; folded in,
                they pulled the statistics that evaluation uses towards the sampler's proposals).

        Returns:
            The loss and the batch's numbers (``loss``, ``clean_loss``, ``acc``, ``aug_loss``, ``aug_acc``).
        """
        cfg = self.config
        b = len(images)
        self.image_size = (int(images.shape[-2]), int(images.shape[-1]))
        n = max(1, round(cfg.mcmc.n_aug * b))  # augmented copies: n_aug per image, or a fraction of the batch
        copies = math.ceil(n / b)
        xs = images.repeat(copies, 1, 1, 1)[:n]
        ys = labels.repeat(copies)[:n]
        if index is not None:
            index = index.repeat(copies)[:n]

        augmented, state = self.sample(n, index, _Evaluate(self, xs, ys, forward, net))
        if cfg.mcmc.fused:  # one pass of b + n images: fewer, larger kernels; BatchNorm sees both halves
            logits, aug_logits = forward(torch.cat([images, augmented])).float().split([b, n])
        else:
            logits, aug_logits = forward(images).float(), forward(augmented).float()
        if criterion is None:
            clean = F.cross_entropy(logits, labels, label_smoothing=cfg.label_smoothing)
        else:
            clean = criterion(logits, labels)
        aug = F.cross_entropy(aug_logits, ys, reduction="none")

        # Statistics of the trained states.
        op = state["op"]
        aug_cpu = aug.detach().double().cpu()
        self.counts.index_put_((op, state["level"]), torch.ones(n, dtype=torch.float64), accumulate=True)
        self.level_loss.index_put_((op, state["level"]), aug_cpu, accumulate=True)
        self.op_loss.index_add_(0, op, aug_cpu)
        self.op_n.index_add_(0, op, torch.ones(n, dtype=torch.float64))

        # Primal loss and dual step, on the sums over every rank.
        group = op if self.per_op else torch.zeros_like(op)
        g = len(self.lam)
        sums = torch.zeros(2, g, dtype=torch.float64)
        sums[0].index_add_(0, group, aug_cpu)
        sums[1].index_add_(0, group, torch.ones(n, dtype=torch.float64))
        _all_reduce(sums)
        total = constrained_loss(clean, aug, group, self.lam, sums[1])
        if self.per_op:
            self.lam, self.relax = per_op_dual_step(self.lam, self.relax, sums[0], sums[1], cfg)
        else:
            self.lam = single_dual_step(self.lam, sums[0], sums[1], cfg)

        acc = (logits.argmax(1) == labels).float().mean().item()
        aug_acc = (aug_logits.argmax(1) == ys).float().mean().item()
        return total, {"loss": total.item(), "clean_loss": clean.item(), "acc": acc, "aug_loss": aug_cpu.mean().item(),
                       "aug_acc": aug_acc}  # fmt: skip

    # ----------------------------------------------------------------------- per epoch

    def _reduce_epoch(self) -> None:
        """Under torchrun: sum the epoch's statistics over the ranks, and share the moved chains."""
        if _world() > 1:
            for t in (self.counts, self.level_loss, self.op_loss, self.op_n, self.prop_loss, self.prop_n,
                      self.accepted):  # fmt: skip
                dist.all_reduce(t)
        self.chains.sync()

    def end_epoch(self, trainer: Trainer, epoch: int) -> dict[str, Any]:
        """The trainer's end of an epoch: :meth:`close_epoch`, then rank 0 writes the outputs."""
        numbers = self.close_epoch(epoch)
        if trainer.rank == 0:
            self.write_outputs(Path(trainer.config.out))
        return numbers

    def close_epoch(self, epoch: int) -> dict[str, Any]:
        """Record epoch ``epoch`` (from 0) in :attr:`history` (its statistics summed over the
        ranks under torchrun: every rank must call it) and start the next one."""
        self._reduce_epoch()
        ops = self.states.ops
        op_loss = (self.op_loss / self.op_n.clamp(min=1)).tolist()
        prop_loss = (self.prop_loss / self.prop_n.clamp(min=1)).tolist()
        acceptance = float(self.accepted[0] / self.accepted[1].clamp(min=1))
        record = {
            "epoch": epoch + 1,
            "acceptance": acceptance,
            "lambda": self.lam.tolist() if self.per_op else float(self.lam[0]),
            "relaxation": self.relax.tolist() if self.per_op else None,
            "op_aug_loss": {o: v for o, v, c in zip(ops, op_loss, self.op_n.tolist()) if c > 0},
            "op_proposal_loss": {o: v for o, v, c in zip(ops, prop_loss, self.prop_n.tolist()) if c > 0},
            "histogram": self.counts.tolist(),
            "level_loss": (self.level_loss / self.counts.clamp(min=1)).tolist(),  # 0 where none trained
        }
        self.history.append(record)
        self._reset_epoch(self.states.size, self.config.mcmc.levels)
        self.generator.manual_seed(epoch_seed(self.config.seed + 104729, epoch + 1))
        lam = self.lam.mean().item() if self.per_op else float(self.lam[0])
        return {"acceptance": acceptance, "lambda_mean": lam}

    def learned_policy(self) -> Policy:
        """The search as a policy, in the form ``mcmc.export`` names: ``prior``, RandAugment's
        point over the ops that met the invariance constraint (:func:`prior_randaugment`);
        ``randaugment``, the ops and magnitudes at which the search's model met it, RandAugment's
        way (:func:`met_ranges`, :func:`constrained_randaugment`); or ``mixture``, what the model
        was trained on (the module's description says how)."""
        if not self.history:
            raise ValueError("no epoch has finished yet: nothing to make a policy from")
        recorded = all("level_loss" in e for e in self.history)  # a search resumed from before it was
        if self.config.mcmc.export in MET_EXPORTS and recorded:
            return self._met_policy()
        return self._mixture_policy()

    def _meta(self, recent: int, tapered: list[str]) -> dict[str, Any]:
        meta = {"searcher": "mcmc", "constraint": self.config.mcmc.constraint, "epsilon": self.config.mcmc.epsilon,
                "epochs": len(self.history), "policy_epochs": recent, "seed": self.config.seed,
                "dataset": self.config.dataset, "space": self.config.space, "left_out": sorted(tapered)}  # fmt: skip
        if self.vacuous:
            meta["vacuous"] = list(self.vacuous)
        if self.image_size is not None:
            meta["image_size"] = list(self.image_size)
        return meta

    def _met_policy(self) -> Policy:
        half = self.history[len(self.history) // 2 :]
        ranges = met_ranges(half, self.states.ops, self.config.mcmc.levels, self.config.mcmc.epsilon)
        kept = {o: n for o, n in ranges.items() if n > 0 and o not in self.inert}
        meta = self._meta(len(half), [o for o, n in ranges.items() if n == 0 and o != "identity"])
        meta |= {"export": self.config.mcmc.export, "inert": sorted(self.inert)}
        if self.config.mcmc.export == "prior":
            ops = randaugment_ops(self.config.space)
            kept = {o: n for o, n in kept.items() if o in ops}
            stages = prior_randaugment(kept, self.config.mcmc.levels)
            meta["n_ops"] = RA_NUM_OPS
        else:
            stages = constrained_randaugment(kept, self.config.mcmc.levels, self.config.mcmc.export_ops)
            meta["n_ops"] = self.config.mcmc.export_ops
        if not kept:  # no op met its constraint (a search too short for the model to learn): no augmentation
            policy = Policy.identity()
            policy.name = f"mcmc_{self.config.dataset}"
            policy.meta.update(meta)
            return policy
        return Policy(
            stages,
            space=self.config.space,
            interpolation=self.config.interpolation,
            name=f"mcmc_{self.config.dataset}",
            meta=meta,
        )

    def _mixture_policy(self) -> Policy:
        last = self.config.mcmc.policy_epochs
        recent = self.history[-last:] if last > 0 else self.history
        counts = torch.tensor([r["histogram"] for r in recent], dtype=torch.float64).sum(0)  # K×L
        if self.per_op:
            lam = torch.tensor([r["lambda"] for r in recent], dtype=torch.float64).mean(0)
            relax = torch.tensor([r["relaxation"] for r in recent], dtype=torch.float64).mean(0)
            weights = policy_weights(lam, relax, self.config.mcmc.epsilon)
            tapered = [
                o for o, w, lg in zip(self.states.ops, weights.tolist(), lam.tolist()) if lg > 0 and w <= 0
            ]
        else:
            lam = float(torch.tensor([r["lambda"] for r in recent], dtype=torch.float64).mean())
            trained = counts.sum(1)
            weights = lam * trained / trained.sum().clamp(min=1)
            tapered = []
        total = float(weights.sum())
        prob = total / (1 + total)  # the clean image's weight is 1
        entries = []
        lv = self.config.mcmc.levels
        for k, name in enumerate(self.states.ops):
            w = float(weights[k])
            if w <= 0 or name == "identity":
                continue
            if not get_op(name).has_magnitude:
                entries.append(OpEntry(name, w, prob))
                continue
            hist = counts[k] if counts[k].sum() > 0 else torch.ones(lv, dtype=torch.float64)
            levels = [(i + 1) / lv for i in range(lv) if hist[i] > 0]
            probs = [float(c) for c in hist if c > 0]
            entries.append(OpEntry(name, w, prob, tuple(levels), tuple(probs)))
        meta = self._meta(len(recent), tapered) | {"export": "mixture"}
        if not entries:
            policy = Policy.identity()
            policy.meta.update(meta)
            return policy
        return Policy(
            [entries],
            space=self.config.space,
            interpolation=self.config.interpolation,
            name=f"mcmc_{self.config.dataset}",
            meta=meta,
        )

    def write_outputs(self, out: Path) -> None:
        out.mkdir(parents=True, exist_ok=True)
        history = {"ops": self.states.ops, "levels": self.config.mcmc.levels, "constraint": self.config.mcmc.constraint,
                   "epsilon": self.config.mcmc.epsilon, "vacuous": self.vacuous, "epochs": self.history}  # fmt: skip
        atomic_write_text(out / "history.json", json.dumps(history))
        self.learned_policy().save(out / "policy.json")

    # ----------------------------------------------------------------------- resume

    def state_dict(self) -> dict[str, Any]:
        return {
            "generator": self.generator.get_state(),
            "chains": self.chains.state_dict(),
            "lam": self.lam,
            "relax": self.relax,
            "image_size": list(self.image_size) if self.image_size else [],
            "history": json.dumps(self.history),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if len(state["lam"]) != len(self.lam):
            raise ValueError(f"the saved search has {len(state['lam'])} dual variables, this one {len(self.lam)} "
                             f"(ops {', '.join(self.states.ops)}): a search made before vacuous ops were left out "
                             "resumes without --drop-vacuous")  # fmt: skip
        self.generator.set_state(state["generator"])
        if _world() > 1:  # rank 0's state: this rank's own stream for the epoch to come
            self.generator.manual_seed(
                epoch_seed(self.config.seed + 104729, len(json.loads(state["history"])))
            )
        self.chains.load_state_dict(state.get("chains", {}))
        self.lam = state["lam"]
        self.relax = state["relax"]
        self.image_size = tuple(state["image_size"]) if state.get("image_size") else None
        self.history = json.loads(state["history"])


def _relative_slope(values: list[float]) -> float:
    """Least-squares slope of a series per step, relative to its mean (0 for < 2 points)."""
    n = len(values)
    if n < 2:
        return 0.0
    mx, my = (n - 1) / 2, sum(values) / n
    slope = sum((i - mx) * (v - my) for i, v in enumerate(values)) / sum((i - mx) ** 2 for i in range(n))
    return slope / my if my > 0 else 0.0


def unmet_ops(history: list[dict[str, Any]], ops: list[str], epsilon: float) -> list[tuple[str, float]]:
    """Ops whose invariance constraint stays unmet at the end of the search, with how far
    (largest first): with per-op constraints, a relaxation above 0.05 and at least a quarter of
    the largest; with one constraint, an augmented proposal loss above ε.

    These are the ops the task is farthest from being invariant to. Some change the label
    (:func:`rejected_ops`); others are symmetries still being learned, which the per-op
    statistics of a short search cannot tell apart from a break (on the arrows task, hflip
    and rotate90 keep lowering their loss like glyphs' scale does: the model learns to see
    their traces). The learned policy leaves all of them out, the safe side: a symmetry left
    out costs some augmentation, a label-changing op kept would train wrong labels.
    ``autoaug analyze`` separates the two with measured loss gaps.
    """
    if not history:
        return []
    last = history[-1]
    if last.get("relaxation"):
        relax = dict(zip(ops, last["relaxation"]))
        top = max(relax.values(), default=0.0)
        out = [(o, r) for o, r in relax.items() if r > 0.05 and r >= 0.25 * top]
    else:
        out = [(o, loss - epsilon) for o, loss in last["op_proposal_loss"].items() if loss > epsilon]
    return sorted(out, key=lambda t: -t[1])


def rejected_ops(history: list[dict[str, Any]], ops: list[str], epsilon: float) -> list[tuple[str, float]]:
    """The unmet ops (:func:`unmet_ops`) that the task seems to reject: their augmented loss
    did not fall over the second half of training (relative slope per epoch ≥ −2%). A symmetry
    that is merely hard to learn keeps lowering its augmented loss; an op that changes the
    label leaves a floor that more training does not lower (DESIGN.md)."""
    if not history:
        return []
    second_half = history[len(history) // 2 :]
    key = "op_aug_loss" if history[-1].get("relaxation") else "op_proposal_loss"

    def flat(op: str) -> bool:
        series = [e[key][op] for e in second_half if op in e[key]]
        return _relative_slope(series) >= -0.02

    return [(o, r) for o, r in unmet_ops(history, ops, epsilon) if flat(o)]


def check_settings(config: SearchConfig) -> None:
    """Refuse mcmc settings out of their range or choices, naming the setting."""
    if config.mcmc.constraint not in ("single", "per_op"):
        raise ValueError(f"constraint must be 'single' or 'per_op', got {config.mcmc.constraint!r}")
    if config.mcmc.export not in EXPORTS:
        raise ValueError(f"export must be one of {', '.join(map(repr, EXPORTS))}, got {config.mcmc.export!r}")
    if config.mcmc.n_aug <= 0 or config.mcmc.chain_length < 0:
        raise ValueError(
            f"n_aug must be > 0 and chain_length >= 0, got {config.mcmc.n_aug}, {config.mcmc.chain_length}"
        )


@register
class MCMCSearcher(Searcher):
    """``autoaug search --method mcmc``: train a model under the invariance constraint and
    write the sampler's law as the learned policy."""

    method = "mcmc"

    def __init__(self, config: SearchConfig):
        check_settings(config)  # before the search announces itself, not after its data is loaded
        super().__init__(config)

    def run(self, resume: bool = False) -> SearchResult:
        from autoaug.online import OnlineAugment  # the public API runs the search; it builds on this module

        dataset = dataset_of(self.config)
        ops, vacuous = searched_ops(self.config, dataset.train)
        aug = OnlineAugment(config=self.config, ops=ops)
        step = aug.core
        step.vacuous = vacuous
        if self.config.mcmc.export in MET_EXPORTS:  # they would be copies of identity in the export
            step.inert = vacuous or vacuous_ops(
                self.config.space, sample_images(dataset.train, seed=self.config.seed), seed=self.config.seed
            )
        trainer = Trainer(self.config, dataset=dataset, step=aug.trainer_step())
        metrics = trainer.fit(resume=resume)
        out = Path(self.config.out)
        if trainer.rank == 0:
            step.write_outputs(out)
        policy = step.learned_policy()
        summary = {
            "test_acc": metrics.get("test_acc"),
            "val_acc": metrics.get("val_acc"),
            "rejected": rejected_ops(step.history, step.states.ops, self.config.mcmc.epsilon),
            "left_out": unmet_ops(step.history, step.states.ops, self.config.mcmc.epsilon),
            "acceptance": step.history[-1]["acceptance"] if step.history else math.nan,
            "vacuous": vacuous,
        }
        return SearchResult(policy=policy, metrics=metrics, out=out, summary=summary)


__all__ = [
    "Chains",
    "MCMCSearcher",
    "MCMCStep",
    "StateSpace",
    "constrained_loss",
    "constrained_randaugment",
    "met_ranges",
    "mh_step",
    "per_op_dual_step",
    "policy_weights",
    "rejected_ops",
    "single_dual_step",
]
