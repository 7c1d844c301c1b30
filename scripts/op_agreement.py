"""How closely each op's kornia kernel agrees with its torchvision ``transforms.v2`` twin.

For every op in :data:`autoaug.ops.OPS`, at magnitudes 0.1, 0.3, 0.5, 0.7 and 1.0 of its
``symmetry`` range (both signs for signed ops; ops without a magnitude once), the op and its
twin ``op.torchvision(value, interpolation)`` are applied to the same float32 images in [0, 1],
the twin image by image:

* the first 256 Fashion-MNIST test images (1×28×28), when installed
  (``apt-get install dataset-fashion-mnist``; skipped with a message otherwise);
* 256 synthetic RGB images (3×32×32): smooth ramps plus uniform noise, seeded.

Geometric ops run with nearest-neighbour interpolation (torchvision's default) and bilinear;
photometric ops ignore it and run once. Per op, interpolation and data set it reports the
largest and the mean absolute difference and the share of pixels differing by more than 1/255.
Erasing puts its box at a random position; the box torchvision drew is located in its output
and replayed through the op's ``aux``, so the pixels compare the box's size and fill.

Writes JSON (``--out``, default ``results/op_agreement.json``) and the Markdown table next to
it (``.md``), and prints the table.

Run: python scripts/op_agreement.py [--out results/op_agreement.json] [--images 256]
"""

from __future__ import annotations

import argparse
import functools
import gzip
import json
import platform
import sys
from pathlib import Path

import kornia
import numpy as np
import torch
import torchvision
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from autoaug.ops import OPS, Op, TvSpec
from autoaug.policy import atomic_write_text
from autoaug.spaces import SYMMETRY

FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz")
MAGNITUDES = (0.1, 0.3, 0.5, 0.7, 1.0)
OVER = 1 / 255  # one grey level of an 8-bit image


def build_tv(spec: TvSpec) -> v2.Transform:
    """The live torchvision object a :class:`TvSpec` describes."""
    kwargs = dict(spec.kwargs)
    if spec.target.startswith("F."):
        return v2.Lambda(functools.partial(getattr(F, spec.target[2:]), **kwargs))
    return getattr(v2, spec.target)(**kwargs)


def fashion_mnist(count: int) -> torch.Tensor:
    """The first ``count`` Fashion-MNIST test images, N×1×28×28 float32 in [0, 1]."""
    with gzip.open(FASHION_MNIST, "rb") as f:
        magic, n, h, w = np.frombuffer(f.read(16), dtype=">u4")
        if magic != 2051:
            raise ValueError(f"{FASHION_MNIST}: not an IDX image file (magic {magic}, expected 2051)")
        n = min(count, int(n))
        pixels = np.frombuffer(f.read(n * int(h) * int(w)), dtype=np.uint8).reshape(n, 1, int(h), int(w))
    return torch.from_numpy(pixels.astype(np.float32) / 255.0)


def synthetic_rgb(count: int, size: int = 32, seed: int = 0) -> torch.Tensor:
    """Smooth colour ramps plus uniform noise, N×3×size×size float32 in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    ys, xs = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    ramps = torch.stack([xs, ys, (xs + ys) / 2])
    return 0.5 * ramps + 0.5 * torch.rand(count, 3, size, size, generator=g)


def op_values(op: Op, height: int, width: int) -> list[float]:
    if not op.has_magnitude:
        return [0.0]
    r = SYMMETRY.ranges[op.name]
    values = [r.value(m, height, width) for m in MAGNITUDES]
    return values + [-v for v in values] if op.signed else values


def erasing_pair(op: Op, x: torch.Tensor, v: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Ours and torchvision's erasing with torchvision's box, found in its output on a strictly
    positive copy of each image under the same seed, replayed through ``aux``."""
    b, _, h, w = x.shape
    tv = build_tv(op.torchvision(v, "nearest"))
    theirs, aux = [], torch.zeros(b, 2)
    for i, img in enumerate(x):
        torch.manual_seed(i)
        erased = (tv(0.01 + 0.99 * img) == 0).any(0)
        torch.manual_seed(i)
        theirs.append(tv(img))
        rows, cols = erased.any(1).nonzero(), erased.any(0).nonzero()
        if len(rows):
            side = len(rows)
            aux[i, 0] = (rows[0].item() + 0.5) / (h - side + 1)
            aux[i, 1] = (cols[0].item() + 0.5) / (w - side + 1)
    return op(x, torch.full((b,), v), aux), torch.stack(theirs)


