"""The PostgreSQL store's personal-data keys: tables, statements, and the ``SubjectKeys`` tier
methods of :class:`~eventuality.stores.postgres.PostgresBackend`.

**Claims.** An append with personal data runs one more statement in its transaction, after the
stream locks: it inserts the keys of new subjects (``ON CONFLICT DO NOTHING``), takes a
``FOR SHARE`` lock on the keys it sealed with that were there before, and records (subject,
stream) links. Two appends making a key for one new subject: the second's insert waits on the
first's unique-index entry; if the first commits, the second inserts nothing, rolls back and
seals again with the first's key (nothing of either is lost); if it rolls back, the second's
key goes in. An append whose known key was deleted meanwhile finds no row to lock, rolls back
and seals again under a new key: a forgotten key is never written back.

**Forget.** Deleting the key waits for appends holding it ``FOR SHARE``; then, in statements of
their own (READ COMMITTED: fresh snapshots, which see the links those appends committed), it
marks the subject's links forgotten and deletes the snapshots of every linked stream. A
snapshot save locks its stream's links ``FOR SHARE`` and stores nothing when one is marked, so
a state loaded before the forget cannot come back after it, even once the subject has a new
key. Deleted rows stay in the table files until PostgreSQL
vacuums them (the key with them): run ``VACUUM`` on the keys table when that matters.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

import asyncpg

from ._keys import KeyClaims, KeyConflict, SubjectKey
from .commands import CommandRecord
from .rows import AppendRequest, CheckpointMove, StoredEvent

__all__ = ["KeyStatements", "PostgresSubjectKeys"]


def _bytes(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def _text(data: bytes) -> str:
    return bytes(data).decode("utf-8", "surrogatepass")


class KeyStatements:
    """The key statements for one schema (``s``: the quoted schema name)."""

    def __init__(self, s: str) -> None:
        keys = f"{s}.eventuality_subject_keys"
        links = f"{s}.eventuality_subject_streams"
        self.tables = [
            f"""CREATE TABLE IF NOT EXISTS {keys} (
                subject BYTEA PRIMARY KEY,
                key_id TEXT NOT NULL UNIQUE,
                key BYTEA NOT NULL,
                created_at TIMESTAMPTZ NOT NULL DEFAULT now()
            )""",
            f"""CREATE TABLE IF NOT EXISTS {links} (
                subject BYTEA NOT NULL,
                stream_id BYTEA NOT NULL,
                forgotten BOOLEAN NOT NULL DEFAULT false,
                PRIMARY KEY (subject, stream_id)
            )""",
            f"CREATE INDEX IF NOT EXISTS eventuality_subject_streams_by_stream "
            f"ON {links} (stream_id)",
        ]
        # Every link of the stream is locked, not only forgotten ones, so a forget updating one
        # now is waited for and its outcome read: an aggregate over all of them (with EXISTS
        # and a filter, the planner pushes the filter under the lock and locks only matches).
        self.forgotten = (
            f"coalesce((SELECT bool_or(l.forgotten) FROM (SELECT forgotten FROM {links} "
            "WHERE stream_id = $1 FOR SHARE) AS l), false)"
        )
        """True when stream ``$1`` holds data of a forgotten subject."""
        self.by_subjects = f"SELECT subject, key_id, key FROM {keys} WHERE subject = ANY($1)"
        self.by_ids = f"SELECT subject, key_id, key FROM {keys} WHERE key_id = ANY($1)"
        self.claim = f"""
            WITH inserted AS (
                INSERT INTO {keys} (subject, key_id, key)
                SELECT s, i, k FROM unnest($1::bytea[], $2::text[], $3::bytea[])
                    WITH ORDINALITY AS u(s, i, k, n)
                ORDER BY n
                ON CONFLICT (subject) DO NOTHING
                RETURNING 1
            ), known AS (
                SELECT 1 FROM {keys} k
                JOIN unnest($4::bytea[], $5::text[]) AS u(s, i)
                    ON k.subject = u.s AND k.key_id = u.i
                FOR SHARE OF k
            ), linked AS (
                INSERT INTO {links} (subject, stream_id)
                SELECT s, t FROM unnest($6::bytea[], $7::bytea[]) WITH ORDINALITY AS u(s, t, n)
                ORDER BY n
                ON CONFLICT DO NOTHING
                RETURNING 1
            )
            SELECT (SELECT count(*) FROM inserted), (SELECT count(*) FROM known)"""
        self.delete_key = f"DELETE FROM {keys} WHERE subject = $1"
        self.mark_forgotten = f"UPDATE {links} SET forgotten = true WHERE subject = $1"
        self.delete_snapshots = (
            f"DELETE FROM {s}.eventuality_snapshots WHERE stream_id IN "
            f"(SELECT stream_id FROM {links} WHERE subject = $1)"
        )


async def claim(connection: asyncpg.Connection, sql: KeyStatements, claims: KeyClaims) -> None:
    """Inside the append's transaction (see the module's docstring).

    :raises KeyConflict: a new subject got a key from another append first, or a known key
        is gone.
    """
    new = [k for k in claims.keys if k.subject in claims.new]
    known = [k for k in claims.keys if k.subject not in claims.new]
    inserted, locked = await connection.fetchrow(
        sql.claim,
        [_bytes(k.subject) for k in new],
        [k.key_id for k in new],
        [k.key for k in new],
        [_bytes(k.subject) for k in known],
        [k.key_id for k in known],
        [_bytes(subject) for subject, _ in claims.links],
        [_bytes(stream_id) for _, stream_id in claims.links],
    )
    if inserted != len(new) or locked != len(known):
        raise KeyConflict(", ".join(k.subject for k in claims.keys))


def _keys(found: Sequence[Any]) -> list[SubjectKey]:
    return [SubjectKey(_text(r[0]), r[1], bytes(r[2])) for r in found]


class PostgresSubjectKeys:
    """The ``SubjectKeys`` tier, over the backend's pool and append."""

    keys_sql: KeyStatements

    def _pooled(self, what: str) -> AbstractAsyncContextManager[asyncpg.Connection]:
        raise NotImplementedError

    def _transaction(self, what: str) -> AbstractAsyncContextManager[asyncpg.Connection]:
        raise NotImplementedError

    async def _append(
        self,
        requests: Sequence[AppendRequest],
        claims: KeyClaims | None,
        record: CommandRecord | None = None,
        move: CheckpointMove | None = None,
    ) -> list[StoredEvent]:
        raise NotImplementedError

    async def keys_for_subjects(self, subjects: Sequence[str]) -> dict[str, SubjectKey]:
        async with self._pooled("read personal-data keys") as connection:
            found = await connection.fetch(self.keys_sql.by_subjects, [_bytes(s) for s in subjects])
        return {key.subject: key for key in _keys(found)}

    async def keys_by_id(self, key_ids: Sequence[str]) -> dict[str, SubjectKey]:
        async with self._pooled("read personal-data keys") as connection:
            found = await connection.fetch(self.keys_sql.by_ids, list(key_ids))
        return {key.key_id: key for key in _keys(found)}

    async def append_with_keys(
        self,
        requests: Sequence[AppendRequest],
        claims: KeyClaims,
        record: CommandRecord | None = None,
        move: CheckpointMove | None = None,
    ) -> list[StoredEvent]:
        return await self._append(requests, claims, record, move)

    async def forget(self, subject: str) -> bool:
        async with self._transaction("forget a subject") as connection:
            status = await connection.execute(self.keys_sql.delete_key, _bytes(subject))
            await connection.execute(self.keys_sql.mark_forgotten, _bytes(subject))
            await connection.execute(self.keys_sql.delete_snapshots, _bytes(subject))
        return bool(status != "DELETE 0")
