"""The handle ``store.transaction()`` gives on SQLite: statements on the writer connection, each
one thread round trip, inside the ``BEGIN IMMEDIATE`` the store opened."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import anyio

from . import _sqlite_ops as ops

__all__ = ["SQLiteTransaction"]

T = TypeVar("T")


class SQLiteTransaction:
    """A write transaction on the writer connection; ``run(function, *args)`` runs
    ``function(db, *args)`` on the writer's thread and maps its errors."""

    paramstyle = "qmark"

    def __init__(self, run: Callable[..., Awaitable[Any]]) -> None:
        self._runner = run
        self._savepoints = itertools.count()

    async def _run(self, function: Callable[..., T], *args: Any) -> T:
        result: T = await self._runner(function, *args)
        return result

    async def execute(self, sql: str, *params: Any) -> None:
        await self._run(ops.execute, sql, params)

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        await self._run(ops.executemany, sql, [tuple(row) for row in rows])

    async def fetchall(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        return await self._run(ops.fetchall, sql, params)

    async def fetchone(self, sql: str, *params: Any) -> tuple[Any, ...] | None:
        return await self._run(ops.fetchone, sql, params)

    async def get_checkpoint(self, name: str) -> int | None:
        return await self._run(ops.get_checkpoint, name)

    async def set_checkpoint(self, name: str, position: int, expected: int | None) -> None:
        await self._run(ops.check_and_set_checkpoint, name, position, expected)

    @asynccontextmanager
    async def savepoint(self) -> AsyncIterator[None]:
        name = f"eventuality_{next(self._savepoints)}"
        await self.execute(f"SAVEPOINT {name}")
        try:
            yield
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self.execute(f"ROLLBACK TO {name}")
                await self.execute(f"RELEASE {name}")
            raise
        await self.execute(f"RELEASE {name}")
