"""Images per second of a folder of mixed-size JPEGs three ways, with each way's peak memory.

* ``resident``: autoaug decodes the folder once (``--stream off``), holds it as uint8, batches by
  indexing (DeviceLoader) and applies the policy on the device, batched (``Policy.apply``);
* ``stream``: autoaug's StreamLoader decodes and resizes each batch in DataLoader workers; the
  policy is applied on the device, batched;
* ``torchvision``: a torchvision ``ImageFolder`` DataLoader whose workers resize and augment each
  image (``TrivialAugmentWide``), the usual way.

Each way runs in a process of its own, so that its peak resident memory (its own and its
workers', from ``getrusage``) and, on CUDA, its peak device memory are its alone. The time
counts the epochs after a first one (the resident way's loading is reported apart).

    python scripts/bench_stream.py --images 20000 --min-px 64 --max-px 512 --size 64 --out results/bench_stream.json
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

WAYS = ("resident", "stream", "torchvision")


def make_folder(root: Path, n: int, min_px: int, max_px: int, classes: int = 10, seed: int = 0) -> Path:
    """``n`` JPEGs of random sizes in [min_px, max_px] (a smooth random colour field each), in
    ``classes`` class folders; kept when it is already there with ``n`` images."""
    from PIL import Image

    if root.is_dir() and sum(1 for _ in root.glob("*/*.jpg")) == n:
        return root
    rng = np.random.default_rng(seed)
    for i in range(n):
        cls = root / f"c{i % classes}"
        cls.mkdir(parents=True, exist_ok=True)
        w, h = (int(v) for v in rng.integers(min_px, max_px + 1, 2))
        small = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
        Image.fromarray(small).resize((w, h), Image.BILINEAR).save(cls / f"{i}.jpg", quality=90)
    return root


def _peak_rss_mib() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return (own + children) / 1024  # kilobytes on Linux


def run_way(way: str, folder: Path, size: int, batch: int, epochs: int, workers: int, device: str) -> dict:
    """Time ``epochs`` passes (after a first, warm-up one) of one way; images/s and peak memory."""
    import torch

    from autoaug.data import DeviceLoader, StreamLoader, load_dataset
    from autoaug.policy import load_policy

    dev = torch.device(device)
    policy = load_policy("trivialaugment")
    generator = torch.Generator().manual_seed(0)
    t_load = time.perf_counter()
    if way == "torchvision":
        from torchvision import datasets, transforms

        tf = transforms.Compose([transforms.Resize(size), transforms.CenterCrop(size),
                                 transforms.TrivialAugmentWide(), transforms.PILToTensor()])  # fmt: skip
        loader = torch.utils.data.DataLoader(datasets.ImageFolder(str(folder), tf), batch_size=batch, shuffle=True,
                                             num_workers=workers, drop_last=True, persistent_workers=workers > 0)  # fmt: skip
    else:
        ds = load_dataset(f"folder:{folder}", image_size=str(size), val_size=0,
                          stream="off" if way == "resident" else "on", workers=workers)  # fmt: skip
        if way == "resident":
            loader = DeviceLoader(ds.train, batch, device=dev, seed=0)
        else:
            loader = StreamLoader(ds.train, batch, device=dev, seed=0, workers=workers)
    load_seconds = time.perf_counter() - t_load
    images, seconds = 0, 0.0
    for epoch in range(epochs + 1):
        t0 = time.perf_counter()
        n = 0
        for x, _ in loader:
            x = x.to(dev, non_blocking=True).float() / 255.0
            if way != "torchvision":  # augmentation on the device, batched
                x = policy.apply(x, params=policy.sample(len(x), generator=generator, device=dev))
            n += len(x)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        if epoch > 0:
            images, seconds = images + n, seconds + time.perf_counter() - t0
    out = {"way": way, "images_per_s": images / seconds if seconds else 0.0, "images": images,
           "seconds": seconds, "load_seconds": load_seconds, "peak_rss_mib": _peak_rss_mib()}  # fmt: skip
    if dev.type == "cuda":
        out["peak_device_mib"] = torch.cuda.max_memory_allocated(dev) / 2**20
    return out


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=20000)
    p.add_argument("--min-px", type=int, default=64)
    p.add_argument("--max-px", type=int, default=512)
    p.add_argument("--size", type=int, default=64, help="the side images are resized to")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--epochs", type=int, default=2, help="timed passes, after one warm-up pass")
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--device", default="auto", help="auto (CUDA when there is one), cpu, cuda")
    p.add_argument("--folder", type=Path, default=Path("results/bench_stream_photos"))
    p.add_argument("--ways", default=",".join(WAYS))
    p.add_argument("--out", type=Path, default=Path("results/bench_stream.json"))
    p.add_argument("--one", help=argparse.SUPPRESS)  # run one way in this process, print its JSON
    args = p.parse_args(argv)
    import torch

    device = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    if args.one:
        print(json.dumps(run_way(args.one, args.folder, args.size, args.batch_size, args.epochs, args.workers,
                                 device)))  # fmt: skip
        return {}
    make_folder(args.folder, args.images, args.min_px, args.max_px)
    rows = []
    for way in args.ways.split(","):
        if way not in WAYS:
            raise SystemExit(f"--ways: unknown way {way!r}; known: {', '.join(WAYS)}")
        cmd = [sys.executable, __file__, "--one", way, "--folder", str(args.folder), "--size", str(args.size),
               "--batch-size", str(args.batch_size), "--epochs", str(args.epochs), "--workers", str(args.workers),
               "--device", device]  # fmt: skip
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise SystemExit(f"{way}: failed: {done.stderr.strip().splitlines()[-1:]}")
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), flush=True)
    result = {"images": args.images, "px": [args.min_px, args.max_px], "size": args.size, "device": device,
              "batch_size": args.batch_size, "workers": args.workers, "rows": rows}  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    tmp.replace(args.out)
    return result


if __name__ == "__main__":
    main()
