"""The ``autoaug`` command line: one entry point, a function per subcommand.

Bad input (a missing file, malformed JSON, an unknown op, a magnitude outside [0, 1], an
image that is not an image) ends with one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from collections.abc import Callable, Sequence
from fractions import Fraction
from pathlib import Path

from autoaug.policy import POLICY_DIR, Policy, PolicyError, load_policy


class CliError(Exception):
    """A user error: printed as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage error in one line (its usage text is one ``--help`` away)."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class _Help(argparse.HelpFormatter):
    """argparse's help, with room for a flag and its metavar before the help column."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=34)


# ------------------------------------------------------------------------------- helpers


def _parse_size(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    parts = text.lower().replace("×", "x").split("x")
    try:
        nums = [int(p) for p in parts]
    except ValueError:
        raise CliError(f"--image-size: expected H or HxW (e.g. 32 or 28x28), got {text!r}") from None
    if len(nums) == 1:
        nums = nums * 2
    if len(nums) != 2 or min(nums) <= 0:
        raise CliError(f"--image-size: expected H or HxW with positive sizes, got {text!r}")
    return nums[0], nums[1]


def _load_images(paths: Sequence[str]):
    import torch
    from PIL import Image, UnidentifiedImageError
    from torchvision.transforms.v2 import functional as F

    images = []
    for p in paths:
        path = Path(p)
        if not path.is_file():
            raise CliError(f"image not found: {path}")
        try:
            with Image.open(path) as im:
                im = im.convert("RGB") if im.mode not in ("L", "RGB") else im.copy()
        except (UnidentifiedImageError, OSError):
            raise CliError(f"{path}: not an image that PIL can read") from None
        images.append(F.to_dtype(F.pil_to_tensor(im), torch.float32, scale=True))
    return images


# ---------------------------------------------------------------------------- commands


def cmd_policies(args: argparse.Namespace) -> None:
    from autoaug.reference import builtin_policies

    print("Built-in policies (use the name wherever a policy is expected):")
    for name, make in builtin_policies().items():
        p = make()
        src = p.meta.get("source", "no augmentation")
        print(f"  {name:22s} {len(p.stages)} stage(s), space {p.space:9s} {src}")
    files = sorted(POLICY_DIR.glob("*.json")) if POLICY_DIR.is_dir() else []
    if files:
        print(f"Policy files in {POLICY_DIR}:")
        for f in files:
            try:
                p = Policy.load(f)
                print(f"  {f.name:30s} {len(p.stages)} stage(s), {len(p.ops)} ops, space {p.space}")
            except PolicyError as e:
                print(f"  {f.name:30s} INVALID: {e}")


def describe(policy: Policy) -> str:
    """A table of a policy's ops: stage, op, chance of being picked, probability, magnitudes."""
    from autoaug.ops import get_op

    lines = [f"policy {policy.name!r}: {len(policy.stages)} stage(s), space {policy.space}, "
             f"interpolation {policy.interpolation}"]  # fmt: skip
    if not policy.stages:
        lines.append("  (no stages: images pass through unchanged)")
    header = (
        f"  {'stage':>5}  {'op':14s} {'picked':>7} {'prob':>5}  {'magnitude':>9}  {'range':24s} histogram"
    )
    for s, stage in enumerate(policy.stages):
        lines.append(header if s == 0 else "")
        total = sum(e.weight for e in stage)
        for e in sorted(stage, key=lambda e: -e.weight):
            r = policy.range_of(e.op)
            if r is None:
                mag, rng, hist = "-", "-", ""
            else:
                mag = f"{e.mean_magnitude():.2f}"
                unit = f" x {r.per}" if r.per else ""
                sign = "±" if get_op(e.op).signed else ""
                rng = f"{sign}[{r.low:g}, {r.high:g}]{unit}"
                hist = _sparkline(e.probs) if len(e.probs) > 1 else f"m={e.magnitudes[0]:.2f}"
            lines.append(
                f"  {s:>5}  {e.op:14s} {e.weight / total:7.1%} {e.prob:5.2f}  {mag:>9}  {rng:24s} {hist}"
            )
    return "\n".join(lines)


def _sparkline(values: Sequence[float]) -> str:
    bars = " ▁▂▃▄▅▆▇█"
    top = max(values) or 1.0
    return "".join(bars[round(v / top * (len(bars) - 1))] for v in values)


