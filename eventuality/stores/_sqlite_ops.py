"""What the SQLite store runs on a connection's own thread: transactions and queries (the tables
are in ``_sqlite_schema``).

Each function here takes a plain ``sqlite3.Connection`` and does one whole unit of work, so the
store pays one aiosqlite thread round trip per call, and a cancelled caller can never leave a
transaction open: the function finishes or rolls back on its own thread either way.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..errors import CheckpointConflict, ConcurrencyError, DuplicateEventError
from . import _sqlite_commands as commands
from ._keys import KeyClaims
from ._sqlite_keys import FORGOTTEN, claim
from ._sqlite_reads import COLUMNS as _COLUMNS
from ._sqlite_reads import DamagedRow as DamagedRow
from ._sqlite_reads import read_log as read_log
from ._sqlite_reads import read_stream as read_stream
from .base import AppendRequest, Snapshot, StoredEvent, match_retry, settle_versions
from .lifecycle import StreamState, refuse_gone
from .rows import CheckpointMove, refuse_repeat

_INSERT = f"INSERT INTO eventuality_events ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
_SELECT = f"SELECT {_COLUMNS} FROM eventuality_events"
_MAX_PARAMS = 900
_APPEND = "append to the stream"

Row = tuple[str, int, str, int, str, str, str, str | None, str, int]


class WriteRefused(Exception):
    """A ``store.query()`` statement that would do more than read; nothing was done."""

    def __init__(self, sql: str) -> None:
        super().__init__(sql)
        self.sql = sql


def _stored(row: Row) -> StoredEvent:
    try:
        occurred_at = datetime.fromisoformat(row[8])
    except (TypeError, ValueError):
        raise DamagedRow(row[0], row[1], row[9], row[8]) from None
    return StoredEvent(
        row[0],
        row[1],
        row[2],
        row[3],
        row[4],
        row[5],
        row[6],
        row[7],
        occurred_at,
        row[9],
    )


def _rollback(db: sqlite3.Connection) -> None:
    if db.in_transaction:
        db.execute("ROLLBACK")


@dataclass
class AppendJob:
    """One caller's append inside a group commit; the writer thread fills in the outcome."""

    requests: Sequence[AppendRequest]
    claims: KeyClaims | None = None
    record: commands.RecordParams | None = None
    checkpoint: CheckpointMove | None = None
    result: list[StoredEvent] = field(default_factory=list)
    error: BaseException | None = None


def append_group(db: sqlite3.Connection, jobs: Sequence[AppendJob]) -> None:
    """Commit every job that can be committed, in one transaction.

    Each job runs inside its own savepoint when there are several, so a conflict (or any other
    error) in one rolls back only that job. Outcomes are written into the jobs; an error of the
    transaction as a whole (busy, disk full at commit) is raised and applies to all.
    """
    db.execute("BEGIN IMMEDIATE")
    try:
        position = last_position(db)
        versions: dict[str, int] = {}
        single = len(jobs) == 1
        for job in jobs:
            if not single:
                db.execute("SAVEPOINT job")
            try:
                if job.record is not None:  # first: a taken key refuses before any insert
                    commands.claim_key(db, job.record, job.requests, position)
                move = job.checkpoint
                if move is not None:  # first too: a conflict refuses before any insert
                    check_and_set_checkpoint(db, move.name, move.position, move.expected)
                job.result, position = _insert(db, job.requests, position, versions)
                if job.claims is not None:
                    claim(db, job.claims)
            except Exception as exc:
                if single:
                    db.execute("ROLLBACK")
                else:
                    db.execute("ROLLBACK TO job")
                    db.execute("RELEASE job")
                    versions.clear()
                    position = last_position(db)
                if isinstance(exc, ConcurrencyError | sqlite3.IntegrityError):
                    _resolve_failure(db, job, exc)
                else:
                    job.result, job.error = [], exc
                continue
            if not single:
                db.execute("RELEASE job")
        if db.in_transaction:
            db.execute("COMMIT")
    except BaseException:
        _rollback(db)
        raise


