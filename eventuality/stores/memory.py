"""InMemoryEventStore: the whole store contract in process memory, for tests and prototypes.

Rows are serialised exactly as the durable stores keep them, so a payload that would not survive
SQLite or PostgreSQL fails here too. Every operation first passes a cancellation point, where a
real store would await its database, so tests on it see what production sees: timeouts fire,
other tasks run, and concurrent writers to one stream conflict. After that point each runs
without awaiting between its reads and writes, which makes it atomic on the event loop.
"""

from __future__ import annotations

import bisect
import itertools
import sqlite3
import weakref
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel

from ..errors import (
    CheckpointConflict,
    ConcurrencyError,
    StoreError,
    StoreUsageError,
)
from ._memory_keys import MemorySubjectKeys
from ._memory_streams import MemoryLifecycle
from ._scheduling import yield_now as checkpoint
from ._sqlite_ops import WriteRefused, read_only_query
from ._tiers_front import inside_transaction
from .base import (
    AppendRequest,
    BackendTransaction,
    EventStore,
    Snapshot,
    StoredEvent,
    match_retry,
    settle_versions,
)
from .commands import CommandRecord, KeyTaken, RecordedCommand, with_positions
from .lifecycle import (
    StreamState,
    refuse_gone,
)
from .rows import CheckpointMove, refuse_repeat

__all__ = ["InMemoryEventStore"]

_APPEND = "append to the stream"
_VERSION = "read the stream's version"


