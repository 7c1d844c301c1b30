"""Does the search's own model tell how strong the augmentation should be? (issue 16)

The mcmc searcher holds each op to an invariance constraint: the search's model must keep its
loss on augmented training images under ε. If the loss of that model under a whole policy
carried the task's right strength, a searcher could pick the strength by it (the strongest
policy that still meets ε). This script measures that loss: for each search run given, the
model the search trained (``RUN/model.pt``) scores its own training images (the first
``--images`` of them) and its validation split, clean and under autoaug's RandAugment(N, M)
(``autoaug.reference.randaugment``) for N in 1, 2, 3 and M in 2, 5, 9, 14, ``--draws`` seeded
draws each: the mean cross-entropy and accuracy. Compare the runs of two settings whose best
strength is known to differ (BENCHMARKS.md, "How far above RandAugment does a policy of this
kind go?").

Writes ``OUT/results.json`` and ``OUT/results.md``. Trains nothing.

Run (after two searches as bench_accuracy runs them, seed 0)::

    autoaug search --dataset fashion-mnist --train-size 6000 --epochs 15 --space symmetry --out runs/red
    autoaug search --dataset fashion-mnist --train-size 1000 --epochs 60 --space symmetry --out runs/low
    python scripts/strength_signal.py runs/red runs/low --out results/strength_signal
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

from autoaug.analysis.invariance import load_run_model, run_dataset
from autoaug.reference import randaugment
from autoaug.settings import read_config

VARIANTS = [(n, m) for n in (1, 2, 3) for m in (2, 5, 9, 14)]


@torch.no_grad()
def scored(model, normalize, images: torch.Tensor, labels: torch.Tensor, policy=None, draws: int = 3) -> dict:
    """Mean cross-entropy and accuracy of ``model`` on uint8 ``images``, clean or under ``policy``
    (``draws`` seeded draws, averaged), in batches of 1,000."""
    g = torch.Generator().manual_seed(0)
    loss = right = 0.0
    rounds = draws if policy is not None else 1
    for _ in range(rounds):
        for i in range(0, len(labels), 1000):
            x, y = images[i : i + 1000].float() / 255, labels[i : i + 1000]
            if policy is not None:
                x = policy.apply(x, generator=g)
            logits = model(normalize(x))
            loss += F.cross_entropy(logits, y, reduction="sum").item()
            right += (logits.argmax(1) == y).sum().item()
    n = rounds * len(labels)
    return {"loss": loss / n, "acc": right / n}


def measure(run: Path, images: int, draws: int) -> dict:
    """The table of one search run (module docstring)."""
    config = read_config(run / "config.yaml")
    dataset = run_dataset(config, run / "config.yaml")
    model, normalize, _, _ = load_run_model(run, dataset=dataset)
    splits = {"train": (dataset.train.images[:images], dataset.train.labels[:images]),
              "val": (dataset.val.images, dataset.val.labels)}  # fmt: skip
    rows = {"clean": {s: scored(model, normalize, *xy) for s, xy in splits.items()}}
    for n, m in VARIANTS:
        policy = randaugment(n, m)
        rows[f"N{n} M{m}"] = {s: scored(model, normalize, *xy, policy, draws) for s, xy in splits.items()}
    epsilon = json.loads((run / "history.json").read_text()).get("epsilon")
    return {"run": str(run), "train_size": config.get("train_size"), "epochs": config.get("epochs"),
            "epsilon": epsilon, "train_images": len(splits["train"][1]), "rows": rows}  # fmt: skip


def format_table(results: list[dict]) -> str:
    head = "| policy | " + " | ".join(
        f"{r['run']} ({r['train_size']} images, {r['epochs']} epochs): train loss | val loss" for r in results
    )
    lines = [head + " |", "|---|" + "---|---|" * len(results)]
    for name in results[0]["rows"]:
        cells = []
        for r in results:
            row = r["rows"][name]
            cells += [f"{row['train']['loss']:.3f}", f"{row['val']['loss']:.3f}"]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    eps = ", ".join(f"{r['run']}: {r['epsilon']}" for r in results)
    return "\n".join(lines) + f"\n\nε of each search: {eps}\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", metavar="RUN_DIR", help="directories written by autoaug search")
    ap.add_argument("--images", type=int, default=2000, help="training images scored (the first N)")
    ap.add_argument("--draws", type=int, default=3, help="seeded draws of each policy per image")
    ap.add_argument("--out", required=True, metavar="DIR")
    args = ap.parse_args(argv)
    if args.images < 1 or args.draws < 1:
        ap.error(f"--images and --draws must be >= 1, got {args.images}, {args.draws}")
    try:
        results = [measure(Path(r), args.images, args.draws) for r in args.runs]
    except (OSError, ValueError) as e:
        print(f"strength_signal: {e}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=1))
    md = format_table(results)
    (out / "results.md").write_text(
        f"`python scripts/strength_signal.py {' '.join(args.runs)} --out {args.out}`\n\n{md}"
    )
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