def plot_policy(policy: Policy, out: Path) -> Path:
    """Draw each stage: op probabilities (bars) and magnitude histograms (heatmap); write PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    n = max(len(policy.stages), 1)
    fig, axes = plt.subplots(n, 2, figsize=(11, 0.35 * max(8, max((len(s) for s in policy.stages), default=1)) * n + 1),
                             squeeze=False)  # fmt: skip
    for s, stage in enumerate(policy.stages):
        names = [e.op for e in stage]
        total = sum(e.weight for e in stage)
        picked = np.array([e.weight / total for e in stage])
        applied = picked * np.array([e.prob for e in stage])
        y = np.arange(len(stage))
        ax = axes[s, 0]
        ax.barh(y, picked, color="#c6dbef", label="picked")
        ax.barh(y, applied, color="#2171b5", label="applied")
        ax.set_yticks(y, names)
        ax.invert_yaxis()
        ax.set_xlabel("probability per image")
        ax.set_title(f"stage {s}: which op")
        ax.legend(loc="lower right", fontsize=8)
        # One column per multiple of 1/D, D the least common denominator of the magnitudes (a
        # search's levels are (l + 1)/L, a histogram's k/(n - 1)): no two levels share a column.
        den = math.lcm(*(Fraction(m).limit_denominator(60).denominator for e in stage for m in e.magnitudes))
        width = den + 1 if den <= 240 else max(len(e.probs) for e in stage)
        grid = np.full((len(stage), width), np.nan)
        for i, e in enumerate(stage):
            if policy.range_of(e.op) is None:
                continue
            grid[i] = 0.0
            for m, q in zip(e.magnitudes, np.array(e.probs) / sum(e.probs)):
                grid[i, round(m * (width - 1))] += q  # each level at its nearest column
        ax = axes[s, 1]
        im = ax.imshow(grid, aspect="auto", cmap="viridis", extent=(-0.5 / max(width - 1, 1), 1 + 0.5 / max(width - 1, 1),
                       len(stage) - 0.5, -0.5))  # fmt: skip
        ax.set_yticks(y, names)
        ax.set_xlabel("magnitude (0 = identity, 1 = the range's end)")
        ax.set_title(f"stage {s}: magnitude distribution per op")
        fig.colorbar(im, ax=ax, fraction=0.04)
    if not policy.stages:
        axes[0, 0].text(0.5, 0.5, "no stages", ha="center")
    fig.suptitle(f"policy {policy.name}")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def plot_history(run: Path, out: Path) -> Path:
    """Draw how a search changed over its epochs: the sampler's mass per op, the dual variables
    (per op when per-op), relaxations, acceptance rate, clean and augmented loss; write PNG."""
    import json

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    try:
        history = json.loads((run / "history.json").read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise CliError(f"{run / 'history.json'}: cannot read the search history: {e}") from None
    epochs = history["epochs"]
    ops = history["ops"]
    x = np.arange(1, len(epochs) + 1)
    mass = np.array([np.array(e["histogram"]).sum(1) for e in epochs])
    mass = mass / mass.sum(1, keepdims=True).clip(min=1)
    per_op = isinstance(epochs[0]["lambda"], list)
    fig, axes = plt.subplots(2, 2, figsize=(13, 8))
    order = np.argsort(-mass[-1])
    cmap = plt.get_cmap("tab20")
    ax = axes[0, 0]
    ax.stackplot(
        x, mass[:, order].T, labels=[ops[i] for i in order], colors=[cmap(i % 20) for i in range(len(ops))]
    )
    ax.set_title("sampler mass per op (states trained on)")
    ax.set_xlabel("epoch")
    ax.legend(fontsize=6, ncol=2, loc="upper left", bbox_to_anchor=(1, 1))
    ax = axes[0, 1]
    if per_op:
        lam = np.array([e["lambda"] for e in epochs])
        top = order[:8] if not per_op else np.argsort(-lam[-1])[:8]
        for i in top:
            ax.plot(x, lam[:, i], label=ops[i])
        ax.set_title("dual variable λ per op (top 8)")
        ax.legend(fontsize=7)
    else:
        ax.plot(x, [e["lambda"] for e in epochs], color="k")
        ax.set_title("dual variable λ")
    ax.set_xlabel("epoch")
    ax = axes[1, 0]
    if per_op:
        relax = np.array([e["relaxation"] for e in epochs])
        for i in np.argsort(-relax[-1])[:8]:
            ax.plot(x, relax[:, i], label=ops[i])
        ax.set_title("relaxation u per op: how far the task is from invariant (top 8)")
        ax.legend(fontsize=7)
    else:
        losses = [e["op_proposal_loss"] for e in epochs]
        for name in sorted(losses[-1], key=lambda o: -losses[-1][o])[:8]:
            ax.plot(x, [lo.get(name, np.nan) for lo in losses], label=name)
        ax.set_title("augmented loss per op (uniform proposals, top 8)")
        ax.legend(fontsize=7)
    ax.set_xlabel("epoch")
    ax = axes[1, 1]
    metrics_path = run / "metrics.jsonl"
    if metrics_path.is_file():
        rows = [json.loads(line) for line in metrics_path.read_text().splitlines() if line.strip()]
        mx = [r["epoch"] for r in rows]
        for key, style in (("train_clean_loss", "-"), ("train_aug_loss", "--"), ("val_loss", ":")):
            if key in rows[0]:
                ax.plot(mx, [r[key] for r in rows], style, label=key)
    ax.plot(x, [e["acceptance"] for e in epochs], "k-.", label="acceptance rate")
    ax.set_title("losses and acceptance")
    ax.set_xlabel("epoch")
    ax.legend(fontsize=7)
    fig.suptitle(f"search {run.name}: {history.get('constraint')} constraint, ε = {history.get('epsilon')}")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def cmd_show(args: argparse.Namespace) -> None:
    policy = load_policy(args.policy)
    print(describe(policy))
    run = Path(args.policy)
    is_run = run.is_dir() and (run / "history.json").is_file()
    bilevel = False
    if is_run:
        import json

        history = json.loads((run / "history.json").read_text())
        epochs, bilevel = history["epochs"], history.get("method") == "bilevel"
        if bilevel:
            print(f"\nsearch run (bilevel, {history.get('mode')} mode): {len(epochs)} epochs; "
                  f"last dual variable {epochs[-1]['lambda']:.3f}")  # fmt: skip
        else:
            print(f"\nsearch run: {len(epochs)} epochs; last acceptance rate {epochs[-1]['acceptance']:.2f}")
    if args.plot:
        print(f"plot written to {plot_policy(policy, Path(args.plot))}")
        if is_run:
            from autoaug.search import bilevel as bilevel_search

            hist_png = Path(args.plot).with_name(Path(args.plot).stem + "_history.png")
            draw = bilevel_search.plot_history if bilevel else plot_history
            print(f"history plot written to {draw(run, hist_png)}")


def _file_stem(name: str) -> str:
    """``name`` as part of a file name: a learned policy's name holds its dataset, which can be a
    path (``mcmc_folder:/data/photos`` -> ``mcmc_folder_data_photos``).

    Examples:
        >>> _file_stem("mcmc_folder:/data/my photos")
        'mcmc_folder_data_my_photos'
    """
    return re.sub(r"[^\w.-]+", "_", name).strip("_.") or "policy"


def cmd_apply(args: argparse.Namespace) -> None:
    import torch
    from torchvision.utils import make_grid, save_image

    policy = load_policy(args.policy)
    images = _load_images(args.images)
    g = torch.Generator().manual_seed(args.seed)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for img in images:
        batch = img.unsqueeze(0).expand(args.samples, -1, -1, -1).contiguous()
        augmented = policy.apply(batch, generator=g)
        row = torch.cat([img.unsqueeze(0), augmented])
        rows.append(row.expand(-1, 3, -1, -1) if row.shape[1] == 1 else row)
    # Small images (28×28, 32×32) are enlarged with nearest neighbours so a person can see them.
    zoom = max(1, 96 // max(max(r.shape[-2:]) for r in rows))
    if zoom > 1:
        rows = [torch.nn.functional.interpolate(r, scale_factor=zoom, mode="nearest") for r in rows]
    sizes = {tuple(r.shape[-2:]) for r in rows}
    paths = []
    if len(sizes) == 1:
        grid = make_grid(torch.cat(rows), nrow=args.samples + 1, padding=2, pad_value=1.0)
        path = out_dir / f"{_file_stem(policy.name)}_samples.png"
        save_image(grid, path)
        paths.append(path)
    else:  # images of different sizes: one grid per image
        for i, row in enumerate(rows):
            path = out_dir / f"{_file_stem(policy.name)}_{Path(args.images[i]).stem}.png"
            save_image(make_grid(row, nrow=args.samples + 1, padding=2, pad_value=1.0), path)
            paths.append(path)
    for p in paths:
        print(f"wrote {p} (first column: the original; then {args.samples} samples)")


def cmd_export(args: argparse.Namespace) -> None:
    from autoaug.export import export

    if args.to != "torchvision":
        raise CliError(f"--to: only 'torchvision' is supported, got {args.to!r}")
    policy = load_policy(args.policy)
    path = export(policy, args.out, image_size=_parse_size(args.image_size))
    how = (
        "python source defining `transform`"
        if path.suffix == ".py"
        else "a pickled torchvision object (torch.load(..., weights_only=False))"
    )
    print(f"wrote {path}: {how}")


GROUP_TITLES = {"data": "data", "training": "model and training", "run": "running", "search": "search"}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _add_flag(p, config_cls, name: str, f, shown: bool = True) -> None:
    """One ``--flag`` for a config field (``--flag/--no-flag`` for a boolean), its help the
    field's; the default stays None so that a YAML ``--config`` supplies it and flags override it."""
    from autoaug.settings import field_kind, help_line

    kind = field_kind(config_cls, name)[0]
    text = help_line(f).replace("%", "%%") if shown else argparse.SUPPRESS
    if kind is bool:
        p.add_argument(_flag(name), action=argparse.BooleanOptionalAction, default=None, help=text)
    else:
        metavar = {int: "N", float: "X"}.get(kind, name.upper())
        p.add_argument(_flag(name), type=kind, default=None, metavar=metavar, help=text)


