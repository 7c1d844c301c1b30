"""Measuring symmetry: what a trained model is invariant to, and what that costs it.

* :func:`invariance_profile`: per op and signed magnitude, the relative invariance of the
  embedding (Bouchacourt et al., NeurIPS 2021), prediction consistency, accuracy and the loss
  gap, against an untrained baseline; the Lie derivative for continuous geometric generators
  (Gruver et al., ICLR 2023); optionally per layer;
* :func:`load_run_model`, :func:`load_checkpoint_model`: a trained model with its input
  normalization; :func:`plot_profile`: heatmaps of a profile.

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

__all__ = [
    "LIE_GENERATORS",
    "InvarianceProfile",
    "invariance_profile",
    "layer_modules",
    "lie_derivative",
    "lie_generator_matrix",
    "load_checkpoint_model",
    "load_run_model",
    "plot_profile",
    "untrained_copy",
]
