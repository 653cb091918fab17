"""Stream lifecycle: delete, truncate, archive and restore (skipped on a store without the
``stream_lifecycle`` tier). Each refuses bad input writing nothing, and leaves the global log a
record that subscriptions can react to; ``streams_atomic`` checks they are all or nothing.
"""

from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import pytest

from ...errors import (
    ConcurrencyError,
    StreamArchived,
    StreamDeleted,
    StreamLifecycleError,
    StreamNotFound,
)
from ...messages import Event
from ...repository import Repository
from ...stores.base import EventStore
from ...stores.lifecycle import LIFECYCLE_STREAM, StreamArchival, StreamRestoration, Tombstone
from ._support import (
    Todo,
    _created,
    _positions,
    _read_all,
    _snapshot,
    _versions,
    requires,
)

__all__ = [
    "test_delete_stream_appends_a_tombstone_to_the_global_log",
    "test_a_deleted_stream_refuses_reads_and_appends",
    "test_a_deleted_stream_id_is_never_reused",
    "test_a_repository_load_of_a_deleted_stream_raises_stream_deleted",
    "test_delete_with_a_stale_expected_version_raises_and_deletes_nothing",
    "test_delete_of_an_unknown_stream_is_refused_and_writes_nothing",
    "test_delete_twice_raises_stream_deleted",
    "test_delete_removes_the_streams_snapshots",
    "test_delete_leaves_other_streams_alone",
    "test_truncate_removes_older_events_and_keeps_versions_positions_and_version",
    "test_truncate_without_a_snapshot_is_refused_unless_opted_out",
    "test_a_repository_loads_a_truncated_stream_from_its_snapshot",
    "test_truncate_with_before_out_of_range_is_refused_and_writes_nothing",
    "test_archive_moves_events_out_of_the_log_and_read_archived_returns_them",
    "test_an_archived_stream_refuses_reads_and_appends_saying_how_to_restore",
    "test_restore_brings_events_back_at_their_versions_and_positions",
    "test_restore_of_a_stream_that_is_not_archived_is_refused",
    "test_delete_of_an_archived_stream_removes_its_archive",
    "test_the_lifecycle_stream_itself_cannot_be_deleted_truncated_or_archived",
]

_STREAM = "Todo-1"


async def _stream_of(store: EventStore, stream_id: str, count: int) -> list[Event]:
    return await store.append(stream_id, _created(*(f"t{i}" for i in range(count))))


async def _log(store: EventStore, *known: Event) -> list[Event]:
    """The global log, once the highest position among ``known`` is readable: a store whose
    readers wait for transactions still running (PostgreSQL) may not show it at once."""
    through = max(_positions(list(known)), default=0)
    deadline = anyio.current_time() + 60
    while await store.last_position() < through and anyio.current_time() < deadline:
        await store.wait_appended(through - 1, timeout=1)
    return await _read_all(store)


def _lifecycle(event: Event) -> bool:
    return isinstance(event, Tombstone | StreamArchival | StreamRestoration)


async def test_delete_stream_appends_a_tombstone_to_the_global_log(
    lifecycle_store: EventStore,
) -> None:
    await _stream_of(lifecycle_store, _STREAM, 3)

    tombstone = await lifecycle_store.delete_stream(_STREAM)

    assert isinstance(tombstone, Tombstone)
    assert (tombstone.stream_id, tombstone.last_version) == (_STREAM, 3)
    logged = await _log(lifecycle_store, tombstone)
    assert logged == [tombstone]
    assert tombstone.event_type == "eventuality.Tombstone"
    assert await lifecycle_store.last_position() == tombstone.position