def add_config_flags(
    p: argparse.ArgumentParser, config_cls, skip: Sequence[str] = (), method: str | None = None
) -> None:
    """A flag per setting of a config dataclass, under headings by the setting's group. A
    section's settings (``mcmc``, ...) are plain flags (``--epsilon``) that resolve_config puts
    into the chosen method's section; ``--help`` shows the settings of ``method``'s section
    only (the others are taken, not shown, so that a flag of another method gets a clear error)."""
    from autoaug.settings import field_kind, is_section

    groups: dict[str | None, argparse._ArgumentGroup] = {}
    sections = []
    fields = sorted(config_cls.fields().items(), key=lambda item: item[1].metadata.get("group") != "search")
    for name, f in fields:  # the search's own settings (method, space) first
        kind = field_kind(config_cls, name)[0]
        if is_section(kind):
            sections.append((name, kind))
            continue
        if name in skip:
            continue
        group = f.metadata.get("group")
        if group not in groups:
            groups[group] = p.add_argument_group(
                f"{GROUP_TITLES.get(group, group)} settings" if group else None
            )
        _add_flag(groups[group], config_cls, name, f)
    sections.sort(
        key=lambda s: s[0] != method
    )  # the shown method's first: its help is the one a shared flag has
    taken: set[str] = set()
    for name, kind in sections:
        shown = name == method
        group = (
            p.add_argument_group(f"{name} settings (--method {name}; in a config file, under {name}:)")
            if shown
            else p
        )
        for key, f in kind.fields().items():
            if key not in taken:
                _add_flag(group, kind, key, f, shown=shown)
                taken.add(key)


