"""The event log, reads: positions, versions, streams and the global log."""

import uuid
from datetime import UTC, datetime

import pytest

from ...messages import Event
from ...stores.base import EventStore
from ._support import (
    ContractChild,
    ContractCustomName,
    ContractNote,
    ContractParent,
    ContractPayload,
    TodoCompleted,
    TodoCreated,
    TodoRenamed,
    _created,
    _positions,
    _read_all,
    _recorded,
    _versions,
)

__all__ = [
    "test_positions_strictly_increase_in_commit_order_across_streams",
    "test_read_all_returns_events_in_commit_order_across_streams",
    "test_last_position_is_zero_when_the_store_is_empty",
    "test_last_position_is_the_position_of_the_last_appended_event",
    "test_stream_version_is_zero_for_an_unknown_stream",
    "test_stream_version_is_the_version_of_the_streams_last_event",
    "test_read_stream_returns_the_streams_events_in_version_order",
    "test_read_stream_from_version_skips_earlier_events",
    "test_read_stream_to_version_stops_after_that_version",
    "test_read_stream_between_versions_returns_that_window",
    "test_read_stream_to_a_version_below_the_first_returns_nothing",
    "test_read_stream_from_beyond_the_end_returns_nothing",
    "test_read_stream_of_an_unknown_stream_returns_an_empty_list",
    "test_read_stream_returns_each_event_as_its_own_class",
    "test_read_events_equal_in_every_field_what_append_returned",
    "test_read_all_of_an_empty_store_yields_nothing",
    "test_read_all_from_position_yields_only_later_events",
    "test_read_all_from_the_last_position_yields_nothing",
    "test_read_all_filtered_by_class_yields_only_that_class",
    "test_read_all_filtered_by_class_includes_its_subclasses",
    "test_read_all_filtered_by_type_name_yields_only_that_type",
    "test_read_all_filtered_by_several_types_yields_any_of_them",
    "test_read_all_filtered_by_event_yields_every_event",
    "test_read_all_filtered_by_an_unstored_type_yields_nothing",
    "test_read_all_in_pages_yields_every_event_once_in_order",
    "test_read_all_filtered_in_pages_yields_every_match_once_in_order",
    "test_read_all_reaches_events_appended_while_iterating",
    "test_read_all_can_be_left_early_and_the_store_still_works",
    "test_read_all_with_a_page_size_below_one_raises_value_error",
]

# positions, last_position, stream_version


async def test_positions_strictly_increase_in_commit_order_across_streams(
    contract_store: EventStore,
) -> None:
    streams = ["a", "b", "a", "c", "b", "a"]

    stored = [
        (await contract_store.append(s, _created(f"{s}{i}", f"{s}{i}'")))[-1]
        for i, s in enumerate(streams)
    ]

    positions = _positions(stored)
    assert positions == sorted(set(positions))


async def test_read_all_returns_events_in_commit_order_across_streams(
    contract_store: EventStore,
) -> None:
    stored: list[Event] = []
    for i, stream in enumerate(["a", "b", "a", "c", "b"]):
        stored += await contract_store.append(stream, _created(f"{stream}{i}"))

    read = await _read_all(contract_store)

    assert read == stored


async def test_last_position_is_zero_when_the_store_is_empty(contract_store: EventStore) -> None:
    empty = contract_store

    last = await empty.last_position()

    assert last == 0


async def test_last_position_is_the_position_of_the_last_appended_event(
    contract_store: EventStore,
) -> None:
    await contract_store.append("a", _created("a1", "a2"))
    stored = await contract_store.append("b", _created("b1"))

    last = await contract_store.last_position()

    assert last == stored[-1].position


async def test_stream_version_is_zero_for_an_unknown_stream(contract_store: EventStore) -> None:
    await contract_store.append("a", _created("a1"))

    version = await contract_store.stream_version("b")

    assert version == 0