def measure(op: Op, x: torch.Tensor, interpolation: str) -> dict[str, float]:
    b, _, h, w = x.shape
    largest, total, over, count = 0.0, 0.0, 0, 0
    for v in op_values(op, h, w):
        if op.name == "erasing":
            ours, theirs = erasing_pair(op, x, v)
        else:
            tv = build_tv(op.torchvision(v, interpolation))
            ours = op(x, torch.full((b,), v), None, interpolation)
            theirs = torch.stack([tv(img) for img in x])
        diff = (ours - theirs).abs().double()
        largest = max(largest, diff.max().item())
        total += diff.sum().item()
        over += int((diff > OVER).sum().item())
        count += diff.numel()
    return {"max_diff": largest, "mean_diff": total / count, "frac_over_1_255": over / count}


def markdown(rows: list[dict], datasets: dict[str, dict]) -> str:
    lines = [
        "# kornia ↔ torchvision agreement per op",
        "",
        f"Magnitudes {', '.join(map(str, MAGNITUDES))} of the `symmetry` range, both signs for "
        "signed ops; geometric ops with nearest (torchvision's default) and bilinear interpolation.",
    ]
    for name, info in datasets.items():
        lines += ["", f"## {name} ({info['description']})", ""]
        if "skipped" in info:
            lines.append(f"Skipped: {info['skipped']}")
            continue
        lines += ["| op | max diff | mean diff | % pixels > 1/255 |", "|---|---:|---:|---:|"]
        for r in rows:
            if r["dataset"] == name:
                label = r["op"] if r["interpolation"] == "-" else f"{r['op']} ({r['interpolation']})"
                lines.append(
                    f"| {label} | {r['max_diff']:.2e} | {r['mean_diff']:.2e} | {100 * r['frac_over_1_255']:.3f} |"
                )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--out", type=Path, default=Path("results/op_agreement.json"), help="JSON file to write"
    )
    parser.add_argument("--images", type=int, default=256, help="images per data set (default 256)")
    args = parser.parse_args(argv)
    if args.images < 1:
        parser.error(f"--images: expected a positive count, got {args.images}")

    data: dict[str, torch.Tensor] = {}
    datasets: dict[str, dict] = {}
    fm = f"first {args.images} test images, 1×28×28"
    if FASHION_MNIST.is_file():
        data["fashion-mnist"] = fashion_mnist(args.images)
        datasets["fashion-mnist"] = {"description": fm, "path": str(FASHION_MNIST)}
    else:
        reason = f"Fashion-MNIST not installed ({FASHION_MNIST}): apt-get install dataset-fashion-mnist"
        print(f"skipping fashion-mnist: {reason}", file=sys.stderr)
        datasets["fashion-mnist"] = {"description": fm, "skipped": reason}
    data["synthetic-rgb"] = synthetic_rgb(args.images)
    datasets["synthetic-rgb"] = {"description": f"{args.images} seeded images, 3×32×32", "seed": 0}
    for name, x in data.items():
        datasets[name]["count"] = len(x)

    rows = []
    for name, op in OPS.items():
        interps = ("nearest", "bilinear") if op.kind == "geometric" and name != "erasing" else ("-",)
        for interp in interps:
            for dname, x in data.items():
                stats = measure(op, x, "nearest" if interp == "-" else interp)
                rows.append({"op": name, "interpolation": interp, "dataset": dname, **stats})
                print(f"{name:>14} {interp:>8} {dname:>14}  max {stats['max_diff']:.2e}", file=sys.stderr)

    result = {
        "what": "kornia kernel vs torchvision twin, |difference| over all pixels and values",
        "magnitudes": list(MAGNITUDES),
        "space": "symmetry",
        "over_threshold": OVER,
        "datasets": datasets,
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "torchvision": torchvision.__version__,
            "kornia": kornia.__version__,
        },
        "rows": rows,
    }
    table = markdown(rows, datasets)
    atomic_write_text(args.out, json.dumps(result, indent=2) + "\n")
    atomic_write_text(args.out.with_suffix(".md"), table)
    print(table)
    print(f"wrote {args.out} and {args.out.with_suffix('.md')}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
