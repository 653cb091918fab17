"""The PostgreSQL store's stream lifecycle: delete, truncate, archive and restore.

Each runs in one transaction that first takes the same advisory locks an append takes, for the
stream and for :data:`~eventuality.stores.lifecycle.LIFECYCLE_STREAM` (where its event goes):
an append to the stream waits for it or goes first, never between its statements, and the
statements after the locks see every append that held them. A cancelled caller rolls it back
whole (the commit itself is shielded). Per-stream state lives in ``eventuality_streams`` and
archived rows, unchanged, in ``eventuality_archive`` (schema 2).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import asyncpg

from ..errors import StreamLifecycleError
from .lifecycle import (
    LIFECYCLE_STREAM,
    Marker,
    StreamState,
    check_archived,
    check_live,
    check_truncation,
)
from .rows import AppendRequest, StoredEvent

if TYPE_CHECKING:
    from ._postgres_conn import Connections
    from ._postgres_sql import Statements

__all__ = ["PostgresLifecycle", "parse_state"]

T = TypeVar("T")

_COLUMNS = (
    "position, stream_id, version, event_type, schema_version, data, metadata, event_id, "
    "aggregate_id, occurred_at"
)


def parse_state(text: str) -> StreamState:
    """A stream's state as ``prepare_append`` reports it: ``'deleted:7'``."""
    state, _, version = text.partition(":")
    return StreamState("deleted" if state == "deleted" else "archived", int(version))


