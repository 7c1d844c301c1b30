"""Measuring symmetry: what a trained model is invariant to, and what that costs it.

* :func:`invariance_profile`: per op and signed magnitude, the relative invariance of the
  embedding (Bouchacourt et al., NeurIPS 2021), prediction consistency, accuracy and the loss
  gap, against an untrained baseline; the Lie derivative for continuous geometric generators
  (Gruver et al., ICLR 2023); optionally per layer;
* :func:`load_run_model`, :func:`load_checkpoint_model`: a trained model with its input
  normalization; :func:`plot_profile`: heatmaps of a profile;
* :func:`task_verdicts`: one verdict per op (``symmetry``, ``partial`` up to a magnitude,
  ``breaks``) from a profile and, when there is one, a search's history (:class:`SearchStats`);
* :func:`analyze_run`, :func:`analyze_checkpoint`: ``autoaug analyze``, the symmetry report
  (JSON, Markdown, PNG).

Example:
    >>> import torch
    >>> from autoaug.analysis import invariance_profile
    >>> from autoaug.models import build_model
    >>> model = build_model("small_cnn", in_channels=1, num_classes=10)
    >>> x, y = torch.rand(8, 1, 28, 28), torch.randint(0, 10, (8,))
    >>> profile = invariance_profile(model, x, y, ops=["hflip"], lie=False, progress=False)
    >>> sorted(profile.to_dict())[:3]
    ['accuracy', 'baseline_invariance', 'baseline_lie_derivative']
"""

from autoaug.analysis.invariance import (
    LIE_GENERATORS,
    InvarianceProfile,
    invariance_profile,
    layer_modules,
    lie_derivative,
    lie_generator_matrix,
    load_checkpoint_model,
    load_run_model,
    plot_profile,
    untrained_copy,
)
from autoaug.analysis.report import analyze_checkpoint, analyze_run
from autoaug.analysis.verdicts import OpVerdict, SearchStats, gap_threshold, safe_magnitude, task_verdicts

__all__ = [
    "LIE_GENERATORS",
    "InvarianceProfile",
    "OpVerdict",
    "SearchStats",
    "analyze_checkpoint",
    "analyze_run",
    "gap_threshold",
    "invariance_profile",
    "layer_modules",
    "lie_derivative",
    "lie_generator_matrix",
    "load_checkpoint_model",
    "load_run_model",
    "plot_profile",
    "safe_magnitude",
    "task_verdicts",
    "untrained_copy",
]
