"""The store contract: what every EventStore promises, run per backend by the ``store`` fixture.

These tests know no backend. A new backend is done when this file passes against it.
"""

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from eventuality import (
    CheckpointConflict,
    ConcurrencyError,
    DuplicateEventError,
    Event,
    EventStore,
    StoreClosedError,
    StreamAppend,
)
from eventuality.stores.base import Snapshot
from tests.conftest import make_store
from tests.domain import Todo, TodoCompleted, TodoCreated, TodoRenamed


class ContractNote(Event):
    text: str


class ContractParent(Event):
    note: str


class ContractChild(ContractParent):
    extra: int = 0


class ContractCustomName(Event):
    __event_type__ = "contract.custom-name"

    value: int


class ContractPayload(Event):
    text: str
    number: int
    ratio: float
    flag: bool
    missing: str | None
    items: list[str]
    nested: dict[str, list[int]]
    when: datetime
    ref: uuid.UUID


async def _read_all(store: EventStore, **options: Any) -> list[Event]:
    return [event async for event in store.read_all(**options)]


def _created(*descriptions: str) -> list[Event]:
    return [TodoCreated(description=description) for description in descriptions]


def _versions(events: list[Event]) -> list[int | None]:
    return [event.aggregate_version for event in events]


def _positions(events: list[Event]) -> list[int]:
    positions = [event.position for event in events]
    assert all(position is not None for position in positions), positions
    return [position for position in positions if position is not None]


def _recorded(todo_id: str, *renames: str) -> Todo:
    """A new Todo with its created event and one renamed event per name, all pending."""
    todo = Todo.create(id=todo_id, description="first")
    for name in renames:
        todo.rename(name)
    return todo


# append


async def test_append_returns_the_events_with_positions_and_versions(store: EventStore) -> None:
    events = _created("a", "b", "c")

    stored = await store.append("todo-1", events)

    assert [type(event) for event in stored] == [TodoCreated] * 3
    assert _versions(stored) == [1, 2, 3]
    assert all(position > 0 for position in _positions(stored))


async def test_append_returns_the_events_unchanged_apart_from_position_and_version(
    store: EventStore,
) -> None:
    events = [
        TodoCreated(description="a", metadata={"causation_id": "c-1", "n": [1, 2]}),
        TodoCompleted(aggregate_id="todo-1"),
    ]

    stored = await store.append("todo-1", events)

    assert [e.model_copy(update={"position": None, "aggregate_version": None}) for e in stored] == (
        events
    )


async def test_append_with_expected_version_none_appends_whatever_the_stream_version(
    store: EventStore,
) -> None:
    await store.append("todo-1", _created("a", "b"))

    stored = await store.append("todo-1", _created("c"), expected_version=None)

    assert _versions(stored) == [3]


async def test_append_with_expected_version_zero_creates_the_stream(store: EventStore) -> None:
    events = _created("a")

    stored = await store.append("todo-1", events, expected_version=0)

    assert await store.read_stream("todo-1") == stored


async def test_append_with_expected_version_zero_to_an_existing_stream_raises_concurrency_error(
    store: EventStore,
) -> None:
    existing = await store.append("todo-1", _created("a"))

    with pytest.raises(ConcurrencyError) as raised:
        await store.append("todo-1", _created("b"), expected_version=0)

    assert (raised.value.stream_id, raised.value.expected_version) == ("todo-1", 0)
    assert raised.value.actual_version == 1
    assert await store.read_stream("todo-1") == existing


async def test_append_with_the_current_expected_version_continues_the_stream(
    store: EventStore,
) -> None:
    await store.append("todo-1", _created("a", "b"))

    stored = await store.append("todo-1", _created("c", "d"), expected_version=2)

    assert _versions(stored) == [3, 4]


async def test_append_with_stale_expected_version_raises_concurrency_error_and_writes_nothing(
    store: EventStore,
) -> None:
    existing = await store.append("todo-1", _created("a", "b", "c"))
    last = await store.last_position()

    with pytest.raises(ConcurrencyError) as raised:
        await store.append("todo-1", _created("d"), expected_version=2)

    error = raised.value
    assert (error.stream_id, error.expected_version, error.actual_version) == ("todo-1", 2, 3)
    assert await store.read_stream("todo-1") == existing
    assert await store.last_position() == last


@pytest.mark.parametrize(("existing", "expected"), [([], 1), (["a", "b"], 5)], ids=["new", "at-2"])
async def test_append_with_expected_version_ahead_of_the_stream_raises_concurrency_error(
    store: EventStore, existing: list[str], expected: int
) -> None:
    await store.append("todo-1", _created(*existing))

    with pytest.raises(ConcurrencyError) as raised:
        await store.append("todo-1", _created("new"), expected_version=expected)

    assert (raised.value.expected_version, raised.value.actual_version) == (expected, len(existing))
    assert await store.stream_version("todo-1") == len(existing)


