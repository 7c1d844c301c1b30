"""Throughput of applying a policy: autoaug's batched ``Policy.apply`` against the exported
torchvision transform applied image by image, on the same images, in one run.

Paths measured (images/s, median of ``--repeats`` timed runs after a warm-up):

* ``policy.apply`` on CPU, one call on the whole batch (and on CUDA when there is a GPU);
* the torchvision export, image by image in a Python loop (what a ``Dataset.__getitem__`` does);
* kornia's own ``kornia.augmentation.auto.TrivialAugment`` on the batch, for reference.

Writes JSON and a Markdown table. An absolute rate means something only on a fixed machine;
the ratio between paths measured in one run is what to compare.

Run: python scripts/bench_throughput.py [--policy trivialaugment] [--batch 256] [--size 32]
"""

from __future__ import annotations

import argparse
import json
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--policy", default="trivialaugment")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", default="results/throughput.json")
    args = ap.parse_args()

    torch.manual_seed(0)
    policy = load_policy(args.policy)
    x = torch.rand(args.batch, 3, args.size, args.size)
    g = torch.Generator().manual_seed(0)
    rows = []

    def add(path: str, device: str, seconds: float) -> None:
        rows.append(
            {"path": path, "device": device, "seconds": seconds, "images_per_s": args.batch / seconds}
        )

    paths = [("Policy.apply (batched)", "cpu", lambda: policy.apply(x, generator=g))]
    if torch.cuda.is_available():
        xc = x.cuda()
        gc = torch.Generator(device="cuda").manual_seed(0)
        paths.append(("Policy.apply (batched)", "cuda", lambda: policy.apply(xc, generator=gc)))
    tv = to_torchvision(policy, image_size=(args.size, args.size))
    paths.append(("torchvision export, per image", "cpu", lambda: [tv(img) for img in x]))
    try:
        from kornia.augmentation.auto import TrivialAugment

        kta = TrivialAugment()
        paths.append(("kornia TrivialAugment (batched)", "cpu", lambda: kta(x)))
    except Exception as e:  # kornia's auto-augment API differs between versions
        print(f"kornia TrivialAugment not measured: {e}")
    for (name, device, _), seconds in zip(paths, _time_interleaved([p[2] for p in paths], args.repeats)):
        add(name, device, seconds)

    base = next(r for r in rows if r["path"].startswith("torchvision"))["images_per_s"]
    for r in rows:
        r["vs_torchvision_per_image"] = r["images_per_s"] / base
    result = {
        "policy": args.policy,
        "batch": args.batch,
        "size": args.size,
        "threads": torch.get_num_threads(),
        "machine": f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}"
        + (f", {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ", no GPU"),
        "rows": rows,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    lines = [
        f"Policy `{args.policy}`, batch {args.batch}×3×{args.size}×{args.size}; {result['machine']}",
        "",
        "| path | device | ms per batch | images/s | × torchvision per image |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['path']} | {r['device']} | {r['seconds'] * 1000:.1f} | {r['images_per_s']:,.0f} | "
                     f"{r['vs_torchvision_per_image']:.1f} |")  # fmt: skip
    table = "\n".join(lines)
    out.with_suffix(".md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
