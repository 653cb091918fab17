"""The event log, event ids: a repeated append returns what is stored; a reused id is refused."""

import anyio
import anyio.lowlevel
import pytest

from ...errors import (
    DuplicateEventError,
)
from ...messages import Event
from ...stores.base import EventStore, StreamAppend
from ._support import (
    TodoCreated,
    TodoRenamed,
    _created,
    _read_all,
    _recorded,
)

__all__ = [
    "test_repeated_append_returns_the_stored_events_and_writes_nothing",
    "test_repeated_append_of_events_carrying_versions_returns_the_stored_events",
    "test_repeated_append_after_the_stream_moved_on_returns_the_stored_events",
    "test_repeated_multi_stream_append_returns_the_stored_events",
    "test_concurrent_identical_appends_store_the_events_once",
    "test_stored_event_id_reused_for_a_different_event_raises_duplicate_event_error",
    "test_append_mixing_stored_and_new_events_raises_duplicate_event_error",
    "test_append_of_new_events_after_a_stored_one_raises_duplicate_event_error",
    "test_stored_event_appended_at_another_version_raises_duplicate_event_error",
    "test_same_event_id_twice_in_one_append_raises_duplicate_event_error",
    "test_same_event_id_in_two_streams_of_one_commit_raises_duplicate_event_error",
    "test_stored_event_appended_to_another_stream_raises_duplicate_event_error",
]

# duplicate event ids


async def test_repeated_append_returns_the_stored_events_and_writes_nothing(
    contract_store: EventStore,
) -> None:
    events = _created("a", "b")
    first = await contract_store.append("todo-1", events, expected_version=0)

    again = await contract_store.append("todo-1", events, expected_version=0)

    assert again == first
    assert await _read_all(contract_store) == first


async def test_repeated_append_of_events_carrying_versions_returns_the_stored_events(
    contract_store: EventStore,
) -> None:
    todo = _recorded("1", "second")
    first = await contract_store.append(
        todo.stream_id, list(todo.pending_events), expected_version=0
    )

    again = await contract_store.append(
        todo.stream_id, list(todo.pending_events), expected_version=0
    )

    assert again == first
    assert await _read_all(contract_store) == first


async def test_repeated_append_after_the_stream_moved_on_returns_the_stored_events(
    contract_store: EventStore,
) -> None:
    events = _created("a")
    first = await contract_store.append("todo-1", events, expected_version=0)
    second = await contract_store.append("todo-1", _created("b"), expected_version=1)

    again = await contract_store.append("todo-1", events, expected_version=0)

    assert again == first
    assert await _read_all(contract_store) == first + second


async def test_repeated_multi_stream_append_returns_the_stored_events(
    contract_store: EventStore,
) -> None:
    appends = [
        StreamAppend("a", _created("a1"), expected_version=0),
        StreamAppend("b", _created("b1", "b2"), expected_version=0),
    ]
    first = await contract_store.append_streams(appends)

    again = await contract_store.append_streams(appends)

    assert again == first
    assert await _read_all(contract_store) == first


async def test_concurrent_identical_appends_store_the_events_once(
    contract_store: EventStore,
) -> None:
    events = _created("a", "b")
    results: list[list[Event]] = []

    async def append() -> None:
        await anyio.lowlevel.checkpoint()
        results.append(await contract_store.append("todo-1", events, expected_version=0))

    async with anyio.create_task_group() as tg:
        for _ in range(5):
            tg.start_soon(append)

    assert len(results) == 5
    assert all(result == results[0] for result in results)
    assert await _read_all(contract_store) == results[0]


async def test_stored_event_id_reused_for_a_different_event_raises_duplicate_event_error(
    contract_store: EventStore,
) -> None:
    original = TodoCreated(description="original")
    stored = await contract_store.append("todo-1", [original])
    impostor = TodoCreated(event_id=original.event_id, description="impostor")

    with pytest.raises(DuplicateEventError) as raised:
        await contract_store.append("todo-1", [impostor])

    assert raised.value.event_id == str(original.event_id)
    assert await _read_all(contract_store) == stored


async def test_append_mixing_stored_and_new_events_raises_duplicate_event_error(
    contract_store: EventStore,
) -> None:
    event = TodoCreated(description="stored")
    stored = await contract_store.append("todo-1", [event], expected_version=0)

    with pytest.raises(DuplicateEventError):
        await contract_store.append(
            "todo-1", [event, TodoRenamed(description="new")], expected_version=0
        )

    assert await _read_all(contract_store) == stored


async def test_append_of_new_events_after_a_stored_one_raises_duplicate_event_error(
    contract_store: EventStore,
) -> None:
    event = TodoCreated(description="stored")
    stored = await contract_store.append("todo-1", [event])

    with pytest.raises(DuplicateEventError):
        await contract_store.append("todo-1", [TodoRenamed(description="new"), event])

    assert await _read_all(contract_store) == stored


async def test_stored_event_appended_at_another_version_raises_duplicate_event_error(
    contract_store: EventStore,
) -> None:
    event = TodoCreated(description="stored")
    stored = await contract_store.append("todo-1", [event], expected_version=0)
    stored += await contract_store.append("todo-1", _created("b"), expected_version=1)

    with pytest.raises(DuplicateEventError):
        await contract_store.append("todo-1", [event], expected_version=2)

    assert await _read_all(contract_store) == stored


async def test_same_event_id_twice_in_one_append_raises_duplicate_event_error(
    contract_store: EventStore,
) -> None:
    event = TodoCreated(description="a")
    twin = TodoCreated(event_id=event.event_id, description="b")

    with pytest.raises(DuplicateEventError):
        await contract_store.append("todo-1", [event, twin])

    assert await contract_store.last_position() == 0


async def test_same_event_id_in_two_streams_of_one_commit_raises_duplicate_event_error(
    contract_store: EventStore,
) -> None:
    event = TodoCreated(description="a")
    appends = [StreamAppend("a", [event]), StreamAppend("b", [event])]

    with pytest.raises(DuplicateEventError):
        await contract_store.append_streams(appends)

    assert await contract_store.last_position() == 0


async def test_stored_event_appended_to_another_stream_raises_duplicate_event_error(
    contract_store: EventStore,
) -> None:
    event = TodoCreated(description="a")
    stored = await contract_store.append("todo-1", [event])

    with pytest.raises(DuplicateEventError):
        await contract_store.append("todo-2", [event])

    assert await contract_store.stream_version("todo-2") == 0
    assert await _read_all(contract_store) == stored
