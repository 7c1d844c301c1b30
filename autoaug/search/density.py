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
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from autoaug.data import Dataset, Split
from autoaug.data.base import split_off
from autoaug.data.stream import FileSplit, sequential_batches
from autoaug.policy import Policy, PolicyParams, atomic_write_text
from autoaug.train import PolicyStep, TrainConfig, Trainer

SCORES = ("best", "acc", "loss", "min_loss")  # what a density score may rank policies by
CPU_BATCH = 256
"""Images per scoring forward on a CPU (at most ``eval_batch_size``): smaller batches stay in
cache; with channels_last, 2-3x the images per second of 1024-image batches on one core."""


def density_split(
    dataset: Dataset, holdout: float, seed: int, workers: int = 0
) -> tuple[Split | FileSplit, Split | FileSplit]:
    """The training and validation images of ``dataset`` pooled, then split (stratified,
    seeded) into the model's part ``D_M`` and the held-out part ``D_A`` (``holdout`` of them).

    Images in memory are split as tensors; a streamed dataset (its splits
    :class:`~autoaug.data.stream.FileSplit` s) is split as lists of files, nothing decoded:
    ``D_M`` keeps the training split's crop (``--train-crop random``: a new RandomResizedCrop
    each epoch), ``D_A`` is read as evaluation reads (centre crops). Where one split is in
    memory and the other on disk (``--train-crop random`` on a folder that fits the memory
    budget), the files are decoded, centre crops, in ``workers`` processes, and pooled with
    the rest.

    Raises:
        ValueError: ``holdout`` outside (0, 1), or a part left without images.
    """
    if not 0.0 < holdout < 1.0:
        raise ValueError(f"holdout {holdout!r}: expected a fraction in (0, 1)")
    pool = _pooled(dataset.train, dataset.val, workers)
    labels = pool.labels
    count = round(holdout * len(labels))
    if count == 0 or count == len(labels):
        raise ValueError(
            f"holdout {holdout!r} of {len(labels)} images leaves a part empty; expected a fraction that "
            "leaves images on both sides"
        )
    g = torch.Generator().manual_seed(int(np.random.SeedSequence([seed, 0xD5]).generate_state(1)[0]))
    held, kept = split_off(labels, count, g)
    fit, out = pool.subset(kept), pool.subset(held)
    return fit, out.with_crop("center") if isinstance(out, FileSplit) else out


def _pooled(train: Split | FileSplit, val: Split | FileSplit, workers: int) -> Split | FileSplit:
    """``train`` then ``val`` as one split: files stay files, tensors stay tensors."""
    labels = torch.cat([train.labels, val.labels])
    if isinstance(train, FileSplit) and isinstance(val, FileSplit):
        return FileSplit(train.paths + val.paths, labels, train.channels, train.size, train.crop)
    train, val = (s.load(workers) if isinstance(s, FileSplit) else s for s in (train, val))
    return Split(torch.cat([train.images, val.images]), labels)


def in_memory(split: Split | FileSplit, stream: str = "auto", memory_budget: float = 4.0,
              workers: int = 0) -> Split | FileSplit:  # fmt: skip
    """A held-out split decoded once (centre crops) where it may be, else as it is, to stream.

    The held-out part is read again for every policy scored (and every epoch of a ``train``
    proxy's trial): decoding it once costs its uint8 bytes in memory and saves decoding it each
    time. It is decoded when ``stream`` is not ``"on"`` and it takes at most ``memory_budget``
    GiB, the budget that a whole folder is held to (a dataset that streamed because all of it
    did not fit may have a held-out part that does); ``stream="on"`` keeps it on disk, as asked.
    """
    if isinstance(split, FileSplit) and stream != "on" and split.nbytes <= memory_budget * 2**30:
        return split.load(workers)
    return split


