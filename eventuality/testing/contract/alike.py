"""Where stores used to differ, they behave alike: limits, cancellation, unreadable events."""

from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from ...errors import ConcurrencyError, EventSchemaError, UnknownEventType
from ...messages import Event, _registry
from ...stores.base import MAX_STREAM_ID_BYTES, EventStore, StreamAppend
from ._support import TodoCreated, _refused_when_cancelled

__all__ = [
    "test_a_stream_id_of_the_longest_allowed_size_is_stored",
    "test_a_stream_id_over_the_limit_is_refused_and_nothing_is_written",
    "test_dispatch_metadata_with_nan_is_refused_before_anything_is_written",
    "test_other_tasks_run_while_a_loop_of_appends_runs",
    "test_concurrent_checked_appends_interleave_and_exactly_one_wins",
    "test_an_unknown_stored_type_names_its_stream_and_position_and_reading_goes_on",
    "test_a_payload_that_no_longer_fits_its_class_names_stream_and_position",
    "test_every_log_operation_is_a_cancellation_point",
]


class AlikeNote(Event):
    text: str


@pytest.mark.parametrize("character", ["a", "é", "€", "😀"])
async def test_a_stream_id_of_the_longest_allowed_size_is_stored(
    contract_store: EventStore, character: str
) -> None:
    width = len(character.encode())
    stream_id = character * (MAX_STREAM_ID_BYTES // width)

    await contract_store.append(stream_id, [AlikeNote(text="x")])

    assert [e.payload for e in await contract_store.read_stream(stream_id)] == [{"text": "x"}]


@pytest.mark.parametrize("character", ["a", "é"])
async def test_a_stream_id_over_the_limit_is_refused_and_nothing_is_written(
    contract_store: EventStore, character: str
) -> None:
    width = len(character.encode())
    stream_id = character * (MAX_STREAM_ID_BYTES // width + 1)

    with pytest.raises(ValueError, match=f"at most {MAX_STREAM_ID_BYTES} bytes"):
        await contract_store.append(stream_id, [AlikeNote(text="x")])

    assert await contract_store.last_position() == 0


async def test_dispatch_metadata_with_nan_is_refused_before_anything_is_written(
    contract_store: EventStore,
) -> None:
    with pytest.raises(ValueError, match="JSON numbers only"):
        await contract_store.append_streams(
            [StreamAppend("notes-1", [AlikeNote(text="x")])], metadata={"score": float("nan")}
        )

    assert await contract_store.last_position() == 0


async def test_other_tasks_run_while_a_loop_of_appends_runs(contract_store: EventStore) -> None:
    turns = 0

    async def other() -> None:
        nonlocal turns
        while True:
            turns += 1
            await anyio.lowlevel.checkpoint()

    async with anyio.create_task_group() as group:
        group.start_soon(other)
        for i in range(20):
            await contract_store.append(f"notes-{i}", [AlikeNote(text="x")])
        group.cancel_scope.cancel()

    assert turns > 0


async def test_concurrent_checked_appends_interleave_and_exactly_one_wins(
    contract_store: EventStore,
) -> None:
    await contract_store.append("notes-1", [AlikeNote(text="first")])
    outcomes: list[str] = []
    read = 0
    all_read = anyio.Event()

    async def writer(n: int) -> None:
        nonlocal read
        version = await contract_store.stream_version("notes-1")
        read += 1
        if read == 10:
            all_read.set()
        await all_read.wait()
        try:
            await contract_store.append(
                "notes-1", [AlikeNote(text=str(n))], expected_version=version
            )
            outcomes.append("won")
        except ConcurrencyError:
            outcomes.append("lost")

    async with anyio.create_task_group() as group:
        for n in range(10):
            group.start_soon(writer, n)

    assert sorted(outcomes) == ["lost"] * 9 + ["won"]
    assert await contract_store.stream_version("notes-1") == 2


async def test_an_unknown_stored_type_names_its_stream_and_position_and_reading_goes_on(
    contract_store: EventStore,
) -> None:
    class AlikeGone(Event):
        __event_type__ = "alike.gone"

    await contract_store.append("gone-1", [AlikeGone()])
    await contract_store.append("todo-1", [TodoCreated(description="after")])
    _registry.pop("alike.gone")
    reader = contract_store.read_all()

    with pytest.raises(UnknownEventType) as caught:
        await reader.__anext__()
    following = await reader.__anext__()

    assert caught.value.stream_id == "gone-1"
    assert caught.value.position is not None
    assert "gone-1" in str(caught.value)
    assert isinstance(following, TodoCreated)


async def test_a_payload_that_no_longer_fits_its_class_names_stream_and_position(
    contract_store: EventStore,
) -> None:
    class AlikeShape(Event):
        __event_type__ = "alike.shape"
        text: str

    (stored,) = await contract_store.append("shape-1", [AlikeShape(text="x")])
    _registry.pop("alike.shape")

    class AlikeShapeNow(Event):
        __event_type__ = "alike.shape"
        number: int

    try:
        with pytest.raises(EventSchemaError) as caught:
            await contract_store.read_stream("shape-1")
    finally:
        _registry.pop("alike.shape")

    assert caught.value.stream_id == "shape-1"
    assert caught.value.position == stored.position
    assert "shape-1" in str(caught.value)


def _log_operations(store: EventStore) -> dict[str, Callable[[], Awaitable[Any]]]:
    return {
        "append": lambda: store.append("notes-1", [AlikeNote(text="x")]),
        "read_stream": lambda: store.read_stream("notes-1"),
        "stream_version": lambda: store.stream_version("notes-1"),
        "last_position": store.last_position,
    }


@pytest.mark.parametrize("operation", ["append", "read_stream", "stream_version", "last_position"])
async def test_every_log_operation_is_a_cancellation_point(
    contract_store: EventStore, operation: str
) -> None:
    call = _log_operations(contract_store)[operation]

    await _refused_when_cancelled(operation, call)

    assert await contract_store.last_position() == 0
    if contract_store.capabilities.checkpoints:
        assert await contract_store.get_checkpoint("c") is None
