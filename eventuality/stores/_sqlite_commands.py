"""What the SQLite store runs for recorded commands, on a connection's own thread.

The record is inserted first in the caller's part of the group commit (its savepoint, in
``_sqlite_ops.append_group``), with the positions its rows are about to get: one writer holds
the database, so a key that is free there is the caller's until the commit, and a taken one
refuses before anything is written (``ON CONFLICT DO NOTHING``, no extra look-up). Rows are
kept in recording order (rowid), which pruning follows, oldest first, one batch per
transaction. Reads run on the loop's inline connection like other small reads.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from . import _sqlite_ops as ops
from .commands import CommandRecord, KeyTaken, RecordedCommand
from .rows import AppendRequest

_COLUMNS = "key, command_type, command_id, digest, first_position, last_position, recorded_at"
_SELECT = f"SELECT {_COLUMNS} FROM eventuality_commands WHERE key = ?"
_INSERT = (
    f"INSERT INTO eventuality_commands ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (key) DO NOTHING"
)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _micros(moment: datetime) -> int:
    """Microseconds since 1970 in UTC: a small integer, so text formatting is left out of
    every commit, and integer order is time order."""
    return round(moment.timestamp() * 1_000_000)


RecordParams = tuple[str, str, str | None, str, int]
"""A record as the INSERT takes it, made on the event loop before the commit (the writer
thread does as little Python as it can: it holds the group's lock)."""


def record_params(record: CommandRecord) -> RecordParams:
    command_id = None if record.command_id == record.key else record.command_id
    return record.key, record.command_type, command_id, record.digest, _micros(record.recorded_at)


def claim_key(
    db: sqlite3.Connection, record: RecordParams, requests: Sequence[AppendRequest], after: int
) -> None:
    """Inside the write transaction, before the rows: store ``record`` with the positions the
    rows of ``requests`` will take after position ``after``, or raise KeyTaken."""
    count = sum(len(request.rows) for request in requests)
    key, command_type, command_id, digest, recorded_at = record
    first, last = (after + 1, after + count) if count else (0, 0)
    cursor = db.execute(_INSERT, (key, command_type, command_id, digest, first, last, recorded_at))
    if cursor.rowcount != 1:
        raise KeyTaken(key)


def get_command(db: sqlite3.Connection, key: str) -> RecordedCommand | None:
    found = db.execute(_SELECT, (key,)).fetchone()
    if found is None:
        return None
    record = CommandRecord(
        found[0],
        found[1],
        found[0] if found[2] is None else found[2],
        found[3],
        _EPOCH + timedelta(microseconds=found[6]),
        found[4],
        found[5],
    )
    if not record.last_position:
        return RecordedCommand(record, [])
    count = record.last_position - record.first_position + 1
    return RecordedCommand(record, ops.read_log(db, record.first_position - 1, count, None))


def prune_commands(
    db: sqlite3.Connection, recorded_before: datetime | None, keep: int | None, limit: int
) -> int:
    """Delete up to ``limit`` records, oldest first, that are older than ``recorded_before``
    or not among the ``keep`` latest, in one transaction. Age follows recording order: the
    batch stops at the first record that is young enough."""
    db.execute("BEGIN IMMEDIATE")
    try:
        doomed = 0
        if keep is not None:  # delete below the rowid of the oldest record to keep
            if keep:
                found = db.execute(
                    "SELECT rowid FROM eventuality_commands ORDER BY rowid DESC LIMIT 1 OFFSET ?",
                    (keep - 1,),
                ).fetchone()
                bound = None if found is None else found[0]
            else:
                bound = 2**62
            if bound is not None:
                doomed = db.execute(
                    "DELETE FROM eventuality_commands WHERE rowid IN (SELECT rowid FROM "
                    "eventuality_commands WHERE rowid < ? ORDER BY rowid LIMIT ?)",
                    (bound, limit),
                ).rowcount
        if recorded_before is not None and doomed < limit:
            oldest = db.execute(
                "SELECT rowid, recorded_at FROM eventuality_commands ORDER BY rowid LIMIT ?",
                (limit - doomed,),
            ).fetchall()
            cutoff = _micros(recorded_before)
            last = None
            for rowid, recorded_at in oldest:
                if recorded_at >= cutoff:
                    break
                last = rowid
            if last is not None:
                doomed += db.execute(
                    "DELETE FROM eventuality_commands WHERE rowid <= ?", (last,)
                ).rowcount
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    return doomed