async def test_a_deleted_stream_refuses_reads_and_appends(lifecycle_store: EventStore) -> None:
    await _stream_of(lifecycle_store, _STREAM, 2)
    tombstone = await lifecycle_store.delete_stream(_STREAM)
    calls: list[Callable[[], Awaitable[object]]] = [
        lambda: lifecycle_store.read_stream(_STREAM),
        lambda: lifecycle_store.stream_version(_STREAM),
        lambda: lifecycle_store.append(_STREAM, _created("again")),
        lambda: lifecycle_store.append(_STREAM, _created("again"), expected_version=2),
    ]

    for call in calls:
        with pytest.raises(StreamDeleted) as caught:
            await call()
        assert (caught.value.stream_id, caught.value.version) == (_STREAM, 2)

    assert await _log(lifecycle_store, tombstone) == [tombstone]


async def test_a_deleted_stream_id_is_never_reused(lifecycle_store: EventStore) -> None:
    todos = Repository(Todo, lifecycle_store)
    await todos.add(id="1", description="first")
    tombstone = await lifecycle_store.delete_stream(_STREAM)

    with pytest.raises(StreamDeleted, match="never reused"):
        await todos.add(id="1", description="second")

    assert await _log(lifecycle_store, tombstone) == [tombstone]


async def test_a_repository_load_of_a_deleted_stream_raises_stream_deleted(
    lifecycle_store: EventStore,
) -> None:
    todos = Repository(Todo, lifecycle_store)
    await todos.add(id="1", description="first")
    await lifecycle_store.delete_stream(_STREAM)

    with pytest.raises(StreamDeleted, match="Todo-1"):
        await todos.load("1")


async def test_delete_with_a_stale_expected_version_raises_and_deletes_nothing(
    lifecycle_store: EventStore,
) -> None:
    stored = await _stream_of(lifecycle_store, _STREAM, 3)

    with pytest.raises(ConcurrencyError) as caught:
        await lifecycle_store.delete_stream(_STREAM, expected_version=2)

    assert caught.value.actual_version == 3
    assert await lifecycle_store.read_stream(_STREAM) == stored
    assert await _log(lifecycle_store, *stored) == stored


@pytest.mark.parametrize("operation", ["delete", "archive", "truncate"])
async def test_delete_of_an_unknown_stream_is_refused_and_writes_nothing(
    lifecycle_store: EventStore, operation: str
) -> None:
    other = await _stream_of(lifecycle_store, "Todo-other", 1)
    calls: dict[str, Callable[[], Awaitable[object]]] = {
        "delete": lambda: lifecycle_store.delete_stream(_STREAM),
        "archive": lambda: lifecycle_store.archive_stream(_STREAM),
        "truncate": lambda: lifecycle_store.truncate_stream(_STREAM, 1),
    }

    with pytest.raises(StreamNotFound, match="has no events") as caught:
        await calls[operation]()

    assert caught.value.stream_id == _STREAM
    assert await _log(lifecycle_store, *other) == other
    assert await lifecycle_store.stream_version(_STREAM) == 0
    assert await lifecycle_store.append(_STREAM, _created("now")) != []


async def test_delete_twice_raises_stream_deleted(lifecycle_store: EventStore) -> None:
    await _stream_of(lifecycle_store, _STREAM, 1)
    tombstone = await lifecycle_store.delete_stream(_STREAM)

    with pytest.raises(StreamDeleted):
        await lifecycle_store.delete_stream(_STREAM)

    assert await _log(lifecycle_store, tombstone) == [tombstone]


async def test_delete_removes_the_streams_snapshots(lifecycle_store: EventStore) -> None:
    requires(lifecycle_store, "snapshots")
    await _stream_of(lifecycle_store, _STREAM, 2)
    await lifecycle_store.save_snapshot(_snapshot(_STREAM, 2))

    await lifecycle_store.delete_stream(_STREAM)

    assert await lifecycle_store.load_snapshot(_STREAM) is None


async def test_delete_leaves_other_streams_alone(lifecycle_store: EventStore) -> None:
    before = await _stream_of(lifecycle_store, "Todo-0", 2)
    await _stream_of(lifecycle_store, _STREAM, 2)
    after = await _stream_of(lifecycle_store, "Todo-2", 2)

    tombstone = await lifecycle_store.delete_stream(_STREAM)

    assert await _log(lifecycle_store, tombstone) == [*before, *after, tombstone]
    assert await lifecycle_store.read_stream("Todo-2") == after
    assert _versions(await lifecycle_store.append("Todo-0", _created("more"))) == [3]


