"""What the SQLite store runs for recorded commands, on a connection's own thread.

The key check and the record's insert run inside the group commit's transaction, in the
caller's savepoint (``_sqlite_ops.append_group``): one writer holds the database, so a key
checked there cannot be taken before the commit. Reads run on the loop's inline connection
like other small reads; pruning deletes one batch per transaction.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime

from . import _sqlite_ops as ops
from .commands import CommandRecord, KeyTaken, RecordedCommand, with_positions
from .rows import StoredEvent

_COLUMNS = "key, command_type, command_id, digest, first_position, last_position, recorded_at"
_TIME = "%Y-%m-%dT%H:%M:%S.%fZ"  # fixed width: text order is time order


def _text(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(_TIME)


def claim_key(db: sqlite3.Connection, key: str) -> None:
    """Inside the write transaction: refuse a key recorded already."""
    if db.execute("SELECT 1 FROM eventuality_commands WHERE key = ?", (key,)).fetchone():
        raise KeyTaken(key)


def save_record(db: sqlite3.Connection, record: CommandRecord, stored: list[StoredEvent]) -> None:
    """Inside the write transaction: the record, with the positions its rows were given."""
    done = with_positions(record, stored)
    db.execute(
        f"INSERT INTO eventuality_commands ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (*done[:4], done.first_position, done.last_position, _text(done.recorded_at)),
    )


def get_command(db: sqlite3.Connection, key: str) -> RecordedCommand | None:
    found = db.execute(
        f"SELECT {_COLUMNS} FROM eventuality_commands WHERE key = ?", (key,)
    ).fetchone()
    if found is None:
        return None
    record = CommandRecord(
        found[0],
        found[1],
        found[2],
        found[3],
        datetime.fromisoformat(found[6]),
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
    """Delete up to ``limit`` expired records, oldest first, in one transaction."""
    rules: list[str] = []
    params: list[object] = []
    if recorded_before is not None:
        rules.append("recorded_at < ?")
        params.append(_text(recorded_before))
    if keep is not None:
        rules.append(
            "key NOT IN (SELECT key FROM eventuality_commands "
            "ORDER BY recorded_at DESC, rowid DESC LIMIT ?)"
        )
        params.append(keep)
    db.execute("BEGIN IMMEDIATE")
    try:
        cursor = db.execute(
            "DELETE FROM eventuality_commands WHERE rowid IN (SELECT rowid FROM "
            f"eventuality_commands WHERE {' OR '.join(rules)} ORDER BY recorded_at LIMIT ?)",
            (*params, limit),
        )
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    return cursor.rowcount
