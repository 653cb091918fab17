"""The SQLite store's stream lifecycle: delete, truncate, archive and restore, each one
function run whole on the writer's thread in one ``BEGIN IMMEDIATE`` transaction (so one
thread round trip, and all of it or none), plus the backend mixin that calls them. A caller
cancelled while waiting for the writer gives up; once its function runs, the caller waits
for it (shielded, as group commits do), so what it saw is what the store holds.

Per-stream state lives in ``eventuality_streams`` and archived rows, unchanged, in
``eventuality_archive`` (schema 2). A lifecycle event's position is taken *before* rows leave
``eventuality_events``: the last position is the highest one there, and must never go back.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import anyio

from ..errors import StreamLifecycleError
from . import _sqlite_ops as ops
from .lifecycle import (
    LIFECYCLE_STREAM,
    Marker,
    StreamState,
    check_archived,
    check_live,
    check_truncation,
    refuse_gone,
)
from .rows import AppendRequest, StoredEvent

__all__ = ["SQLiteLifecycle", "live_stream_version", "read_live_stream"]

T = TypeVar("T")

_COLUMNS = (
    "position, stream_id, version, event_type, schema_version, data, metadata, event_id, "
    "aggregate_id, occurred_at"
)
_READ_COLUMNS = (
    "stream_id, version, event_type, schema_version, data, metadata, event_id, aggregate_id, "
    "occurred_at, position"
)
_SET_STATE = (
    "INSERT INTO eventuality_streams (stream_id, state, version) VALUES (?, ?, ?) "
    "ON CONFLICT (stream_id) DO UPDATE SET state = excluded.state, version = excluded.version, "
    "changed_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"
)


def read_live_stream(
    db: sqlite3.Connection,
    stream_id: str,
    from_version: int,
    to_version: int | None,
    limit: int = -1,
) -> list[StoredEvent]:
    """``_sqlite_ops.read_stream`` for the store's callers: none found, a deleted or archived stream
    raises (looked up in the same call, so in no round trip of its own)."""
    rows = ops.read_stream(db, stream_id, from_version, to_version, limit)
    if not rows:
        refuse_gone(stream_id, ops.stream_state(db, stream_id), "read the stream")
    return rows


def live_stream_version(db: sqlite3.Connection, stream_id: str) -> int:
    """``_sqlite_ops.stream_version`` for the store's callers: 0 for a deleted or archived stream
    raises instead."""
    version = ops.stream_version(db, stream_id)
    if version == 0:
        refuse_gone(stream_id, ops.stream_state(db, stream_id), "read the stream's version")
    return version


def _last(db: sqlite3.Connection, table: str, stream_id: str) -> tuple[int, str | None]:
    """The version and aggregate id of the stream's last row in ``table``; (0, None) if none."""
    found = db.execute(
        f"SELECT version, aggregate_id FROM {table} WHERE stream_id = ? "
        "ORDER BY version DESC LIMIT 1",
        (stream_id,),
    ).fetchone()
    return (0, None) if found is None else (found[0], found[1])


def _in_transaction(db: sqlite3.Connection, work: Callable[[], T]) -> T:
    db.execute("BEGIN IMMEDIATE")
    try:
        result = work()
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    return result


def _record(db: sqlite3.Connection, row: StoredEvent, position: int) -> StoredEvent:
    """Append the lifecycle event after ``position`` (the last position before any row left)."""
    stored, _ = ops._insert(db, [AppendRequest(LIFECYCLE_STREAM, None, (row,))], position, {})
    return stored[0]


def delete_stream(
    db: sqlite3.Connection, stream_id: str, expected: int | None, marker: Marker
) -> StoredEvent:
    def work() -> StoredEvent:
        state = ops.stream_state(db, stream_id)
        last = _last(db, "eventuality_events", stream_id)
        if last[0] == 0:
            last = _last(db, "eventuality_archive", stream_id)
        operation = "delete the stream"
        version = check_live(stream_id, state, last[0], operation, expected, allow_archived=True)
        row = marker(version, last[1])
        position = ops.last_position(db)
        for table in ("eventuality_events", "eventuality_archive", "eventuality_snapshots"):
            db.execute(f"DELETE FROM {table} WHERE stream_id = ?", (stream_id,))
        db.execute(_SET_STATE, (stream_id, "deleted", version))
        return _record(db, row, position)

    return _in_transaction(db, work)


def truncate_stream(
    db: sqlite3.Connection, stream_id: str, before: int, require_snapshot: bool
) -> int:
    def work() -> int:
        state = ops.stream_state(db, stream_id)
        version = ops.stream_version(db, stream_id)
        snapshot = db.execute(
            "SELECT max(version) FROM eventuality_snapshots WHERE stream_id = ?", (stream_id,)
        ).fetchone()[0]
        check_truncation(stream_id, state, version, before, snapshot, require_snapshot)
        gone = db.execute(
            "DELETE FROM eventuality_events WHERE stream_id = ? AND version < ?",
            (stream_id, before),
        ).rowcount
        db.execute(
            "DELETE FROM eventuality_snapshots WHERE stream_id = ? AND version < ?",
            (stream_id, before - 1),
        )
        return int(gone)

    return _in_transaction(db, work)


