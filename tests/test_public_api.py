"""The public surface: every name API.md uses is importable from ``eventuality``, ``__all__`` is
sorted and complete, and public classes report ``eventuality`` as their module."""

import importlib
import inspect

import pytest

import eventuality

API_NAMES = [
    "Aggregate",
    "AggregateNotFound",
    "Command",
    "ConcurrencyError",
    "Event",
    "EventBus",
    "EventualityError",
    "Flow",
    "InMemoryEventStore",
    "PostgresEventStore",
    "Repository",
    "SQLiteEventStore",
    "Subscription",
    "UnknownCommand",
    "UnknownEventType",
    "open_store",
]


@pytest.mark.parametrize("name", eventuality.__all__)
def test_every_name_in_all_is_importable(name: str) -> None:
    module = importlib.import_module("eventuality")

    value = getattr(module, name)

    assert value is not None


def test_all_is_sorted() -> None:
    names = list(eventuality.__all__)

    ordered = sorted(names)

    assert names == ordered


def test_all_has_no_duplicates() -> None:
    names = list(eventuality.__all__)

    unique = set(names)

    assert len(unique) == len(names)


@pytest.mark.parametrize("name", API_NAMES)
def test_every_name_api_md_uses_is_in_all(name: str) -> None:
    exported = eventuality.__all__

    listed = name in exported

    assert listed


@pytest.mark.parametrize("name", API_NAMES)
def test_every_name_api_md_uses_imports_with_from_eventuality(name: str) -> None:
    namespace: dict[str, object] = {}

    exec(f"from eventuality import {name}", namespace)

    assert namespace[name] is getattr(eventuality, name)


def test_all_lists_every_public_class_and_function_the_package_defines() -> None:
    defined = {
        name
        for name, value in vars(eventuality).items()
        if not name.startswith("_")
        and (inspect.isclass(value) or inspect.isfunction(value))
        and getattr(value, "__module__", "").startswith("eventuality")
    }

    unlisted = defined - set(eventuality.__all__)

    assert unlisted == set()


@pytest.mark.parametrize("name", eventuality.__all__)
def test_public_class_or_function_reports_module_eventuality(name: str) -> None:
    value = getattr(eventuality, name)

    module = getattr(value, "__module__", "eventuality")

    assert module == "eventuality"


def test_unknown_attribute_raises_attribute_error() -> None:
    with pytest.raises(AttributeError, match="NoSuchThing"):
        eventuality.NoSuchThing  # noqa: B018


def test_package_has_a_version_string() -> None:
    version = eventuality.__version__

    assert isinstance(version, str)
    assert version
