"""Bi-level, differentiable policy search (Faster AutoAugment: Hataya et al., ECCV 2020; DADA: Li
et al., ECCV 2020; the one-step unrolled hypergradient of DARTS: Liu et al., ICLR 2019).

The policy's parameters are continuous: per stage and op, an op logit, an application logit
(probability ``sigmoid``) and a magnitude logit (magnitude ``sigmoid`` in [0, 1], scaled into
the op's range). Sampling is relaxed, so the loss is differentiable in all three:

* **Which op.** Gumbel-softmax over the op logits at temperature τ. With ``relaxation="hard"``
  each image gets the arg-max op and the straight-through weight ``1 + s − sg(s)`` of its
  softmax entry ``s`` (one op per image, as DADA); ``"soft"`` applies every op to every image
  and mixes the results with the relaxed weights (exact gradients of the relaxed objective, K
  times the cost).
* **Whether.** A relaxed Bernoulli (logistic noise, temperature τ) on the application logit,
  thresholded straight-through in the hard relaxation: ``y = x + w·b·(O(x, m) − x)``.
* **How strong.** The magnitude flows through the kornia op: exactly where the op is
  differentiable (geometric ops with bilinear sampling, colour ops, blur), through the op's
  straight-through surrogate for translate, posterize and solarize, and through a linear path
  from the identity at magnitude 0 for the discrete rotate90 and erasing.

**Hypergradient.** Every ``policy_every`` model steps, the policy θ descends the validation loss
of the model after one SGD step on augmented data, ``L_val(w − η ∇_w L_aug(w, θ))``, on a batch
of the held-out validation split (a part of the training data the model never trains on),
with the inner step made functional by ``torch.func.functional_call``. ``unroll="second_order"``
differentiates through the inner step (a mixed second derivative by double backward);
``"first_order"`` replaces it with DARTS's finite difference of first-order gradients,
``−η [∇_θ L_aug(w⁺, θ) − ∇_θ L_aug(w⁻, θ)] / 2r`` with ``w± = w ± r ∇_w' L_val``.

**Invariance constraint.** The augmented training loss is held at the margin ε with a dual
variable λ on it, as the MCMC searcher holds its own: the policy minimizes the Lagrangian
``L_val(w') + λ·(L_aug − ε)`` and ``λ ← λ + η_λ·(L_aug − ε)`` every batch. The constraint is
two-sided (λ is signed): a policy whose augmented loss is above ε (destructive) is pushed to
weaker augmentation in all its parameters; one below ε (collapsing to the identity) to larger
magnitudes only, since raising the loss by picking other ops or applying them more often would
pick the ops that change the label (the hypergradient decides those). The constraint's gradient
reaches the magnitudes through the ops, and the op and application logits by the score function
of the model steps' per-image losses (REINFORCE with the batch mean as baseline): linearizing the
loss, as a straight-through estimate does, misjudges a flip, which is no small change.

**Modes.** ``mode="search"`` trains a proxy model on ``proxy_data`` of the training images for
``proxy_epochs`` of the schedule and writes the policy, ready for ``autoaug train --policy``;
``mode="online"`` trains the model and the policy together for the whole schedule and writes
both. Either way the run directory holds ``policy.json``, ``history.json`` (the policy's
trajectory, per-op augmented losses, the dual variable), ``metrics.jsonl``, ``config.yaml``
and ``model.pt``; ``autoaug show RUN_DIR`` draws the trajectory and ``autoaug analyze RUN_DIR``
reads it (the op weights and the per-op losses vote on which ops change the label).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from autoaug.data.stream import FileSplit, pixel_stats
from autoaug.ops import get_op
from autoaug.policy import OpEntry, Policy, atomic_write_text
from autoaug.reference import RA_NUM_OPS, randaugment_point
from autoaug.search.base import SearchConfig, Searcher, SearchResult, register, searched_ops
from autoaug.spaces import get_space, randaugment_ops
from autoaug.train import Trainer, dataset_of

MODES = ("search", "online")
UNROLLS = ("second_order", "first_order")
RELAXATIONS = ("hard", "soft")
EXPORTS = ("learned", "prior", "auto")  # bilevel.export's forms
# The search learned nothing when every stage's largest op weight is under this multiple of the
# uniform share 1/K. Set on the sixteenth session's record: on the ten suite tasks at 300 images
# (30 searches) the largest weight was 1.05-1.19x uniform; where the weights moved (Fashion-MNIST,
# 6,000 images: 2.04x and 1.72x; the full set on a GPU: 3.2x and 8.9x) the learned export stood.
UNMOVED = 1.5
_ST_MIN_MAGNITUDE = 1e-2  # the identity-path surrogate divides by the magnitude


def largest_share(weights: Tensor) -> list[float]:
    """Per stage, the largest op weight over the uniform share ``1/K`` (1.0: uniform).

    Shape:
        weights: S×K, each row summing to 1 (or to any positive total).
    """
    w = weights.double()
    w = w / w.sum(-1, keepdim=True)
    return (w.max(-1).values * w.shape[-1]).tolist()


def learned_nothing(weights: Tensor) -> bool:
    """Whether a search's op weights never left uniform: every stage's largest weight under
    :data:`UNMOVED` × the uniform share (export ``auto`` then writes the prior).

    Example:
        >>> import torch
        >>> learned_nothing(torch.full((2, 23), 1 / 23)), learned_nothing(torch.tensor([[0.5, 0.25, 0.25]]))
        (True, False)
    """
    return all(share < UNMOVED for share in largest_share(weights))


# ------------------------------------------------------------------------- the relaxed policy


@dataclass
class RelaxedNoise:
    """Everything random about one relaxed application to a batch (S stages, B images, K ops).

    Attributes:
        gumbel: S×B×K Gumbel noise on the op logits.
        logistic: S×B×K logistic noise on the application logits.
        sign: S×B ±1 (used by signed ops only).
        aux: S×B×2 uniform in [0, 1) (erasing's position).
    """

    gumbel: Tensor
    logistic: Tensor
    sign: Tensor
    aux: Tensor

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> RelaxedNoise:
        return RelaxedNoise(*(t.to(device, dtype) for t in (self.gumbel, self.logistic, self.sign, self.aux)))


class RelaxedPolicy(nn.Module):
    """A policy over a space's ops with continuous parameters and a relaxed, differentiable apply.

    Args:
        space: the space whose ops and ranges are searched.
        stages: ops applied one after the other.
        init_prob: the application probability every op starts at.
        init_magnitude: the magnitude (in [0, 1]) every op starts at.
        interpolation: ``"bilinear"`` (gradients reach geometric magnitudes) or ``"nearest"``.
        ops: search only these ops of the space (default: all of them).

    Examples:
        >>> import torch
        >>> policy = RelaxedPolicy("standard", stages=2)
        >>> noise = policy.sample_noise(8, torch.Generator().manual_seed(0))
        >>> y = policy(torch.rand(8, 3, 16, 16), noise, temperature=0.5)
        >>> y.shape, policy.to_policy().stages[0][0].op
        (torch.Size([8, 3, 16, 16]), 'identity')

    Shape:
        images: B×C×H×W float in [0, 1] -> B×C×H×W.
    """

    def __init__(
        self,
        space: str,
        stages: int = 2,
        init_prob: float = 0.5,
        init_magnitude: float = 0.5,
        interpolation: str = "bilinear",
        ops: Sequence[str] | None = None,
    ):
        super().__init__()
        if stages < 1:
            raise ValueError(f"stages must be >= 1, got {stages}")
        for name, v in (("init_prob", init_prob), ("init_magnitude", init_magnitude)):
            if not 0.0 < v < 1.0:
                raise ValueError(f"{name} must be in (0, 1), got {v}")
        self.space = space
        known = get_space(space).ops
        self.ops = list(known) if ops is None else list(ops)
        if not self.ops or any(o not in known for o in self.ops):
            raise ValueError(
                f"ops must be a non-empty subset of space {space!r}: {', '.join(known)}; got {ops!r}"
            )
        self.interpolation = interpolation
        k = len(self.ops)
        self.op_logits = nn.Parameter(torch.zeros(stages, k))
        self.prob_logits = nn.Parameter(torch.full((stages, k), math.log(init_prob / (1 - init_prob))))
        self.magnitude_logits = nn.Parameter(
            torch.full((stages, k), math.log(init_magnitude / (1 - init_magnitude)))
        )
        # A one-stage policy of every op gives the ranges (Policy.values) of the space.
        stage = [
            OpEntry(n, 1.0, 1.0, (1.0,), (1.0,)) if get_op(n).has_magnitude else OpEntry(n) for n in self.ops
        ]
        self._template = Policy([stage], space=space, interpolation=interpolation)
        self._signed = [get_op(n).signed for n in self.ops]

    @property
    def stages(self) -> int:
        return self.op_logits.shape[0]

    def sample_noise(self, batch_size: int, generator: torch.Generator) -> RelaxedNoise:
        """Draw the noise for ``batch_size`` images on ``generator``'s device (CPU when seeded there)."""
        s, b, k = self.stages, batch_size, len(self.ops)
        u = torch.rand(s, b, k, generator=generator).clamp(1e-10, 1 - 1e-7)
        gumbel = -torch.log(-torch.log(u))
        u = torch.rand(s, b, k, generator=generator).clamp(1e-7, 1 - 1e-7)
        logistic = torch.log(u) - torch.log1p(-u)
        sign = torch.where(torch.rand(s, b, generator=generator) < 0.5, -1.0, 1.0)
        aux = torch.rand(s, b, 2, generator=generator)
        return RelaxedNoise(gumbel, logistic, sign, aux)

    def magnitudes(self) -> Tensor:
        """S×K magnitudes in [0, 1]."""
        return torch.sigmoid(self.magnitude_logits)

    def probs(self) -> Tensor:
        """S×K application probabilities."""
        return torch.sigmoid(self.prob_logits)

    def weights(self) -> Tensor:
        """S×K probabilities of picking each op."""
        return torch.softmax(self.op_logits, -1)

    def _op(self, k: int, x: Tensor, magnitude: Tensor, sign: Tensor, aux: Tensor) -> Tensor:
        """Op ``k`` at per-image magnitudes (which may require grad)."""
        name = self.ops[k]
        op = get_op(name)
        h, w = x.shape[-2:]
        sign = sign if self._signed[k] else torch.ones_like(sign)
        values = self._template.values(0, k, magnitude, sign, h, w)
        out = op(x, values, aux, self.interpolation)
        if op.grad == "none" and op.has_magnitude and magnitude.requires_grad and torch.is_grad_enabled():
            # Straight-through along the path from the identity (magnitude 0 is the identity).
            m = magnitude.detach().clamp(min=_ST_MIN_MAGNITUDE)
            out = out + ((magnitude - magnitude.detach()) / m).view(-1, 1, 1, 1) * (out - x).detach()
        return out

    def forward(
        self, images: Tensor, noise: RelaxedNoise, temperature: float = 0.5, relaxation: str = "hard"
    ) -> Tensor:
        """Apply the policy with the relaxed sample ``noise``; differentiable in the parameters."""
        if relaxation not in RELAXATIONS:
            raise ValueError(f"relaxation must be one of {RELAXATIONS}, got {relaxation!r}")
        if noise.gumbel.shape[1] != len(images):
            raise ValueError(f"noise is for {noise.gumbel.shape[1]} images, got {len(images)}")
        noise = noise.to(images.device, images.dtype)
        x = images
        for s in range(self.stages):
            x = self._stage(s, x, noise, temperature, relaxation)
        return x

    def _stage(self, s: int, x: Tensor, noise: RelaxedNoise, tau: float, relaxation: str) -> Tensor:
        dtype = x.dtype
        logits = self.op_logits[s].to(dtype)
        prob_logits = self.prob_logits[s].to(dtype)
        mags = torch.sigmoid(self.magnitude_logits[s].to(dtype))
        soft_w = torch.softmax((logits + noise.gumbel[s]) / tau, -1)  # B×K
        soft_b = torch.sigmoid((prob_logits + noise.logistic[s]) / tau)  # B×K
        sign, aux = noise.sign[s], noise.aux[s]
        b = len(x)
        if relaxation == "soft":
            out = x
            for k in range(len(self.ops)):
                if self.ops[k] == "identity":
                    continue
                coef = (soft_w[:, k] * soft_b[:, k]).view(-1, 1, 1, 1)
                out = out + coef * (self._op(k, x, mags[k].expand(b), sign, aux) - x)
            return out
        chosen = (logits + noise.gumbel[s]).argmax(-1)  # B
        w = soft_w.gather(1, chosen[:, None]).squeeze(1)
        bs = soft_b.gather(1, chosen[:, None]).squeeze(1)
        applied = (prob_logits[chosen] + noise.logistic[s].gather(1, chosen[:, None]).squeeze(1)) > 0
        wants_grad = torch.is_grad_enabled() and any(p.requires_grad for p in self.parameters())
        coef = (1 + w - w.detach()) * (applied.to(dtype) + bs - bs.detach())  # 0 or 1, forward
        out_parts, idx_parts = [], []
        for k in chosen.unique().tolist():
            if self.ops[k] == "identity":
                continue
            mask = chosen == k if wants_grad else (chosen == k) & applied
            idx = mask.nonzero().squeeze(1)
            if len(idx) == 0:
                continue
            y = self._op(k, x[idx], mags[k].expand(len(idx)), sign[idx], aux[idx])
            out_parts.append(x[idx] + coef[idx].view(-1, 1, 1, 1) * (y - x[idx]))
            idx_parts.append(idx)
        if not idx_parts:
            return x
        return x.index_copy(0, torch.cat(idx_parts), torch.cat(out_parts).to(dtype))

    @torch.no_grad()
    def choices(self, noise: RelaxedNoise) -> tuple[Tensor, Tensor]:
        """The hard sample's op per image (S×B long) and whether it is applied (S×B bool)."""
        noise = noise.to(self.op_logits.device, self.op_logits.dtype)
        chosen = (self.op_logits[:, None, :] + noise.gumbel).argmax(-1)
        logistic = noise.logistic.gather(2, chosen[..., None]).squeeze(-1)
        return chosen, (self.prob_logits.gather(1, chosen) + logistic) > 0

    @torch.no_grad()
    def score_grad(self, noise: RelaxedNoise, losses: Tensor) -> tuple[Tensor, Tensor]:
        """The score-function (REINFORCE) gradient of the expected loss with respect to the op and
        application logits, from the hard sample ``noise`` and the per-image ``losses`` under it:
        ``E[(ℓ − ℓ̄) ∇ log p(op, applied)]``, with the batch mean as the baseline.

        Shape:
            losses: B; returns two S×K tensors.
        """
        chosen, applied = self.choices(noise)
        adv = (losses - losses.mean()).to(self.op_logits.dtype).to(self.op_logits.device)
        b = len(adv)
        onehot = F.one_hot(chosen, len(self.ops)).to(adv.dtype)  # S×B×K
        g_op = torch.einsum("b,sbk->sk", adv, onehot - self.weights()[:, None, :]) / b
        picked_prob = self.probs().gather(1, chosen)  # S×B
        g_prob = torch.einsum("sb,sbk->sk", adv * (applied.to(adv.dtype) - picked_prob), onehot) / b
        return g_op, g_prob

    # ------------------------------------------------------------------------------ export

    def op_weights(self) -> dict[str, float]:
        """Per op, the chance that it is applied to an image in a stage (mean over stages)."""
        applied = (self.weights() * self.probs()).mean(0).detach().cpu()
        return {name: float(v) for name, v in zip(self.ops, applied)}

    def to_policy(self, name: str = "bilevel", meta: dict[str, Any] | None = None) -> Policy:
        """The learned policy in autoaug's format: per stage, each op's weight, probability and
        magnitude (one magnitude per op; signed ops take a random sign when applied)."""
        weights, probs, mags = (
            t.detach().double().cpu() for t in (self.weights(), self.probs(), self.magnitudes())
        )
        stages = []
        for s in range(self.stages):
            entries = []
            for k, op in enumerate(self.ops):
                w, p = round(float(weights[s, k]), 6), round(float(probs[s, k]), 6)
                if get_op(op).has_magnitude:
                    entries.append(OpEntry(op, w, p, (round(float(mags[s, k]), 6),), (1.0,)))
                else:
                    entries.append(OpEntry(op, w, p))
            stages.append(entries)
        return Policy(stages, space=self.space, interpolation=self.interpolation, name=name, meta=meta or {})

    def stage_table(self) -> list[dict[str, list[float]]]:
        """Per stage, the op weights, probabilities and magnitudes (for the history)."""
        w, p, m = (t.detach().cpu() for t in (self.weights(), self.probs(), self.magnitudes()))
        return [{"weights": w[s].tolist(), "probs": p[s].tolist(), "magnitudes": m[s].tolist()} for s in range(self.stages)]  # fmt: skip


# ------------------------------------------------------------------------------ hypergradient


def hypergradient(
    model: nn.Module,
    policy_params: list[Tensor],
    train_loss: Callable[[dict[str, Tensor]], Tensor],
    val_loss: Callable[[dict[str, Tensor]], Tensor],
    lr: float,
    unroll: str = "second_order",
    fd_radius: float = 1e-2,
) -> tuple[list[Tensor], list[Tensor], float, float]:
    """The one-step unrolled hypergradient ``d/dθ L_val(w − lr·∇_w L_train(w, θ))``.

    Args:
        model: whose named parameters are ``w`` (its current values; left untouched).
        policy_params: θ (leaf tensors that require grad).
        train_loss: weights -> the augmented training loss; depends on θ (its random draws
            fixed, so that repeated calls are the same function; its graph to θ may be shared
            between calls: it is retained).
        val_loss: weights -> the validation loss.
        lr: the inner step's learning rate η.
        unroll: ``"second_order"`` (autograd through the inner step) or ``"first_order"``
            (DARTS's central difference of first-order gradients, radius ``fd_radius / ‖v‖``).

    Returns:
        ``(hypergradient, ∇_θ L_train(w, θ), L_train(w), L_val(w'))``: the gradients one per
        tensor of ``policy_params``.
    """
    if unroll not in UNROLLS:
        raise ValueError(f"unroll must be one of {UNROLLS}, got {unroll!r}")
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    weights = {n: p.detach().requires_grad_() for n, p in model.named_parameters() if p.requires_grad}
    w_list = [weights[n] for n in names]
    second = unroll == "second_order"
    l_train = train_loss(weights)
    grads = torch.autograd.grad(
        l_train, w_list + policy_params, create_graph=second, retain_graph=True, allow_unused=True
    )
    g_w, g_theta = grads[: len(w_list)], grads[len(w_list) :]
    aug_grad = [torch.zeros_like(p) if g is None else g.detach() for g, p in zip(g_theta, policy_params)]
    g_w = [torch.zeros_like(w) if g is None else g for g, w in zip(g_w, w_list)]
    if second:
        inner = {n: w - lr * g for n, w, g in zip(names, w_list, g_w)}
        l_val = val_loss(inner)
        hyper = torch.autograd.grad(l_val, policy_params, allow_unused=True)
    else:
        inner = {n: (w - lr * g).detach().requires_grad_() for n, w, g in zip(names, w_list, g_w)}
        l_val = val_loss(inner)
        v = torch.autograd.grad(l_val, [inner[n] for n in names], allow_unused=True)
        v = [torch.zeros_like(w) if g is None else g for g, w in zip(v, w_list)]
        r = fd_radius / torch.sqrt(sum((g.double() ** 2).sum() for g in v)).clamp(min=1e-12).item()

        def theta_grad(direction: float) -> list[Tensor]:
            moved = {n: (w + direction * r * g).detach() for n, w, g in zip(names, w_list, v)}
            out = torch.autograd.grad(train_loss(moved), policy_params, retain_graph=True, allow_unused=True)
            return [torch.zeros_like(p) if g is None else g for g, p in zip(out, policy_params)]

        plus, minus = theta_grad(1.0), theta_grad(-1.0)
        hyper = tuple(-lr * (a - b) / (2 * r) for a, b in zip(plus, minus))
    hyper = [torch.zeros_like(p) if g is None else g.detach() for g, p in zip(hyper, policy_params)]
    return hyper, aug_grad, l_train.item(), l_val.item()


# ----------------------------------------------------------------------------------- the step


class BilevelStep:
    """The model step on policy-augmented data plus, every ``policy_every`` steps, the policy
    update by hypergradient and the dual variable (a :class:`~autoaug.train.Step`).

    Args:
        config: the search's settings.
        ops: search only these ops of ``config.space`` (default: all of them).
    """

    def __init__(self, config: SearchConfig, ops: Sequence[str] | None = None):
        if config.bilevel.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {config.bilevel.mode!r}")
        if config.bilevel.unroll not in UNROLLS:
            raise ValueError(f"unroll must be one of {UNROLLS}, got {config.bilevel.unroll!r}")
        if config.bilevel.relaxation not in RELAXATIONS:
            raise ValueError(f"relaxation must be one of {RELAXATIONS}, got {config.bilevel.relaxation!r}")
        if config.bilevel.export not in EXPORTS:
            raise ValueError(f"export must be one of {EXPORTS}, got {config.bilevel.export!r}")
        if (
            config.bilevel.policy_every < 1
            or config.bilevel.temperature <= 0
            or config.bilevel.policy_lr <= 0
        ):
            raise ValueError(
                "policy_every must be >= 1 and temperature, policy_lr > 0, got "
                f"{config.bilevel.policy_every}, {config.bilevel.temperature}, {config.bilevel.policy_lr}"
            )
        self.config = config
        self.policy = RelaxedPolicy(config.space, config.bilevel.stages, config.bilevel.init_prob, config.bilevel.init_magnitude,
                                    config.interpolation, ops)  # fmt: skip
        self.optimizer = torch.optim.Adam(
            self.policy.parameters(), lr=config.bilevel.policy_lr, betas=(0.5, 0.999)
        )
        self.generator = torch.Generator().manual_seed(config.seed + 130363)
        self.lam = 0.0
        self.batches = 0
        self.history: list[dict[str, Any]] = []
        self._val: tuple[Tensor, Tensor] | None = None
        self.image_size: tuple[int, int] | None = None  # the training images', set by bind()
        self.vacuous: list[str] = []  # ops of the space left out because they change no training image
        self._reset_epoch()
        self._reset_score()

    def _reset_score(self) -> None:
        p = self.policy.op_logits
        self.score = [torch.zeros_like(p.detach()), torch.zeros_like(p.detach())]
        self.score_n = 0

    def _reset_epoch(self) -> None:
        self.sums = {"aug_loss": 0.0, "batches": 0.0, "val_loss": 0.0, "hyper_norm": 0.0, "updates": 0.0}

    def bind(self, trainer: Trainer) -> None:
        """Move the policy to the trainer's device (before a checkpoint's optimizer state loads) and
        note the image size, which the learned policy records for its export."""
        self.image_size = trainer.dataset.image_size
        self.policy.to(trainer.device)
        self.score = [t.to(trainer.device) for t in self.score]
        if len(trainer.dataset.val) == 0:
            raise ValueError(
                "the bilevel search needs a validation split for its hypergradient; set val_size > 0"
            )

    # ------------------------------------------------------------------------------ the step

    def _logits(
        self, trainer: Trainer, weights: dict[str, Tensor], buffers: dict[str, Tensor], x: Tensor
    ) -> Tensor:
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=trainer.cuda and trainer.config.amp):
            return functional_call(trainer.model, {**weights, **buffers}, (trainer.normalize(x),)).float()

    def _val_batch(self, trainer: Trainer, n: int) -> tuple[Tensor, Tensor]:
        val = trainer.dataset.val
        if isinstance(val, FileSplit):  # streamed: decode the images drawn
            idx = torch.randperm(len(val), generator=self.generator)[:n]
            return val.images[idx].to(trainer.device).float() / 255.0, val.labels[idx].to(trainer.device)
        if self._val is None:
            self._val = (val.images.to(trainer.device), val.labels.to(trainer.device))
        images, labels = self._val
        idx = torch.randperm(len(labels), generator=self.generator)[:n].to(trainer.device)
        return images[idx].float() / 255.0, labels[idx]

    def update_policy(self, trainer: Trainer, images: Tensor, labels: Tensor) -> None:
        """One step of the policy on the Lagrangian ``L_val(w') + λ·(L_aug − ε)``."""
        cfg = self.config
        noise = self.policy.sample_noise(len(images), self.generator)
        xv, yv = self._val_batch(trainer, len(images))
        # Copies of the buffers: the functional passes must not move BatchNorm's running statistics.
        buffers = {n: b.clone() for n, b in trainer.model.named_buffers()}

        x = self.policy(
            images, noise, cfg.bilevel.temperature, cfg.bilevel.relaxation
        )  # one augmentation, reused

        def train_loss(w: dict[str, Tensor]) -> Tensor:
            return F.cross_entropy(self._logits(trainer, w, buffers, x), labels)

        def val_loss(w: dict[str, Tensor]) -> Tensor:
            return F.cross_entropy(self._logits(trainer, w, buffers, xv), yv)

        params = list(self.policy.parameters())
        lr = trainer.optimizer.param_groups[0]["lr"]
        hyper, aug_grad, _, l_val = hypergradient(
            trainer.model, params, train_loss, val_loss, lr, cfg.bilevel.unroll
        )
        # The constraint's gradient: for the magnitudes, through the ops (pathwise); for which op
        # and whether, the score function of the model steps' per-image losses since the last
        # update (a straight-through estimate linearizes the loss, and a flip is no small change).
        # Over the margin it weakens the policy in every parameter; under it (λ < 0) it raises the
        # magnitudes only, not which ops are picked nor how often: the ops that raise the loss most
        # are those that change the label, and the hypergradient decides about them.
        score = [t / max(self.score_n, 1) for t in self.score]
        constraint = {"op_logits": score[0], "prob_logits": score[1], "magnitude_logits": aug_grad[2]}
        names = [n for n, _ in self.policy.named_parameters()]
        grads = [
            h + (self.lam if self.lam > 0 or n == "magnitude_logits" else 0.0) * constraint[n].to(h)
            for n, h in zip(names, hyper)
        ]
        self._reset_score()
        if trainer.world > 1:
            for g in grads:
                torch.distributed.all_reduce(g)
                g /= trainer.world
        self.optimizer.zero_grad(set_to_none=True)
        for p, g in zip(params, grads):
            p.grad = g
        self.optimizer.step()
        self.sums["val_loss"] += l_val
        self.sums["hyper_norm"] += math.sqrt(sum(float((h.double() ** 2).sum()) for h in hyper))
        self.sums["updates"] += 1

    def loss(self, trainer: Trainer, images: Tensor, labels: Tensor) -> tuple[Tensor, dict[str, float]]:
        cfg = self.config
        if self.batches % cfg.bilevel.policy_every == 0:
            self.update_policy(trainer, images, labels)
        self.batches += 1
        noise = self.policy.sample_noise(len(images), self.generator)
        with torch.no_grad():
            x = self.policy(images, noise, cfg.bilevel.temperature)
        logits = trainer.forward(x)
        per_image = F.cross_entropy(logits, labels, label_smoothing=cfg.label_smoothing, reduction="none")
        loss = per_image.mean()
        g_op, g_prob = self.policy.score_grad(noise, per_image.detach())
        self.score[0] += g_op
        self.score[1] += g_prob
        self.score_n += 1
        aug = loss.item()
        self.lam += cfg.bilevel.dual_lr * (aug - cfg.bilevel.epsilon)  # signed: the constraint is two-sided
        self.sums["aug_loss"] += aug
        self.sums["batches"] += 1
        acc = (logits.argmax(1) == labels).float().mean().item()
        return loss, {"loss": aug, "acc": acc}

    # ------------------------------------------------------------------------------- per epoch

    @torch.no_grad()
    def probe(self, trainer: Trainer) -> tuple[float, dict[str, float]]:
        """The clean loss and, per op, the loss under the op at its learned magnitude (mean over
        stages), on a fixed sample of training images; the model in eval mode."""
        train = trainer.dataset.train
        g = torch.Generator().manual_seed(self.config.seed + 7)  # the same images and signs each epoch
        idx = torch.randperm(len(train), generator=g)[: self.config.bilevel.probe_size]
        x = train.images[idx].to(trainer.device).float() / 255.0
        y = train.labels[idx].to(trainer.device)
        sign = torch.where(torch.rand(len(idx), generator=g) < 0.5, -1.0, 1.0).to(x.device)
        aux = torch.rand(len(idx), 2, generator=g).to(x.device)
        mags = self.policy.magnitudes().mean(0)
        trainer.model.eval()
        try:
            clean = F.cross_entropy(trainer.forward(x, net=trainer.model), y).item()
            losses = {}
            for k, name in enumerate(self.policy.ops):
                xa = self.policy._op(k, x, mags[k].expand(len(x)).to(x.dtype), sign, aux)
                losses[name] = F.cross_entropy(trainer.forward(xa, net=trainer.model), y).item()
        finally:
            trainer.model.train()
        return clean, losses

    def end_epoch(self, trainer: Trainer, epoch: int) -> dict[str, Any]:
        """The trainer's end of an epoch: :meth:`close_epoch`, then rank 0 writes the outputs."""
        numbers = self.close_epoch(trainer, epoch)
        if trainer.rank == 0:
            self.write_outputs(Path(trainer.config.out))
        return numbers

    def close_epoch(self, trainer: Trainer, epoch: int) -> dict[str, Any]:
        """Probe the model (:meth:`probe`), record epoch ``epoch`` (from 0) in :attr:`history`, start the next."""
        clean, op_loss = self.probe(trainer)
        n, u = max(self.sums["batches"], 1), max(self.sums["updates"], 1)
        record = {
            "epoch": epoch + 1,
            "lambda": self.lam,
            "aug_loss": self.sums["aug_loss"] / n,
            "val_loss": self.sums["val_loss"] / u,
            "hypergrad_norm": self.sums["hyper_norm"] / u,
            "policy_updates": int(self.sums["updates"]),
            "clean_loss": clean,
            "op_aug_loss": op_loss,
            "op_weights": self.policy.op_weights(),
            "stages": self.policy.stage_table(),
        }
        self.history.append(record)
        self._reset_epoch()
        return {"lambda": self.lam, "train_clean_loss": clean, "policy_val_loss": record["val_loss"]}

    def learned_policy(self) -> Policy:
        cfg = self.config
        meta = {"searcher": "bilevel", "mode": cfg.bilevel.mode, "epsilon": cfg.bilevel.epsilon, "unroll": cfg.bilevel.unroll,
                "relaxation": cfg.bilevel.relaxation, "epochs": len(self.history), "seed": cfg.seed}  # fmt: skip
        if self.image_size is not None:  # translations are a fraction of it; `autoaug export` reads it
            meta["image_size"] = list(self.image_size)
        if self.vacuous:
            meta["vacuous"] = list(self.vacuous)
        if cfg.bilevel.export == "prior":
            return self.prior_policy(meta)
        if (
            cfg.bilevel.export == "auto" and cfg.bilevel.mode == "search"
        ):  # online: what the model trained with
            weights = self.policy.weights().detach()
            moved = largest_share(weights)
            meta = meta | {"largest_weight_share": [round(m, 4) for m in moved]}
            if learned_nothing(weights):
                return self.prior_policy(meta | {"learned_nothing": True})
            meta = meta | {"export": "learned"}
        return self.policy.to_policy(name=f"bilevel_{cfg.dataset}", meta=meta)

    def prior_policy(self, meta: dict[str, Any]) -> Policy:
        """RandAugment's point (torchvision's N 2, M 9 of 31, every op applied) over the geometric
        and photometric ops of the search that it did not avoid (:func:`avoided_ops`: driven down
        with a loss well above the clean loss): the practitioner's default, less what the search
        found changes the label."""
        avoided = sorted(op for op, _ in avoided_ops(self.history))
        drawn = set(randaugment_ops(self.config.space))
        ops = [op for op in self.policy.ops if op in drawn and op not in avoided]
        meta = meta | {"export": "prior", "avoided": avoided, "n_ops": RA_NUM_OPS}
        return Policy(randaugment_point(ops), space=self.config.space, interpolation=self.config.interpolation,
                      name=f"bilevel_{self.config.dataset}", meta=meta)  # fmt: skip

    def write_outputs(self, out: Path) -> None:
        out.mkdir(parents=True, exist_ok=True)
        cfg = self.config
        history = {"method": "bilevel", "mode": cfg.bilevel.mode, "ops": self.policy.ops, "stages": cfg.bilevel.stages,
                   "constraint": "two_sided", "epsilon": cfg.bilevel.epsilon, "vacuous": self.vacuous,
                   "epochs": self.history}  # fmt: skip
        atomic_write_text(out / "history.json", json.dumps(history))
        self.learned_policy().save(out / "policy.json")

    # --------------------------------------------------------------------------------- resume

    def state_dict(self) -> dict[str, Any]:
        return {
            "policy": self.policy.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "lam": self.lam,
            "batches": self.batches,
            "score": torch.stack(self.score),
            "score_n": self.score_n,
            "history": json.dumps(self.history),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.policy.load_state_dict(state["policy"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        self.lam = float(state["lam"])
        self.batches = int(state["batches"])
        self.score = [t.to(self.policy.op_logits.device) for t in state["score"].unbind(0)]
        self.score_n = int(state["score_n"])
        self.history = json.loads(state["history"])


# ------------------------------------------------------------------------------- the searcher


def proxy_config(config: SearchConfig) -> SearchConfig:
    """The settings the trainer runs with: the whole schedule online, the proxy's in search mode."""
    if config.bilevel.mode != "search":
        return config
    if not 0 < config.bilevel.proxy_data <= 1 or not 0 < config.bilevel.proxy_epochs <= 1:
        raise ValueError(
            f"proxy_data and proxy_epochs must be in (0, 1], got {config.bilevel.proxy_data}, {config.bilevel.proxy_epochs}"
        )
    return dataclasses.replace(config, epochs=max(1, math.ceil(config.bilevel.proxy_epochs * config.epochs)))


@register
class BilevelSearcher(Searcher):
    """``autoaug search --method bilevel``: learn a differentiable policy by hypergradient, on a
    proxy (``--mode search``) or while training the model (``--mode online``)."""

    method = "bilevel"

    def run(self, resume: bool = False) -> SearchResult:
        config = proxy_config(self.config)
        dataset = dataset_of(config)
        full_train = dataset.train
        ops, vacuous = searched_ops(config, full_train)
        step = BilevelStep(config, ops)
        step.vacuous = vacuous
        if config.bilevel.mode == "search" and config.bilevel.proxy_data < 1:
            n = max(config.batch_size, round(config.bilevel.proxy_data * len(full_train)))
            g = torch.Generator().manual_seed(config.seed + 31)
            dataset = dataclasses.replace(dataset, train=full_train.subset(torch.randperm(len(full_train), generator=g)[:n]))  # fmt: skip
        trainer = Trainer(config, dataset=dataset, step=step)
        if dataset.train is not full_train:
            # Normalize as a model trained on the whole split would (and as `autoaug analyze` does).
            mean, std = pixel_stats(full_train, seed=config.seed)
            trainer.mean = mean.to(trainer.device).view(1, -1, 1, 1)
            trainer.std = std.clamp(min=1e-3).to(trainer.device).view(1, -1, 1, 1)
        step.bind(trainer)
        metrics = trainer.fit(resume=resume)
        out = Path(config.out)
        if trainer.rank == 0:
            step.write_outputs(out)
        summary = {
            "test_acc": metrics.get("test_acc"),
            "val_acc": metrics.get("val_acc"),
            "rejected": avoided_ops(step.history),
            "mode": config.bilevel.mode,
            "epochs": config.epochs,
            "train_images": len(dataset.train),
            "op_weights": step.history[-1]["op_weights"] if step.history else {},
            "vacuous": vacuous,
        }
        return SearchResult(policy=step.learned_policy(), metrics=metrics, out=out, summary=summary)


def avoided_ops(history: list[dict[str, Any]]) -> list[tuple[str, float]]:
    """Ops the search drove below half the uniform share whose loss stays well above the clean
    loss (the thresholds of :mod:`autoaug.analysis.verdicts`), with that excess, largest first."""
    from autoaug.analysis.verdicts import SEARCH_EXCESS, WEIGHT_LOW

    if not history:
        return []
    last = history[-1]
    weights, losses = last["op_weights"], last["op_aug_loss"]
    total = sum(weights.values())
    out = []
    for op, w in weights.items():
        excess = losses.get(op, math.nan) - last["clean_loss"]
        if total > 0 and w * len(weights) / total < WEIGHT_LOW and excess >= SEARCH_EXCESS:
            out.append((op, excess))
    return sorted(out, key=lambda t: -t[1])


# ------------------------------------------------------------------------------------- plots


def plot_history(run: Path, out: Path) -> Path:
    """Draw a bilevel run's trajectory: op weights, magnitudes, the dual variable and the
    augmented loss against ε, the per-op losses; write PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    history = json.loads((run / "history.json").read_text())
    epochs, ops = history["epochs"], history["ops"]
    x = np.arange(1, len(epochs) + 1)
    weights = np.array([[e["op_weights"][o] for o in ops] for e in epochs])
    mags = np.array([np.mean([st["magnitudes"] for st in e["stages"]], 0) for e in epochs])
    fig, axes = plt.subplots(2, 2, figsize=(13, 8))
    order = np.argsort(-weights[-1])
    cmap = plt.get_cmap("tab20")
    ax = axes[0, 0]
    ax.stackplot(x, weights[:, order].T, labels=[ops[i] for i in order],
                 colors=[cmap(i % 20) for i in range(len(ops))])  # fmt: skip
    ax.set_title("chance each op is applied, per stage (mean over stages)")
    ax.legend(fontsize=6, ncol=2, loc="upper left", bbox_to_anchor=(1, 1))
    ax = axes[0, 1]
    for i in order[:8]:
        if get_op(ops[i]).has_magnitude:
            ax.plot(x, mags[:, i], label=ops[i])
    ax.set_title("magnitude per op (top ops by weight)")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7)
    ax = axes[1, 0]
    losses = [e["op_aug_loss"] for e in epochs]
    for name in sorted(losses[-1], key=lambda o: -losses[-1][o])[:8]:
        ax.plot(x, [lo.get(name, np.nan) for lo in losses], label=name)
    ax.plot(x, [e["clean_loss"] for e in epochs], "k:", label="clean")
    ax.set_title("training loss under each op at its magnitude (top 8)")
    ax.legend(fontsize=7)
    ax = axes[1, 1]
    ax.plot(x, [e["aug_loss"] for e in epochs], "b-", label="augmented loss")
    ax.plot(x, [e["val_loss"] for e in epochs], "g--", label="unrolled validation loss")
    ax.axhline(history.get("epsilon", np.nan), color="gray", lw=0.8, label="ε")
    ax.plot(x, [e["lambda"] for e in epochs], "k-.", label="dual variable λ")
    ax.set_title("losses and the dual variable")
    ax.legend(fontsize=7)
    for ax in axes.flat:
        ax.set_xlabel("epoch")
    fig.suptitle(f"bilevel search {run.name} ({history.get('mode')} mode), ε = {history.get('epsilon')}")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


__all__ = [
    "BilevelSearcher",
    "BilevelStep",
    "RelaxedNoise",
    "RelaxedPolicy",
    "avoided_ops",
    "hypergradient",
    "largest_share",
    "learned_nothing",
    "plot_history",
    "proxy_config",
]
