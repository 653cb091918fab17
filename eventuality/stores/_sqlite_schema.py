"""The SQLite store's tables: schema 1 (0.1.0) and the steps that upgrade it, created or
upgraded in one transaction when a store opens, and the switch to WAL that comes first."""

from __future__ import annotations

import sqlite3
import time

from ..errors import SchemaVersionError
from ._sqlite_keys import TABLES

__all__ = ["SCHEMA_VERSION", "UPGRADES", "create_schema", "enable_wal"]

SCHEMA_VERSION = 2

_SCHEMA = """
CREATE TABLE IF NOT EXISTS eventuality_schema (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS eventuality_events (
    position INTEGER PRIMARY KEY,
    stream_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    event_type TEXT NOT NULL,
    schema_version INTEGER NOT NULL,
    data TEXT NOT NULL,
    metadata TEXT NOT NULL,
    event_id TEXT NOT NULL UNIQUE,
    aggregate_id TEXT,
    occurred_at TEXT NOT NULL,
    UNIQUE (stream_id, version)
);
CREATE INDEX IF NOT EXISTS eventuality_events_by_type
    ON eventuality_events (event_type, position);
CREATE TABLE IF NOT EXISTS eventuality_checkpoints (
    name TEXT PRIMARY KEY,
    position INTEGER NOT NULL,
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE TABLE IF NOT EXISTS eventuality_snapshots (
    stream_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    aggregate_type TEXT NOT NULL,
    schema_version INTEGER NOT NULL,
    state TEXT NOT NULL,
    PRIMARY KEY (stream_id, version)
);
"""

UPGRADES: dict[int, list[str]] = {
    # Schema 1 (0.1.0) to 2: only new tables, so the event rows never move.
    2: [
        # Streams whose rows left the live log: deleted (for good) or archived.
        """CREATE TABLE IF NOT EXISTS eventuality_streams (
            stream_id TEXT PRIMARY KEY,
            state TEXT NOT NULL CHECK (state IN ('deleted', 'archived')),
            version INTEGER NOT NULL,
            changed_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
        )""",
        # Archived rows, exactly as they were in eventuality_events.
        """CREATE TABLE IF NOT EXISTS eventuality_archive (
            position INTEGER PRIMARY KEY,
            stream_id TEXT NOT NULL,
            version INTEGER NOT NULL,
            event_type TEXT NOT NULL,
            schema_version INTEGER NOT NULL,
            data TEXT NOT NULL,
            metadata TEXT NOT NULL,
            event_id TEXT NOT NULL UNIQUE,
            aggregate_id TEXT,
            occurred_at TEXT NOT NULL,
            UNIQUE (stream_id, version)
        )""",
        *TABLES,
        # Commands recorded under idempotency keys, with their commits (_sqlite_commands).
        # Rowid order is recording order, which pruning follows: no index on the time, so a
        # commit writes one row and one key index entry (command_id is NULL when it is the key).
        """CREATE TABLE IF NOT EXISTS eventuality_commands (
            key TEXT PRIMARY KEY,
            command_type TEXT NOT NULL,
            command_id TEXT,
            digest TEXT NOT NULL,
            first_position INTEGER NOT NULL,
            last_position INTEGER NOT NULL,
            recorded_at INTEGER NOT NULL
        )""",
    ],
}
"""The statements that take the schema from ``version - 1`` to ``version``; a new database
runs them all after schema 1."""


def enable_wal(db: sqlite3.Connection, timeout: float) -> None:
    """Switch the file to WAL, waiting up to ``timeout`` seconds for other connections.

    Changing the journal mode needs the file to itself, and SQLite does not call the busy
    handler for it: a second process opening a new file at the same moment would fail at once
    with "database is locked". So retry, backing off from 1 to 50 ms.
    """
    deadline = time.monotonic() + timeout
    pause = 0.001
    while True:
        try:
            db.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            if time.monotonic() >= deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.05)


def create_schema(db: sqlite3.Connection) -> None:
    """Create the tables if missing, or upgrade an older schema in place, in one transaction.

    A database from a newer eventuality is refused and left as it is.
    """
    db.execute("BEGIN IMMEDIATE")
    try:
        for statement in _SCHEMA.split(";"):
            if statement.strip():
                db.execute(statement)
        found = db.execute("SELECT version FROM eventuality_schema WHERE id = 1").fetchone()
        version = 1 if found is None else found[0]
        if version > SCHEMA_VERSION:
            raise SchemaVersionError(
                f"the database holds eventuality schema version {version}, written by a newer "
                f"eventuality; this one knows versions up to {SCHEMA_VERSION}. Upgrade "
                "eventuality to open it (nothing was changed)."
            )
        for step in range(version + 1, SCHEMA_VERSION + 1):
            for statement in UPGRADES[step]:
                db.execute(statement)
        db.execute(
            "INSERT INTO eventuality_schema (id, version) VALUES (1, ?) "
            "ON CONFLICT (id) DO UPDATE SET version = excluded.version",
            (SCHEMA_VERSION,),
        )
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
