"""Train a small CNN on reduced Fashion-MNIST (or ResNet-18 on the full set, on a GPU) with plain
torch and torchvision: an independent check of an augmentation policy, the way a user would run it.

Nothing here comes from autoaug: the script imports torch, torchvision, numpy and the
standard library, and trains with one of

* a policy exported by ``autoaug export POLICY.json --out policy_tv.py`` (the path of that
  ``.py`` file; it is executed to get its ``transform``, which needs only torch and torchvision);
* a fixed policy by name: ``none``, ``hflip`` (``RandomHorizontalFlip``), ``randaugment``,
  ``trivialaugment`` (``TrivialAugmentWide``), ``autoaugment`` (``AutoAugment``, its ImageNet
  policy), the last three with their torchvision arguments if wanted
  (``randaugment[num_ops=3,magnitude=14,interpolation=bilinear]``), or ``hflip-crop-erase``,
  the hand-made baseline a practitioner tries first:
  ``RandomCrop(28, padding=4)`` (translations by up to 4 pixels), ``RandomHorizontalFlip`` and
  ``RandomErasing`` (torchvision's defaults: half the images, 2-33% of the image set to 0).

The augmentation runs per image in ``DataLoader`` workers, on uint8 C×H×W tensors, followed
by ``ToDtype(float32, scale=True)`` and ``Normalize``, where torchvision's policies go.
``--mix`` adds a step on whole batches after the ``DataLoader``, where torchvision's
documentation places ``MixUp`` and ``CutMix`` (``--mix cutmix``, ``mixup[alpha=0.2]``,
``mixup-or-cutmix``): the model then trains on the mixed images' soft labels.

The rest is ``scripts/bench_accuracy.py``'s ``cpu`` setting (``autoaug train``'s defaults):

* data: the IDX files in ``--data-root`` (gzipped or not; images N×H×W, or N×H×W×C in colour); ``--train-size`` images drawn
  class-balanced from the training set and 10% of them held out for validation, drawn exactly
  as autoaug's ``load_dataset`` draws them for the same seed (so the runs compare image for
  image); evaluation on all 10,000 test images; inputs normalized by the training images'
  per-channel mean and standard deviation;
* model: four 3×3 conv layers with BatchNorm and ReLU (32, 64, 128, 256 channels), a 2×2
  max-pool after each of the first three, global average pooling, a linear head, Kaiming-normal
  convolutions (autoaug's ``small_cnn``, declared again here with the same layers, parameter
  names and initialization); or with ``--model resnet18``, autoaug's ResNet-18 (CIFAR stem: one
  3×3 conv at stride 1, no max-pool), declared again here the same way;
* schedule: SGD with Nesterov momentum 0.9, lr 0.1, weight decay 5e-4 on every parameter,
  a cosine decay per step to 0, batch 128 (the last incomplete batch of an epoch dropped),
  15 epochs, cross-entropy.

``--device cuda`` (or ``auto``) trains on the GPU under bf16 autocast, channels_last, the
augmentation still per image in the ``DataLoader`` workers, as a user's GPU loop runs it.

Deterministic for a ``--seed`` on CPU (the same threads and workers). Writes a JSON file
(``--out``): test and validation accuracy (and with ``--dev-size``, the accuracy on training
images that were not drawn, to choose a design by), the loss and accuracy of every epoch, the wall time
and the settings.

Run:
    python scripts/plain_train.py --policy none --out results/plain/none_s0.json
    python scripts/plain_train.py --policy runs/search/policy_tv.py --seed 1 --out results/plain/mcmc_s1.json
    python scripts/plain_train.py --policy trivialaugment --train-size 1000 --epochs 60 --out results/plain/ta.json
    python scripts/plain_train.py --policy "randaugment[num_ops=3]" --out results/plain/ra3.json
    python scripts/plain_train.py --policy randaugment --mix cutmix --out results/plain/ra_cutmix.json
    python scripts/plain_train.py --policy randaugment --train-size 1000 --epochs 60 --fold 2/5 --out f2.json
    python scripts/plain_train.py --policy randaugment --model resnet18 --device cuda --train-size 60000 \
        --epochs 30 --workers 8 --out results/plain/ra_resnet.json

``--fold K/N`` cross-validates: the drawn images (training and validation together) are dealt
into N folds that keep the classes in proportion, and fold K is held out as the validation
images (``scripts/kfold_selection.py`` runs all N and pools them).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import math
import os
import platform
import runpy
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import torch
import torchvision
from torch import nn
from torchvision.transforms import v2

FIXED_POLICIES = ("none", "hflip", "randaugment", "trivialaugment", "autoaugment", "hflip-crop-erase")
IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


# -------------------------------------------------------------------------------------- data


def read_idx(path: Path) -> np.ndarray:
    """One IDX file (``.gz`` or not) as a uint8 array: images N×H×W, labels N.

    Raises:
        ValueError: not an unsigned-byte IDX file, or its size disagrees with its header.
    """
    data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    if len(data) < 4 or data[:3] != b"\x00\x00\x08":
        raise ValueError(f"{path}: not an unsigned-byte IDX file (header {data[:4].hex()!r})")
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    offset = 4 + 4 * ndim
    if len(data) - offset != math.prod(dims):
        raise ValueError(f"{path}: the header promises {dims}, the file holds {len(data) - offset} bytes")
    return np.frombuffer(data, dtype=np.uint8, offset=offset).reshape(dims)


def load_idx_dir(root: Path) -> dict[str, torch.Tensor]:
    """The four Fashion-MNIST (or MNIST) files of ``root``: uint8 images N×C×H×W (an image file
    holds N×H×W for one channel, N×H×W×C for more, as autoaug's ``write_idx_dir`` writes a
    synthetic task), int64 labels."""
    arrays = {}
    for key, stem in IDX_FILES.items():
        path = next((root / n for n in (f"{stem}.gz", stem) if (root / n).is_file()), None)
        if path is None:
            raise FileNotFoundError(f"{root}: no {stem}.gz (nor {stem}); see --data-root")
        arrays[key] = torch.from_numpy(read_idx(path).copy())
    for part in ("train", "test"):
        images = arrays[f"{part}_images"]
        if images.ndim not in (3, 4):
            raise ValueError(
                f"{root}: {part} images of shape {tuple(images.shape)}; expected N×H×W or N×H×W×C"
            )
        images = images.unsqueeze(1) if images.ndim == 3 else images.permute(0, 3, 1, 2).contiguous()
        arrays[f"{part}_images"] = images
        arrays[f"{part}_labels"] = arrays[f"{part}_labels"].long()
    return arrays


def _generator(seed: int, purpose: str) -> torch.Generator:
    # One stream per purpose, derived from the seed, as autoaug's data/base.py make_generator.
    state = np.random.SeedSequence([seed, zlib.crc32(purpose.encode())]).generate_state(2, np.uint32)
    return torch.Generator().manual_seed((int(state[0]) << 31) ^ int(state[1]))


def _stratified_order(labels: torch.Tensor, generator: torch.Generator, balanced: bool) -> torch.Tensor:
    """A random order whose prefixes keep the classes balanced (``balanced``: round-robin over the
    classes) or in proportion; autoaug's data/base.py stratified_order, line for line."""
    n = len(labels)
    perm = torch.randperm(n, generator=generator)
    lab = labels[perm]
    counts = torch.bincount(lab)
    sorted_lab, by_class = torch.sort(lab, stable=True)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.empty(n, dtype=torch.int64)
    rank[by_class] = torch.arange(n) - starts[sorted_lab]
    key = rank.double() if balanced else (rank.double() + 0.5) / counts[lab].double()
    class_order = torch.randperm(len(counts), generator=generator)
    first = torch.argsort(class_order[lab], stable=True)
    return perm[first[torch.argsort(key[first], stable=True)]]


