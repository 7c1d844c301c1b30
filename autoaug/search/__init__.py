"""Search methods: each produces a policy (and a trained model) from a dataset.

``mcmc`` (invariance-constrained learning with a Metropolis-Hastings sampler) is the central
method; see :mod:`autoaug.search.base` for the contract every searcher follows.
"""

from autoaug.search.base import (
    SECTIONS,
    BilevelConfig,
    McmcConfig,
    OptunaConfig,
    SearchConfig,
    Searcher,
    SearchResult,
    get_searcher,
)

__all__ = [
    "SECTIONS",
    "BilevelConfig",
    "McmcConfig",
    "OptunaConfig",
    "SearchConfig",
    "SearchResult",
    "Searcher",
    "get_searcher",
]
