"""Small writing helpers shared by the analysis and the searchers: JSON without NaNs, and
figures written atomically (a temporary file, then a rename: an interrupted run never leaves
half a PNG)."""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path
from typing import Any


def json_safe(v: Any) -> Any:
    """``v`` with every non-finite float (NaN, ±inf) replaced by ``None``, through dicts,
    lists and tuples (tuples become lists), so that ``json.dumps`` writes strict JSON.

    Examples:
        >>> json_safe({"a": float("nan"), "b": [1.5, float("inf")], "c": (2,)})
        {'a': None, 'b': [1.5, None], 'c': [2]}
    """
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, dict):
        return {k: json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [json_safe(x) for x in v]
    return v


def save_figure_atomic(fig: Any, out: str | Path, dpi: int = 110) -> Path:
    """Save a matplotlib figure as PNG at ``out`` through a temporary file in the same
    directory and a rename (workers that share a directory never see half a file); the
    file is readable by everyone (0644). Returns ``out`` as a :class:`~pathlib.Path`."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".png")
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=dpi)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out


__all__ = ["json_safe", "save_figure_atomic"]