def draw_dev(labels: torch.Tensor, taken: torch.Tensor, size: int) -> torch.Tensor:
    """``size`` indices of training images outside ``taken`` (the drawn training and validation
    images), for a development set: the images in a fixed order that depends on no seed, skipping
    those this seed drew, so two seeds' development sets are nearly the same images.

    Raises:
        ValueError: fewer images left than ``size``.
    """
    free = torch.ones(len(labels), dtype=torch.bool)
    free[taken] = False
    order = torch.randperm(len(labels), generator=_generator(0, "split/dev"))
    order = order[free[order]]
    if size > len(order):
        raise ValueError(f"--dev-size: only {len(order)} training images are left outside the drawn ones")
    return order[:size].sort().values


def draw_splits(
    labels: torch.Tensor, train_size: int, val_size: float, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices of the training and validation images among ``labels``: ``train_size`` drawn
    class-balanced, then ``val_size`` of them held out in proportion (autoaug's load_dataset).

    Raises:
        ValueError: a size out of range.
    """
    if not 0 < train_size <= len(labels):
        raise ValueError(f"--train-size: expected 1 to {len(labels)}, got {train_size}")
    if not 0 <= val_size < 1:
        raise ValueError(f"--val-size: expected a fraction in [0, 1), got {val_size}")
    taken = (
        _stratified_order(labels, _generator(seed, "split/train"), balanced=True)[:train_size].sort().values
    )
    n_val = round(val_size * train_size)
    order = _stratified_order(labels[taken], _generator(seed, "split/val"), balanced=False)
    return taken[order[n_val:].sort().values], taken[order[:n_val].sort().values]


def draw_fold(
    labels: torch.Tensor, pool: torch.Tensor, fold: int, folds: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fold ``fold`` of ``folds`` of the images ``pool`` (indices into ``labels``), for
    cross-validation: each class's images of the pool in a seeded order, dealt to the folds in
    turn (each class continuing where the last one stopped, so the folds differ in size by at
    most one image); returns (training, held-out) indices. The folds part the pool: each image is
    held out by exactly one, and every fold holds every class in proportion.

    Raises:
        ValueError: ``fold`` outside ``0 .. folds - 1`` or fewer than 2 folds.
    """
    if folds < 2 or not 0 <= fold < folds:
        raise ValueError(f"--fold: expected K/N with N >= 2 and 0 <= K < N, got {fold}/{folds}")
    perm = torch.randperm(len(pool), generator=_generator(seed, "split/folds"))
    lab = labels[pool][perm]
    which = torch.empty(len(pool), dtype=torch.int64)
    dealt = 0
    for c in lab.unique().tolist():
        members = perm[lab == c]
        which[members] = (torch.arange(len(members)) + dealt) % folds
        dealt += len(members)
    held = which == fold
    return pool[~held], pool[held]


class Images(torch.utils.data.Dataset):
    """uint8 images (N×C×H×W) and labels; ``transform`` maps one C×H×W image to a float tensor."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform: v2.Transform):
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.transform(self.images[i]), self.labels[i]


# ------------------------------------------------------------------------------ the policies


TUNABLE = {
    "randaugment": v2.RandAugment,
    "trivialaugment": v2.TrivialAugmentWide,
    "autoaugment": v2.AutoAugment,
}
_TUNABLE_KEYS = {  # their constructors' arguments that take a number or a name
    "randaugment": ("num_ops", "magnitude", "num_magnitude_bins", "interpolation"),
    "trivialaugment": ("num_magnitude_bins", "interpolation"),
    "autoaugment": ("policy", "interpolation"),
}
_NAMED = {
    "interpolation": v2.InterpolationMode,
    "policy": torchvision.transforms.AutoAugmentPolicy,
}  # by value


def _bracketed(text: str, names: tuple[str, ...]) -> tuple[str, list[tuple[str, str, str, str]] | None]:
    """``name[a=1, b]`` -> ``("name", [("a=1", "a", "=", "1"), ("b", "b", "", "")])``: each item
    as written, its key, ``=`` if it has one, and its value; the items are None when the name is
    not one of ``names`` or the bracket is not closed."""
    name, bracket, body = text.partition("[")
    if name not in names or (bracket and not body.endswith("]")):
        return name, None
    items = filter(None, (x.strip() for x in body[:-1].split(",")))
    return name, [(item, *(x.strip() for x in item.partition("="))) for item in items]


def fixed_policy(text: str) -> tuple[str, dict]:
    """``randaugment[num_ops=3,magnitude=14,interpolation=bilinear]`` -> the name and the
    arguments of its torchvision class (a plain name: no arguments).

    Raises:
        ValueError: not a fixed policy's name, or an argument its class does not take.
    """
    name, items = _bracketed(text, FIXED_POLICIES)
    if items is None:
        raise ValueError(f"not a fixed policy: {text!r}")
    kwargs: dict = {}
    for item, key, eq, value in items:
        if name not in TUNABLE or not eq or key not in _TUNABLE_KEYS[name]:
            takes = ", ".join(_TUNABLE_KEYS.get(name, ())) or "nothing"
            raise ValueError(
                f"{text}: {item!r} is not KEY=VALUE with KEY one of {name}'s arguments ({takes})"
            )
        if key in _NAMED:
            try:
                kwargs[key] = _NAMED[key](value.lower())
            except ValueError:
                names = ", ".join(c.value for c in _NAMED[key])
                raise ValueError(f"{text}: {key} must be one of {names}, got {value!r}") from None
        else:
            try:
                kwargs[key] = int(value)
            except ValueError:
                raise ValueError(f"{text}: {key} must be an integer, got {value!r}") from None
    return name, kwargs


def policy_steps(policy: str, image_size: int) -> tuple[list, list]:
    """The transforms before ``ToDtype(float32, scale=True)`` (on uint8 images) and after it.

    ``policy``: a fixed policy's name, with its torchvision class's arguments in brackets for
    ``randaugment``, ``trivialaugment`` and ``autoaugment`` (:func:`fixed_policy`), or an
    exported ``.py`` file.

    Raises:
        ValueError: neither a fixed policy nor an existing ``.py`` file.
    """
    if policy.partition("[")[0] in FIXED_POLICIES:
        name, kwargs = fixed_policy(policy)
        if name in TUNABLE:
            try:
                return [TUNABLE[name](**kwargs)], []
            except ValueError as e:  # torchvision's own checks (a negative num_ops, ...)
                raise ValueError(f"{policy}: {e}") from None
        before = {
            "none": [],
            "hflip": [v2.RandomHorizontalFlip()],
            "hflip-crop-erase": [v2.RandomCrop(image_size, padding=4), v2.RandomHorizontalFlip()],
        }
        return before[name], [v2.RandomErasing()] if name == "hflip-crop-erase" else []
    path = Path(policy)
    if path.suffix != ".py" or not path.is_file():
        raise ValueError(
            f"--policy: expected one of {', '.join(FIXED_POLICIES)} or an exported policy file "
            f"(autoaug export POLICY --out FILE.py), got {policy!r}"
        )
    exported = runpy.run_path(str(path)).get("transform")  # our own export; it defines `transform`
    if exported is None:
        raise ValueError(f"--policy: {path} defines no `transform` (is it an `autoaug export` file?)")
    return [exported], []


_MIX_CLASSES = {
    "none": (),
    "mixup": (v2.MixUp,),
    "cutmix": (v2.CutMix,),
    "mixup-or-cutmix": (v2.MixUp, v2.CutMix),
}
MIXES = tuple(_MIX_CLASSES)


def batch_mix(text: str, num_classes: int) -> v2.Transform | None:
    """``cutmix[alpha=0.5]`` -> torchvision's ``v2.CutMix(alpha=0.5, num_classes=...)``: a
    transform of whole batches (images and labels), applied after the ``DataLoader`` as
    torchvision's documentation places ``MixUp`` and ``CutMix``; ``mixup-or-cutmix`` picks one
    of the two per batch (``RandomChoice``); ``none``: no such step.

    Raises:
        ValueError: not one of :data:`MIXES`, or an argument other than ``alpha`` > 0.
    """
    name, items = _bracketed(text, MIXES)
    if items is None:
        raise ValueError(f"--mix: expected one of {', '.join(MIXES)} (with [alpha=A]), got {text!r}")
    kwargs: dict = {}
    for item, key, _, value in items:
        try:
            alpha = float(value)
        except ValueError:
            alpha = 0.0
        if name == "none" or key != "alpha" or not alpha > 0:
            raise ValueError(f"--mix {text}: {item!r} is not alpha=A with A > 0")
        kwargs["alpha"] = alpha
    steps = [cls(num_classes=num_classes, **kwargs) for cls in _MIX_CLASSES[name]]
    if len(steps) > 1:
        return v2.RandomChoice(steps)  # one of them per batch
    return steps[0] if steps else None


# ---------------------------------------------------------------------------------- the model


def _conv_bn(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]


def _initialize(model: nn.Module) -> None:
    """The trainer's initialization (He et al. for the convolutions, zero biases of the head)."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.Linear):
            nn.init.zeros_(m.bias)


class SmallCNN(nn.Module):
    """autoaug's ``small_cnn``: the same layers, in the same order, with the same names and the
    same initialization (so one seed gives the same initial weights)."""

    def __init__(self, in_channels: int, num_classes: int):
        super().__init__()
        self.features = nn.Sequential(
            *_conv_bn(in_channels, 32),
            nn.MaxPool2d(2),
            *_conv_bn(32, 64),
            nn.MaxPool2d(2),
            *_conv_bn(64, 128),
            nn.MaxPool2d(2),
            *_conv_bn(128, 256),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(256, num_classes)
        _initialize(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.features(x)).flatten(1))


class _BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet18(nn.Module):
    """autoaug's ``resnet18``: ResNet-18 with the CIFAR stem (one 3×3 conv at stride 1, no
    max-pool), the same layers, names and initialization as :class:`SmallCNN` keeps them."""

    def __init__(self, in_channels: int, num_classes: int):
        super().__init__()
        layers: list[nn.Module] = [*_conv_bn(in_channels, 64)]
        c_in = 64
        for c_out, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            layers += [_BasicBlock(c_in, c_out, stride), _BasicBlock(c_out, c_out, 1)]
            c_in = c_out
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(512, num_classes)
        _initialize(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.features(x)).flatten(1))


MODELS = {"small_cnn": SmallCNN, "resnet18": ResNet18}


def kernel_fingerprint() -> str:
    """Twelve hex digits naming the numerical kernels this machine trains with: one seeded
    forward and backward pass of :class:`SmallCNN` on a seeded batch, on one thread, hashed bit
    for bit. Platform, torch version and thread count can agree while the CPU's kernels differ
    (one seed then gives another accuracy); two runs with the same fingerprint share the
    kernels these layers use, two with different ones do not."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        generator = torch.Generator().manual_seed(0)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model = SmallCNN(1, 10)
        x = torch.randn(128, 1, 28, 28, generator=generator)
        y = torch.randint(0, 10, (128,), generator=generator)
        out = model(x)
        nn.functional.cross_entropy(out, y).backward()
        digest = hashlib.sha256(out.detach().numpy().tobytes())
        for p in model.parameters():
            digest.update(p.grad.numpy().tobytes())
        return digest.hexdigest()[:12]
    finally:
        torch.set_num_threads(threads)


@torch.no_grad()
def accuracy(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    normalize: v2.Normalize,
    device: torch.device | None = None,
) -> float:
    """Top-1 accuracy on uint8 images, without augmentation, in batches of 1,024 (under bf16
    autocast on CUDA, as the training)."""
    if len(labels) == 0:
        return float("nan")
    model.eval()
    correct = 0
    for i in range(0, len(labels), 1024):
        x = normalize(images[i : i + 1024].to(device).float() / 255.0)
        with torch.autocast(
            "cuda", dtype=torch.bfloat16, enabled=device is not None and device.type == "cuda"
        ):
            logits = model(x)
        correct += (logits.argmax(1).cpu() == labels[i : i + 1024]).sum().item()
    model.train()
    return correct / len(labels)


def pick_device(name: str) -> torch.device:
    """``auto`` (CUDA when there is one), ``cpu``, ``cuda`` or ``cuda:K``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {name}: this machine has no CUDA device; use --device cpu")
    try:
        return torch.device(name)
    except RuntimeError:
        raise ValueError(f"--device: expected auto, cpu, cuda or cuda:K, got {name!r}") from None


# -------------------------------------------------------------------------------------- main


def train(args: argparse.Namespace, command: str = "") -> dict:
    """One training run; returns what ``--out`` gets (``command``: how it was started)."""
    t0 = time.perf_counter()
    torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    cuda = device.type == "cuda"
    if cuda:
        torch.backends.cudnn.benchmark = True
    data = load_idx_dir(Path(args.data_root))
    train_idx, val_idx = draw_splits(data["train_labels"], args.train_size, args.val_size, args.seed)
    if args.fold:  # cross-validation over the drawn images: one fold held out instead of the split
        fold, folds = args.fold
        pool = torch.cat([train_idx, val_idx]).sort().values
        train_idx, val_idx = draw_fold(data["train_labels"], pool, fold, folds, args.seed)
    train_x, train_y = data["train_images"][train_idx], data["train_labels"][train_idx]
    val_x, val_y = data["train_images"][val_idx], data["train_labels"][val_idx]
    dev_idx = draw_dev(data["train_labels"], torch.cat([train_idx, val_idx]), args.dev_size)
    pixels = train_x.float() / 255.0
    mean = pixels.mean(dim=(0, 2, 3)).tolist()
    std = pixels.std(dim=(0, 2, 3)).clamp(min=1e-3).tolist()
    normalize = v2.Normalize(mean, std)

    before, after = policy_steps(args.policy, train_x.shape[-1])
    transform = v2.Compose([*before, v2.ToDtype(torch.float32, scale=True), *after, normalize])
    loader = torch.utils.data.DataLoader(
        Images(train_x, train_y, transform),
        batch_size=args.batch_size,
        shuffle=True,
        drop_last=True,
        num_workers=args.workers,
        persistent_workers=args.workers > 0,
        pin_memory=cuda,
        generator=torch.Generator().manual_seed(args.seed),  # the order, and the workers' seeds
    )
    if len(loader) == 0:
        raise ValueError(f"--batch-size {args.batch_size} is more than the {len(train_y)} training images")

    torch.manual_seed(args.seed)  # the initial weights, the batch mix (and the augmentation when --workers 0)
    num_classes = int(data["train_labels"].max()) + 1
    mix = batch_mix(args.mix, num_classes)
    model = MODELS[args.model](train_x.shape[1], num_classes).to(device)
    if cuda:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(
        model.parameters(), lr=args.lr, momentum=0.9, nesterov=True, weight_decay=5e-4
    )
    steps = args.epochs * len(loader)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda i: 0.5 * (1 + math.cos(math.pi * min(i, steps) / steps))
    )
    loss_fn = nn.CrossEntropyLoss()

    epochs = []
    for epoch in range(args.epochs):
        t_epoch = time.perf_counter()
        total_loss = torch.zeros((), device=device)  # summed where the model is: no sync per step
        correct = torch.zeros((), dtype=torch.long, device=device)
        seen = 0
        for x, y in loader:
            if mix is not None:  # soft labels: the mixed images' label proportions
                x, y = mix(x, y)
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            if cuda:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
                logits = model(x)
                loss = loss_fn(logits, y)
            y = y.argmax(1) if y.ndim == 2 else y  # the training accuracy counts the larger share
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            total_loss += loss.detach() * len(y)
            correct += (logits.argmax(1) == y).sum()
            seen += len(y)
        record = {"epoch": epoch + 1, "train_loss": total_loss.item() / seen, "train_acc": correct.item() / seen,
                  "seconds": time.perf_counter() - t_epoch}  # fmt: skip
        epochs.append(record)
        if not args.quiet:
            print(
                f"epoch {epoch + 1}/{args.epochs}: loss {record['train_loss']:.4f} ({record['seconds']:.1f}s)",
                flush=True,
            )

    return {
        "test_acc": accuracy(model, data["test_images"], data["test_labels"], normalize, device),
        "val_acc": accuracy(model, val_x, val_y, normalize, device),
        "dev_acc": (
            accuracy(model, data["train_images"][dev_idx], data["train_labels"][dev_idx], normalize, device)
            if len(dev_idx)
            else None
        ),
        "epochs": epochs,
        "wall_seconds": time.perf_counter() - t0,
        "kernels": kernel_fingerprint(),
        "settings": {
            **{k: v for k, v in vars(args).items() if k not in ("out", "quiet")},
            "train_images": len(train_y),
            "val_images": len(val_y),
            "dev_images": len(dev_idx),
            "test_images": len(data["test_labels"]),
            "transform": repr(transform),
            "batch_transform": repr(mix) if mix is not None else None,
            "command": command,
            "versions": {
                "python": platform.python_version(),
                "torch": torch.__version__,
                "torchvision": torchvision.__version__,
            },
            "device_name": torch.cuda.get_device_name(device) if cuda else "cpu",
        },
    }