async def test_truncate_removes_older_events_and_keeps_versions_positions_and_version(
    lifecycle_store: EventStore,
) -> None:
    stored = await _stream_of(lifecycle_store, _STREAM, 5)

    removed = await lifecycle_store.truncate_stream(_STREAM, 3, require_snapshot=False)

    assert removed == 2
    kept = await lifecycle_store.read_stream(_STREAM)
    assert kept == stored[2:]
    assert _positions(kept) == _positions(stored[2:])
    assert await _log(lifecycle_store, *stored) == stored[2:]
    assert await lifecycle_store.stream_version(_STREAM) == 5
    assert await lifecycle_store.read_stream(_STREAM, from_version=4, to_version=4) == [stored[3]]
    assert _versions(await lifecycle_store.append(_STREAM, _created("next"))) == [6]
    with pytest.raises(ConcurrencyError):
        await lifecycle_store.append(_STREAM, _created("stale"), expected_version=5)


async def test_truncate_without_a_snapshot_is_refused_unless_opted_out(
    lifecycle_store: EventStore,
) -> None:
    stored = await _stream_of(lifecycle_store, _STREAM, 4)

    with pytest.raises(StreamLifecycleError, match="require_snapshot=False") as caught:
        await lifecycle_store.truncate_stream(_STREAM, 3)

    assert caught.value.stream_id == _STREAM
    assert await lifecycle_store.read_stream(_STREAM) == stored
    assert await lifecycle_store.truncate_stream(_STREAM, 3, require_snapshot=False) == 2


async def test_a_repository_loads_a_truncated_stream_from_its_snapshot(
    lifecycle_store: EventStore,
) -> None:
    requires(lifecycle_store, "snapshots")
    todos = Repository(Todo, lifecycle_store, snapshot_every=3)
    todo = Todo.create(id="1", description="first")
    for name in ("b", "c", "d"):
        todo.rename(name)
    await todos.save(todo)  # versions 1-4, a snapshot at 4
    todo.complete()
    await todos.save(todo)  # version 5

    removed = await lifecycle_store.truncate_stream(_STREAM, 5)

    assert removed == 4
    for repository in (todos, Repository(Todo, lifecycle_store)):
        loaded = await repository.load("1")
        assert (loaded.version, loaded.description, loaded.completed) == (5, "d", True)
    loaded.rename("e")
    await todos.save(loaded)
    assert _versions(await lifecycle_store.read_stream(_STREAM)) == [5, 6]


@pytest.mark.parametrize("before", [0, -1, 6, 100, True, "2"])
async def test_truncate_with_before_out_of_range_is_refused_and_writes_nothing(
    lifecycle_store: EventStore, before: Any
) -> None:
    stored = await _stream_of(lifecycle_store, _STREAM, 5)

    with pytest.raises(ValueError, match="before") as caught:
        await lifecycle_store.truncate_stream(_STREAM, before, require_snapshot=False)

    assert "Nothing was changed" in str(caught.value) or "nothing was changed" in str(caught.value)
    assert await lifecycle_store.read_stream(_STREAM) == stored


async def test_archive_moves_events_out_of_the_log_and_read_archived_returns_them(
    lifecycle_store: EventStore,
) -> None:
    other = await _stream_of(lifecycle_store, "Todo-0", 1)
    stored = await _stream_of(lifecycle_store, _STREAM, 3)

    marker = await lifecycle_store.archive_stream(_STREAM, expected_version=3)

    assert isinstance(marker, StreamArchival)
    assert (marker.stream_id, marker.last_version) == (_STREAM, 3)
    assert await _log(lifecycle_store, marker) == [*other, marker]
    assert await lifecycle_store.read_archived(_STREAM) == stored
    assert await lifecycle_store.read_archived("Todo-0") == []
    assert await lifecycle_store.last_position() == marker.position


