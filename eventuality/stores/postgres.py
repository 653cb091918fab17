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

So a reader never passes a position whose transaction may still commit and never waits on one
that rolled back. Positions are sparse (large numbers with gaps); they only promise to be unique
and to increase in the order readers see them. The price: a write transaction left open anywhere
in the PostgreSQL cluster holds readers back (never writers) until it ends.

**Appends to one stream queue; others run side by side.** An append first takes a
transaction-level advisory lock per stream it writes (in key order, so two appends never
deadlock), then reads the versions in a statement of its own, whose snapshot sees every append
that held the lock before. So an unchecked append (``expected_version=None``) always finds the
true version and succeeds, and of two checked appends to one version exactly one wins. An append
costs four round trips: BEGIN with the locks, one statement that takes the transaction id and
reads the stream versions, one that inserts and notifies, COMMIT.

**Live following.** Each append sends ``NOTIFY`` in its transaction; one listening connection
per store wakes ``wait_appended``. If it drops, waits fall back to polling with backoff and the
listener reconnects on the next wait.

**Subscriptions across processes.** ``hold_name`` takes a session advisory lock on a connection
of its own, so one instance per subscription name runs at a time; when its holder dies, the
server releases the lock and a waiting instance takes over from the checkpoint.

**Partitioned subscriptions** share their partitions between processes through one lease
connection per process (``_postgres_leases``): session advisory locks, released by the server
when a process dies.

**Read-only queries.** ``query()`` runs on a pool of its own whose sessions start with
``default_transaction_read_only``, so a write through it fails and nothing is written; the reset
after each query (which user SQL needs anyway) restores the setting. That pool opens its
connections only when queries come.

Stream ids and aggregate ids are ``bytea`` (UTF-8), so any string, ``\\x00`` included, is stored
verbatim; payloads are ``json`` (which, unlike ``jsonb``, keeps ``\\u0000``). A lost connection
is a :class:`~eventuality.StoreConnectionError` (see ``_postgres_conn.py``).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any

import anyio
import asyncpg

from ..errors import (
    CheckpointConflict,
    ConcurrencyError,
    SchemaVersionError,
    StoreConnectionError,
    SubscriptionLocked,
    TransientStoreError,
)
from ._keys import KeyClaims
from ._postgres_conn import (
    WRITE_UNCERTAIN,
    Connections,
    end_transaction,
)
from ._postgres_keys import PostgresSubjectKeys, claim
from ._postgres_leases import PostgresLeases, lease_session
from ._postgres_sql import SCHEMA_VERSION, TRANSACTION_SLOTS, Statements
from ._postgres_streams import PostgresLifecycle, parse_state
from ._postgres_transaction import PostgresTransaction
from .base import (
    AppendRequest,
    BackendTransaction,
    EventStore,
    Snapshot,
    StoredEvent,
    match_retry,
    poll_appended,
    redact_dsn,
    settle_versions,
)
from .commands import CommandRecord, KeyTaken, RecordedCommand, with_positions
from .lifecycle import refuse_gone
from .rows import CheckpointMove, refuse_repeat

__all__ = ["PostgresEventStore"]

