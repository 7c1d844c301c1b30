"""The symmetry report: ``autoaug analyze``, its files and their schema.

``autoaug analyze RUN_DIR`` measures the invariance profile of a search's model on held-out
images (:func:`~autoaug.analysis.invariance.invariance_profile`), reads what the search recorded
(``history.json``, ``metrics.jsonl``), turns both into one verdict per op
(:func:`~autoaug.analysis.verdicts.task_verdicts`) and writes, into ``RUN_DIR/analysis``:

* ``symmetry_report.json``, the verdicts and their evidence (schema below);
* ``symmetry_report.md``, a table for people;
* ``invariance_heatmaps.png``, op × signed magnitude heatmaps of the invariance, the untrained
  baseline's invariance and the loss gap (:func:`~autoaug.analysis.invariance.plot_profile`);
* ``verdicts.png``, a bar per op coloured by verdict: the score and the safe magnitude;
* ``invariance_profile.json``, the profile itself
  (:meth:`~autoaug.analysis.invariance.InvarianceProfile.load` reads it back).

``autoaug analyze --checkpoint FILE --dataset D --model M`` does the same for any autoaug model
without a search (verdicts from the profile alone). Every file is written atomically.

Schema of ``symmetry_report.json`` (``schema_version`` 1)::

    {
      "schema_version": 1,
      "autoaug_version": "0.1.0",
      "dataset": {"name": "glyphs", "split": "test", "images": 500, "image_size": [32, 32],
                  "num_classes": 6},
      "model": {"name": "small_cnn", "weights": "runs/search/model.pt", "run": "runs/search"},
      "clean_accuracy": 0.98,              # on the held-out images
      "clean_loss": 0.06,
      "space": "symmetry",                 # where the magnitude ranges come from
      "magnitudes": [-1, -0.75, ..., 1],   # the signed magnitudes measured
      "thresholds": {"loss_gap": 0.06, "GAP_REL": 1.0, ...},
      "search": {"run": "runs/search", "constraint": "per_op", "epsilon": 0.6, "epochs": 10,
                 "levels": 30} | null,
      "summary": {"symmetry": [ops], "partial": [ops], "breaks": [ops]},
      "warnings": ["the model is weak ...", ...],   # empty when nothing is amiss
      "ops": {
        "rotate": {
          "verdict": "symmetry" | "partial" | "breaks",
          "max_safe_magnitude": 1.0,       # in [0, 1]
          "safe_value": 30.0,              # the same in the op's units (null without a magnitude)
          "unit": "degrees",
          "signed": true,                  # the safe range is ±safe_value
          "score": 0.8,                    # in [0, 1], how strongly the evidence supports it
          "evidence": "one line for people",
          "invariance": 0.7,               # mean relative invariance over the magnitudes
          "baseline_invariance": 0.4,      # the untrained baseline's, or null
          "lie_derivative": 0.02,          # or null
          "profile": {"status": "safe" | "partial" | "fails", "threshold": 0.06,
                      "first_fail": null | m, "magnitudes": [0.25, ...],   # unsigned
                      "loss_gap": [...], "accuracy": [...], "vacuous": [...]},
          "search": {"status": "floor" | "learning" | "met" | "unknown", "loss_first", "loss_last",
                     "clean_loss_last", "excess", "loss_slope", "lambda_last", "lambda_slope",
                     "relaxation_last", "relaxation_slope", "mass_ratio", "level_mass_high",
                     "weight_ratio", "votes": {name: bool}} | null
        }, ...
      },
      "files": {"json": ..., "markdown": ..., "heatmaps": ..., "verdicts_png": ..., "profile": ...}
    }

The verdict rules, the score and the thresholds are in :mod:`autoaug.analysis.verdicts`.

Example:
    >>> from autoaug.analysis.report import analyze_run
    >>> report = analyze_run("runs/search", images=300, progress=False)  # doctest: +SKIP
    >>> report["ops"]["hflip"]["verdict"]  # doctest: +SKIP
    'breaks'
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from autoaug._io import json_safe, save_figure_atomic
from autoaug.analysis import verdicts as V
from autoaug.analysis.invariance import (
    InvarianceProfile,
    invariance_profile,
    load_checkpoint_model,
    load_run_model,
    plot_profile,
    run_dataset,
    train_normalizer,
    untrained_copy,
)
from autoaug.analysis.support import SupportProfile, support_profile
from autoaug.analysis.verdicts import OpVerdict, SearchStats, task_verdicts
from autoaug.ops import get_op
from autoaug.policy import atomic_write_text
from autoaug.spaces import default_range, get_space

SCHEMA_VERSION = 1
DEFAULT_IMAGES = 500  # held-out images profiled: gaps resolve to about ±0.02 nats, a minute on one CPU core
VERDICT_COLOURS = {"symmetry": "#1a9850", "partial": "#fdae61", "breaks": "#d73027", "undecided": "#999999"}
FILES = {
    "json": "symmetry_report.json",
    "markdown": "symmetry_report.md",
    "heatmaps": "invariance_heatmaps.png",
    "verdicts_png": "verdicts.png",
    "profile": "invariance_profile.json",
    "support": "support_profile.json",
}

_THRESHOLDS = ("GAP_REL", "GAP_ABS", "VACUOUS_TOL", "WEAK_MODEL", "SUPPORT_MIN", "FLOOR_SUPPORT", "SEARCH_EXCESS",
               "FLAT_SLOPE", "RELAX_MIN",
               "MASS_HIGH", "WEIGHT_LOW")  # fmt: skip

# --------------------------------------------------------------------------------- report


def build_report(
    verdicts: Mapping[str, OpVerdict],
    profile: InvarianceProfile,
    *,
    dataset: Mapping[str, Any],
    model: Mapping[str, Any],
    search: Mapping[str, Any] | None = None,
    image_size: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """The ``symmetry_report.json`` dict (see the module doc for its schema).

    Args:
        verdicts: from :func:`~autoaug.analysis.verdicts.task_verdicts`.
        profile: the profile they came from.
        dataset: ``name``, ``split``, ``images``, ... (kept as given, plus ``image_size``).
        model: ``name``, ``weights``, ``run``, ...
        search: the search's settings, or ``None``.
        image_size: (height, width) of the images, for ranges relative to the image size.
    """
    from autoaug import __version__

    h, w = image_size or tuple(dataset.get("image_size") or (32, 32))
    space = get_space(profile.space)
    ops: dict[str, Any] = {}
    for op, v in verdicts.items():
        o = get_op(op)
        rng = space.ranges.get(op) or default_range(op)
        entry = v.to_dict()
        head = {
            "verdict": entry.pop("verdict"),
            "max_safe_magnitude": entry.pop("max_safe_magnitude"),
            "safe_value": None if rng is None else rng.value(v.max_safe_magnitude, h, w),
            "unit": o.unit if rng is not None else None,
            "signed": o.signed,
        }
        ops[op] = head | entry  # the verdict first, the evidence after
    summary = {
        k: [op for op, v in verdicts.items() if v.verdict == k]
        for k in ("symmetry", "partial", "breaks", "undecided")
    }
    warnings = []
    k = dataset.get("num_classes")
    if isinstance(k, int) and V.weak_model(profile.clean_accuracy, k):
        warnings.append(
            f"the model is far from perfect (clean accuracy {profile.clean_accuracy:.1%}, chance {1 / k:.1%}): "
            "an op can look safe because the model never learned the distinction the op destroys (a model "
            "that cannot tell b from d is invariant to a mirror flip); train longer for firmer verdicts"
        )
    return json_safe(
        {
            "schema_version": SCHEMA_VERSION,
            "autoaug_version": __version__,
            "dataset": {**dataset, "image_size": [h, w]},
            "model": dict(model),
            "clean_accuracy": profile.clean_accuracy,
            "clean_loss": profile.clean_loss,
            "space": profile.space,
            "magnitudes": profile.magnitudes,
            "thresholds": {
                "loss_gap": V.gap_threshold(profile.clean_loss),
                **{name: getattr(V, name) for name in _THRESHOLDS},
            },
            "search": None if search is None else dict(search),
            "summary": summary,
            "warnings": warnings,
            "ops": ops,
        }
    )


def validate_report(report: Any) -> None:
    """Check a ``symmetry_report.json`` dict against the schema.

    Raises:
        ValueError: naming the first key that is missing or of the wrong kind.
    """

    def need(cond: bool, what: str) -> None:
        if not cond:
            raise ValueError(f"symmetry report: {what}")

    need(isinstance(report, dict), f"expected a JSON object, got {type(report).__name__}")
    need(report.get("schema_version") == SCHEMA_VERSION, f"schema_version {report.get('schema_version')!r}")
    for key in ("dataset", "model"):
        need(isinstance(report.get(key), dict), f"{key!r} must be an object")
    for key in ("clean_accuracy", "clean_loss"):
        need(isinstance(report.get(key), (int, float)), f"{key!r} must be a number")
    need(
        report.get("search") is None or isinstance(report["search"], dict),
        "'search' must be an object or null",
    )
    ops = report.get("ops")
    need(isinstance(ops, dict) and len(ops) > 0, "'ops' must be a non-empty object")
    for op, e in ops.items():
        need(isinstance(e, dict), f"ops[{op!r}] must be an object")
        need(
            e.get("verdict") in ("symmetry", "partial", "breaks", "undecided"),
            f"ops[{op!r}].verdict is {e.get('verdict')!r}",
        )
        for key in ("max_safe_magnitude", "score"):
            x = e.get(key)
            need(
                isinstance(x, (int, float)) and 0 <= x <= 1,
                f"ops[{op!r}].{key} is {x!r}, expected a number in [0, 1]",
            )
        need(isinstance(e.get("evidence"), str), f"ops[{op!r}].evidence must be a string")
        need(
            e.get("safe_value") is None or isinstance(e["safe_value"], (int, float)),
            f"ops[{op!r}].safe_value",
        )
        need(e.get("profile") is None or isinstance(e["profile"], dict), f"ops[{op!r}].profile")
        need(e.get("search") is None or isinstance(e["search"], dict), f"ops[{op!r}].search")
    summary = report.get("summary")
    need(
        isinstance(summary, dict) and set(summary) <= {"symmetry", "partial", "breaks", "undecided"},
        "'summary'",
    )
    need(isinstance(report.get("warnings"), list), "'warnings' must be a list")


_COUNTED_UNITS = ("degrees", "pixels", "quarter turns")  # "±30 degrees"; other units name a quantity


def _safe_text(entry: Mapping[str, Any]) -> str:
    """The safe range in the op's units: ``±15 degrees``, ``bits kept = 6``, ``all``, ``none``."""
    value = entry.get("safe_value")
    if value is None:
        return "all" if entry["verdict"] == "symmetry" else "none"
    if entry["max_safe_magnitude"] == 0:
        return "none"
    v = f"{'±' if entry.get('signed') else ''}{value:.3g}"
    unit = entry.get("unit") or ""
    return f"{v} {unit}" if unit in _COUNTED_UNITS else f"{unit} = {v}"


