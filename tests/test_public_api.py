"""The public surface is deliberate: `__all__` lists exactly the public names, sorted, and they resolve."""

from __future__ import annotations

import importlib

import pytest

import spendgate

PACKAGES = [
    "spendgate",
    "spendgate.tokens",
    "spendgate.pricing",
    "spendgate.ledger",
    "spendgate.meter",
    "spendgate.testing",
    "spendgate.counters",
    "spendgate.budgets",
    "spendgate.integrations",
    "spendgate.server",
    "spendgate.demo",
]


@pytest.mark.parametrize("name", PACKAGES)
def test_all_is_sorted_and_resolves(name: str) -> None:
    module = importlib.import_module(name)
    exported = list(module.__all__)
    assert exported == sorted(exported), f"{name}.__all__ is not sorted"
    assert len(exported) == len(set(exported))
    for attr in exported:
        assert hasattr(module, attr), f"{name}.__all__ names missing {attr}"


@pytest.mark.parametrize("name", PACKAGES)
def test_every_public_attribute_is_exported(name: str) -> None:
    module = importlib.import_module(name)
    public = {
        attr
        for attr, value in vars(module).items()
        if not attr.startswith("_") and str(getattr(value, "__module__", "")).startswith("spendgate")
    }
    assert public <= set(module.__all__), f"public names missing from {name}.__all__: {public - set(module.__all__)}"


def test_version_comes_from_metadata() -> None:
    from importlib.metadata import version

    assert spendgate.__version__ == version("spendgate")