async def test_events_without_aggregate_version_get_the_streams_next_versions(
    store: EventStore,
) -> None:
    await store.append("todo-1", _created("a", "b"))

    stored = await store.append("todo-1", _created("c", "d", "e"))

    assert _versions(stored) == [3, 4, 5]
    assert _versions(await store.read_stream("todo-1")) == [1, 2, 3, 4, 5]


async def test_events_carrying_versions_that_continue_the_stream_are_stored_at_them(
    store: EventStore,
) -> None:
    todo = _recorded("1", "second", "third")
    await store.append(todo.stream_id, list(todo.pending_events[:1]))

    stored = await store.append(todo.stream_id, list(todo.pending_events[1:]))

    assert _versions(stored) == [2, 3]
    assert await store.read_stream(todo.stream_id, from_version=2) == stored


@pytest.mark.parametrize("already", [2, 3], ids=["at-that-version", "beyond-it"])
async def test_events_carrying_versions_the_stream_has_passed_raise_concurrency_error(
    store: EventStore, already: int
) -> None:
    todo = _recorded("1", *["second", "third"][: already - 1])
    stored = await store.append(todo.stream_id, list(todo.pending_events))
    rival = _recorded("1", "rival")

    with pytest.raises(ConcurrencyError) as raised:
        await store.append(rival.stream_id, list(rival.pending_events[1:]))

    assert (raised.value.expected_version, raised.value.actual_version) == (1, already)
    assert await _read_all(store) == stored


async def test_events_carrying_versions_beyond_the_stream_raise_concurrency_error(
    store: EventStore,
) -> None:
    todo = _recorded("1", "second", "third")
    await store.append(todo.stream_id, [todo.pending_events[0]])

    with pytest.raises(ConcurrencyError) as raised:
        await store.append(todo.stream_id, [todo.pending_events[2]])

    assert (raised.value.expected_version, raised.value.actual_version) == (2, 1)
    assert await store.stream_version(todo.stream_id) == 1


@pytest.mark.parametrize(
    ("versions", "expected_version"),
    [
        ([1, 3], None),
        ([2, 1], None),
        ([1, 1], None),
        ([1, None], None),
        ([None, 2], None),
        ([1, 2], 1),
    ],
    ids=["gap", "backwards", "repeated", "then-none", "none-then", "contradicts-expected"],
)
async def test_events_with_inconsistent_versions_raise_value_error_and_write_nothing(
    store: EventStore, versions: list[int | None], expected_version: int | None
) -> None:
    events = [TodoCreated(description="x", aggregate_version=v) for v in versions]

    with pytest.raises(ValueError, match="version"):
        await store.append("todo-1", events, expected_version=expected_version)

    assert await store.last_position() == 0


@pytest.mark.parametrize("expected_version", [-1, "1", 1.5])
async def test_invalid_expected_version_raises_value_error_and_writes_nothing(
    store: EventStore, expected_version: Any
) -> None:
    events = _created("a")

    with pytest.raises(ValueError, match="expected_version"):
        await store.append("todo-1", events, expected_version=expected_version)

    assert await store.last_position() == 0


async def test_append_of_no_events_returns_an_empty_list_and_writes_nothing(
    store: EventStore,
) -> None:
    existing = await store.append("todo-1", _created("a"))

    stored = await store.append("todo-1", [])

    assert stored == []
    assert await _read_all(store) == existing


async def test_append_of_something_not_an_event_raises_type_error_and_writes_nothing(
    store: EventStore,
) -> None:
    events: list[Any] = [TodoCreated(description="a"), {"description": "b"}]

    with pytest.raises(TypeError):
        await store.append("todo-1", events)

    assert await store.last_position() == 0


# append_streams


async def test_append_streams_writes_every_stream(store: EventStore) -> None:
    appends = [
        StreamAppend("b", _created("b1", "b2"), expected_version=0),
        StreamAppend("a", _created("a1"), expected_version=0),
    ]

    stored = await store.append_streams(appends)

    assert await store.read_stream("b") == stored[:2]
    assert await store.read_stream("a") == stored[2:]


async def test_append_streams_assigns_positions_ascending_in_the_given_order(
    store: EventStore,
) -> None:
    first = await store.append("a", _created("a1"))
    appends = [
        StreamAppend("c", _created("c1", "c2")),
        StreamAppend("a", _created("a2")),
        StreamAppend("b", _created("b1")),
    ]

    stored = await store.append_streams(appends)

    positions = _positions(stored)
    assert positions == sorted(positions)
    assert len(set(positions)) == 4
    assert positions[0] > _positions(first)[0]
    assert await _read_all(store) == first + stored


async def test_append_streams_writes_nothing_when_one_stream_conflicts(store: EventStore) -> None:
    existing = await store.append("b", _created("b1"))
    appends = [
        StreamAppend("a", _created("a1"), expected_version=0),
        StreamAppend("b", _created("b2"), expected_version=0),
        StreamAppend("c", _created("c1"), expected_version=0),
    ]

    with pytest.raises(ConcurrencyError) as raised:
        await store.append_streams(appends)

    assert raised.value.stream_id == "b"
    assert [await store.stream_version(s) for s in "abc"] == [0, 1, 0]
    assert await _read_all(store) == existing


