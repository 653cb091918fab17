"""The shipped contract suite exports every test it holds, so a star import runs them all."""

import importlib
import inspect

import pytest

import eventuality.testing.contract as contract

MODULES = [module.__name__.rsplit(".", 1)[1] for module in contract.MODULES]


@pytest.mark.parametrize("name", MODULES)
def test_each_module_exports_exactly_its_tests(name: str) -> None:
    module = importlib.import_module(f"eventuality.testing.contract.{name}")

    defined = {
        attribute
        for attribute, value in vars(module).items()
        if attribute.startswith("test_") and inspect.isfunction(value)
    }

    assert set(module.__all__) == defined


def test_the_package_exports_every_test_and_the_fixtures_they_take() -> None:
    exported = set(contract.__all__)

    tests = {
        t
        for name in MODULES
        for t in importlib.import_module(f"{contract.__name__}.{name}").__all__
    }

    assert tests <= exported
    assert {"contract_store", "checkpoint_store", "snapshot_store", "sql_store"} <= exported
