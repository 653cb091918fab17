"""SQLiteEventStore: the embedded default, on aiosqlite, durable under crashes and concurrency.

**Connections.** One writer connection and, for a file, a few reader connections (WAL: readers
never block the writer, nor the writer them). Each aiosqlite connection runs its calls on its own
thread; every operation here is one function run whole on that thread (``_sqlite_ops``), so:

* an append (or a whole ``Flow.dispatch`` commit, any number of streams) costs **one** thread
  round trip, or none at ``synchronous="NORMAL"`` when it is small and the database is free
  (it commits inline: ``_sqlite_group``), and a ``read_all`` page **one**;
* small reads cost **none**: for a file, a third connection owned by the event loop's thread
  reads a stream (its first 256 events; the rest of a longer one on a reader thread), a
  snapshot, a stream version, the last position or a checkpoint inline. Such a read takes a few
  microseconds of SQLite, less than a thread round trip; WAL readers never wait for writers,
  and if the database is ever busy the read moves to a reader thread, which waits for it. So
  a stream load costs no round trip, and a load from a snapshot none either;
* a cancelled caller never leaves a transaction open: the function commits or rolls back on its
  thread whether or not anyone still awaits it.

**Group commit.** Appends that arrive while a write transaction is in flight queue up and share
the next transaction, each inside its own savepoint with its own expected-version check: a
conflict in one never fails the others, and many concurrent commits pay one fsync
(``_sqlite_group``).

**Several processes** on one file serialise their writes through SQLite's lock
(``BEGIN IMMEDIATE``); a busy database is waited on for ``busy_timeout`` seconds, then
:class:`~eventuality.StoreBusyError` says so. ``synchronous="NORMAL"`` (the default, with WAL)
survives a killed process; ``"FULL"`` also survives power loss, at an fsync per commit. A
subscription name is held by one process at a time through a lock file next to the database
(``<database>-locks/``; released by the OS when its holder dies), and every write first checks
that the path still names the file opened (one ``stat``): see ``_sqlite_files``.

**Read-only queries.** ``store.query()`` runs with ``PRAGMA query_only`` on, ``:memory:`` (whose
reads share the writer connection) included: a write through it raises ``StoreError``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import os
import sqlite3
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, ParamSpec, TypeVar

import aiosqlite
import anyio

from ..errors import StoreClosedError, StoreError
from . import _sqlite_commands as sqlite_commands
from . import _sqlite_files as files
from . import _sqlite_ops as ops
from . import _sqlite_schema as schema
from . import _sqlite_streams as streams
from ._scheduling import yield_now
from ._sqlite_errors import MAPPED, map_error
from ._sqlite_group import SQLiteGroupCommit, connect_inline_writer
from ._sqlite_keys import SQLiteSubjectKeys
from ._sqlite_streams import SQLiteLifecycle
from ._sqlite_transaction import SQLiteTransaction
from ._tiers_front import inside_transaction
from .base import (
    BackendTransaction,
    EventStore,
    Snapshot,
    StoredEvent,
    poll_appended,
)
from .commands import RecordedCommand

__all__ = ["SQLiteEventStore"]

P = ParamSpec("P")
T = TypeVar("T")

Synchronous = Literal["NORMAL", "FULL", "EXTRA"]
_SYNCHRONOUS = ("NORMAL", "FULL", "EXTRA")
_INLINE_ROWS = 256
_QUERY = "run a query"


class SQLiteBackend(SQLiteGroupCommit, SQLiteLifecycle, SQLiteSubjectKeys):
    """Rows in one SQLite file (or ``:memory:``), reached through aiosqlite; appends (group
    and inline commit) are in ``_sqlite_group``, the stream lifecycle tier in
    ``_sqlite_streams``, the personal-data keys in ``_sqlite_keys``."""

    paramstyle = "qmark"
    asyncio_only = True
    gap_free_positions = True

    def __init__(self, path: str, *, synchronous: str, busy_timeout: float, readers: int) -> None:
        self.path = path
        self._absolute = path
        self._identity: files.FileIdentity | None = None
        self.synchronous = synchronous
        self.busy_timeout = busy_timeout
        self._reader_count = readers
        self._writer: aiosqlite.Connection | None = None
        self._inline: sqlite3.Connection | None = None
        self._inline_writer: sqlite3.Connection | None = None
        self._since_checkpoint = 0
        self._checkpointing: asyncio.Task[None] | None = None
        self._readers: list[aiosqlite.Connection] = []
        self._next_reader: itertools.cycle[aiosqlite.Connection] | None = None
        self._writer_lock = anyio.Lock(fast_acquire=True)
        self._queue = []
        self._leading = False
        self._appended = anyio.Event()

    @property
    def in_memory(self) -> bool:
        return self.path == ":memory:" or self.path.startswith("file::memory:")

    @property
    def transaction_scope(self) -> object:
        """One file, one writer: a store.transaction() on it holds every store on that file."""
        return None if self._identity is None else ("sqlite", self._identity)

    @property
    def durable(self) -> bool:
        """A file outlives the store object; ``:memory:`` goes with it."""
        return not self.in_memory

    @property
    def cross_process_locks(self) -> bool:
        """Lock files hold names for a file database, except on Windows (no ``flock``)."""
        return not self.in_memory and sys.platform != "win32"

    async def open(self) -> None:
        self._writer = await self._connect(writer=True)
        try:
            await self._call(self._writer, "create the schema", schema.create_schema)
            if self.in_memory:
                self._readers = [self._writer]
            else:
                self._absolute, self._identity = files.identify_opened(self.path)
                for _ in range(self._reader_count):
                    self._readers.append(await self._connect(writer=False))
                self._inline = self._connect_inline()
                if self.synchronous == "NORMAL":
                    self._inline_writer = self._connect_inline_writer()
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self.close()
            raise
        self._next_reader = itertools.cycle(self._readers)

    async def close(self) -> None:
        await self._stop_checkpoints()
        writer = self._writer
        connections = [c for c in self._readers if c is not writer]
        if writer is not None:
            connections.append(writer)
        self._readers, self._writer, self._next_reader = [], None, None
        inline, self._inline = self._inline, None
        if inline is not None:
            inline.close()
        inline_writer, self._inline_writer = self._inline_writer, None
        if inline_writer is not None:
            inline_writer.close()
        identity, self._identity = self._identity, None
        with anyio.CancelScope(shield=True):
            for connection in connections:
                if connection is writer and identity is not None:
                    with contextlib.suppress(Exception):
                        await self._call(
                            connection, "close", files.empty_wal_if_moved, self._absolute, identity
                        )
                with contextlib.suppress(Exception):  # best effort: the thread stops anyway
                    await connection.close()

    async def _connect(self, *, writer: bool) -> aiosqlite.Connection:
        """A configured connection; if configuring fails it is closed (its thread with it)."""
        try:
            connection = await aiosqlite.connect(
                self.path, isolation_level=None, timeout=self.busy_timeout
            )
        except MAPPED as exc:
            raise self._map(exc, "open the database") from exc
        try:
            await self._call(connection, "configure the connection", self._configure, writer)
        except BaseException:
            with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
                await connection.close()
            raise
        return connection

    def _connect_inline(self) -> sqlite3.Connection:
        try:
            inline = sqlite3.connect(self.path, isolation_level=None, timeout=0)
        except MAPPED as exc:
            raise self._map(exc, "open the database") from exc
        try:
            inline.execute("PRAGMA query_only = 1")
        except BaseException as exc:
            inline.close()
            if isinstance(exc, MAPPED):
                raise self._map(exc, "configure the connection") from exc
            raise
        return inline

    def _connect_inline_writer(self) -> sqlite3.Connection | None:
        try:
            return connect_inline_writer(self.path)
        except MAPPED as exc:
            raise self._map(exc, "open the database") from exc

    def _configure(self, db: sqlite3.Connection, writer: bool) -> None:
        db.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
        if writer and not self.in_memory:
            schema.enable_wal(db, self.busy_timeout)
        db.execute(f"PRAGMA synchronous = {self.synchronous}")
        if not writer:
            db.execute("PRAGMA query_only = 1")

    async def _call(
        self,
        connection: aiosqlite.Connection,
        what: str,
        function: Callable[..., T],
        *args: Any,
    ) -> T:
        """Run ``function(db, *args)`` on ``connection``'s thread; map driver errors."""
        try:
            # aiosqlite runs every call on the connection's thread through _execute; calling it
            # with our own function is what lets one transaction cost one round trip.
            result: T = await connection._execute(  # type: ignore[no-untyped-call]
                function, connection._conn, *args
            )
        except MAPPED as exc:
            raise self._map(exc, what) from exc
        return result

    async def _write(self, what: str, function: Callable[..., T], *args: Any) -> T:
        """Run a write on the writer's thread, refused if the path no longer names our file.

        Once handed over, the write is waited for even by a cancelled caller (the cancellation
        comes at its next checkpoint): a caller that moved on before it landed could read the
        old state right after, then find its own write in its way."""
        connection = self._writer_connection()
        with anyio.CancelScope(shield=True):
            result: T = await self._call(connection, what, self._checked, what, function, *args)
        return result

    def _checked(
        self, db: sqlite3.Connection, what: str, function: Callable[..., T], *args: Any
    ) -> T:
        if self._identity is not None:
            files.check_same_file(self._absolute, self._identity, what)
        return function(db, *args)

    def _map(self, exc: BaseException, what: str) -> StoreError:
        return map_error(exc, what, path=self.path, busy_timeout=self.busy_timeout)

    def _writer_connection(self) -> aiosqlite.Connection:
        if self._writer is None:
            raise StoreClosedError(f"SQLite store {self.path!r} was closed")
        return self._writer

    def _reader(self) -> aiosqlite.Connection:
        if self._next_reader is None:
            raise StoreClosedError(f"SQLite store {self.path!r} was closed")
        return next(self._next_reader)

    async def _read(
        self, what: str, function: Callable[..., T], *args: Any, pause: bool = True
    ) -> T:
        """A small read: inline on the loop's own connection when it can, else on a reader.
        ``pause=False`` skips the checkpoint after an inline read, for a caller that reaches
        one right after anyway."""
        inline = self._inline
        if inline is not None:
            try:
                result = function(inline, *args)
            except sqlite3.OperationalError:
                pass  # busy (or worse): a reader thread waits for it, or reports it
            except MAPPED as exc:
                raise self._map(exc, what) from exc
            else:
                if pause:
                    await yield_now()  # stay cancellable, and let others run
                return result
        return await self._call(self._reader(), what, function, *args)

    async def get_command(self, key: str) -> RecordedCommand | None:
        """Inline, without a checkpoint of its own: ``Flow.dispatch`` asks before every
        command, and its handler's loads or its commit come right after."""
        return await self._read(
            "read a recorded command", sqlite_commands.get_command, key, pause=False
        )

    async def prune_commands(
        self, recorded_before: datetime | None, keep: int | None, limit: int
    ) -> int:
        async with self._writer_lock:
            return await self._write(
                "prune recorded commands",
                sqlite_commands.prune_commands,
                recorded_before,
                keep,
                limit,
            )

    async def read_stream(
        self, stream_id: str, from_version: int, to_version: int | None
    ) -> list[StoredEvent]:
        what = "read a stream"
        if self._inline is None:
            return await self._call(
                self._reader(), what, streams.read_live_stream, stream_id, from_version, to_version
            )
        rows = await self._read(
            what, streams.read_live_stream, stream_id, from_version, to_version, _INLINE_ROWS
        )
        if len(rows) == _INLINE_ROWS:
            rest = rows[-1].version + 1
            rows += await self._call(
                self._reader(), what, ops.read_stream, stream_id, rest, to_version
            )
        return rows

    async def read_log(
        self, after: int, limit: int, types: frozenset[str] | None
    ) -> list[StoredEvent]:
        return await self._call(self._reader(), "read the log", ops.read_log, after, limit, types)

    async def stream_version(self, stream_id: str) -> int:
        return await self._read("read a stream version", streams.live_stream_version, stream_id)

    async def last_position(self) -> int:
        return await self._read("read the last position", ops.last_position)

    async def wait_appended(self, after: int, timeout: float) -> bool:
        """Woken at once by appends in this process; polls, backing off to 250 ms, for others."""

        async def wake() -> anyio.Event:
            return self._appended

        return await poll_appended(self.last_position, wake, after, timeout)

    @asynccontextmanager
    async def hold_name(self, name: str) -> AsyncIterator[None]:
        """A lock file per name (``_sqlite_files``); ``:memory:`` is one process: nothing."""
        if self.in_memory:
            yield
            return
        async with files.subscription_lock(self._absolute, name):
            yield

    async def get_checkpoint(self, name: str) -> int | None:
        return await self._read("read a checkpoint", ops.get_checkpoint, name)

    async def set_checkpoint(self, name: str, position: int, expected: int | None) -> None:
        async with self._writer_lock:
            await self._write("set a checkpoint", ops.set_checkpoint, name, position, expected)

    async def save_snapshot(self, snapshot: Snapshot) -> None:
        async with self._writer_lock:
            await self._write("save a snapshot", ops.save_snapshot, snapshot)

    async def load_snapshot(self, stream_id: str, max_version: int | None) -> Snapshot | None:
        return await self._read("load a snapshot", ops.load_snapshot, stream_id, max_version)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[BackendTransaction]:
        """``BEGIN IMMEDIATE`` on the writer, holding it (appends in this process wait) until
        the block ends. Commit and rollback run shielded from cancellation."""
        async with self._writer_lock:
            connection = self._writer_connection()
            try:
                await self._write("begin a transaction", ops.begin)
                yield SQLiteTransaction(
                    functools.partial(self._call, connection, "run a transaction")
                )
            except BaseException:
                with anyio.CancelScope(shield=True):
                    await self._call(connection, "roll back", ops.rollback)
                raise
            with anyio.CancelScope(shield=True):
                try:
                    await self._write("commit", ops.commit)
                except BaseException:
                    await self._call(connection, "roll back", ops.rollback)
                    raise

    async def query(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        if self.in_memory and not inside_transaction(self):
            # ":memory:" reads on the writer: wait for an open transaction rather than read
            # what it has not committed.
            async with self._writer_lock:
                return await self._call(self._reader(), _QUERY, ops.read_only_query, sql, params)
        return await self._call(self._reader(), _QUERY, ops.read_only_query, sql, params)


class SQLiteEventStore(EventStore):
    """An event store in one SQLite file: no server, durable, safe for several processes.

    :param path: the database file, created if missing; ``":memory:"`` for a private,
        in-memory database.
    :param synchronous: ``"NORMAL"`` survives a process crash; ``"FULL"`` also power loss.
    :param busy_timeout: seconds to wait for another process's write lock before
        :class:`~eventuality.StoreBusyError`.
    :param readers: reader connections for a file (each has its own thread).
    """

    def __init__(
        self,
        path: str | os.PathLike[str] = ":memory:",
        *,
        synchronous: Synchronous = "NORMAL",
        busy_timeout: float = 5.0,
        readers: int = 2,
    ) -> None:
        path = os.fspath(path)
        mode = str(synchronous).upper()
        if mode not in _SYNCHRONOUS:
            raise ValueError(
                f"synchronous must be one of {', '.join(_SYNCHRONOUS)}, not {synchronous!r}: "
                '"NORMAL" survives a process crash, "FULL" also survives power loss'
            )
        if busy_timeout < 0:
            raise ValueError(f"busy_timeout must be >= 0 seconds, not {busy_timeout!r}")
        if readers < 1:
            raise ValueError(f"readers must be at least 1, not {readers!r}")
        super().__init__(
            SQLiteBackend(path, synchronous=mode, busy_timeout=busy_timeout, readers=readers)
        )
        self.path = path
        self.synchronous = mode

    def __repr__(self) -> str:
        return f"SQLiteEventStore({self.path!r}, synchronous={self.synchronous!r})"


if TYPE_CHECKING:
    from .boundary import CompleteBackend

    _conforms: CompleteBackend = SQLiteBackend(
        ":memory:", synchronous="NORMAL", busy_timeout=5, readers=1
    )