def _method_in(argv: Sequence[str]) -> str | None:
    """The search method named on a command line, by --method or in its --config file (for
    the help to show that method's settings); None where there is none to read."""
    from autoaug.settings import read_config

    method = config = None
    for i, a in enumerate(argv):
        for flag in ("--method", "--config"):
            value = (
                argv[i + 1]
                if a == flag and i + 1 < len(argv)
                else a.partition("=")[2]
                if a.startswith(flag + "=")
                else None
            )
            if value is not None and flag == "--method":
                method = value
            elif value is not None:
                config = value
    if method is None and config is not None:
        try:
            method = read_config(config).get("method")
        except (OSError, ValueError):  # resolve_config reports a bad file
            return None
    return method if isinstance(method, str) else None


def resolve_config(config_cls, args: argparse.Namespace):
    """Dataclass defaults <- the run's own settings (``--resume``) <- YAML file (--config) <-
    command-line flags. The file's values are checked themselves (a flag that sets the same
    setting does not hide a bad one); errors name the file or the flag. A flag of a method's
    section goes to the chosen method's section (and is refused for another method)."""
    from autoaug.settings import SettingError, field_kind, is_section, read_config

    source = getattr(args, "config", None)
    given: dict = {}
    if source:
        given.update(read_config(source))
        config_cls.from_dict(given, source=source)  # the file as written: unknown keys, types, ranges
    sections = {}
    for name in config_cls.fields():
        kind = field_kind(config_cls, name)[0]
        if is_section(kind):
            sections[name] = kind
            continue
        v = getattr(args, name, None)
        if v is not None:
            given[name] = _checked(config_cls, name, v)
    resume = getattr(args, "resume", False)
    values = resumed_settings(config_cls, given) if resume else {}
    for k, v in given.items():  # a section given in the file adds to the run's, key by key
        values[k] = {**values[k], **v} if isinstance(v, dict) and isinstance(values.get(k), dict) else v
    if sections:  # a method's flags go to its section (given in the file, or resumed, or not yet)
        method = values.get("method", config_cls.fields()["method"].default)
        flags = {
            k: v
            for kind in sections.values()
            for k in kind.fields()
            if (v := getattr(args, k, None)) is not None
        }
        try:
            placed = config_cls.place(flags, method, spell=_flag)
        except ValueError as e:
            raise CliError(str(e)) from None
        for name, own in placed.items():
            section = values.setdefault(name, {})
            if not isinstance(section, dict):
                raise SettingError(name, section, f"a mapping of {name} settings", source)
            section.update({k: _checked(sections[name], k, v) for k, v in own.items()})
    config = config_cls.from_dict(values, source=source or "config")
    checkpoint = Path(config.out) / "checkpoint.pt"
    if resume and checkpoint.is_file():  # refuse before the dataset loads (the trainer checks again)
        import json

        from autoaug.train import check_resumable, read_checkpoint

        check_resumable(checkpoint, json.loads(read_checkpoint(checkpoint)["config"]), config)
    return config


