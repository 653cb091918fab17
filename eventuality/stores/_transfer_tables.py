"""What a whole-store copy reads and writes beside the event log: checkpoints, snapshots,
stream states, archived rows, recorded commands and personal-data keys.

These tables have no per-row calls in the backend tiers (a running application never lists
them), so they are read with ``store.query`` and written in ``store.transaction()``: the
public SQL tier of the SQLite and PostgreSQL stores, whose tables are the same apart from
column types (SQLite: text ids, ISO text times, integer microseconds for commands;
PostgreSQL: ``bytea`` ids, ``timestamptz``, ``uuid``). :class:`Dialect` converts between them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from ..errors import StoreUsageError
from ._keys import SubjectKey
from .commands import CommandRecord
from .records import EventRecord, record_of
from .rows import Snapshot, StoredEvent

if TYPE_CHECKING:
    from ._named_sql import NamedTransaction
    from .base import EventStore

__all__ = ["Dialect", "Extras", "StreamSummary", "dialect_of"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_COLUMNS = (
    "position, stream_id, version, event_type, schema_version, data, metadata, event_id, "
    "aggregate_id, occurred_at"
)


@dataclass(frozen=True, slots=True)
class StreamSummary:
    """One stream as ``eventuality streams`` lists it."""

    stream_id: str
    version: int
    events: int
    state: str  # "live", "archived" or "deleted"


@dataclass(slots=True)
class Extras:
    """Everything of a store beside its event rows; positions are the store's own."""

    checkpoints: list[tuple[str, int]] = field(default_factory=list)
    snapshots: list[Snapshot] = field(default_factory=list)
    states: list[tuple[str, str, int]] = field(default_factory=list)
    commands: list[CommandRecord] = field(default_factory=list)
    keys: list[SubjectKey] = field(default_factory=list)
    links: list[tuple[str, str, bool]] = field(default_factory=list)


def dialect_of(store: EventStore, what: str) -> Dialect:
    """The SQL dialect of a SQLite or PostgreSQL store.

    :raises StoreUsageError: another kind of store (the memory store keeps nothing durable).
    """
    kind = type(store).__name__
    if kind == "SQLiteEventStore" or kind == "PostgresEventStore":
        return Dialect(postgres=kind == "PostgresEventStore", store=store)
    raise StoreUsageError(
        f"cannot {what} on {store!r}: only SQLite and PostgreSQL stores keep their data where "
        "another process can read it (memory:// lives and dies with one process)"
    )


def _file_sizes(path: str) -> int:
    """A SQLite database's bytes, its WAL and shared-memory files included."""
    files = (path, f"{path}-wal", f"{path}-shm")
    return sum(os.path.getsize(name) for name in files if os.path.isfile(name))