async def test_stream_version_is_the_version_of_the_streams_last_event(
    contract_store: EventStore,
) -> None:
    await contract_store.append("a", _created("a1", "a2"))
    await contract_store.append("b", _created("b1"))
    await contract_store.append("a", _created("a3"))

    version = await contract_store.stream_version("a")

    assert version == 3


# read_stream


async def test_read_stream_returns_the_streams_events_in_version_order(
    contract_store: EventStore,
) -> None:
    first = await contract_store.append("a", _created("a1", "a2"))
    await contract_store.append("b", _created("b1"))
    second = await contract_store.append("a", _created("a3"))

    events = await contract_store.read_stream("a")

    assert events == first + second
    assert _versions(events) == [1, 2, 3]


async def test_read_stream_from_version_skips_earlier_events(contract_store: EventStore) -> None:
    stored = await contract_store.append("a", _created("a1", "a2", "a3", "a4"))

    events = await contract_store.read_stream("a", from_version=3)

    assert events == stored[2:]


async def test_read_stream_to_version_stops_after_that_version(contract_store: EventStore) -> None:
    stored = await contract_store.append("a", _created("a1", "a2", "a3", "a4"))

    events = await contract_store.read_stream("a", to_version=2)

    assert events == stored[:2]


async def test_read_stream_between_versions_returns_that_window(contract_store: EventStore) -> None:
    stored = await contract_store.append("a", _created("a1", "a2", "a3", "a4"))

    events = await contract_store.read_stream("a", from_version=2, to_version=3)

    assert events == stored[1:3]


@pytest.mark.parametrize("to_version", [0, -1])
async def test_read_stream_to_a_version_below_the_first_returns_nothing(
    contract_store: EventStore, to_version: int
) -> None:
    await contract_store.append("a", _created("a1", "a2", "a3"))

    events = await contract_store.read_stream("a", to_version=to_version)

    assert events == []


async def test_read_stream_from_beyond_the_end_returns_nothing(contract_store: EventStore) -> None:
    await contract_store.append("a", _created("a1", "a2"))

    events = await contract_store.read_stream("a", from_version=3)

    assert events == []


async def test_read_stream_of_an_unknown_stream_returns_an_empty_list(
    contract_store: EventStore,
) -> None:
    await contract_store.append("a", _created("a1"))

    events = await contract_store.read_stream("unknown")

    assert events == []


async def test_read_stream_returns_each_event_as_its_own_class(contract_store: EventStore) -> None:
    todo = _recorded("1", "renamed")
    todo.complete()
    await contract_store.append(todo.stream_id, list(todo.pending_events))

    events = await contract_store.read_stream(todo.stream_id)

    assert [type(event) for event in events] == [TodoCreated, TodoRenamed, TodoCompleted]


async def test_read_events_equal_in_every_field_what_append_returned(
    contract_store: EventStore,
) -> None:
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
    stored = await contract_store.append("a", [payload, TodoCompleted()])

    from_stream = await contract_store.read_stream("a")
    from_log = await _read_all(contract_store)

    assert from_stream == stored
    assert from_log == stored


# read_all


async def test_read_all_of_an_empty_store_yields_nothing(contract_store: EventStore) -> None:
    empty = contract_store

    events = await _read_all(empty)

    assert events == []


async def test_read_all_from_position_yields_only_later_events(contract_store: EventStore) -> None:
    stored = await contract_store.append("a", _created("a1", "a2"))
    stored += await contract_store.append("b", _created("b1", "b2"))

    events = await _read_all(contract_store, from_position=_positions(stored)[1])

    assert events == stored[2:]


async def test_read_all_from_the_last_position_yields_nothing(contract_store: EventStore) -> None:
    await contract_store.append("a", _created("a1", "a2"))

    events = await _read_all(contract_store, from_position=await contract_store.last_position())

    assert events == []


async def test_read_all_filtered_by_class_yields_only_that_class(
    contract_store: EventStore,
) -> None:
    todo = _recorded("1", "renamed", "again")
    todo.complete()
    stored = await contract_store.append(todo.stream_id, list(todo.pending_events))

    events = await _read_all(contract_store, event_types=[TodoRenamed])

    assert events == stored[1:3]