def _checked(config_cls, name: str, value):
    from autoaug.settings import SettingError

    try:
        return config_cls.check(name, value)
    except SettingError as e:
        raise CliError(f"{_flag(name)} {value}: expected {e.expected}") from None


def resumed_settings(config_cls, given: dict) -> dict:
    """The settings a run was made with, read from its checkpoint (or an optuna search's
    config.yaml), for ``--resume``: what the flags do not set continues as it was. A run saved
    by an older autoaug (one flat mapping) is read in this version's shape."""
    import dataclasses

    from autoaug.settings import read_config
    from autoaug.train import read_checkpoint

    defaults = {f.name: f.default for f in dataclasses.fields(config_cls)}
    out = Path(given.get("out", defaults["out"]))
    checkpoint = out / "checkpoint.pt"
    optuna_run = (
        "method" in defaults and given.get("method", "optuna") == "optuna" and (out / "config.yaml").is_file()
    )
    if optuna_run:
        saved = config_cls.upgrade(read_config(out / "config.yaml"))
        optuna_run = saved.get("method") == "optuna"
    if optuna_run:
        own = saved.get("optuna")
        storage = str(own.get("storage")) if isinstance(own, dict) else ""
        if "***" in storage or storage.startswith("sqlite:"):
            own.pop("storage", None)  # a hidden password, or the default OUT/study.db
    elif checkpoint.is_file():
        import json

        saved = config_cls.upgrade(json.loads(read_checkpoint(checkpoint)["config"]))
        own = saved.get("bilevel")
        if saved.get("method") == "bilevel" and isinstance(own, dict) and own.get("mode") == "search":
            # A bilevel search's checkpoint holds its proxy's epochs, not the search's.
            saved.pop("epochs", None)
            if "epochs" not in given:
                raise CliError(
                    f"{checkpoint}: a bilevel search: give --epochs as the search was started with"
                )
    else:
        raise FileNotFoundError(
            f"nothing to resume in {out}: no checkpoint.pt (nor an optuna search's config.yaml)"
        )
    return {k: v for k, v in saved.items() if k in defaults and k != "override"}


