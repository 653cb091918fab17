"""PostgresEventStore: one log shared by many processes on many machines, on asyncpg.

**A log no reader can skip through.** With positions from a sequence, transaction A can take
position 50 and B position 51, and B commit first: a reader that passed 51 would never see 50. A
table lock on every append would prevent it by serialising every writer. We keep writers
parallel and derive positions from the transaction id instead:

* an append's positions are ``transaction id * 2**20 + its place in the append`` (so one append
  holds at most 1,048,576 events), and transaction ids are handed out in increasing order;
* a reader only returns positions below ``pg_snapshot_xmin(pg_current_snapshot())``, the oldest
  transaction still running, times ``2**20``. Every transaction below it has ended, committed or
  rolled back, and any transaction that commits later has a higher id, hence higher positions.

So a reader never passes a position whose transaction may still commit, never waits on one that
rolled back, and no writer ever waits for another. Positions are sparse (large numbers with
gaps); they only promise to be unique and to increase in the order readers see them. The price:
a write transaction left open anywhere in the PostgreSQL cluster holds readers back (never
writers) until it ends. An append costs four round trips: BEGIN, one statement that takes the
transaction id and reads the stream versions, one that inserts and notifies, COMMIT.

**Live following.** Each append sends ``NOTIFY`` in its transaction; one listening connection
per store wakes ``wait_appended``. If it drops, waits fall back to polling with backoff and the
listener reconnects on the next wait.

**Subscriptions across processes.** ``hold_name`` takes a session advisory lock on a connection
of its own, so one instance per subscription name runs at a time; when its holder dies, the
server releases the lock and a waiting instance takes over from the checkpoint.

Stream ids and aggregate ids are ``bytea`` (UTF-8), so any string, ``\\x00`` included, is stored
verbatim; payloads are ``json`` (which, unlike ``jsonb``, keeps ``\\u0000``).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import anyio
import asyncpg

from ..errors import (
    CheckpointConflict,
    ConcurrencyError,
    SchemaVersionError,
    StoreClosedError,
    StoreError,
    SubscriptionLocked,
)
from ._postgres_sql import SCHEMA_VERSION, TRANSACTION_SLOTS, Statements
from .base import (
    AppendRequest,
    Backend,
    BackendTransaction,
    EventStore,
    Snapshot,
    StoredEvent,
    match_retry,
    poll_appended,
    redact_dsn,
    settle_versions,
)

__all__ = ["PostgresEventStore"]

_LOCK_POLL = 0.2
_RETRY = (asyncpg.UniqueViolationError, asyncpg.DeadlockDetectedError, asyncpg.SerializationError)
_SESSION_RESET = "SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL;"
_CONNECTION_ERRORS = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
)


def _encode(text: str | None) -> bytes | None:
    return None if text is None else text.encode("utf-8", "surrogatepass")


def _decode(data: bytes | None) -> str | None:
    return None if data is None else bytes(data).decode("utf-8", "surrogatepass")


def _stored(record: asyncpg.Record) -> StoredEvent:
    return StoredEvent(
        _decode(record[1]) or "",
        record[2],
        record[3],
        record[4],
        record[5],
        record[6],
        str(record[7]),
        _decode(record[8]),
        record[9],
        record[0],
    )


class _PooledConnection(asyncpg.Connection):  # type: ignore[misc]
    """Pool connections keep no session state between uses (no LISTEN, advisory lock or
    cursor: the listener and subscription locks have connections of their own), so handing one
    back needs no reset round trip. asyncpg still rolls back a transaction left open."""

    def get_reset_query(self) -> str:
        return ""


class _PostgresTransaction:
    """A read-model transaction on one pooled connection; SQL uses ``$1`` placeholders."""

    paramstyle = "dollar"

    def __init__(self, backend: PostgresBackend, connection: asyncpg.Connection) -> None:
        self._backend = backend
        self._connection = connection

    async def execute(self, sql: str, *params: Any) -> None:
        async with self._backend._errors("run a transaction"):
            await self._connection.execute(sql, *params)

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        async with self._backend._errors("run a transaction"):
            await self._connection.executemany(sql, [tuple(row) for row in rows])

    async def fetchall(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        async with self._backend._errors("run a transaction"):
            return [tuple(r) for r in await self._connection.fetch(sql, *params)]

    async def fetchone(self, sql: str, *params: Any) -> tuple[Any, ...] | None:
        async with self._backend._errors("run a transaction"):
            found = await self._connection.fetchrow(sql, *params)
        return None if found is None else tuple(found)

    async def get_checkpoint(self, name: str) -> int | None:
        sql = self._backend.sql.lock_checkpoint
        return await self._connection.fetchval(sql, name)  # type: ignore[no-any-return]

    async def set_checkpoint(self, name: str, position: int, expected: int | None) -> None:
        await self._backend._set_checkpoint(self._connection, name, position, expected)

    @asynccontextmanager
    async def savepoint(self) -> AsyncIterator[None]:
        savepoint = self._connection.transaction()
        await savepoint.start()
        try:
            yield
        except BaseException:
            with anyio.CancelScope(shield=True):
                await savepoint.rollback()
            raise
        await savepoint.commit()


class PostgresBackend:
    """Rows in PostgreSQL tables in one schema, through an asyncpg pool."""

    paramstyle = "dollar"
    asyncio_only = True

    def __init__(self, dsn: str, *, schema: str, min_size: int, max_size: int) -> None:
        self.dsn = dsn
        self.schema = schema
        self.sql = Statements(schema)
        self._min_size, self._max_size = min_size, max_size
        self._pool: asyncpg.Pool | None = None
        self._listener: asyncpg.Connection | None = None
        self._listener_retry_at = 0.0
        self._appended = anyio.Event()

    @property
    def listening(self) -> bool:
        """Whether the notification connection is up (else waits poll)."""
        return self._listener is not None and not self._listener.is_closed()

    def _settings(self) -> dict[str, str]:
        return {"search_path": f'"{self.schema}", public', "application_name": "eventuality"}

    @asynccontextmanager
    async def _errors(
        self, what: str, keep: type[BaseException] | tuple[type[BaseException], ...] = ()
    ) -> AsyncIterator[None]:
        """Map driver errors to StoreError, with the DSN's password hidden; ``keep`` passes
        the given ones through for the caller to handle."""
        try:
            yield
        except keep:
            raise
        except asyncpg.PostgresError as exc:
            if isinstance(exc, asyncpg.PostgresConnectionError):
                raise self._lost(what, exc) from exc
            raise StoreError(
                f"could not {what} in PostgreSQL ({redact_dsn(self.dsn)}): {self._scrub(exc)}"
            ) from exc
        except _CONNECTION_ERRORS as exc:
            raise self._lost(what, exc) from exc

    def _lost(self, what: str, exc: BaseException) -> StoreError:
        return StoreError(
            f"could not {what}: the connection to PostgreSQL ({redact_dsn(self.dsn)}) failed "
            f"({self._scrub(exc)}). The next call reconnects. An append interrupted this way "
            "may or may not have been committed: retrying the same events is safe (a stored "
            "append is returned, not written twice)."
        )

    def _scrub(self, exc: BaseException) -> str:
        text = str(exc) or type(exc).__name__
        password = _password(self.dsn)
        return text.replace(password, "***") if password else text

    @asynccontextmanager
    async def _connection(
        self, what: str, keep: type[BaseException] | tuple[type[BaseException], ...] = ()
    ) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection, with errors mapped. One that failed at the connection level is
        closed rather than returned, so the pool replaces it and the next call reconnects."""
        pool = self._open_pool()
        async with self._errors(what, keep), pool.acquire() as connection:
            try:
                yield connection
            except _CONNECTION_ERRORS:
                connection.terminate()
                raise

    def _open_pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise StoreClosedError(f"PostgreSQL store ({redact_dsn(self.dsn)}) was closed")
        return self._pool

    async def open(self) -> None:
        async with self._errors("connect"):
            self._pool = await asyncpg.create_pool(
                self.dsn,
                min_size=self._min_size,
                max_size=self._max_size,
                server_settings=self._settings(),
                connection_class=_PooledConnection,
            )
        try:
            async with self._transaction("create the schema") as connection:
                await connection.execute(self.sql.schema_lock)
                for statement in self.sql.create:
                    await connection.execute(statement)
                found = await connection.fetchval(self.sql.schema_version)
                if found is None:
                    await connection.execute(self.sql.set_schema_version, SCHEMA_VERSION)
                elif found != SCHEMA_VERSION:
                    raise SchemaVersionError(
                        f"schema {self.schema!r} holds eventuality schema version {found}; "
                        f"this eventuality uses {SCHEMA_VERSION}. Upgrade eventuality or "
                        "migrate the schema before opening it."
                    )
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        with anyio.CancelScope(shield=True):
            listener, self._listener = self._listener, None
            if listener is not None:
                with contextlib.suppress(Exception):
                    await listener.close(timeout=5)
            pool, self._pool = self._pool, None
            if pool is not None:
                with contextlib.suppress(Exception):
                    await pool.close()

    @asynccontextmanager
    async def _transaction(
        self, what: str, keep: type[BaseException] | tuple[type[BaseException], ...] = ()
    ) -> AsyncIterator[asyncpg.Connection]:
        """A transaction that commits and rolls back shielded from cancellation."""
        async with self._connection(what, keep) as connection:
            transaction = connection.transaction()
            await transaction.start()
            try:
                yield connection
            except BaseException:
                with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
                    await transaction.rollback()
                raise
            with anyio.CancelScope(shield=True):
                await transaction.commit()

    async def append(self, requests: Sequence[AppendRequest]) -> list[StoredEvent]:
        total = sum(len(request.rows) for request in requests)
        if total > TRANSACTION_SLOTS:
            raise ValueError(
                f"PostgreSQL takes at most {TRANSACTION_SLOTS:,} events in one append, not "
                f"{total:,}: split it (nothing was written)"
            )
        for _ in range(5):
            try:
                async with self._transaction("append", _RETRY) as connection:
                    return await self._insert(connection, requests)
            except ConcurrencyError:
                replay = await self._replay(requests)
                if replay is not None:
                    return replay
                raise
            except asyncpg.UniqueViolationError:
                replay = await self._replay(requests)
                if replay is not None:
                    return replay
                conflict = await self._conflict(requests)
                if conflict is not None:
                    raise conflict from None
            except (asyncpg.DeadlockDetectedError, asyncpg.SerializationError):
                pass  # rolled back whole: run it again
        raise StoreError("append kept racing with concurrent appends to the same stream; retry it")

    async def _insert(
        self, connection: asyncpg.Connection, requests: Sequence[AppendRequest]
    ) -> list[StoredEvent]:
        transaction_id, versions = await connection.fetchrow(
            self.sql.prepare_append, [_encode(r.stream_id) for r in requests]
        )
        rows = [
            row
            for request, current in zip(requests, versions, strict=True)
            for row in settle_versions(request, current)
        ]
        base = transaction_id * TRANSACTION_SLOTS
        stored = [row._replace(position=base + i) for i, row in enumerate(rows)]
        # Insert in (stream, version) order, whatever order the streams came in: two commits
        # touching the same streams then wait for each other in one order, never deadlock.
        ordered = sorted(stored, key=lambda r: (_encode(r.stream_id), r.version))
        await connection.execute(
            self.sql.insert,
            [r.position for r in ordered],
            [_encode(r.stream_id) for r in ordered],
            [r.version for r in ordered],
            [r.event_type for r in ordered],
            [r.schema_version for r in ordered],
            [r.data for r in ordered],
            [r.metadata for r in ordered],
            [r.event_id for r in ordered],
            [_encode(r.aggregate_id) for r in ordered],
            [r.occurred_at for r in ordered],
            self.sql.channel,
        )
        return stored

    async def _replay(self, requests: Sequence[AppendRequest]) -> list[StoredEvent] | None:
        ids = [row.event_id for request in requests for row in request.rows]
        async with self._connection("append") as connection:
            found = await connection.fetch(self.sql.by_ids, ids)
        return match_retry(requests, {str(r[7]): _stored(r) for r in found})

    async def _conflict(self, requests: Sequence[AppendRequest]) -> ConcurrencyError | None:
        for request in requests:
            if request.expected_version is not None:
                actual = await self.stream_version(request.stream_id)
                if actual != request.expected_version:
                    return ConcurrencyError(request.stream_id, request.expected_version, actual)
        return None

    async def read_stream(
        self, stream_id: str, from_version: int, to_version: int | None
    ) -> list[StoredEvent]:
        async with self._connection("read a stream") as connection:
            found = await connection.fetch(
                self.sql.read_stream,
                _encode(stream_id),
                from_version,
                2**31 - 1 if to_version is None else to_version,
            )
        return [_stored(r) for r in found]

    async def read_log(
        self, after: int, limit: int, types: frozenset[str] | None
    ) -> list[StoredEvent]:
        async with self._connection("read the log") as connection:
            if types is None:
                found = await connection.fetch(self.sql.read_log, after, limit)
            else:
                found = await connection.fetch(self.sql.read_log_types, after, limit, list(types))
        return [_stored(r) for r in found]

    async def stream_version(self, stream_id: str) -> int:
        async with self._connection("read a stream version") as connection:
            return int(await connection.fetchval(self.sql.stream_version, _encode(stream_id)))

    async def last_position(self) -> int:
        async with self._connection("read the last position") as connection:
            return int(await connection.fetchval(self.sql.last_position))

    async def wait_appended(self, after: int, timeout: float) -> bool:
        """Woken by NOTIFY; polls with backoff as well, for notifications that cannot come (a
        blocking transaction that rolled back) or a listener that is down."""

        async def wake() -> anyio.Event:
            await self._listen()
            return self._appended

        return await poll_appended(self.last_position, wake, after, timeout)

    async def _listen(self) -> None:
        """(Re)connect the notification listener, at most once a second after a failure."""
        self._open_pool()
        if self.listening or anyio.current_time() < self._listener_retry_at:
            return
        self._listener_retry_at = anyio.current_time() + 1.0
        try:
            listener = await asyncpg.connect(self.dsn, server_settings=self._settings())
        except (asyncpg.PostgresError, *_CONNECTION_ERRORS):
            return  # polling covers for it; the next wait tries again
        try:
            await listener.add_listener(self.sql.channel, self._notified)
            self._open_pool()  # closed while we connected: do not leave a listener behind
        except BaseException as exc:
            listener.terminate()
            if isinstance(exc, asyncpg.PostgresError | _CONNECTION_ERRORS):
                return
            raise
        listener.add_termination_listener(self._listener_lost)
        self._listener = listener

    def _notified(self, *_: object) -> None:
        self._appended.set()
        self._appended = anyio.Event()

    def _listener_lost(self, *_: object) -> None:
        self._listener = None
        self._notified()

    @asynccontextmanager
    async def hold_name(self, name: str) -> AsyncIterator[None]:
        async with self._errors("lock a subscription name"):
            holder = await asyncpg.connect(self.dsn, server_settings=self._settings())
        try:
            interval = 0.01
            while True:
                async with self._errors("lock a subscription name"):
                    if await holder.fetchval(self.sql.try_lock, name):
                        break
                await anyio.sleep(interval)
                interval = min(interval * 2, _LOCK_POLL)
            with anyio.CancelScope() as scope:
                holder.add_termination_listener(lambda *_: scope.cancel())
                yield
            if scope.cancelled_caught:
                raise SubscriptionLocked(
                    f"lost the connection holding subscription {name!r}; another instance may "
                    "have taken over. Restart it: it continues from the stored checkpoint."
                )
        finally:
            with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
                await holder.close(timeout=5)

    async def get_checkpoint(self, name: str) -> int | None:
        async with self._connection("read a checkpoint") as connection:
            return await connection.fetchval(self.sql.get_checkpoint, name)  # type: ignore[no-any-return]

    async def set_checkpoint(self, name: str, position: int, expected: int | None) -> None:
        async with self._connection("set a checkpoint") as connection:
            await self._set_checkpoint(connection, name, position, expected)

    async def _set_checkpoint(
        self, connection: asyncpg.Connection, name: str, position: int, expected: int | None
    ) -> None:
        if expected is None:
            status = await connection.execute(self.sql.insert_checkpoint, name, position)
            done = status == "INSERT 0 1"
        else:
            status = await connection.execute(self.sql.move_checkpoint, name, position, expected)
            done = status == "UPDATE 1"
        if not done:
            actual = await connection.fetchval(self.sql.get_checkpoint, name)
            raise CheckpointConflict(name, expected, actual)

    async def save_snapshot(self, snapshot: Snapshot) -> None:
        async with self._connection("save a snapshot") as connection:
            await connection.execute(
                self.sql.save_snapshot,
                _encode(snapshot.stream_id),
                snapshot.version,
                snapshot.aggregate_type,
                snapshot.schema_version,
                snapshot.state,
            )

    async def load_snapshot(self, stream_id: str, max_version: int | None) -> Snapshot | None:
        async with self._connection("load a snapshot") as connection:
            found = await connection.fetchrow(
                self.sql.load_snapshot,
                _encode(stream_id),
                2**31 - 1 if max_version is None else max_version,
            )
        if found is None:
            return None
        return Snapshot(stream_id, found[0], found[1], found[2], found[3])

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[BackendTransaction]:
        """A transaction for user SQL. The user's own errors pass through unmapped, and the
        connection's session state is reset before it goes back to the pool."""
        pool = self._open_pool()
        async with self._errors("begin a transaction"):
            connection = await pool.acquire()
        try:
            transaction = connection.transaction()
            async with self._errors("begin a transaction"):
                await transaction.start()
            try:
                yield _PostgresTransaction(self, connection)
            except BaseException:
                with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
                    await transaction.rollback()
                raise
            with anyio.CancelScope(shield=True):
                async with self._errors("commit a transaction"):
                    await transaction.commit()
        finally:
            with anyio.CancelScope(shield=True):
                await self._release_after_user_sql(pool, connection)

    async def query(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        pool = self._open_pool()
        async with self._errors("run a query"):
            connection = await pool.acquire()
            try:
                return [tuple(r) for r in await connection.fetch(sql, *params)]
            finally:
                with anyio.CancelScope(shield=True):
                    await self._release_after_user_sql(pool, connection)

    async def _release_after_user_sql(self, pool: asyncpg.Pool, connection: Any) -> None:
        """User SQL may change session state (SET, LISTEN, advisory locks): undo it first."""
        with contextlib.suppress(Exception):
            if not connection.is_closed():
                await connection.execute(_SESSION_RESET)
        await pool.release(connection)


def _password(dsn: str) -> str | None:
    from urllib.parse import parse_qsl, urlsplit

    parts = urlsplit(dsn)
    if parts.password:
        return parts.password
    return next((v for k, v in parse_qsl(parts.query) if k.lower() == "password"), None)


_SCHEMA_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


class PostgresEventStore(EventStore):
    """An event store in PostgreSQL, shared by any number of processes and machines.

    :param dsn: ``postgresql://user:password@host:port/database`` (libpq keywords as query
        parameters are accepted too).
    :param schema: the schema holding eventuality's tables (created if missing); read models
        of projections land there too unless their SQL names another schema.
    :param min_size: the pool's minimum number of connections.
    :param max_size: the pool's maximum number of connections.
    """

    def __init__(
        self, dsn: str, *, schema: str = "public", min_size: int = 1, max_size: int = 10
    ) -> None:
        if not isinstance(dsn, str) or not dsn.startswith(("postgresql://", "postgres://")):
            raise ValueError(
                f"PostgresEventStore takes a postgresql:// URL, not {redact_dsn(str(dsn))!r}"
            )
        if not _SCHEMA_NAME.fullmatch(schema):
            raise ValueError(
                f"schema must be a plain identifier (letters, digits, _), not {schema!r}"
            )
        if not 1 <= min_size <= max_size:
            raise ValueError(f"need 1 <= min_size <= max_size, got {min_size} and {max_size}")
        super().__init__(PostgresBackend(dsn, schema=schema, min_size=min_size, max_size=max_size))
        self.dsn = redact_dsn(dsn)
        self.schema = schema

    def __repr__(self) -> str:
        return f"PostgresEventStore({self.dsn!r}, schema={self.schema!r})"


if TYPE_CHECKING:
    _conforms: Backend = PostgresBackend("", schema="public", min_size=1, max_size=1)
