"""The trainer: SGD on device-resident data with a policy (or a searcher) in the loop.

SGD with Nesterov momentum and a cosine schedule (DESIGN.md's reference settings), optional
label smoothing; bf16 autocast and channels_last on CUDA, optional ``torch.compile``; the
augmentation runs on the device each batch; evaluation each epoch; metrics as JSON lines; a
checkpoint each epoch written atomically, from which ``resume=True`` continues a killed run
to the same final metrics as an uninterrupted one (on CPU, same seed). A NaN or infinite loss
stops the run with :class:`TrainingDiverged`, and the last good checkpoint stays.

What happens to a batch is a :class:`Step`: :class:`PolicyStep` applies a fixed policy; the
searchers bring their own (the MCMC sampler, the bi-level policy update). Many GPUs: run under
``torchrun``; each process takes a shard of every epoch and the model is wrapped in
``DistributedDataParallel`` (gloo on CPU, NCCL on CUDA).

Example:
    >>> from autoaug.train import TrainConfig, Trainer
    >>> cfg = TrainConfig(dataset="glyphs", train_size=256, epochs=1, out="runs/doc")
    >>> metrics = Trainer(cfg).fit()  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from autoaug.data import Dataset, DeviceLoader, load_dataset
from autoaug.data.images import CROPS, parse_image_size
from autoaug.data.stream import FileSplit, StreamLoader, pixel_stats, sequential_batches
from autoaug.models import build_model
from autoaug.policy import Policy, atomic_write_text, load_policy
from autoaug.settings import Limit, SettingError, Settings, flatten, setting, to_yaml


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


CONFIG_HEADER = "The settings this run was made with; each comment says what the setting does."


@dataclass
class TrainConfig(Settings):
    """Everything a training run depends on; written next to its results as ``config.yaml``.

    Every setting is checked on construction (its type and its :class:`~autoaug.settings.Limit`):
    a bad one raises :class:`~autoaug.settings.SettingError` naming it and the range it allows.
    Each field's help line is its ``--flag``'s (``autoaug train --help``) and its comment in
    ``config.yaml``.

    Examples:
        >>> TrainConfig(epochs=2, lr=0.05).lr
        0.05
        >>> TrainConfig(batch_size=0)
        Traceback (most recent call last):
        ...
        autoaug.settings.SettingError: batch_size = 0: expected an integer >= 1
    """

    # Settings a resumed run may change without --override: they change how long it trains
    # or how it runs, not what the checkpoint holds.
    RESUMABLE_CHANGES: ClassVar[tuple[str, ...]] = (
        "epochs", "data_root", "download", "device", "amp", "channels_last", "compile", "eval_batch_size",
        "test_every", "progress", "out", "override", "stream", "memory_budget", "workers",
    )  # fmt: skip
    # Settings that make another run: a checkpoint made with other values is refused, even with --override.
    IDENTITY: ClassVar[tuple[str, ...]] = ("dataset", "train_size", "val_size", "model", "seed", "image_size")

    dataset: str = setting("glyphs", group="data",
        help="the dataset: glyphs or arrows (built-in, synthetic), fashion-mnist, mnist, cifar10, cifar100, "
             "svhn, folder:PATH (or the directory's path), npz:PATH (autoaug datasets)")  # fmt: skip
    data_root: str | None = setting(None, group="data",
        help="the directory that holds the dataset's files (empty: the dataset's usual place)")  # fmt: skip
    download: bool = setting(
        False, group="data", help="download the dataset (torchvision's) where its files are missing"
    )
    train_size: int | None = setting(None, group="data", limit=Limit(1),
        help="training images used, drawn once from the training split with the seed (empty: all)")  # fmt: skip
    val_size: float = setting(0.1, group="data",
        help="held out of the training images for validation: a fraction in [0, 1), or a count of images")  # fmt: skip
    image_size: str | None = setting(None, group="data",
        help="HxW or H: resize images on load, as torchvision does (the shorter side to cover HxW, then the "
             "centre HxW), so a folder may mix sizes (empty: as they are, all of one size)")  # fmt: skip
    train_crop: str = setting("center", group="data",
        help="how a folder's training images reach --image-size: center (as evaluation) or random "
             "(RandomResizedCrop, a new crop each epoch; the training images then stream)")  # fmt: skip
    stream: str = setting("auto", group="data",
        help="decode a folder's images from disk each epoch, in DataLoader workers: auto (when they would "
             "take more than --memory-budget), on, off")  # fmt: skip
    memory_budget: float = setting(4.0, group="data", limit=Limit(0, low_open=True),
        help="GiB a folder's decoded uint8 images may take in memory before it streams (stream auto)")  # fmt: skip
    workers: int = setting(2, group="data", limit=Limit(0),
        help="DataLoader worker processes that decode and resize a folder's images (0: the main process)")  # fmt: skip
    model: str = setting("small_cnn", group="training",
        help="the architecture: small_cnn, resnet18 (CIFAR stem), wrn-40-2, wrn-28-10")  # fmt: skip
    policy: str = setting("none", group="training",
        help="the fixed augmentation policy: a policy file, or a built-in name (autoaug policies)")  # fmt: skip
    epochs: int = setting(15, group="training", limit=Limit(1),
        help="passes over the training images; the cosine learning-rate schedule spans them")  # fmt: skip
    batch_size: int = setting(128, group="training", limit=Limit(1),
        help="images per SGD step (per process under torchrun); left at 128 on fewer training images, "
             "every image in one batch")  # fmt: skip
    lr: float = setting(0.1, group="training", limit=Limit(0, low_open=True),
        help="SGD's learning rate at the start of the cosine schedule (it decays to 0)")  # fmt: skip
    momentum: float = setting(0.9, group="training", limit=Limit(0, 1, high_open=True), help="SGD's momentum")
    nesterov: bool = setting(True, group="training", help="Nesterov momentum (needs momentum > 0)")
    weight_decay: float = setting(5e-4, group="training", limit=Limit(0),
        help="L2 weight decay, added to SGD's gradient")  # fmt: skip
    label_smoothing: float = setting(0.0, group="training", limit=Limit(0, 1, high_open=True),
        help="label smoothing of the training cross-entropy (0: none)")  # fmt: skip
    grad_clip: float | None = setting(None, group="training", limit=Limit(0),
        help="clip the gradient's global L2 norm at this value (empty or 0: no clipping)")  # fmt: skip
    seed: int = setting(0, group="training", limit=Limit(0),
        help="seed of the data split, the model's initialization and every random draw")  # fmt: skip
    device: str = setting("auto", group="run", help="auto (CUDA when there is one), cpu, cuda or cuda:K")
    amp: bool = setting(True, group="run", help="bf16 autocast (CUDA only)")
    channels_last: bool = setting(True, group="run", help="channels_last memory format (CUDA only)")
    compile: bool = setting(False, group="run", help="compile the model with torch.compile")
    eval_batch_size: int = setting(
        1024, group="run", limit=Limit(1), help="images per forward pass when evaluating"
    )
    test_every: int = setting(1, group="run", limit=Limit(1),
        help="evaluate on the test split every K-th epoch (and always after the last)")  # fmt: skip
    progress: bool = setting(True, group="run", help="a progress bar and a line per epoch on the terminal")
    out: str = setting("runs/train", group="run",
        help="the run's directory: checkpoint.pt, model.pt, metrics.jsonl, config.yaml")  # fmt: skip
    override: bool = setting(False, group="run",
        help="with --resume: continue although settings differ from the checkpoint's (not written down)")  # fmt: skip

    def validate(self) -> None:
        super().validate()
        if self.nesterov and self.momentum == 0:
            raise SettingError("momentum", self.momentum, "> 0 with nesterov (or nesterov: false)")

    @classmethod
    def check(cls, name: str, value: Any) -> Any:
        choices = {"train_crop": CROPS, "stream": ("auto", "on", "off")}.get(name)
        if choices is not None and value not in choices:
            raise SettingError(name, value, f"one of {', '.join(choices)}")
        if name == "image_size" and value is not None:
            try:
                size = parse_image_size(value)
            except ValueError:
                raise SettingError(name, value, "HxW or H in pixels, e.g. 224 or 64x48") from None
            return f"{size[0]}x{size[1]}"
        if name == "val_size" and not isinstance(value, bool):
            expected = "a number in [0, 1) (a fraction), or a count >= 0"
            if isinstance(value, int):  # a count of held-out images (a float is a fraction)
                if value < 0:
                    raise SettingError(name, value, expected)
                return value
            value = super().check(name, value)
            if not 0 <= value < 1:
                raise SettingError(name, value, expected)
            return value
        return super().check(name, value)

    def to_dict(self) -> dict[str, Any]:
        """The settings the run is made with (``override``, a way to resume, is not one)."""
        values = super().to_dict()
        values.pop("override", None)
        return values

    @classmethod
    def upgrade(cls, saved: dict[str, Any]) -> dict[str, Any]:
        """A run's saved settings (its checkpoint's, its config.yaml's) in this version's shape."""
        return dict(saved)


CHECKPOINT_KEYS = ("epoch", "model", "optimizer", "scheduler", "loader", "step", "torch_rng", "history",
                   "config")  # fmt: skip


def _one_line(e: BaseException, limit: int = 160) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """A trainer checkpoint, loaded with ``torch.load(weights_only=True)`` and checked for the
    fields a resume needs.

    Raises:
        FileNotFoundError: no such file.
        ValueError: it does not load (corrupt, truncated, not a torch file) or is no autoaug
            training checkpoint; the message names the file.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"no checkpoint to resume from at {p}")
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated zip, foreign pickle, not a torch file: many exception types
        first = _one_line(e).split(". ")[0].rstrip(".")  # torch's text goes on about weights_only
        raise ValueError(
            f"{p}: not a checkpoint that loads, corrupt or truncated ({type(e).__name__}: {first})"
        ) from None
    missing = (
        [k for k in CHECKPOINT_KEYS if k not in state] if isinstance(state, dict) else list(CHECKPOINT_KEYS)
    )
    if missing:
        raise ValueError(f"{p}: not an autoaug training checkpoint (no {', '.join(missing)})")
    try:
        config = json.loads(state["config"])
        json.loads(state["history"])
    except (TypeError, ValueError):
        config = None
    if not isinstance(config, dict):
        raise ValueError(f"{p}: not an autoaug training checkpoint (its config is not readable)")
    return state