class Dialect:
    """Reads and writes of the side tables, converting column types per backend."""

    def __init__(self, *, postgres: bool, store: EventStore) -> None:
        self.postgres = postgres
        self.store = store
        self.kind = "postgresql" if postgres else "sqlite"

    # conversions --------------------------------------------------------------------------
    def text(self, value: str) -> Any:
        """A text id as its column takes it (PostgreSQL keeps ids as UTF-8 ``bytea``)."""
        return value.encode("utf-8", "surrogatepass") if self.postgres else value

    def untext(self, value: Any) -> str:
        return bytes(value).decode("utf-8", "surrogatepass") if self.postgres else str(value)

    def _time(self, value: Any) -> datetime:
        return value if isinstance(value, datetime) else datetime.fromisoformat(value)

    # reads ---------------------------------------------------------------------------------
    async def _rows(self, sql: str, **named: Any) -> list[tuple[Any, ...]]:
        return await self.store.query(sql, **named)

    async def schema_version(self) -> int:
        found = await self._rows("SELECT version FROM eventuality_schema WHERE id = 1")
        return int(found[0][0]) if found else 1

    async def counts(self) -> tuple[int, int]:
        """Live events and streams (streams with live rows, plus deleted and archived ones)."""
        found = await self._rows(
            "SELECT count(*), count(DISTINCT stream_id) FROM eventuality_events"
        )
        gone = await self._rows("SELECT count(*) FROM eventuality_streams")
        return int(found[0][0]), int(found[0][1]) + int(gone[0][0])

    async def size_on_disk(self) -> int:
        """Bytes the store's tables take (PostgreSQL: its schema's tables and indexes)."""
        if self.postgres:
            found = await self._rows(
                "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = current_schema() AND c.relkind = 'r'"
            )
            return int(found[0][0])
        return _file_sizes(str(getattr(self.store, "path", "")))

    async def streams(self, prefix: str = "") -> list[StreamSummary]:
        """Every stream whose id starts with ``prefix``, in id order."""
        live = await self._rows(
            "SELECT stream_id, max(version), count(*) FROM eventuality_events GROUP BY stream_id"
        )
        found = {
            sid: StreamSummary(sid, int(v), int(n), "live")
            for sid, v, n in ((self.untext(r[0]), r[1], r[2]) for r in live)
        }
        for stream_id, state, version in await self.states():
            archived = 0
            if state == "archived":
                rows = await self._rows(
                    "SELECT count(*) FROM eventuality_archive WHERE stream_id = :s",
                    s=self.text(stream_id),
                )
                archived = int(rows[0][0])
            found[stream_id] = StreamSummary(stream_id, version, archived, state)
        return [found[s] for s in sorted(found) if s.startswith(prefix)]

    async def checkpoints(self) -> list[tuple[str, int, datetime]]:
        rows = await self._rows(
            "SELECT name, position, updated_at FROM eventuality_checkpoints ORDER BY name"
        )
        return [(r[0], int(r[1]), self._time(r[2])) for r in rows]

    async def count_after(self, position: int) -> int:
        rows = await self._rows(
            "SELECT count(*) FROM eventuality_events WHERE position > :p", p=position
        )
        return int(rows[0][0])

    async def states(self) -> list[tuple[str, str, int]]:
        rows = await self._rows("SELECT stream_id, state, version FROM eventuality_streams")
        return sorted((self.untext(r[0]), r[1], int(r[2])) for r in rows)

    async def archived(self) -> list[EventRecord]:
        """Every archived row, in position order."""
        rows = await self._rows(f"SELECT {_COLUMNS} FROM eventuality_archive ORDER BY position")
        return [
            record_of(
                StoredEvent(
                    self.untext(r[1]),
                    int(r[2]),
                    r[3],
                    int(r[4]),
                    r[5],
                    r[6],
                    str(r[7]),
                    None if r[8] is None else self.untext(r[8]),
                    self._time(r[9]),
                    int(r[0]),
                )
            )
            for r in rows
        ]

    async def extras(self) -> Extras:
        """Checkpoints, snapshots, stream states, command records, keys and key links."""
        found = Extras()
        found.checkpoints = [(name, position) for name, position, _ in await self.checkpoints()]
        for r in await self._rows(
            "SELECT stream_id, version, aggregate_type, schema_version, state "
            "FROM eventuality_snapshots ORDER BY stream_id, version"
        ):
            found.snapshots.append(Snapshot(self.untext(r[0]), int(r[1]), r[2], int(r[3]), r[4]))
        found.states = await self.states()
        for r in await self._rows(
            "SELECT key, command_type, command_id, digest, recorded_at, first_position, "
            "last_position FROM eventuality_commands ORDER BY key"
        ):
            recorded = r[4] if self.postgres else _EPOCH + timedelta(microseconds=r[4])
            found.commands.append(
                CommandRecord(r[0], r[1], r[2] or r[0], r[3], recorded, int(r[5]), int(r[6]))
            )
        for r in await self._rows(
            "SELECT subject, key_id, key FROM eventuality_subject_keys ORDER BY key_id"
        ):
            found.keys.append(SubjectKey(self.untext(r[0]), r[1], bytes(r[2])))
        for r in await self._rows(
            "SELECT subject, stream_id, forgotten FROM eventuality_subject_streams "
            "ORDER BY subject, stream_id"
        ):
            found.links.append((self.untext(r[0]), self.untext(r[1]), bool(r[2])))
        return found

    # writes --------------------------------------------------------------------------------
    async def write_extras(self, extras: Extras, archive: list[str]) -> None:
        """In one transaction: move the rows of ``archive``'s streams to the archive, and
        insert (or replace) everything in ``extras``, whose positions are this store's."""
        async with self.store.transaction() as tx:
            for stream_id in archive:
                await self._archive(tx, stream_id)
            await self._write(tx, extras)

    async def _archive(self, tx: NamedTransaction, stream_id: str) -> None:
        key = self.text(stream_id)
        await tx.execute(
            f"INSERT INTO eventuality_archive ({_COLUMNS}) SELECT {_COLUMNS} "
            "FROM eventuality_events WHERE stream_id = :s",
            s=key,
        )
        await tx.execute("DELETE FROM eventuality_events WHERE stream_id = :s", s=key)

    async def _write(self, tx: NamedTransaction, extras: Extras) -> None:
        upsert = "ON CONFLICT ({}) DO UPDATE SET {}"

        def sets(*columns: str) -> str:
            return ", ".join(f"{c} = excluded.{c}" for c in columns)

        if extras.states:
            await tx.executemany(
                "INSERT INTO eventuality_streams (stream_id, state, version) "
                "VALUES (:s, :state, :v) " + upsert.format("stream_id", sets("state", "version")),
                [{"s": self.text(s), "state": st, "v": v} for s, st, v in extras.states],
            )
        if extras.checkpoints:
            await tx.executemany(
                "INSERT INTO eventuality_checkpoints (name, position) VALUES (:n, :p) "
                + upsert.format("name", sets("position")),
                [{"n": n, "p": p} for n, p in extras.checkpoints],
            )
        if extras.snapshots:
            await tx.executemany(
                "INSERT INTO eventuality_snapshots "
                "(stream_id, version, aggregate_type, schema_version, state) "
                "VALUES (:s, :v, :t, :sv, :st) "
                + upsert.format(
                    "stream_id, version", sets("aggregate_type", "schema_version", "state")
                ),
                [
                    {
                        "s": self.text(x.stream_id),
                        "v": x.version,
                        "t": x.aggregate_type,
                        "sv": x.schema_version,
                        "st": x.state,
                    }
                    for x in extras.snapshots
                ],
            )
        if extras.commands:
            await tx.executemany(
                "INSERT INTO eventuality_commands (key, command_type, command_id, digest, "
                "first_position, last_position, recorded_at) "
                "VALUES (:k, :t, :i, :d, :f, :l, :r) "
                + upsert.format(
                    "key",
                    sets("command_type", "command_id", "digest", "first_position", "last_position"),
                ),
                [self._command(c) for c in extras.commands],
            )
        if extras.keys:
            await tx.executemany(
                "INSERT INTO eventuality_subject_keys (subject, key_id, key) "
                "VALUES (:s, :i, :k) " + upsert.format("subject", sets("key_id", "key")),
                [{"s": self.text(k.subject), "i": k.key_id, "k": k.key} for k in extras.keys],
            )
        if extras.links:
            await tx.executemany(
                "INSERT INTO eventuality_subject_streams (subject, stream_id, forgotten) "
                "VALUES (:s, :t, :f) " + upsert.format("subject, stream_id", sets("forgotten")),
                [
                    {"s": self.text(s), "t": self.text(t), "f": f if self.postgres else int(f)}
                    for s, t, f in extras.links
                ],
            )

    def _command(self, record: CommandRecord) -> dict[str, Any]:
        if self.postgres:
            command_id: str | None = record.command_id
            recorded: Any = record.recorded_at
        else:  # the SQLite store keeps NULL when the id is the key, and microseconds
            command_id = None if record.command_id == record.key else record.command_id
            recorded = round((record.recorded_at - _EPOCH) / timedelta(microseconds=1))
        return {
            "k": record.key,
            "t": record.command_type,
            "i": command_id,
            "d": record.digest,
            "f": record.first_position,
            "l": record.last_position,
            "r": recorded,
        }