async def test_an_archived_stream_refuses_reads_and_appends_saying_how_to_restore(
    lifecycle_store: EventStore,
) -> None:
    await Repository(Todo, lifecycle_store).add(id="1", description="first")
    await lifecycle_store.archive_stream(_STREAM)
    calls: list[Callable[[], Awaitable[object]]] = [
        lambda: lifecycle_store.read_stream(_STREAM),
        lambda: lifecycle_store.stream_version(_STREAM),
        lambda: lifecycle_store.append(_STREAM, _created("again")),
        lambda: Repository(Todo, lifecycle_store).load("1"),
        lambda: lifecycle_store.archive_stream(_STREAM),
        lambda: lifecycle_store.truncate_stream(_STREAM, 1),
    ]

    for call in calls:
        with pytest.raises(StreamArchived, match="restore_stream") as caught:
            await call()
        assert (caught.value.stream_id, caught.value.version) == (_STREAM, 1)


async def test_restore_brings_events_back_at_their_versions_and_positions(
    lifecycle_store: EventStore,
) -> None:
    stored = await _stream_of(lifecycle_store, _STREAM, 3)
    archived = await lifecycle_store.archive_stream(_STREAM)

    restored = await lifecycle_store.restore_stream(_STREAM)

    assert isinstance(restored, StreamRestoration)
    assert restored.last_version == 3
    assert await lifecycle_store.read_stream(_STREAM) == stored
    assert await _log(lifecycle_store, restored) == [*stored, archived, restored]
    assert await lifecycle_store.read_archived(_STREAM) == []
    assert await lifecycle_store.stream_version(_STREAM) == 3
    assert _versions(await lifecycle_store.append(_STREAM, _created("next"))) == [4]


async def test_restore_of_a_stream_that_is_not_archived_is_refused(
    lifecycle_store: EventStore,
) -> None:
    await _stream_of(lifecycle_store, _STREAM, 2)
    await _stream_of(lifecycle_store, "Todo-gone", 1)
    tombstone = await lifecycle_store.delete_stream("Todo-gone")
    await _log(lifecycle_store, tombstone)
    last = await lifecycle_store.last_position()

    with pytest.raises(StreamLifecycleError, match="not archived"):
        await lifecycle_store.restore_stream(_STREAM)
    with pytest.raises(StreamDeleted):
        await lifecycle_store.restore_stream("Todo-gone")
    with pytest.raises(StreamNotFound):
        await lifecycle_store.restore_stream("Todo-never")

    assert await lifecycle_store.last_position() == last


async def test_delete_of_an_archived_stream_removes_its_archive(
    lifecycle_store: EventStore,
) -> None:
    await _stream_of(lifecycle_store, _STREAM, 2)
    await lifecycle_store.archive_stream(_STREAM)

    tombstone = await lifecycle_store.delete_stream(_STREAM, expected_version=2)

    assert tombstone.last_version == 2
    assert await lifecycle_store.read_archived(_STREAM) == []
    with pytest.raises(StreamDeleted):
        await lifecycle_store.restore_stream(_STREAM)


async def test_the_lifecycle_stream_itself_cannot_be_deleted_truncated_or_archived(
    lifecycle_store: EventStore,
) -> None:
    await _stream_of(lifecycle_store, _STREAM, 1)
    await lifecycle_store.delete_stream(_STREAM)
    calls: list[Callable[[], Awaitable[object]]] = [
        lambda: lifecycle_store.delete_stream(LIFECYCLE_STREAM),
        lambda: lifecycle_store.archive_stream(LIFECYCLE_STREAM),
        lambda: lifecycle_store.truncate_stream(LIFECYCLE_STREAM, 1),
    ]

    for call in calls:
        with pytest.raises(StreamLifecycleError, match="stays whole"):
            await call()

    assert len(await lifecycle_store.read_stream(LIFECYCLE_STREAM)) == 1