def check_resumable(path: str | Path, saved: dict[str, Any], config: TrainConfig) -> None:
    """Refuse to resume ``config`` from a checkpoint whose settings were ``saved``.

    Another dataset, model, seed, training size, search method or space (``IDENTITY``) is
    always refused: the checkpoint belongs to another run. Other changes, except those a run
    may make on resume (``RESUMABLE_CHANGES``: more epochs, another device, ...), are refused
    unless ``config.override``.

    Raises:
        ValueError: one line naming the file and the differences.
    """
    now = flatten(config.to_dict())  # a section's settings as "mcmc.epsilon"
    if ("method" in saved) != ("method" in now):
        made, this = (
            ("autoaug search", "autoaug train") if "method" in saved else ("autoaug train", "autoaug search")
        )
        raise ValueError(f"{path}: made by {made}, not {this}; resume it with {made}")
    saved = flatten(type(config).upgrade(saved))

    def show(keys: list[str]) -> str:
        return ", ".join(f"{k} {saved[k]!r} -> {now[k]!r}" for k in keys)

    differ = [k for k in now if k in saved and saved[k] != now[k]]
    identity = [k for k in differ if k in type(config).IDENTITY]
    if identity:
        raise ValueError(
            f"{path}: made by another run (checkpoint's -> now): {show(identity)}; "
            "resume with the run's settings, or start a new run in another --out"
        )
    changed = [k for k in differ if k not in type(config).RESUMABLE_CHANGES]
    if changed and not config.override:
        raise ValueError(
            f"{path}: made with other settings (checkpoint's -> now): {show(changed)}; "
            "resume with the run's settings, or pass --override to continue with the new ones"
        )


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} asked for, but torch sees no CUDA device")
    return torch.device(name)