def cmd_train(args: argparse.Namespace) -> None:
    from autoaug.train import TrainConfig, Trainer

    config = resolve_config(TrainConfig, args)
    trainer = Trainer(config)
    print(f"training {config.model} on {config.dataset} ({len(trainer.dataset.train)} train images) "
          f"with policy {config.policy!r} on {trainer.device}, {config.epochs} epochs -> {config.out}")  # fmt: skip
    metrics = trainer.fit(resume=args.resume)
    if trainer.rank == 0:
        print(f"done: test accuracy {metrics.get('test_acc', float('nan')):.4f}; "
              f"checkpoint, metrics.jsonl and config.yaml in {config.out}")  # fmt: skip


def cmd_search(args: argparse.Namespace) -> None:
    from autoaug.search import SearchConfig, get_searcher

    config = resolve_config(SearchConfig, args)
    study = Path(config.out) / "study.db"
    if args.resume and config.method == "optuna" and not config.optuna.storage and not study.is_file():
        raise FileNotFoundError(f"nothing to resume in {config.out}: no {study.name}")
    searcher = get_searcher(config.method)(config)
    budget = f"{config.epochs} epochs"
    if config.method == "optuna":
        o = config.optuna
        budget = (f"{o.n_trials} trials of {o.trial_epochs} epochs" if o.proxy == "train" else
                  f"{o.n_trials} trials scored by density matching, a proxy model of {config.epochs} epochs")  # fmt: skip
    print(f"searching a policy with {config.method} on {config.dataset} ({config.model}, space {config.space}, "
          f"{budget}) -> {config.out}", flush=True)  # fmt: skip
    result = searcher.run(resume=args.resume)
    print()
    print(describe(result.policy))
    s = result.summary
    if "lines" in s:  # a searcher that words its own summary (optuna)
        print("\n" + "\n".join(s["lines"]))
        print(f"next: autoaug show {result.out} --plot {result.out}/policy.png")
        return
    print(
        f"\ntest accuracy {s.get('test_acc', float('nan')):.4f}, validation accuracy {s.get('val_acc', float('nan')):.4f}"
    )
    if result.policy.meta.get("learned_nothing"):  # bilevel's export auto fell back to the prior
        shares = ", ".join(f"{x:.2f}" for x in result.policy.meta.get("largest_weight_share", []))
        print(f"the op weights stayed near uniform (largest {shares} x the uniform share, per stage): the policy "
              "written is RandAugment's point over the ops the search did not avoid (export auto)")  # fmt: skip
    rejected = s.get("rejected") or []
    unsure = [(name, how) for name, how in s.get("left_out") or [] if name not in dict(rejected)]
    unmet = dict(rejected) | dict(unsure)
    if "identity" in unmet:  # the identity changes no image: its copies are the clean images
        print(f"the model did not learn the task within the constraint: the identity's copies (the clean images) "
              f"did not meet it either (relaxation {unmet['identity']:.2f}), so the ops below say nothing about "
              "the task; train longer (--epochs) or allow a higher loss (--epsilon)")  # fmt: skip
    if rejected:
        print("ops the task seems to reject (constraint not met, loss not falling): "
              + ", ".join(f"{name} ({how:.2f})" for name, how in rejected))  # fmt: skip
    elif not unsure:
        print("no op seems to break the task")
    if unsure:
        keeps = ("keeps them only up to the magnitudes where they met it" if result.policy.meta.get("export") in
                 ("randaugment", "prior") else "tapers their weight by their relaxation")  # fmt: skip
        print(("also unmet" if rejected else "ops the task may reject") + " (constraint not met, loss still "
              f"falling: a break or a slow symmetry; `autoaug analyze` tells; the policy {keeps}): "
              + ", ".join(f"{n} ({h:.2f})" for n, h in unsure))  # fmt: skip
    print(
        f"files in {result.out}: policy.json (the learned policy), history.json (per-epoch sampler "
        "statistics), metrics.jsonl, model.pt, config.yaml"
    )
    print(f"next: autoaug show {result.out} --plot {result.out}/policy.png;  autoaug export {result.out}/policy.json "
          f"--out {result.out}/policy_tv.py")  # fmt: skip


def cmd_datasets(args: argparse.Namespace) -> None:
    from autoaug.data import list_datasets

    print("Datasets (--dataset NAME):")
    for info in list_datasets():
        mark = "available" if info.available else "missing  "
        print(f"  {info.name:15s} {mark}  {info.description}")
        if info.where:
            print(f"  {'':15s}            {info.where}")


