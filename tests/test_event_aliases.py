"""Renamed and moved events (``__event_aliases__``) and upcaster chains checked at import
(API.md section 11): old names load as the new class on every read path of every store, filters
match them, and mistakes fail when the class or chain is defined, saying what to write."""

import importlib
import sys
import textwrap
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from eventuality import (
    Aggregate,
    Event,
    EventBus,
    EventSchemaError,
    EventStore,
    Repository,
    Subscription,
    UnknownEventType,
    event_class,
    register_upcaster,
    upcaster,
)
from eventuality.messages import event_type_names
from eventuality.stores.base import AppendRequest, StoredEvent
from tests._readme import readme_block, run_python

# A shipment event renamed twice: first stored as "AliasParcelSent" (version 1: {"to": ...}),
# then as "shipping.AliasParcelSent" (version 2: {"address": ...}), now "AliasParcelShipped"
# (version 3: {"address": ..., "express": ...}). The step from version 1 is registered under the
# oldest name, before the class exists; the step from 2 is declared on the class.


@upcaster("AliasParcelSent", 1)
def _to_address(payload: dict[str, Any]) -> dict[str, Any]:
    return {"address": payload["to"]}


def _add_express(payload: dict[str, Any]) -> dict[str, Any]:
    return {**payload, "express": False}


class AliasParcelShipped(Event):
    __event_aliases__ = ("AliasParcelSent", "shipping.AliasParcelSent")
    __event_version__ = 3
    __event_upcasters__ = {2: _add_express}  # noqa: RUF012

    address: str
    express: bool


class AliasParcelLost(Event):
    """Never renamed: filters by it must not pick up the renamed type."""

    address: str


class AliasParcel(Aggregate):
    address: str | None = None
    express: bool = False

    def apply(self, event: Event) -> None:
        if isinstance(event, AliasParcelShipped):
            self.address = event.address
            self.express = event.express


def _row(
    event_type: str, schema_version: int, payload: str, stream_id: str = "parcel-1"
) -> StoredEvent:
    """A row as the class stored it under an older name (and maybe an older version)."""
    return StoredEvent(
        stream_id=stream_id,
        version=0,
        event_type=event_type,
        schema_version=schema_version,
        data=payload,
        metadata="{}",
        event_id=str(uuid.uuid4()),
        aggregate_id=None,
        occurred_at=datetime(2020, 1, 1, tzinfo=UTC),
    )


async def _store_rows(store: EventStore, *rows: StoredEvent) -> None:
    for row in rows:
        await store.backend.append([AppendRequest(row.stream_id, None, (row,))])


async def _history(store: EventStore, stream_id: str = "parcel-1") -> None:
    """One event under each name the class ever had, each at the version it had then."""
    await _store_rows(
        store,
        _row("AliasParcelSent", 1, '{"to": "old street"}', stream_id),
        _row("shipping.AliasParcelSent", 2, '{"address": "moved street"}', stream_id),
        _row("AliasParcelShipped", 3, '{"address": "new street", "express": true}', stream_id),
    )