def _insert(
    db: sqlite3.Connection,
    requests: Sequence[AppendRequest],
    position: int,
    versions: dict[str, int],
) -> tuple[list[StoredEvent], int]:
    stored: list[StoredEvent] = []
    params: list[tuple[object, ...]] = []
    for request in requests:
        current = versions.get(request.stream_id)
        if current is None:
            current = db.execute(
                "SELECT coalesce(max(version), 0) FROM eventuality_events WHERE stream_id = ?",
                (request.stream_id,),
            ).fetchone()[0]
            if current == 0:  # new, or deleted or archived: only then look it up
                refuse_gone(request.stream_id, stream_state(db, request.stream_id), _APPEND)
        settled = settle_versions(request, current)
        for row in settled:
            position += 1
            stored.append(
                StoredEvent(
                    row.stream_id,
                    row.version,
                    row.event_type,
                    row.schema_version,
                    row.data,
                    row.metadata,
                    row.event_id,
                    row.aggregate_id,
                    row.occurred_at,
                    position,
                )
            )
            params.append(
                (
                    row.stream_id,
                    row.version,
                    row.event_type,
                    row.schema_version,
                    row.data,
                    row.metadata,
                    row.event_id,
                    row.aggregate_id,
                    row.occurred_at.isoformat(),
                    position,
                )
            )
        if settled:
            versions[request.stream_id] = settled[-1].version
    if params:
        db.executemany(_INSERT, params)
    return stored, position


def _resolve_failure(db: sqlite3.Connection, job: AppendJob, exc: BaseException) -> None:
    """After a rolled-back job: a retried append gets the stored events, anything else an error."""
    ids = [row.event_id for request in job.requests for row in request.rows]
    stored = {row.event_id: row for row in _rows_by_id(db, ids)}
    try:
        if job.checkpoint is not None:
            refuse_repeat(job.requests, stored)
        replay = match_retry(job.requests, stored)
    except DuplicateEventError as error:
        job.error = error
        return
    if replay is not None:
        job.result = replay
    else:
        job.error = exc


def _rows_by_id(db: sqlite3.Connection, ids: list[str]) -> list[StoredEvent]:
    rows: list[StoredEvent] = []
    for start in range(0, len(ids), _MAX_PARAMS):
        chunk = ids[start : start + _MAX_PARAMS]
        marks = ", ".join("?" * len(chunk))
        found = db.execute(f"{_SELECT} WHERE event_id IN ({marks})", chunk).fetchall()
        rows.extend(_stored(row) for row in found)
    return rows


def stream_version(db: sqlite3.Connection, stream_id: str) -> int:
    found = db.execute(
        "SELECT coalesce(max(version), 0) FROM eventuality_events WHERE stream_id = ?", (stream_id,)
    ).fetchone()
    return int(found[0])


def stream_state(db: sqlite3.Connection, stream_id: str) -> StreamState | None:
    """Whether the stream was deleted or archived (see ``_sqlite_streams``)."""
    found = db.execute(
        "SELECT state, version FROM eventuality_streams WHERE stream_id = ?", (stream_id,)
    ).fetchone()
    return None if found is None else StreamState(found[0], found[1])


def last_position(db: sqlite3.Connection) -> int:
    found = db.execute("SELECT coalesce(max(position), 0) FROM eventuality_events").fetchone()
    return int(found[0])


def get_checkpoint(db: sqlite3.Connection, name: str) -> int | None:
    found = db.execute(
        "SELECT position FROM eventuality_checkpoints WHERE name = ?", (name,)
    ).fetchone()
    return None if found is None else int(found[0])


def set_checkpoint(db: sqlite3.Connection, name: str, position: int, expected: int | None) -> None:
    db.execute("BEGIN IMMEDIATE")
    try:
        check_and_set_checkpoint(db, name, position, expected)
        db.execute("COMMIT")
    except BaseException:
        _rollback(db)
        raise