class MemoryBackend(MemoryLifecycle, MemorySubjectKeys):
    """Rows in lists and dicts; positions from a counter. The stream lifecycle tier is in
    ``_memory_streams``, the personal-data keys in ``_memory_keys``."""

    paramstyle = "qmark"
    gap_free_positions = True

    def __init__(self) -> None:
        super().__init__()
        # The log by position - 1; a row that left it (deleted, truncated, archived) leaves a
        # None behind, counted in _holes, so positions stay list indexes.
        self._log: list[StoredEvent | None] = []
        self._holes = 0
        self._streams: dict[str, list[StoredEvent]] = {}
        self._states: dict[str, StreamState] = {}
        self._archive: dict[str, list[StoredEvent]] = {}
        self._by_id: dict[str, StoredEvent] = {}
        self._strings: dict[str, str] = {}
        self._checkpoints: dict[str, int] = {}
        self._snapshots: dict[str, dict[int, Snapshot]] = {}
        self._commands: dict[str, CommandRecord] = {}
        self._appended: anyio.Event | None = None
        self._db: sqlite3.Connection | None = None
        self._transaction_lock = anyio.Lock()

    async def open(self) -> None:
        pass

    async def close(self) -> None:
        """Nothing to release: the data (read models included) lives as long as the object."""

    async def _pause(self) -> None:
        await checkpoint()

    async def append(self, requests: Sequence[AppendRequest]) -> list[StoredEvent]:
        await checkpoint()
        return self._append_now(requests)

    async def append_command(
        self, requests: Sequence[AppendRequest], record: CommandRecord
    ) -> list[StoredEvent]:
        await checkpoint()
        return self._append_recorded(requests, record)

    def _append_recorded(
        self, requests: Sequence[AppendRequest], record: CommandRecord
    ) -> list[StoredEvent]:
        """The append and its command record, with no await; a taken key stores nothing."""
        if record.key in self._commands:
            raise KeyTaken(record.key)
        stored = self._append_now(requests)
        self._commands[record.key] = with_positions(record, stored)
        return stored

    async def append_checkpointed(
        self, requests: Sequence[AppendRequest], move: CheckpointMove
    ) -> list[StoredEvent]:
        """The checkpoint checked, the rows appended, the checkpoint moved: with no await in
        between, so atomic on the event loop."""
        await checkpoint()
        actual = self._checkpoints.get(move.name)
        if actual != move.expected:
            raise CheckpointConflict(move.name, move.expected, actual)
        stored = self._append_now(requests, replay=False)
        self._checkpoints[move.name] = move.position
        return stored

    async def get_command(self, key: str) -> RecordedCommand | None:
        await checkpoint()
        record = self._commands.get(key)
        if record is None:
            return None
        if not record.last_position:
            return RecordedCommand(record, [])
        rows = self._log[record.first_position - 1 : record.last_position]
        return RecordedCommand(record, [row for row in rows if row is not None])

    async def prune_commands(
        self, recorded_before: datetime | None, keep: int | None, limit: int
    ) -> int:
        await checkpoint()
        beyond = len(self._commands) - keep if keep is not None else 0
        doomed: list[str] = []
        for key, record in self._commands.items():  # oldest first: kept in recording order
            if len(doomed) == limit:
                break
            if len(doomed) < beyond or (
                recorded_before is not None and record.recorded_at < recorded_before
            ):
                doomed.append(key)
        for key in doomed:
            del self._commands[key]
        return len(doomed)

    def _append_now(
        self, requests: Sequence[AppendRequest], *, replay: bool = True
    ) -> list[StoredEvent]:
        """The append itself, with no await: atomic on the event loop. ``replay``: an exact
        repeat of stored rows returns them instead of failing."""
        settled: list[list[StoredEvent]] = []
        try:
            if any(row.event_id in self._by_id for r in requests for row in r.rows):
                raise _Clash
            for request in requests:
                rows = self._streams.get(request.stream_id)
                if rows:
                    current = rows[-1].version
                else:
                    current = 0
                    if self._states:
                        refuse_gone(request.stream_id, self._states.get(request.stream_id), _APPEND)
                settled.append(settle_versions(request, current))
        except (ConcurrencyError, _Clash):
            stored = {
                row.event_id: self._by_id[row.event_id]
                for r in requests
                for row in r.rows
                if row.event_id in self._by_id
            }
            if not replay:
                refuse_repeat(requests, stored)
                raise
            repeat = match_retry(requests, stored)
            if repeat is None:
                raise
            return repeat
        result: list[StoredEvent] = []
        position = len(self._log)
        strings = self._strings
        for rows in settled:
            if not rows:
                continue
            # One string object per stream id and aggregate id, however many events name it.
            stream_id = strings.setdefault(rows[0].stream_id, rows[0].stream_id)
            stream = self._streams.setdefault(stream_id, [])
            for row in rows:
                position += 1
                aggregate_id = row.aggregate_id
                if aggregate_id is not None:
                    aggregate_id = strings.setdefault(aggregate_id, aggregate_id)
                row = row._replace(
                    stream_id=stream_id, aggregate_id=aggregate_id, position=position
                )
                self._log.append(row)
                stream.append(row)
                self._by_id[row.event_id] = row
                result.append(row)
        if self._appended is not None:
            self._appended.set()
            self._appended = None
        return result

    async def read_stream(
        self, stream_id: str, from_version: int, to_version: int | None
    ) -> list[StoredEvent]:
        await checkpoint()
        rows = self._streams.get(stream_id)
        if not rows:
            if self._states:
                refuse_gone(stream_id, self._states.get(stream_id), "read the stream")
            return []
        first = rows[0].version  # above 1 once the stream was truncated
        stop = None if to_version is None else max(to_version - first + 1, 0)
        return rows[max(from_version, first) - first : stop]

    async def read_log(
        self, after: int, limit: int, types: frozenset[str] | None
    ) -> list[StoredEvent]:
        await checkpoint()
        start = max(after, 0)
        if types is None and not self._holes:
            return self._log[start : start + limit]  # type: ignore[return-value]
        page: list[StoredEvent] = []
        for row in itertools.islice(self._log, start, None):
            if row is not None and (types is None or row.event_type in types):
                page.append(row)
                if len(page) == limit:
                    break
        return page

    async def stream_version(self, stream_id: str) -> int:
        await checkpoint()
        rows = self._streams.get(stream_id)
        if rows:
            return rows[-1].version
        if self._states:
            refuse_gone(stream_id, self._states.get(stream_id), _VERSION)
        return 0

    async def last_position(self) -> int:
        await checkpoint()
        return len(self._log)

    async def wait_appended(self, after: int, timeout: float) -> bool:
        if len(self._log) > after:
            return True
        if self._appended is None:
            self._appended = anyio.Event()
        appended = self._appended
        with anyio.move_on_after(timeout):
            await appended.wait()
        return len(self._log) > after

    @asynccontextmanager
    async def hold_name(self, name: str) -> AsyncIterator[None]:
        yield

    async def get_checkpoint(self, name: str) -> int | None:
        await checkpoint()
        return self._checkpoints.get(name)

    async def set_checkpoint(self, name: str, position: int, expected: int | None) -> None:
        await checkpoint()
        actual = self._checkpoints.get(name)
        if actual != expected:
            raise CheckpointConflict(name, expected, actual)
        self._checkpoints[name] = position

    async def save_snapshot(self, snapshot: Snapshot) -> None:
        await checkpoint()
        if self.holds_forgotten(snapshot.stream_id):
            return  # a state loaded before its subject was forgotten: never store it again
        self._snapshots.setdefault(snapshot.stream_id, {})[snapshot.version] = snapshot

    def _read_model(self) -> sqlite3.Connection:
        if self._db is None:
            # Used from the event loop only; the finalizer may run on whichever thread the
            # garbage collector does, hence no same-thread check.
            self._db = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
            # Read models live as long as the store object (close() keeps them): close the
            # database with the object, not at garbage collection of the connection.
            weakref.finalize(self, self._db.close)
        return self._db

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[BackendTransaction]:
        """A transaction on an in-memory SQLite database private to this store: read models
        there move with checkpoints exactly as they would in the SQLite store's file."""
        await checkpoint()
        async with self._transaction_lock:
            db = self._read_model()
            db.execute("BEGIN")
            tx = _MemoryTransaction(self, db)
            try:
                yield tx
                for name, position in tx.checkpoints.items():
                    if name in self._checkpoints and self._checkpoints[name] > position:
                        raise CheckpointConflict(name, position, self._checkpoints[name])
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
            self._checkpoints.update(tx.checkpoints)

    async def query(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        await checkpoint()
        if inside_transaction(self):
            return _query(self._read_model(), sql, params)
        async with self._transaction_lock:  # never read what an open transaction may undo
            return _query(self._read_model(), sql, params)

    async def load_snapshot(self, stream_id: str, max_version: int | None) -> Snapshot | None:
        await checkpoint()
        by_version = self._snapshots.get(stream_id)
        if not by_version:
            return None
        versions = sorted(by_version)
        limit = len(versions) if max_version is None else bisect.bisect_right(versions, max_version)
        return by_version[versions[limit - 1]] if limit else None


class _MemoryTransaction:
    """A transaction on the memory store's read-model database, with staged checkpoints."""

    paramstyle = "qmark"

    def __init__(self, backend: MemoryBackend, db: sqlite3.Connection) -> None:
        self._backend = backend
        self._db = db
        self.checkpoints: dict[str, int] = {}
        self._savepoints = itertools.count()

    async def execute(self, sql: str, *params: Any) -> None:
        _run(self._db, sql, params)

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        try:
            self._db.executemany(sql, rows)
        except sqlite3.Error as exc:
            raise _sql_error(exc) from exc

    async def fetchall(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        return _run(self._db, sql, params)

    async def fetchone(self, sql: str, *params: Any) -> tuple[Any, ...] | None:
        found = _run(self._db, sql, params)
        return found[0] if found else None

    async def get_checkpoint(self, name: str) -> int | None:
        if name in self.checkpoints:
            return self.checkpoints[name]
        return self._backend._checkpoints.get(name)

    async def set_checkpoint(self, name: str, position: int, expected: int | None) -> None:
        actual = await self.get_checkpoint(name)
        if actual != expected:
            raise CheckpointConflict(name, expected, actual)
        self.checkpoints[name] = position

    @asynccontextmanager
    async def savepoint(self) -> AsyncIterator[None]:
        name = f"eventuality_{next(self._savepoints)}"
        staged = dict(self.checkpoints)
        self._db.execute(f"SAVEPOINT {name}")
        try:
            yield
        except BaseException:
            self._db.execute(f"ROLLBACK TO {name}")
            self._db.execute(f"RELEASE {name}")
            self.checkpoints = staged
            raise
        self._db.execute(f"RELEASE {name}")


def _run(db: sqlite3.Connection, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
    try:
        return [tuple(row) for row in db.execute(sql, params).fetchall()]
    except sqlite3.Error as exc:
        raise _sql_error(exc) from exc


def _query(db: sqlite3.Connection, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
    """``query()`` on the read-model database: reads only, as on the SQLite store."""
    try:
        return read_only_query(db, sql, params)
    except WriteRefused:
        raise StoreUsageError(
            f"store.query() is read-only and refused {sql.strip()[:80]!r}: it would write (or "
            "open a transaction). Nothing was written. Write read models through a Projection "
            "(its handler's transaction) or store.transaction()."
        ) from None
    except sqlite3.Error as exc:
        raise _sql_error(exc) from exc


def _sql_error(exc: sqlite3.Error) -> StoreError:
    """The error the SQLite store raises for the same SQL, so tests see what production does."""
    return StoreError(f"could not run a read-model statement in the memory store: {exc}")


class _Clash(Exception):
    """An event id of the append is already stored."""


class InMemoryEventStore(EventStore):
    """An event store in process memory: fast, complete, and gone when the process ends."""

    def __init__(self) -> None:
        super().__init__(MemoryBackend())
        self._open = True  # nothing to connect to: usable without `async with`

    def __repr__(self) -> str:
        return "InMemoryEventStore()"


if TYPE_CHECKING:
    from .boundary import CompleteBackend

    _conforms: CompleteBackend = MemoryBackend()
