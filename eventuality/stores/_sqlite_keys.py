"""The SQLite store's personal-data keys: tables, the work each call runs on a connection's
thread, and the ``SubjectKeys`` tier methods of :class:`~eventuality.stores.sqlite.SQLiteBackend`.

Key claims run inside the append's own transaction (in its group-commit savepoint), so a key and
the events it seals commit together or not at all. SQLite has one writer at a time, so of two
appends making a key for one new subject, the second finds the first's key there and fails its
claim; it is rolled back alone and sealed again with that key. ``forget`` deletes the key with
``secure_delete`` on (the freed bytes are zeroed in the file) and then truncates the WAL, so
neither the key nor deleted snapshots stay readable in the files.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import anyio

from ._keys import KeyClaims, KeyConflict, SubjectKey
from .commands import CommandRecord
from .rows import AppendRequest, CheckpointMove, StoredEvent

__all__ = ["TABLES", "SQLiteSubjectKeys", "claim"]

T = TypeVar("T")

TABLES = [
    """CREATE TABLE IF NOT EXISTS eventuality_subject_keys (
    subject TEXT PRIMARY KEY,
    key_id TEXT NOT NULL UNIQUE,
    key BLOB NOT NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
)""",
    """CREATE TABLE IF NOT EXISTS eventuality_subject_streams (
    subject TEXT NOT NULL,
    stream_id TEXT NOT NULL,
    forgotten INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (subject, stream_id)
)""",
    "CREATE INDEX IF NOT EXISTS eventuality_subject_streams_by_stream "
    "ON eventuality_subject_streams (stream_id)",
]
"""Schema 2's personal-data tables (``UPGRADES[2]``)."""

FORGOTTEN = "EXISTS (SELECT 1 FROM eventuality_subject_streams WHERE stream_id = ? AND forgotten)"
"""True when the stream (the parameter) holds data of a forgotten subject: a state loaded from
it may predate the forget, so it never gets a snapshot again."""

_CHUNK = 900


def _chunks(items: Sequence[str]) -> list[Sequence[str]]:
    return [items[i : i + _CHUNK] for i in range(0, len(items), _CHUNK)]


def keys_for_subjects(db: sqlite3.Connection, subjects: Sequence[str]) -> dict[str, SubjectKey]:
    found: dict[str, SubjectKey] = {}
    for chunk in _chunks(subjects):
        marks = ", ".join("?" * len(chunk))
        for subject, key_id, key in db.execute(
            f"SELECT subject, key_id, key FROM eventuality_subject_keys WHERE subject IN ({marks})",
            chunk,
        ):
            found[subject] = SubjectKey(subject, key_id, bytes(key))
    return found


def keys_by_id(db: sqlite3.Connection, key_ids: Sequence[str]) -> dict[str, SubjectKey]:
    found: dict[str, SubjectKey] = {}
    for chunk in _chunks(key_ids):
        marks = ", ".join("?" * len(chunk))
        for subject, key_id, key in db.execute(
            f"SELECT subject, key_id, key FROM eventuality_subject_keys WHERE key_id IN ({marks})",
            chunk,
        ):
            found[key_id] = SubjectKey(subject, key_id, bytes(key))
    return found


def claim(db: sqlite3.Connection, claims: KeyClaims) -> None:
    """Inside the append's transaction: insert new keys, check known ones, record links.

    :raises KeyConflict: a subject has another key than the one its values were sealed with.
    """
    for key in claims.keys:
        if key.subject in claims.new:
            inserted = db.execute(
                "INSERT INTO eventuality_subject_keys (subject, key_id, key) VALUES (?, ?, ?) "
                "ON CONFLICT (subject) DO NOTHING",
                (key.subject, key.key_id, key.key),
            ).rowcount
            if inserted != 1:
                raise KeyConflict(key.subject)
        else:
            found = db.execute(
                "SELECT key_id FROM eventuality_subject_keys WHERE subject = ?", (key.subject,)
            ).fetchone()
            if found is None or found[0] != key.key_id:
                raise KeyConflict(key.subject)
    db.executemany(
        "INSERT OR IGNORE INTO eventuality_subject_streams (subject, stream_id) VALUES (?, ?)",
        claims.links,
    )


def forget(db: sqlite3.Connection, subject: str, truncate_wal: bool) -> bool:
    db.execute("PRAGMA secure_delete = ON")
    try:
        db.execute("BEGIN IMMEDIATE")
        try:
            deleted = db.execute(
                "DELETE FROM eventuality_subject_keys WHERE subject = ?", (subject,)
            ).rowcount
            db.execute(
                "UPDATE eventuality_subject_streams SET forgotten = 1 WHERE subject = ?", (subject,)
            )
            db.execute(
                "DELETE FROM eventuality_snapshots WHERE stream_id IN (SELECT stream_id FROM "
                "eventuality_subject_streams WHERE subject = ?)",
                (subject,),
            )
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
    finally:
        db.execute("PRAGMA secure_delete = OFF")
    if truncate_wal:
        # Earlier frames of the WAL still hold the key and the snapshots: copy the pages back
        # (now zeroed where the rows were) and empty the WAL. Best effort: a reader of another
        # process in the middle of a read keeps the frames until the next checkpoint.
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    return bool(deleted)


class SQLiteSubjectKeys:
    """The ``SubjectKeys`` tier, over the backend's reads, writes and group commit."""

    _writer_lock: anyio.Lock

    @property
    def in_memory(self) -> bool:
        raise NotImplementedError

    async def _read(self, what: str, function: Callable[..., T], *args: Any) -> T:
        raise NotImplementedError

    async def _write(self, what: str, function: Callable[..., T], *args: Any) -> T:
        raise NotImplementedError

    def append(
        self,
        requests: Sequence[AppendRequest],
        record: CommandRecord | None = None,
        claims: KeyClaims | None = None,
        checkpoint: CheckpointMove | None = None,
    ) -> Awaitable[list[StoredEvent]]:
        raise NotImplementedError

    async def keys_for_subjects(self, subjects: Sequence[str]) -> dict[str, SubjectKey]:
        return await self._read("read personal-data keys", keys_for_subjects, subjects)

    async def keys_by_id(self, key_ids: Sequence[str]) -> dict[str, SubjectKey]:
        return await self._read("read personal-data keys", keys_by_id, key_ids)

    async def append_with_keys(
        self,
        requests: Sequence[AppendRequest],
        claims: KeyClaims,
        record: CommandRecord | None = None,
        move: CheckpointMove | None = None,
    ) -> list[StoredEvent]:
        return await self.append(requests, record, claims, move)

    async def forget(self, subject: str) -> bool:
        async with self._writer_lock:
            with anyio.CancelScope(shield=True):  # the checkpoint is part of forgetting
                found = await self._write("forget a subject", forget, subject, not self.in_memory)
        return found