def archive_stream(
    db: sqlite3.Connection, stream_id: str, expected: int | None, marker: Marker
) -> StoredEvent:
    def work() -> StoredEvent:
        state = ops.stream_state(db, stream_id)
        version, aggregate_id = _last(db, "eventuality_events", stream_id)
        check_live(stream_id, state, version, "archive the stream", expected)
        row = marker(version, aggregate_id)
        position = ops.last_position(db)
        db.execute(
            f"INSERT INTO eventuality_archive ({_COLUMNS}) "
            f"SELECT {_COLUMNS} FROM eventuality_events WHERE stream_id = ?",
            (stream_id,),
        )
        db.execute("DELETE FROM eventuality_events WHERE stream_id = ?", (stream_id,))
        db.execute(_SET_STATE, (stream_id, "archived", version))
        return _record(db, row, position)

    return _in_transaction(db, work)


def restore_stream(db: sqlite3.Connection, stream_id: str, marker: Marker) -> StoredEvent:
    def work() -> StoredEvent:
        found = check_archived(
            stream_id, ops.stream_state(db, stream_id), ops.stream_version(db, stream_id)
        )
        _, aggregate_id = _last(db, "eventuality_archive", stream_id)
        row = marker(found.version, aggregate_id)
        position = ops.last_position(db)
        try:
            db.execute(
                f"INSERT INTO eventuality_events ({_COLUMNS}) "
                f"SELECT {_COLUMNS} FROM eventuality_archive WHERE stream_id = ?",
                (stream_id,),
            )
        except sqlite3.IntegrityError as exc:
            raise StreamLifecycleError(
                f"cannot restore stream {stream_id!r}: one of its archived events' ids was "
                f"appended again while it was archived ({exc}). Nothing was changed; read the "
                "archive with store.read_archived() to see which.",
                stream_id=stream_id,
                operation="restore the stream",
            ) from None
        db.execute("DELETE FROM eventuality_archive WHERE stream_id = ?", (stream_id,))
        db.execute("DELETE FROM eventuality_streams WHERE stream_id = ?", (stream_id,))
        return _record(db, row, position)

    return _in_transaction(db, work)


def read_archived(db: sqlite3.Connection, stream_id: str) -> list[StoredEvent]:
    found = db.execute(
        f"SELECT {_READ_COLUMNS} FROM eventuality_archive WHERE stream_id = ? ORDER BY version",
        (stream_id,),
    ).fetchall()
    return [ops._stored(row) for row in found]


class SQLiteLifecycle:
    """The ``stream_lifecycle`` tier of :class:`~eventuality.stores.sqlite.SQLiteBackend`:
    writes hold the writer (appends in this process wait), reads go where small reads go."""

    if TYPE_CHECKING:
        _writer_lock: anyio.Lock

        async def _write(self, what: str, function: Callable[..., T], *args: Any) -> T: ...
        async def _read(self, what: str, function: Callable[..., T], *args: Any) -> T: ...
        def _notify(self) -> None: ...

    async def stream_state(self, stream_id: str) -> StreamState | None:
        return await self._read("read a stream's state", ops.stream_state, stream_id)

    async def delete_stream(
        self, stream_id: str, expected_version: int | None, marker: Marker
    ) -> StoredEvent:
        return await self._marked(
            "delete a stream", delete_stream, stream_id, expected_version, marker
        )

    async def truncate_stream(self, stream_id: str, before: int, require_snapshot: bool) -> int:
        async with self._writer_lock:
            with anyio.CancelScope(shield=True):  # begun: the caller learns how it ended
                removed = await self._write(
                    "truncate a stream", truncate_stream, stream_id, before, require_snapshot
                )
        return removed

    async def archive_stream(
        self, stream_id: str, expected_version: int | None, marker: Marker
    ) -> StoredEvent:
        return await self._marked(
            "archive a stream", archive_stream, stream_id, expected_version, marker
        )

    async def restore_stream(self, stream_id: str, marker: Marker) -> StoredEvent:
        return await self._marked("restore a stream", restore_stream, stream_id, marker)

    async def read_archived(self, stream_id: str) -> list[StoredEvent]:
        return await self._read("read archived events", read_archived, stream_id)

    async def _marked(
        self, what: str, function: Callable[..., StoredEvent], *args: Any
    ) -> StoredEvent:
        """A write that appends a lifecycle event: wake this process's waiters after it."""
        async with self._writer_lock:
            with anyio.CancelScope(shield=True):  # begun: the caller learns how it ended
                row = await self._write(what, function, *args)
        self._notify()
        return row
