"""Throughput of applying a policy, in images/s: autoaug's batched ``Policy.apply`` against
the exported torchvision transform and kornia's own TrivialAugment, on the same images, at
each size of ``--sizes``, in one run.

Paths measured (median of ``--repeats`` rounds after a warm-up, paths timed in rotation):

* ``Policy.apply`` on CPU, one call on the whole batch (one op per image, grouped by op), and
  on CUDA when there is a GPU;
* the torchvision export in a ``DataLoader`` with one worker per core (how a training script
  uses it: a ``Dataset`` whose ``__getitem__`` applies the transform to one uint8 image);
* the torchvision export image by image in the main process (no workers);
* ``kornia.augmentation.auto.TrivialAugment`` on the batch, for reference. Note that it draws
  one op for the whole batch per call (kornia's ``get_forward_sequence`` samples a single
  sub-policy), where ``Policy.apply`` draws one per image: it runs one kernel per call, not
  one per op present in the batch, so it is a lower bound on the cost, not the same work.

Writes JSON and a Markdown table. An absolute rate means something only on a fixed machine
(and on a GPU); the ratios between paths measured in one run are what to compare.

Run: python scripts/bench_throughput.py [--policy trivialaugment] [--batch 256] [--sizes 32,224]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch

from autoaug.export import to_torchvision
from autoaug.policy import load_policy


def _time_interleaved(fns: list, repeats: int) -> list[float]:
    """Median seconds of each function, timed in rotation (one call of each per round), so
    that load from elsewhere on the machine hits every path alike."""
    for fn in fns:
        fn()  # warm-up
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for k, fn in enumerate(fns):
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            fn()
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            times[k].append(time.perf_counter() - t0)
    return [statistics.median(t) for t in times]


class _Images(torch.utils.data.Dataset):
    """uint8 images, each passed through a transform in ``__getitem__``."""

    def __init__(self, images: torch.Tensor, transform):
        self.images, self.transform = images, transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        return self.transform(self.images[i])


def _paths(policy, batch: int, size: int, workers: int, gpu_batch: int) -> list[tuple[str, str, object, int]]:
    """(name, device, one call, images per call) of every path measured at ``size``."""
    x = torch.rand(batch, 3, size, size)
    x8 = (x * 255).to(torch.uint8)
    g = torch.Generator().manual_seed(0)
    paths = [("Policy.apply (batched)", "cpu", lambda: policy.apply(x, generator=g), batch)]
    if torch.cuda.is_available():
        xc = x.cuda()
        gc = torch.Generator(device="cuda").manual_seed(0)
        paths.append(("Policy.apply (batched)", "cuda", lambda: policy.apply(xc, generator=gc), batch))
        # A GPU is fed large batches: the same pixels per call as gpu_batch images of 32×32.
        big = max(batch, gpu_batch * 32 * 32 // (size * size))
        xb = torch.rand(big, 3, size, size, device="cuda")
        paths.append((f"Policy.apply (batched, {big} images a call)", "cuda",
                      lambda: policy.apply(xb, generator=gc), big))  # fmt: skip
    tv = to_torchvision(policy, image_size=(size, size))
    if workers > 0:
        loader = torch.utils.data.DataLoader(
            _Images(x8, tv), batch_size=batch, num_workers=workers, persistent_workers=True
        )
        paths.append(
            (f"torchvision export, DataLoader ({workers} workers)", "cpu", lambda: next(iter(loader)), batch)
        )
    paths.append(("torchvision export, per image", "cpu", lambda: [tv(img) for img in x8], batch))
    try:
        from kornia.augmentation.auto import TrivialAugment

        kta = TrivialAugment()
        paths.append(("kornia TrivialAugment (one op per batch)", "cpu", lambda: kta(x), batch))
    except Exception as e:  # kornia's auto-augment API differs between versions
        print(f"kornia TrivialAugment not measured: {e}")
    return paths


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--policy", default="trivialaugment")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--sizes", default="32,224", help="image sizes, comma-separated (default 32,224)")
    ap.add_argument(
        "--workers", type=int, default=os.cpu_count() or 1, help="DataLoader workers (default: cores)"
    )
    ap.add_argument("--gpu-batch", type=int, default=65536,
                    help="images of 32×32 per call on CUDA, scaled down for larger sizes (default 65536)")  # fmt: skip
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", default="results/throughput.json")
    args = ap.parse_args()

    torch.manual_seed(0)
    policy = load_policy(args.policy)
    rows = []
    for size in [int(v) for v in args.sizes.split(",")]:
        paths = _paths(policy, args.batch, size, args.workers, args.gpu_batch)
        seconds = _time_interleaved([p[2] for p in paths], args.repeats)
        block = [{"size": size, "path": name, "device": device, "images": n, "seconds": t, "images_per_s": n / t}
                 for (name, device, _, n), t in zip(paths, seconds)]  # fmt: skip
        base = next(r for r in block if "DataLoader" in r["path"] or "per image" in r["path"])
        for r in block:
            r["vs_torchvision"] = r["images_per_s"] / base["images_per_s"]
            print(f"{size}px {r['path']} ({r['device']}): {r['images_per_s']:,.0f} images/s")
        rows += block
    machine = (
        f"{platform.machine()}, {os.cpu_count()} cores, {torch.get_num_threads()} threads, torch {torch.__version__}"
        + (f", {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ", no GPU")
    )
    result = {
        "policy": args.policy,
        "batch": args.batch,
        "workers": args.workers,
        "machine": machine,
        "rows": rows,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    lines = [
        f"Policy `{args.policy}`, batches of {args.batch}×3×H×W; {machine}; paths timed in rotation, "
        f"median of {args.repeats}",
        "",
        "| size | path | device | ms per call | images/s | × torchvision DataLoader |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['size']} | {r['path']} | {r['device']} | {r['seconds'] * 1000:.1f} | "
                     f"{r['images_per_s']:,.0f} | {r['vs_torchvision']:.2f} |")  # fmt: skip
    table = "\n".join(lines)
    out.with_suffix(".md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