_LOCK_POLL = 0.2
_RETRY = (asyncpg.UniqueViolationError, asyncpg.DeadlockDetectedError, asyncpg.SerializationError)
_APPEND_UNCERTAIN = (
    "An append interrupted this way may or may not have been committed: retrying the same "
    "events is safe (a stored append is returned, not written twice)."
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


class PostgresBackend(PostgresLifecycle, PostgresSubjectKeys):
    """Rows in PostgreSQL tables in one schema, through an asyncpg pool; the stream
    lifecycle tier is in ``_postgres_streams``, the personal-data keys in ``_postgres_keys``."""

    paramstyle = "dollar"
    asyncio_only = True
    cross_process_locks = True
    durable = True
    gap_free_positions = False  # positions follow transaction ids: a rolled-back append skips

    def __init__(self, dsn: str, *, schema: str, min_size: int, max_size: int) -> None:
        self.dsn = dsn
        self.schema = schema
        self.sql = Statements(schema)
        self.keys_sql = self.sql.keys
        self.db = Connections(dsn, schema, min_size, max_size)
        self._listener: asyncpg.Connection | None = None
        self._listener_retry_at = 0.0
        self._appended = anyio.Event()

    @property
    def listening(self) -> bool:
        """Whether the notification connection is up (else waits poll)."""
        return self._listener is not None and not self._listener.is_closed()

    async def open(self) -> None:
        await self.db.open()
        try:
            async with self.db.transaction("create the schema") as connection:
                await connection.execute(self.sql.schema_lock)
                for statement in self.sql.create:
                    await connection.execute(statement)
                found = await connection.fetchval(self.sql.schema_version)
                version = 1 if found is None else found
                if version > SCHEMA_VERSION:
                    raise SchemaVersionError(
                        f"schema {self.schema!r} holds eventuality schema version {version}, "
                        "written by a newer eventuality; this one knows versions up to "
                        f"{SCHEMA_VERSION}. Upgrade eventuality to open it (nothing was changed)."
                    )
                for step in range(version + 1, SCHEMA_VERSION + 1):
                    for statement in self.sql.upgrades[step]:
                        await connection.execute(statement)
                if found != SCHEMA_VERSION:
                    await connection.execute(self.sql.set_schema_version, SCHEMA_VERSION)
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        with anyio.CancelScope(shield=True):
            listener, self._listener = self._listener, None
            if listener is not None:
                with contextlib.suppress(Exception):
                    await listener.close(timeout=5)
            await self.db.close()

    async def append(
        self, requests: Sequence[AppendRequest], record: CommandRecord | None = None
    ) -> list[StoredEvent]:
        """``record`` (``append_command``) goes into the events' own INSERT statement, only if
        its key is new: ``ON CONFLICT DO NOTHING`` waits for a concurrent commit of the key,
        then inserts nothing, and the transaction is rolled back with KeyTaken."""
        return await self._append(requests, None, record)

    def _pooled(self, what: str) -> contextlib.AbstractAsyncContextManager[asyncpg.Connection]:
        return self.db.pooled(what)

    def _transaction(self, what: str) -> contextlib.AbstractAsyncContextManager[asyncpg.Connection]:
        return self.db.transaction(what)

    async def _append(
        self,
        requests: Sequence[AppendRequest],
        claims: KeyClaims | None,
        record: CommandRecord | None = None,
        move: CheckpointMove | None = None,
    ) -> list[StoredEvent]:
        total = sum(len(request.rows) for request in requests)
        if total > TRANSACTION_SLOTS:
            raise ValueError(
                f"PostgreSQL takes at most {TRANSACTION_SLOTS:,} events in one append, not "
                f"{total:,}: split it (nothing was written)"
            )
        begin = self.sql.begin_append(_encode(r.stream_id) or b"" for r in requests)
        for _ in range(5):
            try:
                async with self.db.transaction("append", _RETRY, begin, _APPEND_UNCERTAIN) as c:
                    if move is not None:  # first: a conflict inserts no event
                        await self._set_checkpoint(c, move.name, move.position, move.expected)
                    if claims is not None:  # keys first: a failed claim inserts no event
                        await claim(c, self.keys_sql, claims)
                    if record is None:  # the plain call, as wrappers of _insert expect it
                        return await self._insert(c, requests)
                    return await self._insert(c, requests, record)
            except ConcurrencyError:
                replay = await self._replay(requests, move)
                if replay is not None:
                    return replay
                raise
            except asyncpg.UniqueViolationError:
                # An event id stored already: this append again (a retry), or a clash.
                replay = await self._replay(requests, move)
                if replay is not None:
                    return replay
                conflict = await self._conflict(requests)
                if conflict is not None:
                    raise conflict from None
            except (asyncpg.DeadlockDetectedError, asyncpg.SerializationError):
                pass  # rolled back whole: run it again
        raise TransientStoreError(
            "append kept failing on conflicts with concurrent writers that do not take the "
            "stream locks (an older eventuality on the same schema?); retry it"
        )

    append_command = append  # the record rides along in the same call (see append)

    async def append_checkpointed(
        self, requests: Sequence[AppendRequest], move: CheckpointMove
    ) -> list[StoredEvent]:
        """The checkpoint moves first in the append's own transaction (its row stays locked
        until the commit), then the events are inserted."""
        return await self._append(requests, None, None, move)

    async def get_command(self, key: str) -> RecordedCommand | None:
        async with self.db.pooled("read a recorded command") as connection:
            found = await connection.fetchrow(self.sql.get_command, key)
            if found is None:
                return None
            record = CommandRecord(key, found[0], found[1], found[2], found[3], found[4], found[5])
            if not record.last_position:
                return RecordedCommand(record, [])
            rows = await connection.fetch(
                self.sql.read_positions, record.first_position, record.last_position
            )
        return RecordedCommand(record, [_stored(r) for r in rows])

    async def prune_commands(
        self, recorded_before: datetime | None, keep: int | None, limit: int
    ) -> int:
        async with self.db.pooled("prune recorded commands") as connection:
            status = await connection.execute(self.sql.prune_commands, recorded_before, keep, limit)
        return int(status.split()[-1])

    async def _insert(
        self,
        connection: asyncpg.Connection,
        requests: Sequence[AppendRequest],
        record: CommandRecord | None = None,
    ) -> list[StoredEvent]:
        transaction_id, versions, gone = await connection.fetchrow(
            self.sql.prepare_append, [_encode(r.stream_id) for r in requests]
        )
        for request, state in zip(requests, gone, strict=True):
            if state is not None:  # deleted or archived
                refuse_gone(request.stream_id, parse_state(state), "append to the stream")
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
        command: tuple[object, ...] = ()
        if record is not None:
            done = with_positions(record, stored)
            command = (done.key, done.command_type, done.command_id, done.digest)
            command += (done.first_position, done.last_position, done.recorded_at)
        found = await connection.fetchrow(
            self.sql.insert if record is None else self.sql.insert_command,
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
            *command,
        )
        if record is not None and not found[0]:
            raise KeyTaken(record.key)
        return stored

    async def _replay(
        self, requests: Sequence[AppendRequest], move: CheckpointMove | None = None
    ) -> list[StoredEvent] | None:
        ids = [row.event_id for request in requests for row in request.rows]
        async with self.db.pooled("append") as connection:
            found = await connection.fetch(self.sql.by_ids, ids)
        stored = {str(r[7]): _stored(r) for r in found}
        if move is not None:
            refuse_repeat(requests, stored)
        return match_retry(requests, stored)

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
        async with self.db.pooled("read a stream") as connection:
            found = await connection.fetch(
                self.sql.read_stream,
                _encode(stream_id),
                from_version,
                2**31 - 1 if to_version is None else to_version,
            )
        if found and found[-1][10] is not None:  # deleted or archived: it has no rows
            refuse_gone(stream_id, parse_state(found[-1][10]), "read the stream")
        return [_stored(r) for r in found]

    async def read_log(
        self, after: int, limit: int, types: frozenset[str] | None
    ) -> list[StoredEvent]:
        async with self.db.pooled("read the log") as connection:
            if types is None:
                found = await connection.fetch(self.sql.read_log, after, limit)
            else:
                found = await connection.fetch(self.sql.read_log_types, after, limit, list(types))
        return [_stored(r) for r in found]

    async def stream_version(self, stream_id: str) -> int:
        async with self.db.pooled("read a stream version") as connection:
            version, state = await connection.fetchrow(self.sql.stream_version, _encode(stream_id))
        if state is not None:  # deleted or archived: version 0
            refuse_gone(stream_id, parse_state(state), "read the stream's version")
        return int(version)

    async def last_position(self) -> int:
        async with self.db.pooled("read the last position") as connection:
            return int(await connection.fetchval(self.sql.last_position))

    async def wait_appended(self, after: int, timeout: float) -> bool:
        """Woken by NOTIFY; polls with backoff as well, for notifications that cannot come (a
        blocking transaction that rolled back) or a listener that is down."""

        async def wake() -> anyio.Event:
            await self._listen()
            return self._appended

        return await poll_appended(self.last_position, wake, after, timeout)

    async def _listen(self) -> None:
        """(Re)connect the notification listener, at most once a second after a failure. A
        failure here is never an error: polling covers for it and the next wait tries again."""
        self.db.check_open()
        if self.listening or anyio.current_time() < self._listener_retry_at:
            return
        self._listener_retry_at = anyio.current_time() + 1.0
        try:
            listener = await self.db.connect()
        except StoreConnectionError:
            return
        try:
            await listener.add_listener(self.sql.channel, self._notified)
        except BaseException as exc:
            listener.terminate()
            if isinstance(exc, Exception):
                return
            raise  # cancelled
        if not self.db.is_open:  # closed while we connected: leave no listener behind
            listener.terminate()
            self.db.check_open()
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
        """Hold ``name`` with a session advisory lock on a connection of its own. A lost
        holder connection ends the block with SubscriptionLocked (another instance may take
        over); one lost while waiting for the lock, with StoreConnectionError."""
        what = "lock a subscription name"
        holder = await self.db.connect()
        scope = anyio.CancelScope()

        def lost(*_: object) -> None:
            scope.cancel()

        try:
            interval = 0.01
            while True:
                async with self.db.failures.mapping(what, holder):
                    if await holder.fetchval(self.sql.try_lock, name):
                        break
                await anyio.sleep(interval)
                interval = min(interval * 2, _LOCK_POLL)
            holder.add_termination_listener(lost)
            if holder.is_closed():  # lost before the listener was there to see it
                scope.cancel()
            with scope:
                yield
            if scope.cancelled_caught:
                raise SubscriptionLocked(
                    f"lost the connection holding subscription {name!r}; another instance may "
                    "have taken over. Restart it: it continues from the stored checkpoint.",
                    name=name,
                )
        finally:
            holder.remove_termination_listener(lost)
            with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
                await holder.close(timeout=5)

    def lease_names(self, name: str) -> contextlib.AbstractAsyncContextManager[PostgresLeases]:
        """The partitions of subscription ``name`` are shared between processes (see
        ``_postgres_leases``)."""
        return lease_session(self.db, self.schema, name)

    async def get_checkpoint(self, name: str) -> int | None:
        async with self.db.pooled("read a checkpoint") as connection:
            return await connection.fetchval(self.sql.get_checkpoint, name)  # type: ignore[no-any-return]

    async def set_checkpoint(self, name: str, position: int, expected: int | None) -> None:
        async with self.db.pooled("set a checkpoint", uncertain=WRITE_UNCERTAIN) as connection:
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
        async with self.db.pooled("save a snapshot", uncertain=WRITE_UNCERTAIN) as connection:
            await connection.execute(
                self.sql.save_snapshot,
                _encode(snapshot.stream_id),
                snapshot.version,
                snapshot.aggregate_type,
                snapshot.schema_version,
                snapshot.state,
            )

    async def load_snapshot(self, stream_id: str, max_version: int | None) -> Snapshot | None:
        async with self.db.pooled("load a snapshot") as connection:
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
        """A transaction for user SQL. The user's own errors pass through unmapped (only the
        driver's are mapped, statement by statement); the session is reset afterwards."""
        failures = self.db.failures
        async with self.db.user_session(read_only=False) as connection:
            try:
                async with failures.mapping("begin a transaction", connection):
                    await connection.execute("BEGIN")
                yield PostgresTransaction(self, connection)
            except BaseException:
                await end_transaction(connection)
                raise
            with anyio.CancelScope(shield=True):
                async with failures.mapping(
                    "commit a transaction", connection, uncertain=WRITE_UNCERTAIN
                ):
                    await connection.execute("COMMIT")

    async def query(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        """Run user SQL on a read-only session: a write fails and nothing is written."""
        failures = self.db.failures
        async with self.db.user_session(read_only=True) as connection:
            try:
                async with failures.mapping(
                    "run a query",
                    connection,
                    keep=asyncpg.ReadOnlySQLTransactionError,
                    statement=sql,
                ):
                    return [tuple(r) for r in await connection.fetch(sql, *params)]
            except asyncpg.ReadOnlySQLTransactionError as exc:
                raise failures.read_only(exc, sql) from exc


_SCHEMA_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


class PostgresEventStore(EventStore):
    """An event store in PostgreSQL, shared by any number of processes and machines.

    :param dsn: ``postgresql://user:password@host:port/database``. Query parameters are
        libpq's as asyncpg reads them (``sslmode``, ``sslrootcert``, ``options``, ...) plus
        ``connect_timeout`` (whole seconds, as in libpq; asyncpg's default is 60),
        ``application_name`` (default ``eventuality``) and server settings
        (``statement_timeout=5000``). libpq options asyncpg cannot honour (``keepalives``,
        ``hostaddr``, ``gssencmode``, ...) and ``search_path`` are refused with ValueError.
    :param schema: the schema holding eventuality's tables (created if missing); read models
        of projections land there too unless their SQL names another schema.
    :param min_size: the pool's minimum number of connections.
    :param max_size: the pool's maximum number of connections. ``query()`` has a pool of its
        own, of read-only sessions, of up to ``max_size`` connections opened as queries come;
        the notification listener and each running subscription's name holder take one more.
    :raises ValueError: a malformed URL or parameter, a bad schema name or pool size.
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
    from .boundary import CompleteBackend

    _conforms: CompleteBackend = PostgresBackend("", schema="public", min_size=1, max_size=1)
