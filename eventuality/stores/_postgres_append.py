"""The PostgreSQL store's appends: the one-round-trip append and the transaction it falls back to.

**One round trip.** A plain append (``append``, ``append_command``) is one call of the schema's
``eventuality_append`` function (``_postgres_sql``), outside any transaction: PostgreSQL runs
the statement as a transaction of its own, so it is atomic with no ``BEGIN`` or ``COMMIT`` and
costs one round trip instead of four. Inside, it does what the four statements below did: the
stream locks in key order, the versions read after them, the checks, the command record and
the inserts. A check that fails writes nothing; the function says what it found and the
checks here raise the same errors as before. A cancelled call is either rolled back whole by
the server or committed whole: a statement is never half-applied.

**Four round trips.** An append that also claims personal-data keys or moves a checkpoint
runs in a transaction of its own statements: ``BEGIN`` with the stream locks, the checkpoint
move or the claims, ``prepare_append`` (transaction id, versions, states), the insert, then
``COMMIT``. Stream lifecycle operations insert their marker event the same way (``_insert``).

Both take the same advisory locks, so they queue behind each other as before.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import asyncpg

from ..errors import ConcurrencyError, TransientStoreError
from ._keys import KeyClaims
from ._postgres_keys import claim
from ._postgres_sql import TRANSACTION_SLOTS
from ._postgres_streams import parse_state
from .commands import CommandRecord, KeyTaken, RecordedCommand, with_positions
from .lifecycle import refuse_gone
from .rows import (
    AppendRequest,
    CheckpointMove,
    StoredEvent,
    match_retry,
    refuse_repeat,
    settle_versions,
)

if TYPE_CHECKING:
    from ._postgres_conn import Connections
    from ._postgres_sql import Statements

__all__ = ["PostgresAppends"]

_RETRY = (asyncpg.UniqueViolationError, asyncpg.DeadlockDetectedError, asyncpg.SerializationError)
_APPEND_UNCERTAIN = (
    "An append interrupted this way may or may not have been committed: retrying the same "
    "events is safe (a stored append is returned, not written twice)."
)


def encode(text: str | None) -> bytes | None:
    return None if text is None else text.encode("utf-8", "surrogatepass")


def decode(data: bytes | None) -> str | None:
    return None if data is None else bytes(data).decode("utf-8", "surrogatepass")


def stored_event(record: asyncpg.Record) -> StoredEvent:
    return StoredEvent(
        decode(record[1]) or "",
        record[2],
        record[3],
        record[4],
        record[5],
        record[6],
        str(record[7]),
        decode(record[8]),
        record[9],
        record[0],
    )


def _numbered(
    requests: Sequence[AppendRequest],
    transaction_id: int | None,
    versions: Sequence[int],
    states: Sequence[str | None],
) -> list[StoredEvent]:
    """The append's rows with their versions and positions, as the server numbered them.

    :raises StreamLifecycleError: a stream is deleted or archived.
    :raises ConcurrencyError: a stream is not at its expected version.
    """
    for request, state in zip(requests, states, strict=True):
        if state is not None:  # deleted or archived
            refuse_gone(request.stream_id, parse_state(state), "append to the stream")
    rows = [
        row
        for request, current in zip(requests, versions, strict=True)
        for row in settle_versions(request, current)
    ]
    if transaction_id is None:  # the function found a failed check that settle_versions missed
        raise AssertionError("eventuality_append wrote nothing, yet every check passes")
    base = transaction_id * TRANSACTION_SLOTS
    return [row._replace(position=base + i) for i, row in enumerate(rows)]


class PostgresAppends:
    """The appends of :class:`~eventuality.stores.postgres.PostgresBackend`."""

    _appending = 0  # one-statement appends of this backend on their way

    if TYPE_CHECKING:
        db: Connections
        sql: Statements

        async def _set_checkpoint(
            self, connection: asyncpg.Connection, name: str, position: int, expected: int | None
        ) -> None: ...

        async def stream_version(self, stream_id: str) -> int: ...

        def announce(self, notified: bool) -> None: ...

    async def append(
        self, requests: Sequence[AppendRequest], record: CommandRecord | None = None
    ) -> list[StoredEvent]:
        """``record`` (``append_command``) is written by the same statement, only if its key is
        new: ``ON CONFLICT DO NOTHING`` waits for a concurrent commit of the key, then inserts
        nothing, and the append writes nothing and raises KeyTaken."""
        return await self._append(requests, None, record)

    append_command = append  # the record rides along in the same call (see append)

    async def append_checkpointed(
        self, requests: Sequence[AppendRequest], move: CheckpointMove
    ) -> list[StoredEvent]:
        """The checkpoint moves first in the append's own transaction (its row stays locked
        until the commit), then the events are inserted."""
        return await self._append(requests, None, None, move)

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
        for _ in range(5):
            try:
                if claims is None and move is None:
                    return await self._append_at_once(requests, record)
                return await self._append_in_transaction(requests, claims, record, move)
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

    async def _append_at_once(
        self, requests: Sequence[AppendRequest], record: CommandRecord | None
    ) -> list[StoredEvent]:
        """One call of ``eventuality_append``: one round trip, one transaction."""
        stream_ids = [encode(r.stream_id) or b"" for r in requests]
        keys = self.sql.lock_keys(stream_ids)
        # Rows in (stream, version) order, whatever order the streams came in: two commits
        # touching the same streams then wait for each other in one order, never deadlock.
        # Within a stream the rows' versions grow with their place, so the place sorts them.
        numbered: list[tuple[bytes, int, int, int, StoredEvent]] = []
        renumber = [bool(r.rows) and r.rows[0].version == 0 for r in requests]
        for k, (request, stream_id) in enumerate(zip(requests, stream_ids, strict=True), 1):
            for place, row in enumerate(request.rows, 1):
                version = place if renumber[k - 1] else row.version
                numbered.append((stream_id, len(numbered), k, version, row))
        numbered.sort(key=lambda item: (item[0], item[1]))
        rows = [item[4] for item in numbered]
        command: tuple[object, ...] = (None, None, None, None, None)
        if record is not None:
            command = (record.key, record.command_type, record.command_id, record.digest)
            command += (record.recorded_at,)
        arguments: tuple[Any, ...] = (
            [a for a, _ in keys],
            [b for _, b in keys],
            stream_ids,
            [r.expected_version for r in requests],
            renumber,
            [item[2] for item in numbered],
            [item[3] for item in numbered],
            [item[1] for item in numbered],
            [r.event_type for r in rows],
            [r.schema_version for r in rows],
            [r.data for r in rows],
            [r.metadata for r in rows],
            [r.event_id for r in rows],
            [encode(r.aggregate_id) for r in rows],
            [r.occurred_at for r in rows],
        )
        # Alone, the append notifies in its own transaction (no extra round trip); beside
        # others of this process, once committed, so their commits share a WAL flush (see
        # _postgres_notify).
        alone = not self._appending
        self._appending += 1
        try:
            async with self.db.pooled("append", _RETRY, _APPEND_UNCERTAIN) as connection:
                transaction_id, versions, states, key_taken = await connection.fetchrow(
                    self.sql.append, *arguments, self.sql.channel if alone else None, *command
                )
                if transaction_id is not None:  # committed (before any await: even if cancelled)
                    self.announce(notified=alone)
        finally:
            self._appending -= 1
        if key_taken:
            assert record is not None
            raise KeyTaken(record.key)
        return _numbered(requests, transaction_id, versions, states)

    async def _append_in_transaction(
        self,
        requests: Sequence[AppendRequest],
        claims: KeyClaims | None,
        record: CommandRecord | None,
        move: CheckpointMove | None,
    ) -> list[StoredEvent]:
        """Four round trips or more, for an append that claims keys or moves a checkpoint."""
        begin = self.sql.begin_append(encode(r.stream_id) or b"" for r in requests)
        async with self.db.transaction("append", _RETRY, begin, _APPEND_UNCERTAIN) as c:
            if move is not None:  # first: a conflict inserts no event
                await self._set_checkpoint(c, move.name, move.position, move.expected)
            if claims is not None:  # keys first: a failed claim inserts no event
                await claim(c, self.sql.keys, claims)
            if record is None:  # the plain call, as wrappers of _insert expect it
                return await self._insert(c, requests)
            return await self._insert(c, requests, record)

    async def _insert(
        self,
        connection: asyncpg.Connection,
        requests: Sequence[AppendRequest],
        record: CommandRecord | None = None,
    ) -> list[StoredEvent]:
        """Insert ``requests`` in the transaction ``connection`` holds the stream locks in."""
        transaction_id, versions, states = await connection.fetchrow(
            self.sql.prepare_append, [encode(r.stream_id) for r in requests]
        )
        stored = _numbered(requests, transaction_id, versions, states)
        ordered = sorted(stored, key=lambda r: (encode(r.stream_id), r.version))
        command: tuple[object, ...] = ()
        if record is not None:
            done = with_positions(record, stored)
            command = (done.key, done.command_type, done.command_id, done.digest)
            command += (done.first_position, done.last_position, done.recorded_at)
        found = await connection.fetchrow(
            self.sql.insert if record is None else self.sql.insert_command,
            [r.position for r in ordered],
            [encode(r.stream_id) for r in ordered],
            [r.version for r in ordered],
            [r.event_type for r in ordered],
            [r.schema_version for r in ordered],
            [r.data for r in ordered],
            [r.metadata for r in ordered],
            [r.event_id for r in ordered],
            [encode(r.aggregate_id) for r in ordered],
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
        stored = {str(r[7]): stored_event(r) for r in found}
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
        return RecordedCommand(record, [stored_event(r) for r in rows])

    async def prune_commands(
        self, recorded_before: datetime | None, keep: int | None, limit: int
    ) -> int:
        async with self.db.pooled("prune recorded commands") as connection:
            status = await connection.execute(self.sql.prune_commands, recorded_before, keep, limit)
        return int(status.split()[-1])