async def test_append_streams_with_the_same_stream_twice_raises_value_error_and_writes_nothing(
    store: EventStore,
) -> None:
    appends = [StreamAppend("a", _created("a1")), StreamAppend("a", _created("a2"))]

    with pytest.raises(ValueError, match="twice"):
        await store.append_streams(appends)

    assert await store.last_position() == 0


# duplicate event ids


async def test_repeated_append_returns_the_stored_events_and_writes_nothing(
    store: EventStore,
) -> None:
    events = _created("a", "b")
    first = await store.append("todo-1", events, expected_version=0)

    again = await store.append("todo-1", events, expected_version=0)

    assert again == first
    assert await _read_all(store) == first


async def test_repeated_append_of_events_carrying_versions_returns_the_stored_events(
    store: EventStore,
) -> None:
    todo = _recorded("1", "second")
    first = await store.append(todo.stream_id, list(todo.pending_events), expected_version=0)

    again = await store.append(todo.stream_id, list(todo.pending_events), expected_version=0)

    assert again == first
    assert await _read_all(store) == first


async def test_repeated_append_after_the_stream_moved_on_returns_the_stored_events(
    store: EventStore,
) -> None:
    events = _created("a")
    first = await store.append("todo-1", events, expected_version=0)
    second = await store.append("todo-1", _created("b"), expected_version=1)

    again = await store.append("todo-1", events, expected_version=0)

    assert again == first
    assert await _read_all(store) == first + second


async def test_repeated_multi_stream_append_returns_the_stored_events(store: EventStore) -> None:
    appends = [
        StreamAppend("a", _created("a1"), expected_version=0),
        StreamAppend("b", _created("b1", "b2"), expected_version=0),
    ]
    first = await store.append_streams(appends)

    again = await store.append_streams(appends)

    assert again == first
    assert await _read_all(store) == first


async def test_concurrent_identical_appends_store_the_events_once(store: EventStore) -> None:
    events = _created("a", "b")
    results: list[list[Event]] = []

    async def append() -> None:
        await anyio.lowlevel.checkpoint()
        results.append(await store.append("todo-1", events, expected_version=0))

    async with anyio.create_task_group() as tg:
        for _ in range(5):
            tg.start_soon(append)

    assert len(results) == 5
    assert all(result == results[0] for result in results)
    assert await _read_all(store) == results[0]


async def test_stored_event_id_reused_for_a_different_event_raises_duplicate_event_error(
    store: EventStore,
) -> None:
    original = TodoCreated(description="original")
    stored = await store.append("todo-1", [original])
    impostor = TodoCreated(event_id=original.event_id, description="impostor")

    with pytest.raises(DuplicateEventError) as raised:
        await store.append("todo-1", [impostor])

    assert raised.value.event_id == str(original.event_id)
    assert await _read_all(store) == stored


async def test_append_mixing_stored_and_new_events_raises_duplicate_event_error(
    store: EventStore,
) -> None:
    event = TodoCreated(description="stored")
    stored = await store.append("todo-1", [event], expected_version=0)

    with pytest.raises(DuplicateEventError):
        await store.append("todo-1", [event, TodoRenamed(description="new")], expected_version=0)

    assert await _read_all(store) == stored


async def test_append_of_new_events_after_a_stored_one_raises_duplicate_event_error(
    store: EventStore,
) -> None:
    event = TodoCreated(description="stored")
    stored = await store.append("todo-1", [event])

    with pytest.raises(DuplicateEventError):
        await store.append("todo-1", [TodoRenamed(description="new"), event])

    assert await _read_all(store) == stored


async def test_stored_event_appended_at_another_version_raises_duplicate_event_error(
    store: EventStore,
) -> None:
    event = TodoCreated(description="stored")
    stored = await store.append("todo-1", [event], expected_version=0)
    stored += await store.append("todo-1", _created("b"), expected_version=1)

    with pytest.raises(DuplicateEventError):
        await store.append("todo-1", [event], expected_version=2)

    assert await _read_all(store) == stored


async def test_same_event_id_twice_in_one_append_raises_duplicate_event_error(
    store: EventStore,
) -> None:
    event = TodoCreated(description="a")
    twin = TodoCreated(event_id=event.event_id, description="b")

    with pytest.raises(DuplicateEventError):
        await store.append("todo-1", [event, twin])

    assert await store.last_position() == 0


async def test_same_event_id_in_two_streams_of_one_commit_raises_duplicate_event_error(
    store: EventStore,
) -> None:
    event = TodoCreated(description="a")
    appends = [StreamAppend("a", [event]), StreamAppend("b", [event])]

    with pytest.raises(DuplicateEventError):
        await store.append_streams(appends)

    assert await store.last_position() == 0


async def test_stored_event_appended_to_another_stream_raises_duplicate_event_error(
    store: EventStore,
) -> None:
    event = TodoCreated(description="a")
    stored = await store.append("todo-1", [event])

    with pytest.raises(DuplicateEventError):
        await store.append("todo-2", [event])

    assert await store.stream_version("todo-2") == 0
    assert await _read_all(store) == stored