# ------------------------------------------------------------------------------ steps


class Step(Protocol):
    """What happens to one batch. ``loss`` gets float images in [0, 1] (not normalized) and
    returns the loss to minimize plus numbers to average into the epoch's metrics."""

    def loss(self, trainer: Trainer, images: Tensor, labels: Tensor) -> tuple[Tensor, dict[str, float]]: ...

    def end_epoch(self, trainer: Trainer, epoch: int) -> dict[str, Any]: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class PolicyStep:
    """Train on ``policy.apply(batch)`` with cross-entropy (the fixed-policy baselines)."""

    def __init__(self, policy: Policy, seed: int = 0):
        self.policy = policy
        self.seed = seed
        self.generator = torch.Generator()
        self._reseed(0)

    def _reseed(self, epoch: int) -> None:
        # Each epoch and each rank under torchrun draws its own augmentations (one seed on every
        # rank would give the i-th image of every rank's batch the same transformation); seeded
        # per epoch, a resumed rank continues its own stream although rank 0 alone checkpoints.
        self.generator.manual_seed(epoch_seed(self.seed + 7919, epoch))
        self._next_epoch = epoch

    def loss(self, trainer: Trainer, images: Tensor, labels: Tensor) -> tuple[Tensor, dict[str, float]]:
        if self.policy.stages:
            params = self.policy.sample(
                len(images), generator=self.generator
            )  # on the CPU: apply groups there
            images = self.policy.apply(images, params=params)
        logits = trainer.forward(images)
        loss = F.cross_entropy(logits, labels, label_smoothing=trainer.config.label_smoothing)
        acc = (logits.argmax(1) == labels).float().mean()
        return loss, {"loss": loss.item(), "acc": acc.item()}

    def end_epoch(self, trainer: Trainer, epoch: int) -> dict[str, Any]:
        self._reseed(epoch + 1)
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state(), "next_epoch": self._next_epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "next_epoch" in state:
            self._reseed(int(state["next_epoch"]))
        else:
            self.generator.set_state(state["generator"])