def _fold(text: str) -> tuple[int, int]:
    """``K/N`` -> ``(K, N)``."""
    try:
        k, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected K/N, two integers, got {text!r}") from None
    if n < 2 or not 0 <= k < n:
        raise argparse.ArgumentTypeError(f"expected K/N with N >= 2 and 0 <= K < N, got {text!r}")
    return k, n


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--policy", default="none", help=f"{', '.join(FIXED_POLICIES)}, or an exported FILE.py")
    ap.add_argument(
        "--data-root", default="/usr/share/datasets/fashion-mnist", help="directory of the four IDX files"
    )
    ap.add_argument(
        "--train-size", type=int, default=6000, help="training images drawn, before the validation split"
    )
    ap.add_argument("--val-size", type=float, default=0.1, help="fraction of them held out for validation")
    ap.add_argument(
        "--dev-size",
        type=int,
        default=0,
        help="also report the accuracy on this many training images that were not drawn (a "
        "development set for choosing a design without looking at the test images)",
    )
    ap.add_argument(
        "--fold",
        type=_fold,
        metavar="K/N",
        help="cross-validation: the drawn images (training and validation together) in N "
        "class-proportional folds, fold K (0 to N-1) held out as the validation images",
    )
    ap.add_argument(
        "--mix",
        default="none",
        help=f"a step on whole batches after the DataLoader: {', '.join(MIXES)}, "
        "with torchvision's alpha if wanted (cutmix[alpha=0.5])",
    )
    ap.add_argument(
        "--model",
        choices=sorted(MODELS),
        default="small_cnn",
        help="the small CNN, or ResNet-18 (CIFAR stem)",
    )
    ap.add_argument(
        "--device",
        default="cpu",
        help="cpu (deterministic per seed), cuda, cuda:K or auto; on CUDA the model trains under bf16 "
        "autocast in channels_last, the augmentation stays in the DataLoader workers",
    )
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--threads", type=int, default=torch.get_num_threads(), help="torch threads of the training process"
    )
    ap.add_argument(
        "--workers", type=int, default=2, help="DataLoader workers that augment (0: in this process)"
    )
    ap.add_argument("--out", required=True, metavar="FILE.json", help="where the result goes")
    ap.add_argument("--quiet", action="store_true", help="no line per epoch")
    args = ap.parse_args(argv)
    for name in ("epochs", "batch_size", "threads"):
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')}: expected a positive integer, got {getattr(args, name)}")
    if args.workers < 0 or args.seed < 0 or args.dev_size < 0 or not args.lr > 0:
        ap.error(
            "--workers, --seed and --dev-size must be >= 0 and --lr > 0, got "
            f"{args.workers}, {args.seed}, {args.dev_size}, {args.lr}"
        )
    try:
        batch_mix(args.mix, 2)  # its errors now, before the data is read
    except ValueError as e:
        ap.error(str(e))
    try:
        result = train(
            args, "python scripts/plain_train.py " + " ".join(sys.argv[1:] if argv is None else argv)
        )
    except (ValueError, FileNotFoundError) as e:
        print(f"plain_train: {e}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")  # written whole, then renamed
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    tmp.replace(out)
    dev = f", development {result['dev_acc']:.4f}" if args.dev_size else ""
    print(f"test accuracy {result['test_acc']:.4f}{dev} ({result['wall_seconds']:.0f}s); wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
