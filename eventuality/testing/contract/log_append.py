"""The event log, appends: versions, expected versions, multi-stream commits."""

from typing import Any

import pytest

from ...errors import (
    ConcurrencyError,
)
from ...stores.base import EventStore, StreamAppend
from ._support import (
    TodoCompleted,
    TodoCreated,
    _created,
    _positions,
    _read_all,
    _recorded,
    _versions,
)

__all__ = [
    "test_append_returns_the_events_with_positions_and_versions",
    "test_append_returns_the_events_unchanged_apart_from_position_and_version",
    "test_append_with_expected_version_none_appends_whatever_the_stream_version",
    "test_append_with_expected_version_zero_creates_the_stream",
    "test_append_with_expected_version_zero_to_an_existing_stream_raises_concurrency_error",
    "test_append_with_the_current_expected_version_continues_the_stream",
    "test_append_with_stale_expected_version_raises_concurrency_error_and_writes_nothing",
    "test_append_with_expected_version_ahead_of_the_stream_raises_concurrency_error",
    "test_events_without_aggregate_version_get_the_streams_next_versions",
    "test_events_carrying_versions_that_continue_the_stream_are_stored_at_them",
    "test_events_carrying_versions_the_stream_has_passed_raise_concurrency_error",
    "test_events_carrying_versions_beyond_the_stream_raise_concurrency_error",
    "test_events_with_inconsistent_versions_raise_value_error_and_write_nothing",
    "test_invalid_expected_version_raises_value_error_and_writes_nothing",
    "test_append_of_no_events_returns_an_empty_list_and_writes_nothing",
    "test_append_of_something_not_an_event_raises_type_error_and_writes_nothing",
    "test_append_streams_writes_every_stream",
    "test_append_streams_assigns_positions_ascending_in_the_given_order",
    "test_append_streams_writes_nothing_when_one_stream_conflicts",
    "test_append_streams_with_the_same_stream_twice_raises_value_error_and_writes_nothing",
]

# append


async def test_append_returns_the_events_with_positions_and_versions(
    contract_store: EventStore,
) -> None:
    events = _created("a", "b", "c")

    stored = await contract_store.append("todo-1", events)

    assert [type(event) for event in stored] == [TodoCreated] * 3
    assert _versions(stored) == [1, 2, 3]
    assert all(position > 0 for position in _positions(stored))


async def test_append_returns_the_events_unchanged_apart_from_position_and_version(
    contract_store: EventStore,
) -> None:
    events = [
        TodoCreated(description="a", metadata={"causation_id": "c-1", "n": [1, 2]}),
        TodoCompleted(aggregate_id="todo-1"),
    ]

    stored = await contract_store.append("todo-1", events)

    assert [e.model_copy(update={"position": None, "aggregate_version": None}) for e in stored] == (
        events
    )


async def test_append_with_expected_version_none_appends_whatever_the_stream_version(
    contract_store: EventStore,
) -> None:
    await contract_store.append("todo-1", _created("a", "b"))

    stored = await contract_store.append("todo-1", _created("c"), expected_version=None)

    assert _versions(stored) == [3]


async def test_append_with_expected_version_zero_creates_the_stream(
    contract_store: EventStore,
) -> None:
    events = _created("a")

    stored = await contract_store.append("todo-1", events, expected_version=0)

    assert await contract_store.read_stream("todo-1") == stored


async def test_append_with_expected_version_zero_to_an_existing_stream_raises_concurrency_error(
    contract_store: EventStore,
) -> None:
    existing = await contract_store.append("todo-1", _created("a"))

    with pytest.raises(ConcurrencyError) as raised:
        await contract_store.append("todo-1", _created("b"), expected_version=0)

    assert (raised.value.stream_id, raised.value.expected_version) == ("todo-1", 0)
    assert raised.value.actual_version == 1
    assert await contract_store.read_stream("todo-1") == existing


async def test_append_with_the_current_expected_version_continues_the_stream(
    contract_store: EventStore,
) -> None:
    await contract_store.append("todo-1", _created("a", "b"))

    stored = await contract_store.append("todo-1", _created("c", "d"), expected_version=2)

    assert _versions(stored) == [3, 4]


async def test_append_with_stale_expected_version_raises_concurrency_error_and_writes_nothing(
    contract_store: EventStore,
) -> None:
    existing = await contract_store.append("todo-1", _created("a", "b", "c"))
    last = await contract_store.last_position()

    with pytest.raises(ConcurrencyError) as raised:
        await contract_store.append("todo-1", _created("d"), expected_version=2)

    error = raised.value
    assert (error.stream_id, error.expected_version, error.actual_version) == ("todo-1", 2, 3)
    assert await contract_store.read_stream("todo-1") == existing
    assert await contract_store.last_position() == last


@pytest.mark.parametrize(("existing", "expected"), [([], 1), (["a", "b"], 5)], ids=["new", "at-2"])
async def test_append_with_expected_version_ahead_of_the_stream_raises_concurrency_error(
    contract_store: EventStore, existing: list[str], expected: int
) -> None:
    await contract_store.append("todo-1", _created(*existing))

    with pytest.raises(ConcurrencyError) as raised:
        await contract_store.append("todo-1", _created("new"), expected_version=expected)

    assert (raised.value.expected_version, raised.value.actual_version) == (expected, len(existing))
    assert await contract_store.stream_version("todo-1") == len(existing)