# positions, last_position, stream_version


async def test_positions_strictly_increase_in_commit_order_across_streams(
    store: EventStore,
) -> None:
    streams = ["a", "b", "a", "c", "b", "a"]

    stored = [
        (await store.append(s, _created(f"{s}{i}", f"{s}{i}'")))[-1] for i, s in enumerate(streams)
    ]

    positions = _positions(stored)
    assert positions == sorted(set(positions))


async def test_read_all_returns_events_in_commit_order_across_streams(store: EventStore) -> None:
    stored: list[Event] = []
    for i, stream in enumerate(["a", "b", "a", "c", "b"]):
        stored += await store.append(stream, _created(f"{stream}{i}"))

    read = await _read_all(store)

    assert read == stored


async def test_last_position_is_zero_when_the_store_is_empty(store: EventStore) -> None:
    empty = store

    last = await empty.last_position()

    assert last == 0


async def test_last_position_is_the_position_of_the_last_appended_event(
    store: EventStore,
) -> None:
    await store.append("a", _created("a1", "a2"))
    stored = await store.append("b", _created("b1"))

    last = await store.last_position()

    assert last == stored[-1].position


async def test_stream_version_is_zero_for_an_unknown_stream(store: EventStore) -> None:
    await store.append("a", _created("a1"))

    version = await store.stream_version("b")

    assert version == 0


async def test_stream_version_is_the_version_of_the_streams_last_event(store: EventStore) -> None:
    await store.append("a", _created("a1", "a2"))
    await store.append("b", _created("b1"))
    await store.append("a", _created("a3"))

    version = await store.stream_version("a")

    assert version == 3


# read_stream


async def test_read_stream_returns_the_streams_events_in_version_order(store: EventStore) -> None:
    first = await store.append("a", _created("a1", "a2"))
    await store.append("b", _created("b1"))
    second = await store.append("a", _created("a3"))

    events = await store.read_stream("a")

    assert events == first + second
    assert _versions(events) == [1, 2, 3]


async def test_read_stream_from_version_skips_earlier_events(store: EventStore) -> None:
    stored = await store.append("a", _created("a1", "a2", "a3", "a4"))

    events = await store.read_stream("a", from_version=3)

    assert events == stored[2:]


async def test_read_stream_to_version_stops_after_that_version(store: EventStore) -> None:
    stored = await store.append("a", _created("a1", "a2", "a3", "a4"))

    events = await store.read_stream("a", to_version=2)

    assert events == stored[:2]


async def test_read_stream_between_versions_returns_that_window(store: EventStore) -> None:
    stored = await store.append("a", _created("a1", "a2", "a3", "a4"))

    events = await store.read_stream("a", from_version=2, to_version=3)

    assert events == stored[1:3]


@pytest.mark.parametrize("to_version", [0, -1])
async def test_read_stream_to_a_version_below_the_first_returns_nothing(
    store: EventStore, to_version: int
) -> None:
    await store.append("a", _created("a1", "a2", "a3"))

    events = await store.read_stream("a", to_version=to_version)

    assert events == []


async def test_read_stream_from_beyond_the_end_returns_nothing(store: EventStore) -> None:
    await store.append("a", _created("a1", "a2"))

    events = await store.read_stream("a", from_version=3)

    assert events == []


async def test_read_stream_of_an_unknown_stream_returns_an_empty_list(store: EventStore) -> None:
    await store.append("a", _created("a1"))

    events = await store.read_stream("unknown")

    assert events == []


async def test_read_stream_returns_each_event_as_its_own_class(store: EventStore) -> None:
    todo = _recorded("1", "renamed")
    todo.complete()
    await store.append(todo.stream_id, list(todo.pending_events))

    events = await store.read_stream(todo.stream_id)

    assert [type(event) for event in events] == [TodoCreated, TodoRenamed, TodoCompleted]


async def test_read_events_equal_in_every_field_what_append_returned(store: EventStore) -> None:
    payload = ContractPayload(
        text="text",
        number=2**53 + 1,
        ratio=0.1,
        flag=True,
        missing=None,
        items=["x", "y"],
        nested={"a": [1, 2], "b": []},
        when=datetime(2024, 2, 29, 23, 59, 59, 123456, tzinfo=UTC),
        ref=uuid.uuid4(),
        aggregate_id="agg-1",
        metadata={"causation_id": "c", "nested": {"list": [1, 2.5, None, True, "ü"]}},
    )
    stored = await store.append("a", [payload, TodoCompleted()])

    from_stream = await store.read_stream("a")
    from_log = await _read_all(store)

    assert from_stream == stored
    assert from_log == stored


# read_all


async def test_read_all_of_an_empty_store_yields_nothing(store: EventStore) -> None:
    empty = store

    events = await _read_all(empty)

    assert events == []


async def test_read_all_from_position_yields_only_later_events(store: EventStore) -> None:
    stored = await store.append("a", _created("a1", "a2"))
    stored += await store.append("b", _created("b1", "b2"))

    events = await _read_all(store, from_position=_positions(stored)[1])

    assert events == stored[2:]