def render_markdown(report: Mapping[str, Any]) -> str:
    """``symmetry_report.md``: what was measured, the verdict table, how to read it."""
    d, m = report["dataset"], report["model"]
    lines = [
        f"# Symmetry report: {d.get('name')} ({m.get('name')})",
        "",
        f"Model weights `{m.get('weights')}`; profiled on {d.get('images')} held-out {d.get('split')} images "
        f"({d['image_size'][0]}×{d['image_size'][1]}); clean accuracy {report['clean_accuracy']:.1%}, "
        f"clean loss {report['clean_loss']:.3f}; ranges of the `{report['space']}` space.",
    ]
    s = report.get("search")
    if s:
        lines.append(
            f"Search `{s.get('run')}`: {s.get('method', 'mcmc')}, {s.get('constraint')} constraint, "
            f"ε = {s.get('epsilon')}, {s.get('epochs')} epochs."
        )
    else:
        lines.append(
            "No search statistics: verdicts come from this model's loss gaps alone, so `breaks` means "
            "that its predictions do not survive the op, which an unlearned symmetry also does."
        )
    for w in report.get("warnings", []):
        lines += ["", f"**Warning:** {w}."]
    counts = ", ".join(f"{len(v)} {k}" for k, v in report["summary"].items())
    lines += ["", f"Verdicts: {counts}.", ""]
    lines.append(
        "| op | the task: verdict | max safe magnitude | in op units | score | this model | evidence |"
    )
    lines.append("|---|---|---:|---|---:|---|---|")
    order = {"breaks": 0, "partial": 1, "undecided": 2, "symmetry": 3}
    for op, e in sorted(report["ops"].items(), key=lambda kv: (order[kv[1]["verdict"]], -kv[1]["score"])):
        evidence = e["evidence"].replace("|", "/")
        if e.get("decide"):
            evidence += f"; to decide: {e['decide']}".replace("|", "/")
        mine = e.get("model") or {}
        model = f"{mine['status']} ≤{mine['max_safe_magnitude']:g}" if mine.get("status") else "n/a"
        lines.append(
            f"| {op} | **{e['verdict']}** | {e['max_safe_magnitude']:.2f} | {_safe_text(e)} | "
            f"{e['score']:.2f} | {model} | {evidence} |"
        )
    t = report["thresholds"]
    lines += [
        "",
        "## How to read it",
        "",
        "Two answers, kept apart. **The task** (the verdict): does the op keep the label?",
        "",
        "- **symmetry**: the label is kept at every magnitude measured; use the op freely.",
        "- **partial**: the label is kept up to the max safe magnitude; beyond it the op changes it.",
        "- **breaks**: the op changes the label from its smallest magnitude"
        + (
            ": its images land inside another class's support (they look like real images of another "
            "class, in pixels and in the model's embedding), or the search's augmented loss kept a floor "
            "that training did not lower."
            if s
            else " (without search statistics: this model's predictions do not survive it)."
        ),
        "- **undecided**: the evidence does not settle it, typically an op whose images leave the data "
        "without becoming another class's while the search is still learning it: a symmetry this model "
        "has not learned yet, or a change of label the data cannot show; the evidence says what would "
        "decide it.",
        "",
        "**This model** (its own column): how invariant the trained model is: `safe` (it keeps its loss "
        "at every magnitude), `partial ≤m`, `fails` (already at the smallest). A task symmetry can be "
        "`partial` or `fails` for a model that has not learned it yet.",
        "",
        f"- For this model, a magnitude is safe when the loss gap is at most {t['loss_gap']:.3f} nats "
        f"(max({t['GAP_REL']:g} × clean loss, {t['GAP_ABS']:g})). The score (0 to 1) is how strongly the "
        "evidence supports the verdict: 0.5 sits on a threshold, 1 is far from every threshold.",
        "- `invariance_heatmaps.png`: relative invariance (1 = invariant, 0 = as different as another image) "
        "and loss gap per op and signed magnitude; `verdicts.png`: score and safe magnitude per op.",
        "",
    ]
    return "\n".join(lines)