def cmd_analyze(args: argparse.Namespace) -> None:
    """``autoaug analyze``: the symmetry report of a search run or of any checkpoint."""
    from autoaug.analysis.report import analyze_checkpoint, analyze_run, verdict_table

    common = dict(images=args.images, split=args.split, magnitudes=args.magnitudes, lie=not args.no_lie,
                  per_layer=args.per_layer, progress=not args.no_progress, device=args.device,
                  baseline=not args.no_baseline)  # fmt: skip
    if args.run is not None:
        given = [f for f, v in (("--dataset", args.dataset), ("--model", args.model),
                                ("--image-size", args.image_size)) if v]  # fmt: skip
        if given:
            raise CliError(
                f"{' and '.join(given)}: the dataset, model and image size are read from RUN_DIR/config.yaml; "
                "give them only with --checkpoint"
            )
        print(
            f"analyzing the search run {args.run} on {args.images} held-out {args.split} images", flush=True
        )
        report = analyze_run(args.run, args.out, checkpoint=args.checkpoint, space=args.space, **common)
    elif args.checkpoint is not None:
        if not args.dataset or not args.model:
            raise CliError("--checkpoint needs --dataset D and --model M (or give a search RUN_DIR)")
        print(f"analyzing {args.checkpoint} ({args.model}) on {args.images} held-out {args.split} images of "
              f"{args.dataset}", flush=True)  # fmt: skip
        report = analyze_checkpoint(args.checkpoint, args.dataset, args.model, args.out or "analysis",
                                    data_root=args.data_root, train_size=args.train_size, seed=args.seed,
                                    image_size=args.image_size, space=args.space or "symmetry", **common)  # fmt: skip
    else:
        raise CliError("give a search RUN_DIR, or --checkpoint FILE --dataset D --model M")
    print(f"clean accuracy {report['clean_accuracy']:.1%}, clean loss {report['clean_loss']:.3f}, "
          f"loss-gap threshold {report['thresholds']['loss_gap']:.3f}")  # fmt: skip
    print(verdict_table(report))
    for w in report.get("warnings", []):
        print(f"warning: {w}")
    files = report["files"]
    print(f"report: {files['markdown']} and {files['json']}")
    print(f"plots: {files['heatmaps']}, {files['verdicts_png']}")


# ------------------------------------------------------------------------------- parser