async def test_read_all_filtered_by_class_includes_its_subclasses(
    contract_store: EventStore,
) -> None:
    stored = await contract_store.append(
        "a", [ContractParent(note="p"), ContractNote(text="n"), ContractChild(note="c", extra=1)]
    )

    events = await _read_all(contract_store, event_types=[ContractParent])

    assert events == [stored[0], stored[2]]


async def test_read_all_filtered_by_type_name_yields_only_that_type(
    contract_store: EventStore,
) -> None:
    stored = await contract_store.append(
        "a", [ContractParent(note="p"), ContractChild(note="c"), ContractCustomName(value=1)]
    )

    by_name = await _read_all(contract_store, event_types=["ContractParent"])
    by_custom_name = await _read_all(contract_store, event_types=["contract.custom-name"])

    assert by_name == [stored[0]]
    assert by_custom_name == [stored[2]]


async def test_read_all_filtered_by_several_types_yields_any_of_them(
    contract_store: EventStore,
) -> None:
    stored = await contract_store.append(
        "a", [ContractNote(text="n"), TodoCreated(description="t"), ContractCustomName(value=1)]
    )

    events = await _read_all(contract_store, event_types=[ContractCustomName, "ContractNote"])

    assert events == [stored[0], stored[2]]


async def test_read_all_filtered_by_event_yields_every_event(contract_store: EventStore) -> None:
    stored = await contract_store.append(
        "a", [ContractNote(text="n"), TodoCreated(description="t"), ContractCustomName(value=1)]
    )

    events = await _read_all(contract_store, event_types=[Event])

    assert events == stored


async def test_read_all_filtered_by_an_unstored_type_yields_nothing(
    contract_store: EventStore,
) -> None:
    await contract_store.append("a", _created("a1", "a2"))

    events = await _read_all(contract_store, event_types=[TodoCompleted, "NoSuchType"])

    assert events == []


async def test_read_all_in_pages_yields_every_event_once_in_order(
    contract_store: EventStore,
) -> None:
    stored: list[Event] = []
    for stream in ["a", "b", "c", "d", "e"]:
        stored += await contract_store.append(stream, _created(f"{stream}1", f"{stream}2"))

    events = await _read_all(contract_store, page_size=3)

    assert events == stored


async def test_read_all_filtered_in_pages_yields_every_match_once_in_order(
    contract_store: EventStore,
) -> None:
    events = [
        ContractNote(text=str(i)) if i % 2 else TodoCreated(description=str(i)) for i in range(11)
    ]
    stored = await contract_store.append("a", events)

    notes = await _read_all(contract_store, event_types=[ContractNote], page_size=2)

    assert notes == stored[1::2]


async def test_read_all_reaches_events_appended_while_iterating(contract_store: EventStore) -> None:
    stored = await contract_store.append("a", _created("a1", "a2", "a3", "a4", "a5"))
    events: list[Event] = []

    async for event in contract_store.read_all(page_size=2):
        events.append(event)
        if len(events) == 1:
            stored += await contract_store.append("b", _created("b1", "b2", "b3"))

    assert events == stored


async def test_read_all_can_be_left_early_and_the_store_still_works(
    contract_store: EventStore,
) -> None:
    stored = await contract_store.append("a", _created("a1", "a2", "a3", "a4", "a5"))
    seen: list[Event] = []
    async for event in contract_store.read_all(page_size=2):
        seen.append(event)
        if len(seen) == 3:
            break

    stored += await contract_store.append("a", _created("a6"))
    events = await _read_all(contract_store)

    assert seen == stored[:3]
    assert events == stored


async def test_read_all_with_a_page_size_below_one_raises_value_error(
    contract_store: EventStore,
) -> None:
    await contract_store.append("a", _created("a1"))

    with pytest.raises(ValueError, match="page_size"):
        contract_store.read_all(page_size=0)
