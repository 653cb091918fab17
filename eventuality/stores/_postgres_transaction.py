"""A PostgreSQL read-model transaction (``store.transaction()``, a Projection's batch) on one
pooled connection, with savepoints; SQL uses ``$1`` placeholders."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import anyio
import asyncpg

from ._postgres_conn import savepoint_name, terminate

if TYPE_CHECKING:
    from .postgres import PostgresBackend

__all__ = ["PostgresTransaction"]


class PostgresTransaction:
    """A read-model transaction on one pooled connection; SQL uses ``$1`` placeholders."""

    paramstyle = "dollar"

    def __init__(self, backend: PostgresBackend, connection: asyncpg.Connection) -> None:
        self._backend = backend
        self._connection = connection

    def _errors(self, sql: str | None = None) -> contextlib.AbstractAsyncContextManager[None]:
        return self._backend.db.failures.mapping(
            "run a transaction", self._connection, statement=sql
        )

    async def execute(self, sql: str, *params: Any) -> None:
        async with self._errors(sql):
            await self._connection.execute(sql, *params)

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        async with self._errors(sql):
            await self._connection.executemany(sql, [tuple(row) for row in rows])

    async def fetchall(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        async with self._errors(sql):
            return [tuple(r) for r in await self._connection.fetch(sql, *params)]

    async def fetchone(self, sql: str, *params: Any) -> tuple[Any, ...] | None:
        async with self._errors(sql):
            found = await self._connection.fetchrow(sql, *params)
        return None if found is None else tuple(found)

    async def get_checkpoint(self, name: str) -> int | None:
        async with self._errors():
            return await self._connection.fetchval(self._backend.sql.lock_checkpoint, name)  # type: ignore[no-any-return]

    async def set_checkpoint(self, name: str, position: int, expected: int | None) -> None:
        async with self._errors():
            await self._backend._set_checkpoint(self._connection, name, position, expected)

    @asynccontextmanager
    async def savepoint(self) -> AsyncIterator[None]:
        name = savepoint_name()
        async with self._errors():
            await self._connection.execute(f"SAVEPOINT {name}")
        try:
            yield
        except BaseException:
            with anyio.CancelScope(shield=True):
                try:
                    async with self._errors():
                        await self._connection.execute(f"ROLLBACK TO SAVEPOINT {name}")
                except BaseException:
                    # The block's writes could not be undone: the transaction must not commit.
                    terminate(self._connection)
                    raise
            raise
        async with self._errors():
            await self._connection.execute(f"RELEASE SAVEPOINT {name}")