async def test_read_all_from_the_last_position_yields_nothing(store: EventStore) -> None:
    await store.append("a", _created("a1", "a2"))

    events = await _read_all(store, from_position=await store.last_position())

    assert events == []


async def test_read_all_filtered_by_class_yields_only_that_class(store: EventStore) -> None:
    todo = _recorded("1", "renamed", "again")
    todo.complete()
    stored = await store.append(todo.stream_id, list(todo.pending_events))

    events = await _read_all(store, event_types=[TodoRenamed])

    assert events == stored[1:3]


async def test_read_all_filtered_by_class_includes_its_subclasses(store: EventStore) -> None:
    stored = await store.append(
        "a", [ContractParent(note="p"), ContractNote(text="n"), ContractChild(note="c", extra=1)]
    )

    events = await _read_all(store, event_types=[ContractParent])

    assert events == [stored[0], stored[2]]


async def test_read_all_filtered_by_type_name_yields_only_that_type(store: EventStore) -> None:
    stored = await store.append(
        "a", [ContractParent(note="p"), ContractChild(note="c"), ContractCustomName(value=1)]
    )

    by_name = await _read_all(store, event_types=["ContractParent"])
    by_custom_name = await _read_all(store, event_types=["contract.custom-name"])

    assert by_name == [stored[0]]
    assert by_custom_name == [stored[2]]


async def test_read_all_filtered_by_several_types_yields_any_of_them(store: EventStore) -> None:
    stored = await store.append(
        "a", [ContractNote(text="n"), TodoCreated(description="t"), ContractCustomName(value=1)]
    )

    events = await _read_all(store, event_types=[ContractCustomName, "ContractNote"])

    assert events == [stored[0], stored[2]]


async def test_read_all_filtered_by_event_yields_every_event(store: EventStore) -> None:
    stored = await store.append(
        "a", [ContractNote(text="n"), TodoCreated(description="t"), ContractCustomName(value=1)]
    )

    events = await _read_all(store, event_types=[Event])

    assert events == stored


async def test_read_all_filtered_by_an_unstored_type_yields_nothing(store: EventStore) -> None:
    await store.append("a", _created("a1", "a2"))

    events = await _read_all(store, event_types=[TodoCompleted, "NoSuchType"])

    assert events == []


async def test_read_all_in_pages_yields_every_event_once_in_order(store: EventStore) -> None:
    stored: list[Event] = []
    for stream in ["a", "b", "c", "d", "e"]:
        stored += await store.append(stream, _created(f"{stream}1", f"{stream}2"))

    events = await _read_all(store, page_size=3)

    assert events == stored


async def test_read_all_filtered_in_pages_yields_every_match_once_in_order(
    store: EventStore,
) -> None:
    events = [
        ContractNote(text=str(i)) if i % 2 else TodoCreated(description=str(i)) for i in range(11)
    ]
    stored = await store.append("a", events)

    notes = await _read_all(store, event_types=[ContractNote], page_size=2)

    assert notes == stored[1::2]


async def test_read_all_reaches_events_appended_while_iterating(store: EventStore) -> None:
    stored = await store.append("a", _created("a1", "a2", "a3", "a4", "a5"))
    events: list[Event] = []

    async for event in store.read_all(page_size=2):
        events.append(event)
        if len(events) == 1:
            stored += await store.append("b", _created("b1", "b2", "b3"))

    assert events == stored


async def test_read_all_can_be_left_early_and_the_store_still_works(store: EventStore) -> None:
    stored = await store.append("a", _created("a1", "a2", "a3", "a4", "a5"))
    seen: list[Event] = []
    async for event in store.read_all(page_size=2):
        seen.append(event)
        if len(seen) == 3:
            break

    stored += await store.append("a", _created("a6"))
    events = await _read_all(store)

    assert seen == stored[:3]
    assert events == stored


async def test_read_all_with_a_page_size_below_one_raises_value_error(store: EventStore) -> None:
    await store.append("a", _created("a1"))

    with pytest.raises(ValueError, match="page_size"):
        store.read_all(page_size=0)


# stream ids and payloads stored verbatim

ODD_STREAM_IDS = [
    "Todo-ünïcødé-日本語-עברית-🎉👩‍👩‍👧",
    "it's \"double\" and 'single' `back`",
    "'; DROP TABLE x; --",
    "'; DROP TABLE eventuality_events; --",
    '"); DELETE FROM eventuality_events; --',
    "nul\x00inside",
    "\x00",
    "back\\slash\\",
    "percent%_under_score",
    "line\nbreak\ttab\r",
    "x" * 1_020 + "-end",
    "CaseSensitive",
    "casesensitive",
    "CASESENSITIVE",
    "trailing",
    "trailing ",
    " trailing",
    " ",
    "$1 ? :name %s {}",
]


