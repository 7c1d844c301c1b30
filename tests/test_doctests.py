"""The examples in autoaug's docstrings run and print what they say."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import autoaug

MODULES = sorted(
    m.name for m in pkgutil.walk_packages(autoaug.__path__, "autoaug.") if m.name != "autoaug.__main__"
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS, verbose=False, report=False)
    assert result.failed == 0, (
        f"{result.failed} of {result.attempted} docstring examples of {name} fail (python -m doctest -v)"
    )


def test_the_package_has_examples() -> None:
    """The parametrised test above would pass vacuously if no module had any."""
    finder = doctest.DocTestFinder()
    attempted = sum(len(t.examples) for n in MODULES for t in finder.find(importlib.import_module(n)))
    assert attempted >= 50