async def test_events_without_aggregate_version_get_the_streams_next_versions(
    contract_store: EventStore,
) -> None:
    await contract_store.append("todo-1", _created("a", "b"))

    stored = await contract_store.append("todo-1", _created("c", "d", "e"))

    assert _versions(stored) == [3, 4, 5]
    assert _versions(await contract_store.read_stream("todo-1")) == [1, 2, 3, 4, 5]


async def test_events_carrying_versions_that_continue_the_stream_are_stored_at_them(
    contract_store: EventStore,
) -> None:
    todo = _recorded("1", "second", "third")
    await contract_store.append(todo.stream_id, list(todo.pending_events[:1]))

    stored = await contract_store.append(todo.stream_id, list(todo.pending_events[1:]))

    assert _versions(stored) == [2, 3]
    assert await contract_store.read_stream(todo.stream_id, from_version=2) == stored


@pytest.mark.parametrize("already", [2, 3], ids=["at-that-version", "beyond-it"])
async def test_events_carrying_versions_the_stream_has_passed_raise_concurrency_error(
    contract_store: EventStore, already: int
) -> None:
    todo = _recorded("1", *["second", "third"][: already - 1])
    stored = await contract_store.append(todo.stream_id, list(todo.pending_events))
    rival = _recorded("1", "rival")

    with pytest.raises(ConcurrencyError) as raised:
        await contract_store.append(rival.stream_id, list(rival.pending_events[1:]))

    assert (raised.value.expected_version, raised.value.actual_version) == (1, already)
    assert await _read_all(contract_store) == stored


async def test_events_carrying_versions_beyond_the_stream_raise_concurrency_error(
    contract_store: EventStore,
) -> None:
    todo = _recorded("1", "second", "third")
    await contract_store.append(todo.stream_id, [todo.pending_events[0]])

    with pytest.raises(ConcurrencyError) as raised:
        await contract_store.append(todo.stream_id, [todo.pending_events[2]])

    assert (raised.value.expected_version, raised.value.actual_version) == (2, 1)
    assert await contract_store.stream_version(todo.stream_id) == 1


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
    contract_store: EventStore, versions: list[int | None], expected_version: int | None
) -> None:
    events = [TodoCreated(description="x", aggregate_version=v) for v in versions]

    with pytest.raises(ValueError, match="version"):
        await contract_store.append("todo-1", events, expected_version=expected_version)

    assert await contract_store.last_position() == 0


@pytest.mark.parametrize("expected_version", [-1, "1", 1.5])
async def test_invalid_expected_version_raises_value_error_and_writes_nothing(
    contract_store: EventStore, expected_version: Any
) -> None:
    events = _created("a")

    with pytest.raises(ValueError, match="expected_version"):
        await contract_store.append("todo-1", events, expected_version=expected_version)

    assert await contract_store.last_position() == 0


async def test_append_of_no_events_returns_an_empty_list_and_writes_nothing(
    contract_store: EventStore,
) -> None:
    existing = await contract_store.append("todo-1", _created("a"))

    stored = await contract_store.append("todo-1", [])

    assert stored == []
    assert await _read_all(contract_store) == existing


async def test_append_of_something_not_an_event_raises_type_error_and_writes_nothing(
    contract_store: EventStore,
) -> None:
    events: list[Any] = [TodoCreated(description="a"), {"description": "b"}]

    with pytest.raises(TypeError):
        await contract_store.append("todo-1", events)

    assert await contract_store.last_position() == 0


# append_streams


async def test_append_streams_writes_every_stream(contract_store: EventStore) -> None:
    appends = [
        StreamAppend("b", _created("b1", "b2"), expected_version=0),
        StreamAppend("a", _created("a1"), expected_version=0),
    ]

    stored = await contract_store.append_streams(appends)

    assert await contract_store.read_stream("b") == stored[:2]
    assert await contract_store.read_stream("a") == stored[2:]


async def test_append_streams_assigns_positions_ascending_in_the_given_order(
    contract_store: EventStore,
) -> None:
    first = await contract_store.append("a", _created("a1"))
    appends = [
        StreamAppend("c", _created("c1", "c2")),
        StreamAppend("a", _created("a2")),
        StreamAppend("b", _created("b1")),
    ]

    stored = await contract_store.append_streams(appends)

    positions = _positions(stored)
    assert positions == sorted(positions)
    assert len(set(positions)) == 4
    assert positions[0] > _positions(first)[0]
    assert await _read_all(contract_store) == first + stored


async def test_append_streams_writes_nothing_when_one_stream_conflicts(
    contract_store: EventStore,
) -> None:
    existing = await contract_store.append("b", _created("b1"))
    appends = [
        StreamAppend("a", _created("a1"), expected_version=0),
        StreamAppend("b", _created("b2"), expected_version=0),
        StreamAppend("c", _created("c1"), expected_version=0),
    ]

    with pytest.raises(ConcurrencyError) as raised:
        await contract_store.append_streams(appends)

    assert raised.value.stream_id == "b"
    assert [await contract_store.stream_version(s) for s in "abc"] == [0, 1, 0]
    assert await _read_all(contract_store) == existing


async def test_append_streams_with_the_same_stream_twice_raises_value_error_and_writes_nothing(
    contract_store: EventStore,
) -> None:
    appends = [StreamAppend("a", _created("a1")), StreamAppend("a", _created("a2"))]

    with pytest.raises(ValueError, match="twice"):
        await contract_store.append_streams(appends)

    assert await contract_store.last_position() == 0
