"""autoaug: learn augmentation policies for image classifiers, export them to torchvision,
and measure which symmetries a task has.

The public API:

* :class:`Policy`, :func:`load_policy`: policies, their JSON files, the built-in baselines;
* :data:`OPS`, :func:`get_op`, :data:`SPACES`, :func:`get_space`: the op registry and spaces;
* :func:`to_torchvision`, :func:`to_source`, :func:`export`: torchvision export.

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

__all__ = [
    "OPS",
    "SPACES",
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
