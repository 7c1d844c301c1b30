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


def _time(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


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
        rows.append({"path": path, "device": device, "seconds": seconds, "images_per_s": args.batch / seconds})

    add("Policy.apply (batched)", "cpu", _time(lambda: policy.apply(x, generator=g), args.repeats))
    if torch.cuda.is_available():
        xc = x.cuda()
        gc = torch.Generator(device="cuda").manual_seed(0)
        add("Policy.apply (batched)", "cuda", _time(lambda: policy.apply(xc, generator=gc), args.repeats))

    tv = to_torchvision(policy, image_size=(args.size, args.size))
    add("torchvision export, per image", "cpu", _time(lambda: [tv(img) for img in x], args.repeats))

    try:
        from kornia.augmentation.auto import TrivialAugment

        kta = TrivialAugment()
        add("kornia TrivialAugment (batched)", "cpu", _time(lambda: kta(x), args.repeats))
    except Exception as e:  # kornia's auto-augment API differs between versions
        print(f"kornia TrivialAugment not measured: {e}")

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
