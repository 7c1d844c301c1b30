"""Invariance-constrained learning with a Metropolis-Hastings sampler (Hounie, Chamon &
Ribeiro, "Automatic Data Augmentation via Invariance-Constrained Learning", ICML 2023).

Learning is ``min_f E[ℓ(f(x), y)]  s.t.  E_{g~π_f}[ℓ(f(g·x), y)] ≤ ε`` with π_f ∝ the loss of
the current model: augmentation goes where the model is least invariant. Solved primal-dual:

* **Sampler.** Each augmented slot of a batch keeps a chain state ``(op, level, sign)``. The
  chain proposes a state uniformly over the space and accepts it with probability
  ``min(1, ℓ_proposal / ℓ_current)`` (losses without grad), so its law tends to one
  proportional to the loss. The state a slot holds when the batch arrives is the one the model
  trains on; its loss, computed once with grad, is also the ``ℓ_current`` of the
  Metropolis-Hastings step, so one step costs one extra forward pass (the reference code
  recomputes both states: about 2.7 plain steps; this costs about 2.3).
* **Primal step.** ``CE(f(x), y) + λ·CE(f(g·x), y)``, SGD with gradient clipping. With
  ``fused=True`` the clean and augmented images go through the model as one batch: the same
  arithmetic in fewer, larger kernels (what a GPU wants), but BatchNorm's batch statistics
  then cover both halves.
* **Dual step,** every batch: ``λ ← max(0, λ + η_λ·(mean augmented loss − ε))``.
* **Per-op constraints** (``constraint="per_op"``, beyond the paper): one dual variable per op,
  ops spread evenly over the slots, each chain moving over levels and signs of its op, with
  the resilient relaxation of Hounie, Chamon & Ribeiro (NeurIPS 2023): ``λ_g ← max(0, λ_g +
  η_λ·(ℓ_g − ε − u_g))``, ``u_g ← max(0, u_g − η_u·(α·u_g − λ_g))``. An op that changes the
  label cannot meet its constraint; its relaxation ``u_g`` grows to about ``ℓ_g − ε`` instead
  of its λ growing without bound, and that size measures how far the task is from being
  invariant to the op.

The learned policy is the sampler's law over the last ``policy_epochs`` epochs (op weights
∝ how often each op was trained on, or ∝ λ_g with per-op constraints; magnitudes ∝ how
often each level was), without the ops whose constraint stayed unmet (:func:`unmet_ops`: they
may change the label), written in autoaug's policy format.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from autoaug.ops import get_op
from autoaug.policy import OpEntry, Policy, PolicyParams, atomic_write_text
from autoaug.search.base import SearchConfig, Searcher, SearchResult, register
from autoaug.spaces import get_space
from autoaug.train import Trainer


class StateSpace:
    """Chain states ``(op, level, sign)`` over a space: level ``l`` of ``L`` is magnitude
    ``(l + 1) / L`` (level 0 is not the identity); the sign matters for signed ops only."""

    def __init__(self, space: str, levels: int, interpolation: str = "bilinear"):
        if levels < 1:
            raise ValueError(f"levels must be >= 1, got {levels}")
        sp = get_space(space)
        self.ops = list(sp.ops)
        self.levels = levels
        stage = [
            OpEntry(n, 1.0, 1.0, (1.0,), (1.0,)) if get_op(n).has_magnitude else OpEntry(n, 1.0, 1.0)
            for n in self.ops
        ]
        self.policy = Policy([stage], space=space, interpolation=interpolation, name=f"{space}_states")
        self.signed = torch.tensor([get_op(n).signed for n in self.ops])

    @property
    def size(self) -> int:
        return len(self.ops)

    def uniform(self, n: int, generator: torch.Generator, ops: Tensor | None = None) -> dict[str, Tensor]:
        op = torch.randint(self.size, (n,), generator=generator) if ops is None else ops
        level = torch.randint(self.levels, (n,), generator=generator)
        sign = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0)
        return {"op": op, "level": level, "sign": sign}

    def apply(self, images: Tensor, state: dict[str, Tensor], aux: Tensor) -> Tensor:
        op = state["op"].to(images.device)
        sign = torch.where(self.signed.to(images.device)[op], state["sign"].to(images.device), 1.0)
        magnitude = (state["level"].to(images.device, images.dtype) + 1) / self.levels
        params = PolicyParams(
            op=op[None],
            applied=torch.ones_like(op, dtype=torch.bool)[None],
            magnitude=magnitude[None],
            sign=sign[None],
            aux=aux[None].to(images.device),
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


def per_op_dual_step(
    lam: Tensor, relax: Tensor, op: Tensor, loss: Tensor, config: SearchConfig
) -> tuple[Tensor, Tensor]:
    """The per-op dual ascent with resilient relaxation, for the ops present in the batch:
    ``λ_g ← max(0, λ_g + η_λ(ℓ_g − ε − u_g))``, ``u_g ← max(0, u_g − η_u(α u_g − λ_g))``."""
    present = torch.bincount(op, minlength=len(lam)).to(lam.dtype)
    mean = torch.zeros_like(lam).index_add_(0, op, loss.to(lam.dtype)) / present.clamp(min=1)
    seen = present > 0
    new_lam = (lam + config.dual_lr * (mean - config.epsilon - relax)).clamp(min=0)
    lam = torch.where(seen, new_lam, lam)
    new_relax = (relax - config.relax_lr * (config.relax_alpha * relax - lam)).clamp(min=0)
    return lam, torch.where(seen, new_relax, relax)


class MCMCStep:
    """The primal-dual step with the Metropolis-Hastings sampler (a :class:`~autoaug.train.Step`)."""

    def __init__(self, config: SearchConfig):
        if config.constraint not in ("single", "per_op"):
            raise ValueError(f"constraint must be 'single' or 'per_op', got {config.constraint!r}")
        if config.n_aug <= 0 or config.chain_length < 0:
            raise ValueError(
                f"n_aug must be > 0 and chain_length >= 0, got {config.n_aug}, {config.chain_length}"
            )
        self.config = config
        self.states = StateSpace(config.space, config.levels, config.interpolation)
        self.per_op = config.constraint == "per_op"
        k, lv = self.states.size, config.levels
        self.generator = torch.Generator().manual_seed(config.seed + 104729)
        self.slots: dict[str, Tensor] | None = None
        self.lam = torch.zeros(k if self.per_op else 1, dtype=torch.float64)
        self.relax = torch.zeros(k, dtype=torch.float64)
        self.history: list[dict[str, Any]] = []
        self._reset_epoch(k, lv)

    def _reset_epoch(self, k: int, lv: int) -> None:
        self.counts = torch.zeros(k, lv, dtype=torch.float64)  # states trained on
        self.op_loss = torch.zeros(k, dtype=torch.float64)  # augmented loss per op (trained states)
        self.op_n = torch.zeros(k, dtype=torch.float64)
        self.prop_loss = torch.zeros(k, dtype=torch.float64)  # loss of proposals, per op
        self.prop_n = torch.zeros(k, dtype=torch.float64)
        self.sums = {"accepted": 0.0, "proposed": 0.0}

    # ------------------------------------------------------------------------ the step

    def _init_slots(self, n: int) -> dict[str, Tensor]:
        ops = None
        if self.per_op:  # every op gets an even share of the slots, in a random arrangement
            ops = torch.arange(n) % self.states.size
            ops = ops[torch.randperm(n, generator=self.generator)]
        return self.states.uniform(n, self.generator, ops)

    def _propose(self, current: dict[str, Tensor]) -> dict[str, Tensor]:
        n = len(current["op"])
        return self.states.uniform(n, self.generator, current["op"] if self.per_op else None)

    def loss(self, trainer: Trainer, images: Tensor, labels: Tensor) -> tuple[Tensor, dict[str, float]]:
        cfg = self.config
        b = len(images)
        n = max(
            1, round(cfg.n_aug * b)
        )  # augmented slots: n_aug copies of each image, or a fraction of the batch
        if self.slots is None or len(self.slots["op"]) != n:
            self.slots = self._init_slots(n)
        copies = math.ceil(n / b)
        xs = images.repeat(copies, 1, 1, 1)[:n]
        ys = labels.repeat(copies)[:n]

        current = self.slots
        augmented = self.states.apply(xs, current, torch.rand(n, 2, generator=self.generator))
        if cfg.fused:  # one pass of b + n images: fewer, larger kernels; BatchNorm sees both halves
            logits, aug_logits = trainer.forward(torch.cat([images, augmented])).split([b, n])
        else:
            logits, aug_logits = trainer.forward(images), trainer.forward(augmented)
        clean = F.cross_entropy(logits, labels, label_smoothing=cfg.label_smoothing)
        aug = F.cross_entropy(aug_logits, ys, reduction="none")

        # Metropolis-Hastings: the trained state's loss is the chain's current loss.
        state, cur_loss = current, aug.detach()
        for _ in range(cfg.chain_length):
            proposal = self._propose(state)
            with torch.no_grad():
                xp = self.states.apply(xs, proposal, torch.rand(n, 2, generator=self.generator))
                prop_loss = F.cross_entropy(trainer.forward(xp), ys, reduction="none")
            self.prop_loss.index_add_(0, proposal["op"], prop_loss.double().cpu())
            self.prop_n.index_add_(0, proposal["op"], torch.ones(n, dtype=torch.float64))
            state, cur_loss, accept = mh_step(state, cur_loss, proposal, prop_loss, self.generator)
            self.sums["accepted"] += accept.sum().item()
            self.sums["proposed"] += n
        self.slots = state

        # Statistics of the trained states.
        op = current["op"]
        aug_cpu = aug.detach().double().cpu()
        self.counts.index_put_((op, current["level"]), torch.ones(n, dtype=torch.float64), accumulate=True)
        self.op_loss.index_add_(0, op, aug_cpu)
        self.op_n.index_add_(0, op, torch.ones(n, dtype=torch.float64))

        # Primal loss and dual step.
        if self.per_op:
            weights = self.lam.to(aug.device, aug.dtype)[op.to(aug.device)]
            total = clean + (weights * aug).mean()
            self.lam, self.relax = per_op_dual_step(self.lam, self.relax, op, aug_cpu, cfg)
        else:
            total = clean + float(self.lam[0]) * aug.mean()
            self.lam = (self.lam + cfg.dual_lr * (aug_cpu.mean() - cfg.epsilon)).clamp(min=0)

        acc = (logits.argmax(1) == labels).float().mean().item()
        aug_acc = (aug_logits.argmax(1) == ys).float().mean().item()
        return total, {"loss": total.item(), "clean_loss": clean.item(), "acc": acc, "aug_loss": aug_cpu.mean().item(),
                       "aug_acc": aug_acc}  # fmt: skip

    # ----------------------------------------------------------------------- per epoch

    def end_epoch(self, trainer: Trainer, epoch: int) -> dict[str, Any]:
        ops = self.states.ops
        op_loss = (self.op_loss / self.op_n.clamp(min=1)).tolist()
        prop_loss = (self.prop_loss / self.prop_n.clamp(min=1)).tolist()
        acceptance = self.sums["accepted"] / max(self.sums["proposed"], 1)
        record = {
            "epoch": epoch + 1,
            "acceptance": acceptance,
            "lambda": self.lam.tolist() if self.per_op else float(self.lam[0]),
            "relaxation": self.relax.tolist() if self.per_op else None,
            "op_aug_loss": {o: v for o, v, c in zip(ops, op_loss, self.op_n.tolist()) if c > 0},
            "op_proposal_loss": {o: v for o, v, c in zip(ops, prop_loss, self.prop_n.tolist()) if c > 0},
            "histogram": self.counts.tolist(),
        }
        self.history.append(record)
        self._reset_epoch(self.states.size, self.config.levels)
        if trainer.rank == 0:
            self.write_outputs(Path(trainer.config.out))
        lam = self.lam.mean().item() if self.per_op else float(self.lam[0])
        return {"acceptance": acceptance, "lambda_mean": lam}

    def learned_policy(self) -> Policy:
        """The sampler's law over the last ``policy_epochs`` epochs, as a policy."""
        recent = self.history[-max(1, self.config.policy_epochs) :]
        if not recent:
            raise ValueError("no epoch has finished yet: nothing to make a policy from")
        counts = torch.tensor([r["histogram"] for r in recent]).sum(0)  # K×L
        if self.per_op:
            lam = torch.tensor([r["lambda"] for r in recent]).mean(0)
            weights = lam if lam.sum() > 0 else counts.sum(1)
        else:
            weights = counts.sum(1)
        # An op whose constraint stays unmet has the largest λ of all; it may change the label,
        # and training on it would then teach wrong labels, so the policy leaves it out.
        left_out = {name for name, _ in unmet_ops(self.history, self.states.ops, self.config.epsilon)}
        entries = []
        lv = self.config.levels
        for k, name in enumerate(self.states.ops):
            w = float(weights[k])
            if w <= 0 or counts[k].sum() <= 0 or name in left_out:
                continue
            if not get_op(name).has_magnitude:
                entries.append(OpEntry(name, w, 1.0))
                continue
            levels = [(i + 1) / lv for i in range(lv) if counts[k, i] > 0]
            probs = [float(c) for c in counts[k] if c > 0]
            entries.append(OpEntry(name, w, 1.0, tuple(levels), tuple(probs)))
        if not entries:
            return Policy.identity()
        return Policy(
            [entries],
            space=self.config.space,
            interpolation=self.config.interpolation,
            name=f"mcmc_{self.config.dataset}",
            meta={"searcher": "mcmc", "constraint": self.config.constraint, "epsilon": self.config.epsilon,
                  "epochs": len(self.history), "policy_epochs": len(recent), "seed": self.config.seed,
                  "left_out": sorted(left_out)},
        )  # fmt: skip

    def write_outputs(self, out: Path) -> None:
        out.mkdir(parents=True, exist_ok=True)
        history = {"ops": self.states.ops, "levels": self.config.levels, "constraint": self.config.constraint,
                   "epsilon": self.config.epsilon, "epochs": self.history}  # fmt: skip
        atomic_write_text(out / "history.json", json.dumps(history))
        self.learned_policy().save(out / "policy.json")

    # ----------------------------------------------------------------------- resume

    def state_dict(self) -> dict[str, Any]:
        return {
            "generator": self.generator.get_state(),
            "slots": dict(self.slots) if self.slots is not None else {},
            "lam": self.lam,
            "relax": self.relax,
            "history": json.dumps(self.history),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])
        self.slots = dict(state["slots"]) or None
        self.lam = state["lam"]
        self.relax = state["relax"]
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


@register
class MCMCSearcher(Searcher):
    """``autoaug search --method mcmc``: train a model under the invariance constraint and
    write the sampler's law as the learned policy."""

    method = "mcmc"

    def run(self, resume: bool = False) -> SearchResult:
        step = MCMCStep(self.config)
        trainer = Trainer(self.config, step=step)
        metrics = trainer.fit(resume=resume)
        out = Path(self.config.out)
        if trainer.rank == 0:
            step.write_outputs(out)
        policy = step.learned_policy()
        summary = {
            "test_acc": metrics.get("test_acc"),
            "val_acc": metrics.get("val_acc"),
            "rejected": rejected_ops(step.history, step.states.ops, self.config.epsilon),
            "left_out": unmet_ops(step.history, step.states.ops, self.config.epsilon),
            "acceptance": step.history[-1]["acceptance"] if step.history else math.nan,
        }
        return SearchResult(policy=policy, metrics=metrics, out=out, summary=summary)


__all__ = ["MCMCSearcher", "MCMCStep", "StateSpace", "mh_step", "per_op_dual_step", "rejected_ops"]