def build_parser(argv: Sequence[str] = ()) -> argparse.ArgumentParser:
    """The ``autoaug`` parser; ``argv`` only chooses which method's settings ``search --help`` shows."""
    parser = _Parser(
        prog="autoaug",
        description="Learn augmentation policies, export them to torchvision, and measure a task's symmetries.",
    )
    from autoaug import __version__

    parser.add_argument("--version", action="version", version=f"autoaug {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def add(name: str, fn: Callable[[argparse.Namespace], None], help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help, formatter_class=_Help)
        p.set_defaults(func=fn)
        return p

    add("policies", cmd_policies, "list the built-in policies and the policy files that ship")

    p = add("show", cmd_show, "print a policy as a table of ops, weights and magnitudes")
    p.add_argument("policy", help="a policy file, a run directory, or a built-in name")
    p.add_argument("--plot", metavar="PNG", help="also draw the policy into this PNG file")

    p = add("apply", cmd_apply, "write a grid PNG of augmented samples of images, to see what a policy does")
    p.add_argument("policy", help="a policy file or a built-in name")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files (PNG, JPEG, ...)")
    p.add_argument("--out", required=True, metavar="DIR", help="directory for the grid PNG")
    p.add_argument("--samples", type=int, default=8, help="augmented samples per image (default 8)")
    p.add_argument("--seed", type=int, default=0)

    p = add(
        "export", cmd_export, "export a policy as a torchvision transforms.v2 object (.pt) or source (.py)"
    )
    p.add_argument("policy", help="a policy file or a built-in name")
    p.add_argument("--to", default="torchvision", help="target library (only 'torchvision')")
    p.add_argument(
        "--out", required=True, metavar="FILE", help="FILE.py (readable source) or FILE.pt (pickle)"
    )
    p.add_argument(
        "--image-size", metavar="HxW", help="image size, needed when translations are relative to it"
    )

    from autoaug.train import TrainConfig

    p = add("train", cmd_train, "train a model with a fixed policy (or none) on a dataset")
    p.add_argument("--config", metavar="YAML", help="settings file (configs/*.yaml); flags override it")
    p.add_argument("--resume", action="store_true",
                   help="continue a killed run from OUT/checkpoint.pt, with its settings; flags may add epochs "
                        "(or change the device, progress, evaluation); other changes need --override")  # fmt: skip
    add_config_flags(p, TrainConfig)

    from autoaug.search import SECTIONS, SearchConfig

    shown = _method_in(argv)
    shown = shown if shown in SECTIONS else SearchConfig.fields()["method"].default
    others = " or ".join(f"--method {m}" for m in SECTIONS if m != shown)
    p = add(
        "search", cmd_search, "learn a policy while training a model (defaults: mcmc on the built-in glyphs)"
    )
    p.description = (
        f"{p.description}. Shown: the common settings and {shown}'s; {others} --help shows that method's. "
        "Each flag's value is also a key of --config YAML (a method's under its section, e.g. mcmc: {epsilon: 0.6})."
    )
    p.add_argument("--config", metavar="YAML", help="settings file (configs/*.yaml); flags override it")
    p.add_argument("--resume", action="store_true",
                   help="continue a killed search from OUT/checkpoint.pt (optuna: its study), with its settings; "
                        "flags may add epochs (optuna: trials); other changes need --override")  # fmt: skip
    add_config_flags(p, SearchConfig, skip=("policy",), method=shown)

    add("datasets", cmd_datasets, "list the datasets and whether each is available here")

    from autoaug.analysis.report import DEFAULT_IMAGES

    p = add("analyze", cmd_analyze, "measure a trained model's symmetries and write the symmetry report")
    p.add_argument("run", nargs="?", metavar="RUN_DIR", help="a search run directory (autoaug search --out)")
    p.add_argument("--checkpoint", metavar="FILE",
                   help="weights (model.pt or checkpoint.pt): any model with --dataset and --model, or a "
                        "killed run's checkpoint with RUN_DIR")  # fmt: skip
    p.add_argument("--dataset", metavar="D", help="with --checkpoint: the dataset (autoaug datasets)")
    p.add_argument(
        "--model", metavar="M", help="with --checkpoint: the architecture (small_cnn, resnet18, ...)"
    )
    p.add_argument(
        "--out", metavar="DIR", help="where the report goes (default RUN_DIR/analysis or ./analysis)"
    )
    p.add_argument("--images", type=int, default=DEFAULT_IMAGES, metavar="N",
                   help=f"held-out images to profile (default {DEFAULT_IMAGES})")  # fmt: skip
    p.add_argument("--split", choices=("test", "val"), default="test", help="held-out split (default test)")
    p.add_argument("--no-lie", action="store_true", help="skip the Lie derivatives (faster)")
    p.add_argument("--no-baseline", action="store_true",
                   help="skip the untrained copy of the model (about half the time; no verdict uses it)")  # fmt: skip
    p.add_argument("--per-layer", action="store_true", help="also measure each layer's invariance")
    p.add_argument(
        "--no-progress", action="store_true", help="no progress bar (as `autoaug search --no-progress`)"
    )
    p.add_argument(
        "--magnitudes", type=int, default=4, metavar="K", help="magnitude levels per sign (default 4)"
    )
    p.add_argument("--space", help="whose magnitude ranges (default: the run's space, or symmetry)")
    p.add_argument("--device", default="auto", help="auto (default: cuda when there is one), cpu or cuda")
    p.add_argument("--data-root", metavar="DIR", help="with --checkpoint: where the dataset's files are")
    p.add_argument("--train-size", type=int, metavar="N",
                   help="with --checkpoint: the training size the model was trained with (its normalization)")  # fmt: skip
    p.add_argument("--seed", type=int, default=0, help="with --checkpoint: the dataset seed (default 0)")
    p.add_argument("--image-size", metavar="HxW",
                   help="with --checkpoint: the size the model was trained at (a folder of mixed sizes needs it)")  # fmt: skip
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    from autoaug.train import TrainingDiverged as TrainingError

    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        args.func(args)
    except (CliError, PolicyError, ValueError, FileNotFoundError, NotADirectoryError, PermissionError,
            TrainingError) as e:  # fmt: skip
        # One line, whatever the message: some (a library's, quoted) span several.
        print(f"autoaug: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("autoaug: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