class DensityProxy:
    """A model trained once on ``D_M``, and the scores of policies on augmented ``D_A``.

    A streamed dataset works as one in memory: the model trains on ``D_M`` as the trainer
    streams a folder, and ``D_A`` is decoded once when it fits the memory budget
    (:func:`in_memory`), else each score reads it from disk, ``eval_batch_size`` images at a
    time in ``workers`` processes, and only the images some draw changes; every draw of a batch
    is scored while it is decoded, so a score decodes each of them once.

    Args:
        dataset: the data; its train and validation images are pooled and split again.
        holdout: the fraction held out as ``D_A`` (the rest trains the model).
        draws: augmented draws per held-out image per score.
        images: held-out images a score is measured on, at most (a fixed sample of ``D_A`` drawn
            from ``seed``, the same for every policy); ``None`` or 0: all of ``D_A``. A score's
            cost is then bounded whatever the dataset's size.
        seed: seeds the split, the model's training and the draws.
        out: where the model's training writes its metrics (its checkpoint is removed).
        base: the augmentation the model trains with (Fast AA's model trains with the task's
            standard augmentation, flips and crops on CIFAR); none by default. Candidate
            policies are scored without it.
        **train: settings of the model's :class:`TrainConfig` (model, epochs, lr, ...; ``stream``,
            ``memory_budget`` and ``workers`` also say how ``D_A`` is read).
    """

    def __init__(
        self,
        dataset: Dataset,
        holdout: float = 0.5,
        draws: int = 5,
        seed: int = 0,
        out: str | Path = "runs/density",
        images: int | None = None,
        base: Policy | None = None,
        **train: Any,
    ):
        if isinstance(draws, bool) or not isinstance(draws, int) or draws < 1:
            raise ValueError(f"draws {draws!r}: expected an integer >= 1")
        if images is not None and (isinstance(images, bool) or not isinstance(images, int) or images < 0):
            raise ValueError(f"images {images!r}: expected an integer >= 0 (0: every held-out image)")
        self.draws, self.seed, self.out, self.holdout = draws, seed, Path(out), holdout
        train = {k: v for k, v in train.items() if k in TrainConfig.fields()}
        train.update(dataset=dataset.name, seed=seed, policy="none", out=str(self.out), progress=False,
                     test_every=10**9)  # fmt: skip
        train.setdefault("val_size", 0.1)
        config = TrainConfig(**train)
        fit, held = density_split(dataset, holdout, seed, config.workers)
        if len(fit) < config.batch_size:  # a small dataset: the proxy's part still gives a batch an epoch
            config = TrainConfig(**(train | {"batch_size": len(fit)}))
        held = in_memory(held, config.stream, config.memory_budget, config.workers)
        empty = Split(torch.zeros((0, *fit.images.shape[1:]), dtype=torch.uint8), fit.labels[:0])
        self.dataset = Dataset(dataset.name, fit, empty, held, dataset.num_classes, dataset.class_names,
                               dataset.ground_truth, dataset.source)  # fmt: skip
        self.base = base or Policy.identity()
        self.trainer = Trainer(config, dataset=self.dataset, step=PolicyStep(self.base, seed))
        self.fitted: dict[str, Any] | None = None
        self._clean_cache: tuple[torch.Tensor, torch.Tensor] | None = None
        n = len(self.held_out)
        # The held-out rows a score reads (ascending): all of them, or a seeded sample of ``images``.
        self.rows = torch.arange(n)
        if images and images < n:
            gen = torch.Generator().manual_seed(
                int(np.random.SeedSequence([seed, 0x5C]).generate_state(1)[0])
            )
            self.rows = torch.randperm(n, generator=gen)[:images].sort().values

    @property
    def held_out(self) -> Split | FileSplit:
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
                       "held_out_images": len(self.held_out), "scored_images": len(self.rows),
                       "reused": reused}  # fmt: skip
        self.trainer.model.eval()
        if self.trainer.config.channels_last:  # on a CPU too: ~2x faster forwards here (not training)
            self.trainer.model.to(memory_format=torch.channels_last)
        return self.fitted

    @torch.no_grad()
    def _clean(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Per scored held-out image, the fitted model's loss and whether it is right, unaugmented."""
        if self._clean_cache is None:
            n = len(self.rows)
            losses, right = torch.empty(n), torch.empty(n, dtype=torch.bool)
            for rows, images, labels in self._rows(torch.arange(n)):
                losses[rows], right[rows] = self._forward(images, labels)
            self._clean_cache = (losses, right)
        return self._clean_cache

    def _rows(self, rows: Tensor) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
        """``(rows, images, labels)`` of the scored images at positions ``rows`` (ascending; the
        held-out images ``self.rows[rows]``), a batch at a time, as CPU uint8; a streamed ``D_A``
        decodes those files only, in ``workers`` processes."""
        split, bs = self.held_out, self.trainer.config.eval_batch_size
        held = self.rows[rows]
        if isinstance(split, Split):
            for i in range(0, len(rows), bs):
                batch = held[i : i + bs]
                yield rows[i : i + bs], split.images[batch], split.labels[batch]
            return
        batches = sequential_batches(split.subset(held), bs, self.trainer.config.workers)
        for i, (images, labels) in zip(range(0, len(rows), bs), batches, strict=True):
            yield rows[i : i + bs], images, labels

    def _forward(self, images: torch.Tensor, labels: torch.Tensor, policy: Policy | None = None,
                 params: PolicyParams | None = None) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
        """Per image, the loss and whether the model is right (on ``policy.apply`` with ``params``)."""
        trainer = self.trainer
        device, bs = trainer.device, trainer.config.eval_batch_size
        if device.type == "cpu":
            bs = min(bs, CPU_BATCH)
        losses, right = torch.empty(len(labels)), torch.empty(len(labels), dtype=torch.bool)
        for i in range(0, len(labels), bs):
            x = images[i : i + bs].to(device).float() / 255.0
            y = labels[i : i + bs].to(device)
            if policy is not None and params is not None:
                x = policy.apply(x, params=_subset(params, torch.arange(i, i + len(y))))
            if trainer.config.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            logits = trainer.forward(x, net=trainer.model)
            losses[i : i + bs] = F.cross_entropy(logits, y, reduction="none").cpu()
            right[i : i + bs] = (logits.argmax(1) == y).cpu()
        return losses, right

    @torch.no_grad()
    def score(self, policy: Policy) -> dict[str, Any]:
        """The density scores of ``policy`` (:data:`SCORES`): ``draws`` augmented copies of every
        scored held-out image (``images`` of them, or all) through the fitted model.

        An image that a draw leaves unchanged (no op applied, or only the identity) keeps its
        clean result without a forward pass, so a mild policy costs less than a strong one (and,
        on a streamed ``D_A``, decodes fewer files).

        Returns:
            ``best``, ``acc``, ``loss``, ``min_loss``, ``best_of`` (``best`` over the first
            1, 2, ..., ``draws`` draws), ``forwards`` (images passed through the model) and
            ``seconds``.
        """
        if self.fitted is None:
            raise RuntimeError("DensityProxy.score before fit(): the model is not trained yet")
        t0 = time.perf_counter()
        self.trainer.model.eval()
        clean_loss, clean_right = self._clean()
        n = len(self.rows)
        losses = clean_loss.repeat(self.draws, 1)
        right = clean_right.repeat(self.draws, 1)
        draws, changed = [], torch.zeros(self.draws, n, dtype=torch.bool)
        for d in range(self.draws if policy.stages else 0):
            seed = int(np.random.SeedSequence([self.seed, 0xA5, d]).generate_state(1)[0])
            draws.append(policy.sample(n, generator=torch.Generator().manual_seed(seed)))
            for s, stage in enumerate(policy.stages):
                moves = torch.tensor([e.op != "identity" for e in stage])
                changed[d] |= draws[d].applied[s] & moves[draws[d].op[s]]
        forwards = 0
        # Batch by batch of the images some draw changes, every draw of a batch while it is at hand.
        for rows, images, labels in self._rows(changed.any(0).nonzero().squeeze(1)):
            for d, params in enumerate(draws):
                mine = changed[d, rows]
                if not mine.any():
                    continue
                idx = rows[mine]
                losses[d, idx], right[d, idx] = self._forward(images[mine], labels[mine], policy,
                                                              _subset(params, idx))  # fmt: skip
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


__all__ = ["SCORES", "DensityProxy", "density_split", "in_memory"]
