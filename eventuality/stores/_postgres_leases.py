"""Partition ownership on PostgreSQL: session advisory locks on one connection per process.

A partitioned subscription opens one lease session: its members join a group with a *shared*
advisory lock (every member holds it, so ``pg_locks`` counts the live members), and each
partition is owned through an exclusive advisory lock on the same key as ``hold_name``. When a
process dies, the server ends its session and releases all of them: nothing to expire.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import anyio
import asyncpg

from ..errors import SubscriptionLocked
from ._postgres_conn import Connections

__all__ = ["PostgresLeases", "lease_session"]


class PostgresLeases:
    """Non-blocking holds of names, and group membership, over one connection."""

    def __init__(self, connection: asyncpg.Connection, db: Connections, schema: str) -> None:
        self._connection = connection
        self._db = db
        key = f"hashtextextended('\"{schema}\":' || $1, 0)"
        granted = (
            "SELECT (l.classid::bigint << 32) | l.objid::bigint FROM pg_locks l "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 AND l.database = "
            "(SELECT oid FROM pg_database WHERE datname = current_database())"
        )
        self._join = f"SELECT pg_advisory_lock_shared({key})"
        self._try = f"SELECT pg_try_advisory_lock({key})"
        self._release = f"SELECT pg_advisory_unlock({key})"
        self._members = f"SELECT count(*) FROM ({granted}) AS g(k) WHERE k = {key}"
        self._held = (
            f"SELECT n FROM unnest($1::text[]) AS n WHERE {key.replace('$1', 'n')} IN ({granted})"
        )

    async def join(self, group: str) -> None:
        """Count this session among the live members of ``group`` until it ends."""
        async with self._db.failures.mapping("join a subscription's group", self._connection):
            await self._connection.fetchval(self._join, group)

    async def members(self, group: str) -> int:
        """How many live sessions have joined ``group``."""
        async with self._db.failures.mapping("count a subscription's members", self._connection):
            return int(await self._connection.fetchval(self._members, group))

    async def try_hold(self, name: str) -> bool:
        """Hold ``name`` if no session does; never waits."""
        async with self._db.failures.mapping("take a partition", self._connection):
            return bool(await self._connection.fetchval(self._try, name))

    async def release(self, name: str) -> None:
        async with self._db.failures.mapping("give a partition away", self._connection):
            await self._connection.fetchval(self._release, name)

    async def held(self, names: Sequence[str]) -> set[str]:
        """Which of ``names`` some session (this one included) holds now."""
        async with self._db.failures.mapping("see who holds partitions", self._connection):
            rows = await self._connection.fetch(self._held, list(names))
        return {row[0] for row in rows}


@asynccontextmanager
async def lease_session(db: Connections, schema: str, name: str) -> AsyncIterator[PostgresLeases]:
    """A connection of its own for the holds of subscription ``name``. Losing it ends the block
    with :class:`~eventuality.SubscriptionLocked` (the server has released every hold)."""
    holder = await db.connect()
    scope = anyio.CancelScope()

    def lost(*_: object) -> None:
        scope.cancel()

    holder.add_termination_listener(lost)
    try:
        if holder.is_closed():
            scope.cancel()
        with scope:
            yield PostgresLeases(holder, db, schema)
        if scope.cancelled_caught:
            raise SubscriptionLocked(
                f"lost the connection holding the partitions of subscription {name!r}; other "
                "processes may take them over. It rejoins from the stored checkpoints.",
                name=name,
            )
    finally:
        holder.remove_termination_listener(lost)
        with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
            await holder.close(timeout=5)