def plot_verdicts(report: Mapping[str, Any], out_png: str | Path) -> Path:
    """Two bar charts, ops coloured by verdict: the score and the max safe magnitude (PNG, atomic)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    ops = list(report["ops"])
    entries = [report["ops"][o] for o in ops]
    colours = [VERDICT_COLOURS[e["verdict"]] for e in entries]
    fig = Figure(figsize=(9, 1.2 + 0.28 * len(ops)), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 2, sharey=True)
    for ax, key, title in ((axes[0], "score", "score (strength of the evidence)"),
                           (axes[1], "max_safe_magnitude", "max safe magnitude")):  # fmt: skip
        ax.barh(range(len(ops)), [e[key] for e in entries], color=colours)
        ax.set_xlim(0, 1)
        ax.set_title(title, fontsize=9)
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(range(len(ops)), ops, fontsize=8)
    axes[0].invert_yaxis()
    handles = [Patch(color=c, label=k) for k, c in VERDICT_COLOURS.items()]
    axes[1].legend(handles=handles, fontsize=8, loc="lower right")
    d = report["dataset"]
    fig.suptitle(f"verdicts: {d.get('name')}, {report['model'].get('name')}", fontsize=10)
    return save_figure_atomic(fig, out_png)


def write_report(
    report: dict[str, Any],
    profile: InvarianceProfile,
    out_dir: str | Path,
    support: SupportProfile | None = None,
) -> dict[str, Path]:
    """Write the JSON, the Markdown, the profiles and the PNGs into ``out_dir``; returns their paths.

    With ``support`` (:func:`~autoaug.analysis.support.support_profile`) its measurements are
    written too, so the verdicts can be derived again without measuring (:func:`load_measurements`)."""
    out = Path(out_dir)
    paths = {k: out / name for k, name in FILES.items() if k != "support" or support is not None}
    report["files"] = {k: str(p) for k, p in paths.items()}
    validate_report(report)
    profile.save(paths["profile"])
    if support is not None:
        atomic_write_text(paths["support"], json.dumps(json_safe(support.to_dict())) + "\n")
    plot_profile(profile, paths["heatmaps"])
    plot_verdicts(report, paths["verdicts_png"])
    atomic_write_text(paths["markdown"], render_markdown(report))
    atomic_write_text(paths["json"], json.dumps(report, indent=1, ensure_ascii=False) + "\n")
    return paths


def verdict_table(report: Mapping[str, Any]) -> str:
    """The verdicts as a plain-text table, for the terminal."""
    lines = [f"  {'op':14s} {'verdict':9s} {'score':>5} {'safe m':>6}  in op units"]
    for op, e in report["ops"].items():
        lines.append(
            f"  {op:14s} {e['verdict']:9s} {e['score']:5.2f} {e['max_safe_magnitude']:6.2f}  {_safe_text(e)}"
        )
    return "\n".join(lines)


# ------------------------------------------------------------------------------- analysis


def _held_out(split: Any, images: int, seed: int = 0) -> tuple[Tensor, Tensor]:
    n = len(split.labels)
    if n < 2:
        raise ValueError(f"the held-out split has {n} image(s); the profile needs at least 2")
    if isinstance(images, bool) or not isinstance(images, int) or images < 2:
        raise ValueError(f"--images: expected an integer >= 2, got {images!r}")
    idx = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[: min(images, n)].sort().values
    return split.images[idx], split.labels[idx]


def _split(dataset: Any, split: str) -> Any:
    if split not in ("test", "val"):
        raise ValueError(f"--split: expected 'test' or 'val', got {split!r}")
    return getattr(dataset, split)


def _profile_and_report(
    model: torch.nn.Module,
    baseline: torch.nn.Module | None,
    normalize: Callable[[Tensor], Tensor],
    dataset: Any,
    *,
    split: str,
    images: int,
    space: str,
    magnitudes: int,
    lie: bool,
    per_layer: bool,
    progress: bool,
    device: str,
    stats: SearchStats | None,
    model_info: dict[str, Any],
    search_info: dict[str, Any] | None,
    out: Path,
) -> dict[str, Any]:
    from autoaug.train import resolve_device

    x, y = _held_out(_split(dataset, split), images)
    dev = resolve_device(device)
    model = model.to(dev)
    baseline = baseline.to(dev) if baseline is not None else None
    profile = invariance_profile(model, x, y, space=space, magnitudes=magnitudes, normalize=normalize,
                                 baseline=baseline, lie=lie, per_layer=per_layer, progress=progress)  # fmt: skip
    # where the transformed images lie: only images inside another class's support say "breaks"
    support = support_profile(model, dataset.train.images, dataset.train.labels, x, y, space=space,
                              magnitudes=magnitudes, normalize=normalize)  # fmt: skip
    verdicts = task_verdicts(profile, stats, support=support)
    info = {"name": dataset.name, "split": split, "images": len(y), "num_classes": dataset.num_classes}
    report = build_report(verdicts, profile, dataset=info, model=model_info, search=search_info,
                          image_size=dataset.image_size)  # fmt: skip
    write_report(report, profile, out, support)
    return report


def analyze_run(
    run_dir: str | Path,
    out: str | Path | None = None,
    *,
    checkpoint: str | Path | None = None,
    images: int = DEFAULT_IMAGES,
    split: str = "test",
    space: str | None = None,
    magnitudes: int = 4,
    lie: bool = True,
    per_layer: bool = False,
    progress: bool = True,
    device: str = "auto",
    baseline: bool = True,
) -> dict[str, Any]:
    """Analyze a search run: profile its model on held-out images, read its history, write the report.

    The dataset is loaded as the run's ``config.yaml`` says (name, data root, train size, seed,
    image size, crop, streaming: :func:`~autoaug.analysis.invariance.run_dataset`), so the
    held-out images and the normalization are the run's own; a streamed folder stays on disk,
    and only the images the analysis measures are decoded.

    Args:
        run_dir: a directory written by ``autoaug search``.
        out: where the report goes (default ``RUN_DIR/analysis``).
        checkpoint: weights to use instead of ``RUN_DIR/model.pt`` (a killed run's
            ``checkpoint.pt``).
        images: held-out images to profile.
        split: ``"test"`` or ``"val"``.
        space: whose ranges (default: the run's space, else ``symmetry``).
        magnitudes: levels per sign.
        lie, per_layer, progress: as :func:`~autoaug.analysis.invariance.invariance_profile`.
        device: ``"auto"`` (CUDA when there is one), ``"cpu"`` or ``"cuda"``.
        baseline: also profile an untrained copy of the model (how much invariance the
            architecture has before training); ``False`` halves the time and changes no verdict.

    Returns:
        The report dict (also written as ``symmetry_report.json``).

    Raises:
        FileNotFoundError: no run directory, ``history.json``, ``config.yaml`` or weights.
        ValueError: files that are not what a search writes; an unknown dataset.
    """
    from autoaug.settings import read_config

    run = Path(run_dir)
    stats = SearchStats.from_run(run)  # fails first and fast: no run, no history
    config = read_config(run / "config.yaml")
    weights = Path(checkpoint) if checkpoint is not None else run / "model.pt"
    if not weights.is_file():
        last = run / "checkpoint.pt"
        hint = (
            f"; the run has not finished: pass --checkpoint {last}"
            if checkpoint is None and last.is_file()
            else ""
        )
        raise FileNotFoundError(f"model weights not found: {weights}{hint}")
    for key in ("model", "dataset"):
        if not isinstance(config.get(key), str):
            raise ValueError(f"{run / 'config.yaml'}: expected a string {key!r}, got {config.get(key)!r}")
    dataset = run_dataset(config, run / "config.yaml")
    untrained, normalize, _, _ = load_run_model(run, untrained=True, dataset=dataset)
    if checkpoint is None:
        model = load_run_model(run, dataset=dataset)[0]
    else:
        model = load_checkpoint_model(weights, config["model"], dataset.channels, dataset.num_classes)
    search_info = {
        "run": str(run), "method": config.get("method", "mcmc"), "constraint": stats.constraint,
        "epsilon": stats.epsilon, "epochs": len(stats.epochs), "levels": stats.levels,
    }  # fmt: skip
    return _profile_and_report(
        model, untrained if baseline else None, normalize, dataset, split=split, images=images,
        space=space or config.get("space") or "symmetry", magnitudes=magnitudes, lie=lie, per_layer=per_layer,
        progress=progress, device=device, stats=stats,
        model_info={"name": config["model"], "weights": str(weights), "run": str(run)},
        search_info=search_info, out=Path(out) if out is not None else run / "analysis",
    )  # fmt: skip


def saved_verdicts(run_dir: str | Path, analysis_dir: str | Path | None = None) -> dict[str, OpVerdict]:
    """The verdicts of an analyzed search run derived again from what its analysis saved (the
    invariance profile, the support profile) and its ``history.json``, with the thresholds in force
    now: nothing is measured again, so the same thresholds give ``autoaug analyze``'s verdicts.

    Raises:
        FileNotFoundError: a file is missing (an analysis written before the support profile was saved).
    """
    run = Path(run_dir)
    out = Path(analysis_dir) if analysis_dir is not None else run / "analysis"
    path = out / FILES["support"]
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: analyze the run again (autoaug analyze {run})")
    support = SupportProfile.from_dict(json.loads(path.read_text()))
    return task_verdicts(
        InvarianceProfile.load(out / FILES["profile"]), SearchStats.from_run(run), support=support
    )


def analyze_checkpoint(
    checkpoint: str | Path,
    dataset: str,
    model: str,
    out: str | Path = "analysis",
    *,
    data_root: str | None = None,
    train_size: int | None = None,
    seed: int = 0,
    image_size: str | None = None,
    images: int = DEFAULT_IMAGES,
    split: str = "test",
    space: str = "symmetry",
    magnitudes: int = 4,
    lie: bool = True,
    per_layer: bool = False,
    progress: bool = True,
    device: str = "auto",
    baseline: bool = True,
) -> dict[str, Any]:
    """Analyze any autoaug model's weights (``model.pt`` or a trainer ``checkpoint.pt``) on a dataset.

    The normalization is the trainer's (the training split's per-channel mean and std, for the
    dataset loaded with ``train_size``, ``seed`` and ``image_size``, ``"HxW"``, which a folder of
    mixed sizes needs); the baseline is an untrained copy. There are no search statistics, so
    the verdicts come from the loss gaps alone.

    Raises:
        FileNotFoundError: no such weights file; a dataset whose files are missing.
        ValueError: an unknown dataset or model, or weights that do not fit it.
    """
    from autoaug.data import load_dataset

    weights = Path(checkpoint)
    if not weights.is_file():
        raise FileNotFoundError(f"model weights not found: {weights}")
    ds = load_dataset(dataset, root=data_root, train_size=train_size, seed=seed, image_size=image_size)
    net = load_checkpoint_model(weights, model, ds.channels, ds.num_classes)
    untrained = untrained_copy(net, seed=seed) if baseline else None
    return _profile_and_report(
        net, untrained, train_normalizer(ds, seed), ds, split=split, images=images, space=space,
        magnitudes=magnitudes, lie=lie, per_layer=per_layer, progress=progress, device=device, stats=None,
        model_info={"name": model, "weights": str(weights), "run": None}, search_info=None, out=Path(out),
    )  # fmt: skip


__all__ = [
    "FILES",
    "SCHEMA_VERSION",
    "analyze_checkpoint",
    "analyze_run",
    "build_report",
    "plot_verdicts",
    "render_markdown",
    "saved_verdicts",
    "validate_report",
    "verdict_table",
    "write_report",
]
