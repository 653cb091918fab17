"""Stream lifecycle, all or nothing (skipped on a store without the ``stream_lifecycle`` tier):
a cancelled delete, truncate or archive leaves the stream as before or as after, appends racing
one end on one side of it, and what they did survives reopening a durable store.
"""

from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import pytest

from ...errors import ConcurrencyError, StreamArchived, StreamDeleted
from ...messages import Event
from ...stores.base import EventStore
from ...stores.lifecycle import Tombstone
from ._support import (
    StoreFactory,
    TodoCreated,
    _created,
    _positions,
    _refused_when_cancelled,
    _versions,
    requires,
)
from .streams import _STREAM, _lifecycle, _log, _stream_of

__all__ = [
    "test_a_cancelled_lifecycle_operation_leaves_all_of_it_or_none",
    "test_a_cancelled_scope_stops_a_lifecycle_operation_before_it_writes",
    "test_appends_racing_a_delete_leave_no_half_state",
    "test_appends_racing_an_archive_leave_no_half_state",
    "test_a_deletion_and_an_archive_survive_reopening_the_store",
]


_OPERATIONS: dict[str, Callable[[EventStore, str], Awaitable[object]]] = {
    "delete": lambda store, stream_id: store.delete_stream(stream_id),
    "truncate": lambda store, stream_id: store.truncate_stream(
        stream_id, 3, require_snapshot=False
    ),
    "archive": lambda store, stream_id: store.archive_stream(stream_id),
}


async def _state_of(store: EventStore, stream_id: str, ids: list[Any]) -> tuple[Any, ...]:
    """What a reader sees of ``stream_id``, whose events were ``ids``."""
    try:
        live: object = [e.event_id for e in await store.read_stream(stream_id)]
    except (StreamDeleted, StreamArchived) as exc:
        live = type(exc).__name__
    settled = await store.append("Todo-settle", _created("settle"))  # after what went before
    logged = await _log(store, *settled)
    in_log = [e.event_id for e in logged if e.event_id in ids]
    markers = [type(e).__name__ for e in logged if _lifecycle(e) and e.stream_id == stream_id]  # type: ignore[attr-defined]
    archived = [e.event_id for e in await store.read_archived(stream_id)]
    return live, in_log, archived, markers


@pytest.mark.parametrize("operation", sorted(_OPERATIONS))
async def test_a_cancelled_lifecycle_operation_leaves_all_of_it_or_none(
    lifecycle_store: EventStore, operation: str
) -> None:
    # Deadlines from "at once" to "long after it is done": wherever the cancellation lands,
    # the stream is either as before or as after, never in between.
    for n, delay in enumerate((0, 1e-6, 1e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 0.1, 5.0)):
        stream_id = f"Todo-cancel-{n}"
        ids = [e.event_id for e in await _stream_of(lifecycle_store, stream_id, 4)]
        before = await _state_of(lifecycle_store, stream_id, ids)

        with anyio.move_on_after(delay):
            await _OPERATIONS[operation](lifecycle_store, stream_id)

        found = await _state_of(lifecycle_store, stream_id, ids)
        if found != before:
            assert found == _done(operation, ids), f"half done after a {delay} s deadline"


def _done(operation: str, ids: list[Any]) -> tuple[Any, ...]:
    if operation == "delete":
        return "StreamDeleted", [], [], ["Tombstone"]
    if operation == "archive":
        return "StreamArchived", [], ids, ["StreamArchival"]
    return ids[2:], ids[2:], [], []


@pytest.mark.parametrize("operation", sorted(_OPERATIONS))
async def test_a_cancelled_scope_stops_a_lifecycle_operation_before_it_writes(
    lifecycle_store: EventStore, operation: str
) -> None:
    stored = await _stream_of(lifecycle_store, _STREAM, 4)

    await _refused_when_cancelled(
        operation, lambda: _OPERATIONS[operation](lifecycle_store, _STREAM)
    )

    assert await lifecycle_store.read_stream(_STREAM) == stored
    assert await _log(lifecycle_store, *stored) == stored


async def _race(
    store: EventStore, operation: Callable[[], Awaitable[Event]]
) -> tuple[list[Event], list[BaseException], Event]:
    """Ten appends to the stream and ``operation`` at once; what each got."""
    appended: list[Event] = []
    refused: list[BaseException] = []
    marker: list[Event] = []

    async def append(n: int) -> None:
        try:
            appended.extend(await store.append(_STREAM, _created(f"r{n}a", f"r{n}b")))
        except (StreamDeleted, StreamArchived, ConcurrencyError) as exc:
            refused.append(exc)

    async def run() -> None:
        marker.append(await operation())

    async with anyio.create_task_group() as group:
        for n in range(5):
            group.start_soon(append, n)
        group.start_soon(run)
        for n in range(5, 10):
            group.start_soon(append, n)
    return appended, refused, marker[0]


async def test_appends_racing_a_delete_leave_no_half_state(lifecycle_store: EventStore) -> None:
    first = await _stream_of(lifecycle_store, _STREAM, 1)

    appended, refused, tombstone = await _race(
        lifecycle_store, lambda: lifecycle_store.delete_stream(_STREAM)
    )

    assert len(appended) + 2 * len(refused) == 20
    assert isinstance(tombstone, Tombstone)
    assert tombstone.last_version == 1 + len(appended)
    assert all(_positions([e])[0] < _positions([tombstone])[0] for e in appended)
    assert await _log(lifecycle_store, tombstone) == [tombstone]
    with pytest.raises(StreamDeleted):
        await lifecycle_store.read_stream(_STREAM)
    assert first


async def test_appends_racing_an_archive_leave_no_half_state(lifecycle_store: EventStore) -> None:
    first = await _stream_of(lifecycle_store, _STREAM, 1)

    appended, refused, marker = await _race(
        lifecycle_store, lambda: lifecycle_store.archive_stream(_STREAM)
    )

    assert len(appended) + 2 * len(refused) == 20
    assert marker.last_version == 1 + len(appended)  # type: ignore[attr-defined]
    archived = await lifecycle_store.read_archived(_STREAM)
    assert sorted(_positions(archived)) == sorted(_positions([*first, *appended]))
    assert _versions(archived) == list(range(1, 2 + len(appended)))
    assert await _log(lifecycle_store, marker) == [marker]


async def test_a_deletion_and_an_archive_survive_reopening_the_store(
    contract_store_factory: StoreFactory,
) -> None:
    async with contract_store_factory() as store:
        requires(store, "durable")
        requires(store, "stream_lifecycle")
        await _stream_of(store, "Todo-deleted", 2)
        archived = await _stream_of(store, "Todo-archived", 2)
        await store.delete_stream("Todo-deleted")
        await store.archive_stream("Todo-archived")

    async with contract_store_factory() as reopened:
        with pytest.raises(StreamDeleted):
            await reopened.append("Todo-deleted", [TodoCreated(description="x")])
        with pytest.raises(StreamArchived):
            await reopened.append("Todo-archived", [TodoCreated(description="x")])
        assert await reopened.read_archived("Todo-archived") == archived