@pytest.mark.parametrize(
    "stream_id", ODD_STREAM_IDS, ids=[f"id{i}" for i in range(len(ODD_STREAM_IDS))]
)
async def test_odd_stream_id_is_stored_verbatim(store: EventStore, stream_id: str) -> None:
    events = [TodoCreated(description="a", aggregate_id=stream_id)]

    stored = await store.append(stream_id, events, expected_version=0)

    assert await store.read_stream(stream_id) == stored
    assert await store.stream_version(stream_id) == 1
    assert (await store.read_stream(stream_id))[0].aggregate_id == stream_id


async def test_odd_stream_ids_are_distinct_streams(store: EventStore) -> None:
    stored = {
        stream_id: await store.append(stream_id, _created(f"#{i}"), expected_version=0)
        for i, stream_id in enumerate(ODD_STREAM_IDS)
    }

    read = {stream_id: await store.read_stream(stream_id) for stream_id in ODD_STREAM_IDS}

    assert read == stored
    assert await _read_all(store) == [event for events in stored.values() for event in events]
    assert await store.stream_version("nul") == 0


ODD_TEXTS = [
    "nul\x00inside",
    "\x00",
    "emoji 🎉👩‍👩‍👧 and ünïcødé 日本語",
    "'; DROP TABLE x; --",
    'it\'s "quoted" \\ \\u0000 \\\\',
    '{"json": "lookalike"}',
    "\u2028\u2029\ufeff",
    "",
    "y" * 100_000,
]


@pytest.mark.parametrize("text", ODD_TEXTS, ids=[f"text{i}" for i in range(len(ODD_TEXTS))])
async def test_odd_payload_string_round_trips(store: EventStore, text: str) -> None:
    event = ContractNote(text=text, metadata={"text": text})

    stored = await store.append("a", [event])

    read = await store.read_stream("a")
    assert read == stored
    assert (read[0].payload, read[0].metadata) == ({"text": text}, {"text": text})


# checkpoints


async def test_get_checkpoint_is_none_when_unset(store: EventStore) -> None:
    name = "projection"

    checkpoint = await store.get_checkpoint(name)

    assert checkpoint is None


async def test_set_checkpoint_expecting_none_creates_it(store: EventStore) -> None:
    name = "projection"

    await store.set_checkpoint(name, 7, expected=None)

    assert await store.get_checkpoint(name) == 7


async def test_set_checkpoint_expecting_its_value_moves_it(store: EventStore) -> None:
    await store.set_checkpoint("projection", 7, expected=None)

    await store.set_checkpoint("projection", 12, expected=7)

    assert await store.get_checkpoint("projection") == 12


@pytest.mark.parametrize("wrong", [None, 3, 12])
async def test_set_checkpoint_with_a_wrong_expectation_raises_and_leaves_it(
    store: EventStore, wrong: int | None
) -> None:
    await store.set_checkpoint("projection", 7, expected=None)

    with pytest.raises(CheckpointConflict) as raised:
        await store.set_checkpoint("projection", 12, expected=wrong)

    assert (raised.value.name, raised.value.expected, raised.value.actual) == (
        "projection",
        wrong,
        7,
    )
    assert await store.get_checkpoint("projection") == 7


async def test_set_checkpoint_expecting_a_value_when_unset_raises_and_creates_nothing(
    store: EventStore,
) -> None:
    name = "projection"

    with pytest.raises(CheckpointConflict):
        await store.set_checkpoint(name, 12, expected=7)

    assert await store.get_checkpoint(name) is None


async def test_checkpoints_with_different_names_are_independent(store: EventStore) -> None:
    await store.set_checkpoint("one", 3, expected=None)

    await store.set_checkpoint("two", 9, expected=None)
    await store.set_checkpoint("one", 4, expected=3)

    assert await store.get_checkpoint("one") == 4
    assert await store.get_checkpoint("two") == 9
    assert await store.get_checkpoint("One") is None


async def test_set_checkpoint_to_a_negative_position_raises_value_error(store: EventStore) -> None:
    name = "projection"

    with pytest.raises(ValueError, match="position"):
        await store.set_checkpoint(name, -1, expected=None)

    assert await store.get_checkpoint(name) is None


# snapshots


def _snapshot(stream_id: str, version: int) -> Snapshot:
    return Snapshot(stream_id, version, "Todo", 1, f'{{"id": "1", "version": {version}}}')


async def test_load_snapshot_is_none_when_the_stream_has_none(store: EventStore) -> None:
    await store.save_snapshot(_snapshot("Todo-other", 3))

    loaded = await store.load_snapshot("Todo-1")

    assert loaded is None


async def test_load_snapshot_returns_the_latest(store: EventStore) -> None:
    for version in (5, 2, 9):
        await store.save_snapshot(_snapshot("Todo-1", version))

    loaded = await store.load_snapshot("Todo-1")

    assert loaded == _snapshot("Todo-1", 9)


@pytest.mark.parametrize(
    ("max_version", "found"), [(9, 9), (8, 5), (5, 5), (2, 2), (1, None), (0, None)]
)
async def test_load_snapshot_returns_the_latest_at_or_below_max_version(
    store: EventStore, max_version: int, found: int | None
) -> None:
    for version in (2, 5, 9):
        await store.save_snapshot(_snapshot("Todo-1", version))

    loaded = await store.load_snapshot("Todo-1", max_version=max_version)

    assert loaded == (None if found is None else _snapshot("Todo-1", found))