def _encode(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def _decode(data: bytes | None) -> str | None:
    return None if data is None else bytes(data).decode("utf-8", "surrogatepass")


class _Sql:
    """The lifecycle statements for one schema."""

    def __init__(self, schema: str) -> None:
        s = f'"{schema}"'
        events, archive = f"{s}.eventuality_events", f"{s}.eventuality_archive"
        streams, snapshots = f"{s}.eventuality_streams", f"{s}.eventuality_snapshots"
        self.state = f"SELECT state, version FROM {streams} WHERE stream_id = $1"
        self.last = (
            "SELECT version, aggregate_id FROM {} WHERE stream_id = $1 "
            "ORDER BY version DESC LIMIT 1"
        )
        self.last_live = self.last.format(events)
        self.last_archived = self.last.format(archive)
        self.latest_snapshot = f"SELECT max(version) FROM {snapshots} WHERE stream_id = $1"
        self.delete = [
            f"DELETE FROM {table} WHERE stream_id = $1" for table in (events, archive, snapshots)
        ]
        self.set_state = (
            f"INSERT INTO {streams} (stream_id, state, version) VALUES ($1, $2, $3) "
            "ON CONFLICT (stream_id) DO UPDATE SET state = excluded.state, "
            "version = excluded.version, changed_at = now()"
        )
        self.forget_state = f"DELETE FROM {streams} WHERE stream_id = $1"
        self.truncate = f"DELETE FROM {events} WHERE stream_id = $1 AND version < $2"
        self.truncate_snapshots = f"DELETE FROM {snapshots} WHERE stream_id = $1 AND version < $2"
        self.archive = (
            f"WITH moved AS (DELETE FROM {events} WHERE stream_id = $1 RETURNING {_COLUMNS}) "
            f"INSERT INTO {archive} ({_COLUMNS}) SELECT {_COLUMNS} FROM moved"
        )
        self.restore = (
            f"WITH moved AS (DELETE FROM {archive} WHERE stream_id = $1 RETURNING {_COLUMNS}) "
            f"INSERT INTO {events} ({_COLUMNS}) SELECT {_COLUMNS} FROM moved"
        )
        self.read_archived = (
            f"SELECT {_COLUMNS} FROM {archive} WHERE stream_id = $1 ORDER BY version"
        )


class PostgresLifecycle:
    """The ``stream_lifecycle`` tier of :class:`~eventuality.stores.postgres.PostgresBackend`."""

    if TYPE_CHECKING:
        db: Connections
        sql: Statements
        schema: str

        async def _insert(
            self, connection: asyncpg.Connection, requests: Sequence[AppendRequest]
        ) -> list[StoredEvent]: ...

    _lifecycle_sql: _Sql | None = None

    @property
    def _streams_sql(self) -> _Sql:
        if self._lifecycle_sql is None:
            self._lifecycle_sql = _Sql(self.schema)
        return self._lifecycle_sql

    async def stream_state(self, stream_id: str) -> StreamState | None:
        async with self.db.pooled("read a stream's state") as connection:
            found = await connection.fetchrow(self._streams_sql.state, _encode(stream_id))
        return None if found is None else StreamState(found[0], found[1])

    async def _locked(
        self, what: str, stream_id: str, work: Callable[[asyncpg.Connection], Awaitable[T]]
    ) -> T:
        """Run ``work`` in a transaction holding the stream's and the lifecycle stream's locks."""
        begin = self.sql.begin_append([_encode(stream_id), _encode(LIFECYCLE_STREAM)])
        async with self.db.transaction(what, begin=begin) as connection:
            return await work(connection)

    async def _state(self, connection: asyncpg.Connection, stream_id: str) -> StreamState | None:
        found = await connection.fetchrow(self._streams_sql.state, _encode(stream_id))
        return None if found is None else StreamState(found[0], found[1])

    async def _last(
        self, connection: asyncpg.Connection, statement: str, stream_id: str
    ) -> tuple[int, str | None]:
        found = await connection.fetchrow(statement, _encode(stream_id))
        return (0, None) if found is None else (found[0], _decode(found[1]))

    async def _record(self, connection: asyncpg.Connection, row: StoredEvent) -> StoredEvent:
        request = AppendRequest(LIFECYCLE_STREAM, None, (row,))
        return (await self._insert(connection, [request]))[0]

    async def delete_stream(
        self, stream_id: str, expected_version: int | None, marker: Marker
    ) -> StoredEvent:
        sql, key = self._streams_sql, _encode(stream_id)

        async def work(connection: asyncpg.Connection) -> StoredEvent:
            state = await self._state(connection, stream_id)
            last = await self._last(connection, sql.last_live, stream_id)
            if last[0] == 0:
                last = await self._last(connection, sql.last_archived, stream_id)
            version = check_live(
                stream_id,
                state,
                last[0],
                "delete the stream",
                expected_version,
                allow_archived=True,
            )
            row = marker(version, last[1])
            for statement in sql.delete:
                await connection.execute(statement, key)
            await connection.execute(sql.set_state, key, "deleted", version)
            return await self._record(connection, row)

        return await self._locked("delete a stream", stream_id, work)

    async def truncate_stream(self, stream_id: str, before: int, require_snapshot: bool) -> int:
        sql, key = self._streams_sql, _encode(stream_id)

        async def work(connection: asyncpg.Connection) -> int:
            state = await self._state(connection, stream_id)
            version, _ = await self._last(connection, sql.last_live, stream_id)
            snapshot = await connection.fetchval(sql.latest_snapshot, key)
            check_truncation(stream_id, state, version, before, snapshot, require_snapshot)
            status = await connection.execute(sql.truncate, key, before)
            await connection.execute(sql.truncate_snapshots, key, before - 1)
            return int(status.split()[-1])

        return await self._locked("truncate a stream", stream_id, work)

    async def archive_stream(
        self, stream_id: str, expected_version: int | None, marker: Marker
    ) -> StoredEvent:
        sql, key = self._streams_sql, _encode(stream_id)

        async def work(connection: asyncpg.Connection) -> StoredEvent:
            state = await self._state(connection, stream_id)
            version, aggregate_id = await self._last(connection, sql.last_live, stream_id)
            check_live(stream_id, state, version, "archive the stream", expected_version)
            row = marker(version, aggregate_id)
            await connection.execute(sql.archive, key)
            await connection.execute(sql.set_state, key, "archived", version)
            return await self._record(connection, row)

        return await self._locked("archive a stream", stream_id, work)

    async def restore_stream(self, stream_id: str, marker: Marker) -> StoredEvent:
        sql, key = self._streams_sql, _encode(stream_id)

        async def work(connection: asyncpg.Connection) -> StoredEvent:
            live, _ = await self._last(connection, sql.last_live, stream_id)
            found = check_archived(stream_id, await self._state(connection, stream_id), live)
            _, aggregate_id = await self._last(connection, sql.last_archived, stream_id)
            row = marker(found.version, aggregate_id)
            try:
                await connection.execute(sql.restore, key)
            except asyncpg.UniqueViolationError as exc:
                raise StreamLifecycleError(
                    f"cannot restore stream {stream_id!r}: one of its archived events' ids was "
                    f"appended again while it was archived ({exc}). Nothing was changed; read "
                    "the archive with store.read_archived() to see which.",
                    stream_id=stream_id,
                    operation="restore the stream",
                ) from None
            await connection.execute(sql.forget_state, key)
            return await self._record(connection, row)

        return await self._locked("restore a stream", stream_id, work)

    async def read_archived(self, stream_id: str) -> list[StoredEvent]:
        from .postgres import _stored

        async with self.db.pooled("read archived events") as connection:
            found: list[Any] = await connection.fetch(
                self._streams_sql.read_archived, _encode(stream_id)
            )
        return [_stored(record) for record in found]