# ---------------------------------------------------------------------------- trainer


def _distributed() -> tuple[int, int]:
    """(rank, world size) under torchrun, else (0, 1)."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def epoch_seed(seed: int, epoch: int) -> int:
    """A generator seed for one epoch of one rank (the rank from torchrun's environment)."""
    return seed + 104729 * _distributed()[0] + 1_000_003 * epoch


class Trainer:
    """Trains ``config.model`` on ``config.dataset`` with a :class:`Step` in the loop.

    Args:
        config: the run's settings.
        dataset: an already loaded dataset (else ``config.dataset`` is loaded).
        step: what happens to each batch (default: ``PolicyStep(load_policy(config.policy))``).
    """

    def __init__(self, config: TrainConfig, dataset: Dataset | None = None, step: Step | None = None):
        self.config = config
        self.rank, self.world = _distributed()
        if self.world > 1 and not torch.distributed.is_initialized():
            backend = "nccl" if torch.cuda.is_available() and config.device != "cpu" else "gloo"
            torch.distributed.init_process_group(backend)
        self.device = resolve_device(config.device)
        if self.device.type == "cuda" and self.world > 1:
            self.device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
            torch.cuda.set_device(self.device)
        self.out = Path(config.out)
        self.dataset = dataset or dataset_of(config)
        self.step = step or PolicyStep(load_policy(config.policy), seed=config.seed)
        torch.manual_seed(config.seed)
        self.model = build_model(config.model, self.dataset.channels, self.dataset.num_classes).to(
            self.device
        )
        self.cuda = self.device.type == "cuda"
        if self.cuda and config.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.net: nn.Module = self.model
        if self.world > 1:
            self.net = nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.cuda else None
            )
        if config.compile:
            self.net = torch.compile(self.net)
        mean, std = pixel_stats(self.dataset.train, seed=config.seed)
        self.mean = mean.to(self.device).view(1, -1, 1, 1)
        self.std = std.clamp(min=1e-3).to(self.device).view(1, -1, 1, 1)
        n = len(self.dataset.train)
        per_process = n // self.world
        default_batch = type(config).fields()["batch_size"].default
        if config.batch_size == default_batch and 0 < per_process < default_batch:
            # A small dataset and the flag not chosen: every image in one batch, rather than no batch.
            config = self.config = dataclasses.replace(config, batch_size=per_process)
            if self.rank == 0:
                print(f"note: {n} training images{' per process' if self.world > 1 else ''}, fewer than the "
                      f"default batch of {default_batch}: batches of {per_process} (--batch-size to choose)",
                      file=sys.stderr)  # fmt: skip
        # no batch an epoch: said here, before the loaders say it in their own words
        if per_process < config.batch_size:
            raise ValueError(
                f"batch_size = {config.batch_size} is more than the {n} training images"
                f"{f' per process ({self.world} processes)' if self.world > 1 else ''}; "
                f"expected at most {n // self.world} (--batch-size)"
            )
        self.loader: DeviceLoader | StreamLoader
        if isinstance(self.dataset.train, FileSplit):
            self.loader = StreamLoader(self.dataset.train, config.batch_size, device=self.device, shuffle=True,
                                       drop_last=True, seed=config.seed, workers=config.workers, rank=self.rank,
                                       world=self.world)  # fmt: skip
        else:
            self.loader = DeviceLoader(
                self.dataset.train,
                config.batch_size,
                device=self.device,
                shuffle=True,
                drop_last=True,
                seed=config.seed,
            )
        self.optimizer = torch.optim.SGD(
            self.model.parameters(),
            lr=config.lr,
            momentum=config.momentum,
            nesterov=config.nesterov,
            weight_decay=config.weight_decay,
        )
        steps = max(1, config.epochs * self._batches_per_epoch())
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda i: 0.5 * (1 + math.cos(math.pi * min(i, steps) / steps))
        )
        self.epoch = 0
        self.history: list[dict[str, Any]] = []
        self.batch_index: Tensor | None = None

    # ------------------------------------------------------------------------ plumbing

    def _batches_per_epoch(self) -> int:
        return len(self.loader) // self.world if self.world > 1 else len(self.loader)

    def normalize(self, images: Tensor) -> Tensor:
        x = (images - self.mean.to(images.dtype)) / self.std.to(images.dtype)
        if self.cuda and self.config.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def forward(self, images: Tensor, net: nn.Module | None = None) -> Tensor:
        """Logits of float images in [0, 1] (normalized here), under autocast on CUDA."""
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.cuda and self.config.amp):
            return (net or self.net)(self.normalize(images)).float()

    def batches(self) -> Iterator[tuple[Tensor, Tensor]]:
        """This process's batches for one epoch (a shard of the epoch under torchrun).

        Every process walks the same seeded order and keeps every ``world``-th batch; all take
        the same number of batches, or DistributedDataParallel would wait forever. A streaming
        loader decodes only this process's batches (the others' come as ``None``).
        """
        mine = 0
        for i, (images, labels) in enumerate(self.loader):
            # Walk to the end even when done, so the loader's state says "epoch finished".
            if mine == self._batches_per_epoch() or i % self.world != self.rank:
                continue
            mine += 1
            self.batch_index = self.loader.last_index  # dataset indices, for steps that keep per-image state
            yield images.float() / 255.0, labels

    @torch.no_grad()
    def evaluate(self, split_name: str) -> dict[str, float]:
        split = getattr(self.dataset, split_name)
        if len(split) == 0:
            return {}
        self.model.eval()
        total_loss, correct = 0.0, 0
        for images, labels in sequential_batches(split, self.config.eval_batch_size, self.config.workers):
            x = images.to(self.device).float() / 255.0
            y = labels.to(self.device)
            logits = self.forward(x, net=self.model)
            total_loss += F.cross_entropy(logits, y, reduction="sum").item()
            correct += (logits.argmax(1) == y).sum().item()
        self.model.train()
        return {f"{split_name}_loss": total_loss / len(split), f"{split_name}_acc": correct / len(split)}

    # ---------------------------------------------------------------------- checkpoints

    @property
    def checkpoint_path(self) -> Path:
        return self.out / "checkpoint.pt"

    def state_dict(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "loader": self.loader.state_dict(),
            "step": self.step.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "history": json.dumps(self.history),
            "config": json.dumps(self.config.to_dict()),
        }

    def save_checkpoint(self) -> Path:
        if self.rank != 0:
            return self.checkpoint_path
        self.out.mkdir(parents=True, exist_ok=True)
        tmp = self.checkpoint_path.with_name(".checkpoint.pt.tmp")
        torch.save(self.state_dict(), tmp)
        tmp.replace(self.checkpoint_path)
        return self.checkpoint_path

    def load_checkpoint(self, path: Path | None = None) -> None:
        """Continue from a checkpoint made by a run with these settings.

        Raises:
            FileNotFoundError: there is none.
            ValueError: it does not load, it was made by another kind of run (dataset, model,
                seed, search method, space, ...), or with other settings (lr, policy, ...) and
                ``config.override`` is not set; the message names the file and the difference.
        """
        path = path or self.checkpoint_path
        state = read_checkpoint(path)
        check_resumable(path, json.loads(state["config"]), self.config)
        try:
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            self.loader.load_state_dict(state["loader"])
            self.step.load_state_dict(state["step"])
            torch.set_rng_state(state["torch_rng"])
            self.history = json.loads(state["history"])
            self.epoch = int(state["epoch"])
        except (RuntimeError, KeyError, ValueError, TypeError, IndexError, AttributeError) as e:
            raise ValueError(f"{path}: does not fit this run: {_one_line(e)}") from None

    # ------------------------------------------------------------------------------ fit

    def _log(self, record: dict[str, Any]) -> None:
        if self.rank != 0:
            return
        self.out.mkdir(parents=True, exist_ok=True)
        with open(self.out / "metrics.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")

    def _progress(self, epoch: int):
        from tqdm import tqdm

        enabled = self.config.progress and self.rank == 0
        return tqdm(
            self.batches(),
            total=self._batches_per_epoch(),
            desc=f"epoch {epoch + 1}/{self.config.epochs}",
            leave=False,
            disable=not enabled or None,
            dynamic_ncols=True,
        )

    def fit(self, resume: bool = False) -> dict[str, Any]:
        """Train to ``config.epochs``; returns the last epoch's metrics.

        Raises:
            TrainingDiverged: the loss became NaN or infinite.
        """
        if resume:
            self.load_checkpoint()
            if self.rank == 0:  # a kill between an epoch's log line and its checkpoint logged it already
                metrics = "".join(json.dumps(r) + "\n" for r in self.history)
                atomic_write_text(self.out / "metrics.jsonl", metrics)
        elif self.rank == 0:
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / "metrics.jsonl").unlink(missing_ok=True)
        if self.rank == 0:
            atomic_write_text(self.out / "config.yaml", to_yaml(self.config, CONFIG_HEADER))
        self.model.train()
        while self.epoch < self.config.epochs:
            epoch = self.epoch
            t0 = time.perf_counter()
            sums: dict[str, float] = {}
            n = 0
            bar = self._progress(epoch)
            for images, labels in bar:
                loss, logs = self.step.loss(self, images, labels)
                if not torch.isfinite(loss):
                    raise TrainingDiverged(
                        f"loss became {loss.item()} at epoch {epoch + 1}, batch {n + 1}; "
                        f"the last good checkpoint is {self.checkpoint_path} (epoch {self.epoch}). "
                        "Try a lower --lr."
                    )
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if self.config.grad_clip:
                    nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
                self.optimizer.step()
                self.scheduler.step()
                for k, v in logs.items():
                    sums[k] = sums.get(k, 0.0) + v
                n += 1
                if n % 10 == 0 and hasattr(bar, "set_postfix"):
                    bar.set_postfix(loss=f"{sums.get('loss', 0) / n:.3f}")
            seconds = time.perf_counter() - t0
            record: dict[str, Any] = {"epoch": epoch + 1}
            record.update({f"train_{k}": v / max(n, 1) for k, v in sums.items()})
            record["lr"] = self.scheduler.get_last_lr()[0]
            record["seconds"] = seconds
            record["images_per_s"] = n * self.config.batch_size / seconds if seconds > 0 else 0.0
            record.update(self.evaluate("val"))
            last = epoch + 1 == self.config.epochs
            if last or (epoch + 1) % max(1, self.config.test_every) == 0:
                record.update(self.evaluate("test"))
            record.update(self.step.end_epoch(self, epoch))
            self.history.append(record)
            self.epoch = epoch + 1
            self._log(record)
            self.save_checkpoint()
            if self.rank == 0 and self.config.progress:
                shown = {k: record[k] for k in ("train_loss", "val_acc", "test_acc") if k in record}
                print(f"epoch {epoch + 1}/{self.config.epochs}: " + ", ".join(f"{k} {v:.4f}" for k, v in shown.items())
                      + f" ({seconds:.1f}s)", flush=True)  # fmt: skip
        if self.rank == 0:
            tmp = self.out / ".model.pt.tmp"
            torch.save(self.model.state_dict(), tmp)
            tmp.replace(self.out / "model.pt")
        return self.history[-1] if self.history else {}


def dataset_of(config: TrainConfig) -> Dataset:
    """The dataset a config names, loaded with its data settings (size, crop, streaming)."""
    return load_dataset(
        config.dataset,
        root=config.data_root,
        train_size=config.train_size,
        val_size=config.val_size,
        seed=config.seed,
        download=config.download,
        image_size=config.image_size,
        train_crop=config.train_crop,
        stream=config.stream,
        memory_budget=config.memory_budget,
        workers=config.workers,
    )


def train(config: TrainConfig, resume: bool = False) -> dict[str, Any]:
    """Train with a config; the Python twin of ``autoaug train``."""
    return Trainer(config).fit(resume=resume)


__all__ = [
    "PolicyStep",
    "Step",
    "TrainConfig",
    "Trainer",
    "TrainingDiverged",
    "check_resumable",
    "dataset_of",
    "read_checkpoint",
    "resolve_device",
    "train",
]
