"""autoaug: learn augmentation policies for image classifiers, export them to torchvision,
and measure which symmetries a task has.

The public API:

* :class:`Policy`, :func:`load_policy`: policies, their JSON files, the built-in baselines;
* :data:`OPS`, :func:`get_op`, :data:`SPACES`, :func:`get_space`: the op registry and spaces;
* :func:`to_torchvision`, :func:`to_source`, :func:`export`: torchvision export;
* :class:`OnlineAugment`: the MCMC search inside the caller's own training step.

Example:
    >>> import torch, autoaug
    >>> policy = autoaug.load_policy("trivialaugment")
    >>> policy.apply(torch.rand(4, 3, 32, 32), generator=torch.Generator().manual_seed(0)).shape
    torch.Size([4, 3, 32, 32])
"""

__version__ = "0.1.0"

from autoaug.export import export, to_source, to_torchvision
from autoaug.ops import OPS, Op, get_op
from autoaug.policy import OpEntry, Policy, PolicyError, PolicyParams, load_policy
from autoaug.reference import builtin_policies
from autoaug.spaces import SPACES, Range, Space, get_space


def __getattr__(name: str):
    # OnlineAugment brings the searchers and the trainer: imported when first asked for.
    if name == "OnlineAugment":
        from autoaug.online import OnlineAugment

        return OnlineAugment
    raise AttributeError(f"module 'autoaug' has no attribute {name!r}")


__all__ = [
    "OPS",
    "SPACES",
    "OnlineAugment",
    "Op",
    "OpEntry",
    "Policy",
    "PolicyError",
    "PolicyParams",
    "Range",
    "Space",
    "__version__",
    "builtin_policies",
    "export",
    "get_op",
    "get_space",
    "load_policy",
    "to_source",
    "to_torchvision",
]
