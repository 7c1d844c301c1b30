"""Density matching: score a policy without training on it (Fast AutoAugment's proxy).

Fast AutoAugment (Lim, Kim, Kim, Kim, Kim, NeurIPS 2019, "Fast AutoAugment") trains a model
once, without the candidate policies, on part of the training data (``D_M``), and scores each
candidate policy by how that model does on the rest of the data (``D_A``) augmented by it: a
policy whose augmented images the model still recognizes keeps the data near its own
distribution ("density matching"), so training on it adds images like the data's instead of
off-support ones. No training per candidate: a score costs a few forward passes over ``D_A``.

The reference code (kakaobrain/fast-autoaugment, ``eval_tta``) draws each held-out image
through the policy several times and counts the image right when *any* draw is classified
right (and takes the smallest loss over the draws): the score rewards policies whose draws
vary (diversity) as long as some stay recognizable (affinity), where the mean accuracy over
draws alone would always rank no augmentation first. Both are measured here (Gontijo-Lopes et
al., ICLR 2021, "Tradeoffs in Data Augmentation: An Empirical Study", call the mean one
affinity):

* ``best``: the fraction of held-out images some draw gets right (Fast AA's ``top1_valid``);
* ``acc``: the mean accuracy over draws (affinity), ``loss``: the mean cross-entropy;
* ``min_loss``: the mean over images of the smallest loss over draws (Fast AA's ``minus_loss``).

Every policy is scored with the same random streams (draw ``d`` seeded by ``(seed, d)``), so
two policies that differ a little are compared on the same positions, signs and coin flips:
common random numbers make the differences between scores less noisy than the scores.

Example:
    >>> from autoaug.data import load_dataset
    >>> from autoaug.policy import load_policy
    >>> ds = load_dataset("glyphs", train_size=256)
    >>> proxy = DensityProxy(ds, epochs=1, out="runs/density_doc")
    >>> proxy.fit()["clean_acc"] >= 0  # doctest: +SKIP
    True
    >>> proxy.score(load_policy("randaugment"))["best"] <= 1  # doctest: +SKIP
    True
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from autoaug.data import Dataset, Split
from autoaug.data.base import split_off
from autoaug.policy import Policy, PolicyParams, atomic_write_text
from autoaug.train import PolicyStep, TrainConfig, Trainer

SCORES = ("best", "acc", "loss", "min_loss")  # what a density score may rank policies by


def density_split(dataset: Dataset, holdout: float, seed: int) -> tuple[Split, Split]:
    """The training and validation images of ``dataset`` pooled, then split (stratified,
    seeded) into the model's part ``D_M`` and the held-out part ``D_A`` (``holdout`` of them).

    Raises:
        ValueError: ``holdout`` outside (0, 1), or a part left without images.
    """
    if not 0.0 < holdout < 1.0:
        raise ValueError(f"holdout {holdout!r}: expected a fraction in (0, 1)")
    images = torch.cat([dataset.train.images, dataset.val.images])
    labels = torch.cat([dataset.train.labels, dataset.val.labels])
    count = round(holdout * len(labels))
    if count == 0 or count == len(labels):
        raise ValueError(
            f"holdout {holdout!r} of {len(labels)} images leaves a part empty; expected a fraction that "
            "leaves images on both sides"
        )
    g = torch.Generator().manual_seed(int(np.random.SeedSequence([seed, 0xD5]).generate_state(1)[0]))
    held, kept = split_off(labels, count, g)
    pool = Split(images, labels)
    return pool.subset(kept), pool.subset(held)


class DensityProxy:
    """A model trained once on ``D_M``, and the scores of policies on augmented ``D_A``.

    Args:
        dataset: the data; its train and validation images are pooled and split again.
        holdout: the fraction held out as ``D_A`` (the rest trains the model).
        draws: augmented draws per held-out image per score.
        seed: seeds the split, the model's training and the draws.
        out: where the model's training writes its metrics (its checkpoint is removed).
        base: the augmentation the model trains with (Fast AA's model trains with the task's
            standard augmentation, flips and crops on CIFAR); none by default. Candidate
            policies are scored without it.
        **train: settings of the model's :class:`TrainConfig` (model, epochs, lr, ...).
    """

    def __init__(
        self,
        dataset: Dataset,
        holdout: float = 0.5,
        draws: int = 5,
        seed: int = 0,
        out: str | Path = "runs/density",
        base: Policy | None = None,
        **train: Any,
    ):
        if isinstance(draws, bool) or not isinstance(draws, int) or draws < 1:
            raise ValueError(f"draws {draws!r}: expected an integer >= 1")
        self.draws, self.seed, self.out, self.holdout = draws, seed, Path(out), holdout
        fit, held = density_split(dataset, holdout, seed)
        empty = Split(fit.images[:0], fit.labels[:0])
        self.dataset = Dataset(dataset.name, fit, empty, held, dataset.num_classes, dataset.class_names,
                               dataset.ground_truth, dataset.source)  # fmt: skip
        train = {k: v for k, v in train.items() if k in TrainConfig.fields()}
        train.update(dataset=dataset.name, seed=seed, policy="none", out=str(self.out), progress=False,
                     test_every=10**9)  # fmt: skip
        train.setdefault("val_size", 0.1)
        self.base = base or Policy.identity()
        self.trainer = Trainer(TrainConfig(**train), dataset=self.dataset, step=PolicyStep(self.base, seed))
        self.fitted: dict[str, Any] | None = None
        self._clean_cache: tuple[torch.Tensor, torch.Tensor] | None = None

    @property
    def held_out(self) -> Split:
        """``D_A``: the images the scores are measured on."""
        return self.dataset.test

    def fit(self) -> dict[str, Any]:
        """Train the model on ``D_M`` without augmentation; its clean accuracy on ``D_A``.

        A model that an earlier fit with the same settings left in ``out`` (``model.pt`` beside
        ``proxy.json``) is loaded instead: a resumed or joined search does not train it again.

        Returns:
            ``clean_acc``, ``clean_loss`` (on ``D_A``), ``seconds``, ``fit_images``,
            ``held_out_images``, ``reused`` (whether the model was loaded).
        """
        t0 = time.perf_counter()
        record = {"proxy": "density", "holdout": self.holdout, "train": self.trainer.config.to_dict()}
        if self.base.stages:
            record["base"] = self.base.to_dict()
        model, stamp = self.out / "model.pt", self.out / "proxy.json"
        reused = model.is_file() and stamp.is_file() and json.loads(stamp.read_text()) == record
        if reused:
            self.trainer.model.load_state_dict(
                torch.load(model, map_location=self.trainer.device, weights_only=True)
            )
            metrics = self.trainer.evaluate("test")
        else:
            stamp.unlink(missing_ok=True)
            metrics = self.trainer.fit()
            (self.out / "checkpoint.pt").unlink(missing_ok=True)
            atomic_write_text(stamp, json.dumps(record, indent=1) + "\n")
        self.fitted = {"clean_acc": metrics.get("test_acc"), "clean_loss": metrics.get("test_loss"),
                       "seconds": time.perf_counter() - t0, "fit_images": len(self.dataset.train),
                       "held_out_images": len(self.held_out), "reused": reused}  # fmt: skip
        self.trainer.model.eval()
        return self.fitted

    @torch.no_grad()
    def _clean(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Per held-out image, the fitted model's loss and whether it is right, unaugmented."""
        if self._clean_cache is None:
            losses, right = self._forward(self.held_out.images, self.held_out.labels)
            self._clean_cache = (losses, right)
        return self._clean_cache

    def _forward(self, images: torch.Tensor, labels: torch.Tensor, policy: Policy | None = None,
                 params: PolicyParams | None = None) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
        """Per image, the loss and whether the model is right (on ``policy.apply`` with ``params``)."""
        trainer = self.trainer
        device, bs = trainer.device, trainer.config.eval_batch_size
        losses, right = torch.empty(len(labels)), torch.empty(len(labels), dtype=torch.bool)
        for i in range(0, len(labels), bs):
            x = images[i : i + bs].to(device).float() / 255.0
            y = labels[i : i + bs].to(device)
            if policy is not None and params is not None:
                x = policy.apply(x, params=_subset(params, torch.arange(i, i + len(y))))
            logits = trainer.forward(x, net=trainer.model)
            losses[i : i + bs] = F.cross_entropy(logits, y, reduction="none").cpu()
            right[i : i + bs] = (logits.argmax(1) == y).cpu()
        return losses, right

    @torch.no_grad()
    def score(self, policy: Policy) -> dict[str, Any]:
        """The density scores of ``policy`` (:data:`SCORES`): ``draws`` augmented copies of every
        held-out image through the fitted model.

        An image that a draw leaves unchanged (no op applied, or only the identity) keeps its
        clean result without a forward pass, so a mild policy costs less than a strong one.

        Returns:
            ``best``, ``acc``, ``loss``, ``min_loss``, ``best_of`` (``best`` over the first
            1, 2, ..., ``draws`` draws), ``forwards`` (images passed through the model) and
            ``seconds``.
        """
        if self.fitted is None:
            raise RuntimeError("DensityProxy.score before fit(): the model is not trained yet")
        t0 = time.perf_counter()
        self.trainer.model.eval()
        split = self.held_out
        clean_loss, clean_right = self._clean()
        n = len(split)
        losses = clean_loss.repeat(self.draws, 1)
        right = clean_right.repeat(self.draws, 1)
        forwards = 0
        for d in range(self.draws):
            if not policy.stages:
                break
            seed = int(np.random.SeedSequence([self.seed, 0xA5, d]).generate_state(1)[0])
            params = policy.sample(n, generator=torch.Generator().manual_seed(seed))
            changed = torch.zeros(n, dtype=torch.bool)
            for s, stage in enumerate(policy.stages):
                moves = torch.tensor([e.op != "identity" for e in stage])
                changed |= params.applied[s] & moves[params.op[s]]
            idx = changed.nonzero().squeeze(1)
            if len(idx) == 0:
                continue
            sub = _subset(params, idx)
            losses[d, idx], right[d, idx] = self._forward(split.images[idx], split.labels[idx], policy, sub)
            forwards += len(idx)
        cumulative = right.cumsum(0) > 0
        return {
            "best": right.any(0).float().mean().item(),
            "acc": right.float().mean().item(),
            "loss": losses.mean().item(),
            "min_loss": losses.min(0).values.mean().item(),
            "best_of": [round(v, 6) for v in cumulative.float().mean(1).tolist()],
            "forwards": forwards,
            "seconds": time.perf_counter() - t0,
        }


def _subset(params: PolicyParams, idx: torch.Tensor) -> PolicyParams:
    """The parameters of the images at ``idx`` (the last axis of each field but ``aux``'s middle one)."""
    return PolicyParams(params.op[:, idx], params.applied[:, idx], params.magnitude[:, idx],
                        params.sign[:, idx], params.aux[:, idx])  # fmt: skip


__all__ = ["SCORES", "DensityProxy", "density_split"]