def check_and_set_checkpoint(
    db: sqlite3.Connection, name: str, position: int, expected: int | None
) -> None:
    """Compare-and-set inside the caller's transaction."""
    actual = get_checkpoint(db, name)
    if actual != expected:
        raise CheckpointConflict(name, expected, actual)
    db.execute(
        "INSERT INTO eventuality_checkpoints (name, position) VALUES (?, ?) "
        "ON CONFLICT (name) DO UPDATE SET position = excluded.position, "
        "updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
        (name, position),
    )


def save_snapshot(db: sqlite3.Connection, snapshot: Snapshot) -> None:
    db.execute("BEGIN IMMEDIATE")
    try:
        db.execute(
            "INSERT OR REPLACE INTO eventuality_snapshots "
            "(stream_id, version, aggregate_type, schema_version, state) "
            f"SELECT ?, ?, ?, ?, ? WHERE NOT {FORGOTTEN}",  # never a state of a forgotten subject
            (
                snapshot.stream_id,
                snapshot.version,
                snapshot.aggregate_type,
                snapshot.schema_version,
                snapshot.state,
                snapshot.stream_id,
            ),
        )
        db.execute("COMMIT")
    except BaseException:
        _rollback(db)
        raise


def load_snapshot(
    db: sqlite3.Connection, stream_id: str, max_version: int | None
) -> Snapshot | None:
    found = db.execute(
        "SELECT stream_id, version, aggregate_type, schema_version, state "
        "FROM eventuality_snapshots WHERE stream_id = ? AND version <= ? "
        "ORDER BY version DESC LIMIT 1",
        (stream_id, max_version if max_version is not None else 2**62),
    ).fetchone()
    return None if found is None else Snapshot(*found)


def begin(db: sqlite3.Connection) -> None:
    db.execute("BEGIN IMMEDIATE")


def commit(db: sqlite3.Connection) -> None:
    db.execute("COMMIT")


def rollback(db: sqlite3.Connection) -> None:
    _rollback(db)


def execute(db: sqlite3.Connection, sql: str, params: Sequence[object]) -> None:
    db.execute(sql, params)


def executemany(db: sqlite3.Connection, sql: str, rows: list[Sequence[object]]) -> None:
    db.executemany(sql, rows)


def fetchall(db: sqlite3.Connection, sql: str, params: Sequence[object]) -> list[tuple[Any, ...]]:
    return [tuple(row) for row in db.execute(sql, params).fetchall()]


def read_only_query(
    db: sqlite3.Connection, sql: str, params: Sequence[object]
) -> list[tuple[Any, ...]]:
    """``store.query()``: run ``sql`` under an authorizer that lets it only read, so SQLite
    refuses anything else (a write, ``BEGIN``/``COMMIT``, ``ATTACH``, a ``PRAGMA`` that sets)
    when the statement is prepared, before it runs. Setting an authorizer expires the
    connection's cached statements, so none slips through prepared earlier."""
    db.set_authorizer(_reads_only)
    try:
        return fetchall(db, sql, params)
    except sqlite3.DatabaseError as exc:
        if getattr(exc, "sqlite_errorcode", None) in (sqlite3.SQLITE_AUTH, sqlite3.SQLITE_READONLY):
            raise WriteRefused(sql) from exc
        raise
    finally:
        db.set_authorizer(None)


_READS = frozenset(
    {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION, sqlite3.SQLITE_RECURSIVE}
)
_READ_PRAGMAS = frozenset(
    {"table_info", "table_xinfo", "index_list", "index_info", "index_xinfo", "foreign_key_list"}
)


def _reads_only(action: int, first: str | None, second: str | None, *_: object) -> int:
    if action in _READS or (
        action == sqlite3.SQLITE_PRAGMA and (second is None or first in _READ_PRAGMAS)
    ):
        return sqlite3.SQLITE_OK
    return sqlite3.SQLITE_DENY


def fetchone(db: sqlite3.Connection, sql: str, params: Sequence[object]) -> tuple[Any, ...] | None:
    found = db.execute(sql, params).fetchone()
    return None if found is None else tuple(found)