async def test_save_snapshot_at_a_saved_version_replaces_it(store: EventStore) -> None:
    await store.save_snapshot(_snapshot("Todo-1", 4))
    newer = Snapshot("Todo-1", 4, "Todo", 2, '{"id": "1", "shape": "new"}')

    await store.save_snapshot(newer)

    assert await store.load_snapshot("Todo-1") == newer


async def test_snapshot_stream_ids_are_stored_verbatim(store: EventStore) -> None:
    stream_ids = ["Todo-'; DROP TABLE x; --", "Todo-nul\x00", "Todo-nul", "Todo-🎉 "]

    for version, stream_id in enumerate(stream_ids, 1):
        await store.save_snapshot(_snapshot(stream_id, version))

    for version, stream_id in enumerate(stream_ids, 1):
        assert await store.load_snapshot(stream_id) == _snapshot(stream_id, version)


# wait_appended


async def test_wait_appended_returns_true_without_waiting_when_events_are_after(
    store: EventStore,
) -> None:
    stored = await store.append("a", _created("a1", "a2"))

    appended = await store.wait_appended(_positions(stored)[0], timeout=0)

    assert appended is True


async def test_wait_appended_returns_false_when_nothing_is_appended_in_time(
    store: EventStore,
) -> None:
    await store.append("a", _created("a1"))
    last = await store.last_position()

    appended = await store.wait_appended(last, timeout=0.05)

    assert appended is False


async def test_wait_appended_on_an_empty_store_returns_false_when_nothing_is_appended(
    store: EventStore,
) -> None:
    empty = store

    appended = await empty.wait_appended(0, timeout=0.05)

    assert appended is False


async def test_wait_appended_wakes_when_another_task_appends(store: EventStore) -> None:
    await store.append("a", _created("a1"))
    last = await store.last_position()
    results: list[bool] = []

    async def append_soon() -> None:
        await anyio.sleep(0.05)
        await store.append("b", _created("b1"))

    # The wait's own timeout is far beyond the deadline: only a wake-up can end it in time.
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(append_soon)
            results.append(await store.wait_appended(last, timeout=3600))

    assert results == [True]
    assert await store.last_position() > last


# concurrency


async def test_concurrent_appends_expecting_one_version_have_exactly_one_winner(
    store: EventStore,
) -> None:
    tasks = 20
    ready = 0
    all_read = anyio.Event()
    winners: list[list[Event]] = []
    losers: list[ConcurrencyError] = []

    async def write(i: int) -> None:
        nonlocal ready
        version = await store.stream_version("race")
        ready += 1
        if ready == tasks:
            all_read.set()
        await all_read.wait()
        try:
            winners.append(await store.append("race", _created(str(i)), expected_version=version))
        except ConcurrencyError as error:
            losers.append(error)

    async with anyio.create_task_group() as tg:
        for i in range(tasks):
            tg.start_soon(write, i)

    assert len(winners) == 1
    assert len(losers) == tasks - 1
    assert {(e.stream_id, e.expected_version, e.actual_version) for e in losers} == {("race", 0, 1)}
    assert await store.read_stream("race") == winners[0]


async def test_concurrent_appends_retrying_on_conflict_fill_versions_without_gaps(
    store: EventStore,
) -> None:
    tasks = 20
    winners: list[Event] = []

    async def write(i: int) -> None:
        for _ in range(tasks):
            version = await store.stream_version("race")
            await anyio.lowlevel.checkpoint()
            try:
                stored = await store.append("race", _created(str(i)), expected_version=version)
            except ConcurrencyError:
                continue
            winners.extend(stored)
            return
        raise AssertionError(f"writer {i} lost more races than there are other writers")

    async with anyio.create_task_group() as tg:
        for i in range(tasks):
            tg.start_soon(write, i)

    stream = await store.read_stream("race")
    assert _versions(stream) == list(range(1, tasks + 1))
    assert sorted(event.aggregate_version or 0 for event in winners) == list(range(1, tasks + 1))
    assert len(set(_positions(stream))) == tasks
    assert sorted(stream, key=lambda e: e.position or 0) == stream


async def test_concurrent_appends_to_different_streams_all_succeed(store: EventStore) -> None:
    tasks = 20
    stored: dict[str, list[Event]] = {}

    async def write(i: int) -> None:
        await anyio.lowlevel.checkpoint()
        stored[f"s{i}"] = await store.append(f"s{i}", _created("1", "2", "3"), expected_version=0)

    async with anyio.create_task_group() as tg:
        for i in range(tasks):
            tg.start_soon(write, i)

    positions = [p for events in stored.values() for p in _positions(events)]
    assert len(stored) == tasks
    assert len(set(positions)) == tasks * 3
    assert {s: await store.read_stream(s) for s in stored} == stored
    assert len(await _read_all(store)) == tasks * 3