def _unique(prefix: str) -> str:
    """An event type name no other test uses (names are global to the process)."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


# every read path, every store


async def test_rows_stored_under_former_names_load_as_the_class_from_read_stream(
    store: EventStore,
) -> None:
    await _history(store)

    read = await store.read_stream("parcel-1")

    assert [type(e) for e in read] == [AliasParcelShipped] * 3
    assert [(e.address, e.express) for e in read if isinstance(e, AliasParcelShipped)] == [
        ("old street", False),
        ("moved street", False),
        ("new street", True),
    ]
    assert {e.event_type for e in read} == {"AliasParcelShipped"}


async def test_rows_stored_under_former_names_load_as_the_class_from_read_all(
    store: EventStore,
) -> None:
    await _history(store)

    read = [event async for event in store.read_all()]

    assert [type(e) for e in read] == [AliasParcelShipped] * 3


async def test_new_events_are_stored_under_the_current_name(store: EventStore) -> None:
    await store.append("parcel-1", [AliasParcelShipped(address="a", express=True)])

    (row,) = await store.backend.read_stream("parcel-1", 1, None)

    assert (row.event_type, row.schema_version) == ("AliasParcelShipped", 3)


async def test_read_all_filtered_by_the_class_matches_rows_under_its_former_names(
    store: EventStore,
) -> None:
    await _history(store)
    await store.append("lost-1", [AliasParcelLost(address="nowhere")])

    read = [e async for e in store.read_all(event_types=[AliasParcelShipped])]

    assert [type(e) for e in read] == [AliasParcelShipped] * 3


@pytest.mark.parametrize("name", ["AliasParcelSent", "AliasParcelShipped"])
async def test_read_all_filtered_by_any_name_of_the_class_matches_all_its_rows(
    store: EventStore, name: str
) -> None:
    await _history(store)
    await store.append("lost-1", [AliasParcelLost(address="nowhere")])

    read = [e async for e in store.read_all(event_types=[name])]

    assert [type(e) for e in read] == [AliasParcelShipped] * 3


async def test_subscription_filtered_by_the_class_gets_rows_under_its_former_names(
    store: EventStore,
) -> None:
    await _history(store)
    await store.append("lost-1", [AliasParcelLost(address="nowhere")])
    seen: list[Event] = []

    handled = await Subscription(
        store, "parcels", seen.append, event_types=[AliasParcelShipped]
    ).catch_up()

    assert handled == 3
    assert [type(e) for e in seen] == [AliasParcelShipped] * 3


async def test_repository_load_replays_rows_under_former_names(store: EventStore) -> None:
    repository = Repository(AliasParcel, store)
    await _store_rows(
        store,
        _row("AliasParcelSent", 1, '{"to": "old street"}', repository.stream_id("p1")),
        _row("shipping.AliasParcelSent", 2, '{"address": "moved"}', repository.stream_id("p1")),
    )

    parcel = await repository.load("p1")

    assert (parcel.address, parcel.express, parcel.version) == ("moved", False, 2)


async def test_an_upcaster_registered_under_the_current_name_runs_for_a_former_name(
    store: EventStore,
) -> None:
    old, new = _unique("alias.old"), _unique("alias.new")

    class Renamed(Event):
        __event_type__ = new
        __event_aliases__ = (old,)
        __event_version__ = 2
        __event_upcasters__ = {1: lambda payload: {"value": payload["n"] * 10}}  # noqa: RUF012

        value: int

    await _store_rows(store, _row(old, 1, '{"n": 4}'))

    (read,) = await store.read_stream("parcel-1")

    assert isinstance(read, Renamed)
    assert read.value == 40


# the registry


def test_event_class_of_a_former_name_is_the_class() -> None:
    assert event_class("AliasParcelSent") is AliasParcelShipped
    assert event_class("shipping.AliasParcelSent") is AliasParcelShipped


def test_stored_type_names_of_the_class_include_its_aliases() -> None:
    names = event_type_names([AliasParcelShipped])

    assert names == {"AliasParcelShipped", "AliasParcelSent", "shipping.AliasParcelSent"}


def test_a_subclass_does_not_inherit_the_former_names_of_its_parent() -> None:
    class AliasExpressParcelShipped(AliasParcelShipped):
        pass

    assert event_type_names([AliasExpressParcelShipped]) == {"AliasExpressParcelShipped"}
    assert event_class("AliasParcelSent") is AliasParcelShipped
    assert "AliasExpressParcelShipped" in event_type_names([AliasParcelShipped])


def test_a_class_defined_again_replaces_its_earlier_names() -> None:
    old, older, new = _unique("alias.old"), _unique("alias.older"), _unique("alias.new")

    def define(aliases: tuple[str, ...]) -> type[Event]:
        class Again(Event):
            __event_type__ = new
            __event_aliases__ = aliases

        return Again

    first = define((old, older))
    second = define((old,))

    assert event_class(new) is second is not first
    assert event_class(old) is second
    assert older not in event_type_names([new])


async def test_a_bus_listener_subscribed_by_a_former_name_gets_the_class_events() -> None:
    seen: list[Event] = []
    bus = EventBus()
    bus.subscribe("AliasParcelSent", seen.append)
    event = AliasParcelShipped(address="a", express=False)

    await bus.publish([event, AliasParcelLost(address="b")])

    assert seen == [event]


# mistakes in aliases, refused when the class is defined


def test_aliases_given_as_one_string_raise_type_error_showing_the_tuple() -> None:
    with pytest.raises(TypeError, match=r"tuple.*\('AliasOneString',\)"):

        class AliasBareString(Event):
            __event_aliases__ = "AliasOneString"  # type: ignore[assignment]


@pytest.mark.parametrize("alias", ["", 7, None, "with\x00nul"])
def test_an_empty_or_non_string_alias_raises_type_error(alias: object) -> None:
    with pytest.raises(TypeError, match="non-empty string"):

        class AliasBadName(Event):
            __event_aliases__ = (alias,)  # type: ignore[assignment]


def test_an_alias_equal_to_the_class_own_name_raises_type_error() -> None:
    with pytest.raises(TypeError, match=r"AliasSelfNamed.*own event type"):

        class AliasSelfNamed(Event):
            __event_aliases__ = ("AliasSelfNamed",)


def test_an_alias_listed_twice_raises_type_error() -> None:
    with pytest.raises(TypeError, match="'AliasTwice' twice"):

        class AliasListedTwice(Event):
            __event_aliases__ = ("AliasTwice", "AliasTwice")


def test_an_alias_equal_to_another_class_name_raises_type_error_naming_it() -> None:
    with pytest.raises(TypeError) as caught:

        class AliasThief(Event):
            __event_aliases__ = ("AliasParcelLost",)

    message = str(caught.value)
    assert "AliasThief.__event_aliases__ holds 'AliasParcelLost'" in message
    assert "the event type of tests.test_event_aliases.AliasParcelLost" in message
    assert "Remove the alias" in message
    assert event_class("AliasParcelLost") is AliasParcelLost


def test_an_alias_equal_to_another_class_alias_raises_type_error_naming_it() -> None:
    with pytest.raises(
        TypeError, match=r"an alias .* of tests\.test_event_aliases\.AliasParcelShipped"
    ):

        class AliasParcelForwarded(Event):
            __event_aliases__ = ("shipping.AliasParcelSent",)

    assert event_class("shipping.AliasParcelSent") is AliasParcelShipped


def test_a_class_named_like_another_class_alias_raises_type_error_naming_it() -> None:
    with pytest.raises(TypeError, match=r"already an alias .* load as AliasParcelShipped"):

        class AliasParcelSent(Event):
            pass

    assert event_class("AliasParcelSent") is AliasParcelShipped


# upcaster chains, checked at import


def test_a_gap_in_a_declared_chain_raises_type_error_naming_class_version_and_fix() -> None:
    def step(payload: dict[str, Any]) -> dict[str, Any]:
        return payload

    with pytest.raises(TypeError) as caught:

        class AliasGapped(Event):
            __event_version__ = 4
            __event_upcasters__ = {1: step, 3: step}  # noqa: RUF012

    message = str(caught.value)
    assert "'AliasGapped'" in message
    assert "at version 4" in message
    assert "no step from version 2" in message
    assert "@upcaster('AliasGapped', from_version=2)" in message
    with pytest.raises(UnknownEventType):
        event_class("AliasGapped")


def test_a_declared_chain_missing_its_newest_step_raises_type_error() -> None:
    with pytest.raises(TypeError, match="no step from version 2"):

        class AliasBumped(Event):
            __event_version__ = 3
            __event_upcasters__ = {1: lambda payload: payload}  # noqa: RUF012


def test_a_declared_chain_not_starting_at_the_first_version_raises_and_suggests_it() -> None:
    with pytest.raises(TypeError, match=r"version 1.*__event_first_version__ = 2"):

        class AliasLateChain(Event):
            __event_version__ = 3
            __event_upcasters__ = {2: lambda payload: payload}  # noqa: RUF012


async def test_a_chain_from_the_declared_first_version_is_complete(store: EventStore) -> None:
    name = _unique("alias.first")

    class BornAtTwo(Event):
        __event_type__ = name
        __event_version__ = 3
        __event_first_version__ = 2
        __event_upcasters__ = {2: lambda payload: {**payload, "b": 2}}  # noqa: RUF012

        a: int
        b: int

    await _store_rows(store, _row(name, 2, '{"a": 1}'), _row(name, 1, '{"a": 0}', "other"))

    (read,) = await store.read_stream("parcel-1")
    with pytest.raises(EventSchemaError, match="no upcaster is registered from version 1"):
        await store.read_stream("other")

    assert isinstance(read, BornAtTwo)
    assert (read.a, read.b) == (1, 2)


def test_a_declared_step_from_the_current_version_raises_type_error() -> None:
    with pytest.raises(TypeError, match=r"from version 2 would never run.*at version 2"):

        class AliasTooFar(Event):
            __event_version__ = 2
            __event_upcasters__ = {1: lambda payload: payload, 2: lambda payload: payload}  # noqa: RUF012


def test_a_declared_step_that_is_not_a_function_raises_type_error() -> None:
    with pytest.raises(TypeError, match="__event_upcasters__ maps 1 to 'nope'"):

        class AliasNotAFunction(Event):
            __event_version__ = 2
            __event_upcasters__ = {1: "nope"}  # type: ignore[dict-item]  # noqa: RUF012


def test_steps_registered_before_the_class_are_checked_when_it_is_defined() -> None:
    name = _unique("alias.before")
    register_upcaster(name, 1, lambda payload: payload)

    with pytest.raises(TypeError, match=f"'{name}'.*no step from version 2"):

        class Early(Event):
            __event_type__ = name
            __event_version__ = 3


def test_a_step_registered_after_the_class_skipping_one_raises_value_error() -> None:
    name = _unique("alias.after")

    class Later(Event):
        __event_type__ = name
        __event_version__ = 4

    register_upcaster(name, 1, lambda payload: payload)

    with pytest.raises(ValueError, match=r"no step from version 2.*oldest up"):
        register_upcaster(name, 3, lambda payload: payload)


def test_a_step_registered_after_the_class_from_its_version_raises_value_error() -> None:
    name = _unique("alias.after")

    class Later(Event):
        __event_type__ = name
        __event_version__ = 2

    with pytest.raises(ValueError, match="from version 2 would never run"):
        register_upcaster(name, 2, lambda payload: payload)


@pytest.mark.parametrize("version", [0, -1, 1.5, True])
def test_an_upcaster_from_a_version_below_one_or_not_an_int_raises_value_error(
    version: Any,
) -> None:
    with pytest.raises(ValueError, match="versions are integers from 1"):
        register_upcaster(_unique("alias.any"), version, lambda payload: payload)


def test_a_second_step_under_a_former_name_raises_value_error_naming_both() -> None:
    def other(payload: dict[str, Any]) -> dict[str, Any]:
        return payload

    with pytest.raises(ValueError, match=r"'AliasParcelShipped' from version 2 .*_add_express"):
        register_upcaster("shipping.AliasParcelSent", 2, other)


def _write_module(folder: Path, source: str) -> str:
    name = f"alias_chain_{uuid.uuid4().hex[:8]}"
    (folder / f"{name}.py").write_text(textwrap.dedent(source))
    return name


def test_a_module_whose_chain_stops_short_raises_when_the_next_class_is_defined(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    name = _unique("alias.short")
    module = _write_module(
        tmp_path,
        f"""
        from eventuality import Event, upcaster

        class Short(Event):
            __event_type__ = {name!r}
            __event_version__ = 3

        @upcaster({name!r}, 1)
        def first(payload):
            return payload
        """,
    )
    importlib.import_module(module)

    with pytest.raises(TypeError) as caught:

        class AliasAfterShort(Event):
            pass

    assert f"'{name}'" in str(caught.value)
    assert "no step from version 2" in str(caught.value)
    assert module in str(caught.value)
    del sys.modules[module]


def test_a_module_may_interleave_a_chain_with_other_classes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    name = _unique("alias.split")
    module = _write_module(
        tmp_path,
        f"""
        from eventuality import Event, register_upcaster

        class Split(Event):
            __event_type__ = {name!r}
            __event_version__ = 3

        register_upcaster({name!r}, 1, lambda payload: payload)

        class Between(Event):
            __event_type__ = {name + "-between"!r}

        register_upcaster({name!r}, 2, lambda payload: payload)
        """,
    )

    imported = importlib.import_module(module)

    class AliasAfterSplit(Event):
        pass

    assert event_class(name) is imported.Split
    del sys.modules[module]


def test_a_module_defining_a_gap_fails_to_import_naming_the_class(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    name = _unique("alias.gap")
    module = _write_module(
        tmp_path,
        f"""
        from eventuality import Event, upcaster

        class Gapped(Event):
            __event_type__ = {name!r}
            __event_version__ = 4

        @upcaster({name!r}, 1)
        def first(payload):
            return payload

        @upcaster({name!r}, 3)
        def third(payload):
            return payload
        """,
    )

    with pytest.raises(ValueError, match=f"'{name}'.*no step from version 2"):
        importlib.import_module(module)


def test_a_reloaded_module_may_raise_the_version_and_add_the_step_below_the_class(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    name = _unique("alias.reloaded")
    source = f"""
        from eventuality import Event, upcaster

        class Reloaded(Event):
            __event_type__ = {name!r}
            __event_aliases__ = ({name + "-old"!r},)
            __event_version__ = VERSION

        @upcaster({name!r}, 1)
        def first(payload):
            return payload
        """
    module = _write_module(tmp_path, source.replace("VERSION", "2"))
    importlib.import_module(module)
    step = (
        "\n        @upcaster({!r}, 2)\n        def second(payload):\n            return payload\n"
    )
    (tmp_path / f"{module}.py").write_text(
        textwrap.dedent(source.replace("VERSION", "3") + step.format(name))
    )

    reloaded = importlib.reload(sys.modules[module])

    assert event_class(name) is reloaded.Reloaded is event_class(f"{name}-old")
    assert reloaded.Reloaded.__event_version__ == 3
    del sys.modules[module]


def test_readme_aliases_example_runs_and_shows_the_gap_error(tmp_path: Path) -> None:
    (tmp_path / "aliases_example.py").write_text(readme_block("aliases-example"))

    found, error = run_python(tmp_path, "aliases_example.py").splitlines()
    assert found == "TaskAdded"
    assert "'TaskDropped'" in error
    assert "no step from version 2" in error
    assert "@upcaster('TaskDropped', from_version=2)" in error


def test_two_steps_for_one_version_under_two_names_of_a_class_raise_type_error() -> None:
    old, new = _unique("alias.old"), _unique("alias.new")
    register_upcaster(old, 1, lambda payload: payload)

    def under_the_new_name(payload: dict[str, Any]) -> dict[str, Any]:
        return payload

    register_upcaster(new, 1, under_the_new_name)

    with pytest.raises(TypeError, match=r"two upcasters from version 1.*under_the_new_name"):

        class Joined(Event):
            __event_type__ = new
            __event_aliases__ = (old,)
            __event_version__ = 2