@pytest.mark.parametrize("kind", ["memory", "sqlite-file", "sqlite-memory"])
async def test_positions_are_gap_free_on_memory_and_sqlite_even_when_appends_conflict(
    kind: str, tmp_path: Path
) -> None:
    # Not every backend promises this (PostgreSQL derives positions from transaction ids), so
    # this runs on the backends that do, by name, rather than through the `store` fixture.
    store = make_store(kind, tmp_path)

    async def write(i: int) -> None:
        await anyio.lowlevel.checkpoint()
        with pytest.raises(ConcurrencyError):
            await store.append("taken", _created(str(i)), expected_version=0)
        await store.append(f"s{i}", _created("1", "2"), expected_version=0)

    async with store:
        await store.append("taken", _created("first"))
        async with anyio.create_task_group() as tg:
            for i in range(10):
                tg.start_soon(write, i)
        await store.append("last", _created("last"))
        positions = _positions(await _read_all(store))

    assert positions == list(range(1, 23))


# lifecycle

CALLS: dict[str, Callable[[EventStore], Awaitable[object]]] = {
    "append": lambda s: s.append("a", _created("a1")),
    "append_streams": lambda s: s.append_streams([StreamAppend("a", _created("a1"))]),
    "read_stream": lambda s: s.read_stream("a"),
    "read_all": lambda s: _read_all(s),
    "stream_version": lambda s: s.stream_version("a"),
    "last_position": lambda s: s.last_position(),
    "wait_appended": lambda s: s.wait_appended(0, timeout=0),
    "get_checkpoint": lambda s: s.get_checkpoint("c"),
    "set_checkpoint": lambda s: s.set_checkpoint("c", 1, expected=None),
    "save_snapshot": lambda s: s.save_snapshot(_snapshot("a", 1)),
    "load_snapshot": lambda s: s.load_snapshot("a"),
}


@pytest.mark.parametrize("call", list(CALLS.values()), ids=list(CALLS))
async def test_every_call_on_a_closed_store_raises_store_closed_error(
    store: EventStore, call: Callable[[EventStore], Awaitable[object]]
) -> None:
    await store.append("a", _created("a1"))

    await store.close()

    with pytest.raises(StoreClosedError):
        await call(store)


async def test_closing_a_store_twice_is_harmless(store: EventStore) -> None:
    await store.close()

    await store.close()

    with pytest.raises(StoreClosedError):
        await store.last_position()


async def test_async_with_yields_the_store_opened(store_kind: str, tmp_path: Path) -> None:
    store = make_store(store_kind, tmp_path)

    async with store as opened:
        stored = await opened.append("a", _created("a1"))
        assert await opened.read_stream("a") == stored

    assert opened is store


async def test_leaving_async_with_closes_the_store(store_kind: str, tmp_path: Path) -> None:
    async with make_store(store_kind, tmp_path) as store:
        await store.append("a", _created("a1"))

    closed = store

    with pytest.raises(StoreClosedError):
        await closed.read_stream("a")


async def test_leaving_async_with_on_an_error_closes_the_store(
    store_kind: str, tmp_path: Path
) -> None:
    store = make_store(store_kind, tmp_path)

    async def fail_inside() -> None:
        async with store:
            await store.append("a", _created("a1"))
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await fail_inside()

    with pytest.raises(StoreClosedError):
        await store.last_position()


async def test_open_and_close_without_async_with(store_kind: str, tmp_path: Path) -> None:
    store = make_store(store_kind, tmp_path)

    await store.open()
    stored = await store.append("a", _created("a1"))
    await store.close()

    assert _versions(stored) == [1]
    with pytest.raises(StoreClosedError):
        await store.last_position()


async def test_an_empty_append_still_checks_its_expected_version(store: EventStore) -> None:
    await store.append("a", [TodoCreated(description="x")])

    with pytest.raises(ConcurrencyError) as caught:
        await store.append("a", [], expected_version=0)
    unchanged = await store.append("a", [], expected_version=1)

    assert (caught.value.expected_version, caught.value.actual_version) == (0, 1)
    assert unchanged == []


async def test_a_stream_id_that_is_not_valid_unicode_is_refused_and_writes_nothing(
    store: EventStore,
) -> None:
    async def append_good(i: int) -> None:
        await store.append(f"good-{i}", [TodoCreated(description=str(i))])

    async with anyio.create_task_group() as tg:
        for i in range(5):
            tg.start_soon(append_good, i)
        with pytest.raises(ValueError, match="not valid Unicode"):
            await store.append("bad-\ud800", [TodoCreated(description="x")])

    stored = [str(getattr(e, "description", "")) async for e in store.read_all()]
    assert sorted(stored) == ["0", "1", "2", "3", "4"]


async def test_positions_and_versions_beyond_any_stored_read_nothing(store: EventStore) -> None:
    await store.append("a", [TodoCreated(description="x")])

    assert await store.read_stream("a", from_version=2**63) == []
    assert [e async for e in store.read_all(from_position=2**63)] == []
