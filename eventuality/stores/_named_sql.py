"""Named SQL parameters (``:name``) on every store, translated to the backend's own placeholders.

A read model written once runs on SQLite, the memory store and PostgreSQL alike:
``tx.execute("INSERT INTO t (a, b) VALUES (:a, :b)", a=1, b=2)``. Positional parameters pass
through untouched, in the backend's own style.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .base import BackendTransaction

__all__ = ["NamedTransaction", "bind", "translate"]

# One alternative per thing to copy as it is (quoted text, identifiers, comments, casts), then
# the named parameter itself. Dollar quoting ($$ ... $$, $tag$ ... $tag$) is PostgreSQL's.
_TOKENS = re.compile(
    r"""
    '(?:[^']|'')*'
    | "(?:[^"]|"")*"
    | --[^\n]*
    | /\*.*?\*/
    | (?P<dollar>\$(?:[A-Za-z_][A-Za-z0-9_]*)?\$).*?(?P=dollar)
    | ::
    | :(?P<name>[A-Za-z_][A-Za-z0-9_]*)
    """,
    re.VERBOSE | re.DOTALL,
)


@lru_cache(maxsize=512)
def translate(sql: str, paramstyle: str) -> tuple[str, tuple[str, ...]]:
    """``sql`` with each ``:name`` replaced by ``paramstyle``'s placeholder, and the names in
    the order the values must be passed. ``"qmark"`` repeats a name used twice; ``"dollar"``
    gives it one number."""
    if paramstyle not in ("qmark", "dollar"):
        raise ValueError(f"unknown paramstyle {paramstyle!r}: expected 'qmark' or 'dollar'")
    order: list[str] = []

    def placeholder(match: re.Match[str]) -> str:
        name = match.group("name")
        if name is None:
            return match.group(0)
        if paramstyle == "qmark":
            order.append(name)
            return "?"
        if name not in order:
            order.append(name)
        return f"${order.index(name) + 1}"

    return _TOKENS.sub(placeholder, sql), tuple(order)


def bind(
    sql: str, paramstyle: str, params: Sequence[Any], named: Mapping[str, Any]
) -> tuple[str, Sequence[Any]]:
    """The SQL and positional values to hand the backend, from either kind of parameters.

    :raises ValueError: both kinds were given, a ``:name`` in ``sql`` has no value, or a value
        is given for a name ``sql`` does not use.
    """
    if not named:
        return sql, params
    if params:
        raise ValueError(
            f"got positional parameters {tuple(params)!r} and named ones {sorted(named)} for one "
            "statement; use one kind: ':name' placeholders with keyword arguments, or the "
            "store's own placeholders (store.paramstyle) with positional ones"
        )
    text, names = translate(sql, paramstyle)
    values = _values(sql, names, named)
    unused = sorted(set(named).difference(names))
    if unused:
        raise ValueError(
            f"got values for {', '.join(':' + name for name in unused)}, which {sql!r} does not "
            "use; a misspelt name would otherwise bind nothing. Pass only the names the SQL has."
        )
    return text, values


def _values(sql: str, names: tuple[str, ...], named: Mapping[str, Any]) -> list[Any]:
    missing = sorted({name for name in names if name not in named})
    if missing:
        raise ValueError(
            f"no value for {', '.join(':' + name for name in missing)} in {sql!r}; got values "
            f"for {sorted(named)}. Pass each :name as a keyword argument (or mapping key)."
        )
    return [named[name] for name in names]


def bind_rows(
    sql: str, paramstyle: str, rows: Iterable[Sequence[Any] | Mapping[str, Any]]
) -> tuple[str, list[Sequence[Any]]]:
    """``executemany``'s rows as positional values: mappings by ``:name``, sequences as they are.

    :raises ValueError: the rows mix mappings and sequences, or a mapping lacks a name.
    """
    listed = list(rows)
    kinds = {isinstance(row, Mapping) for row in listed}
    if kinds != {True}:
        if len(kinds) > 1:
            raise ValueError(
                "executemany() rows mix mappings (named parameters) and sequences (positional); "
                "use one kind for every row"
            )
        return sql, [row for row in listed if not isinstance(row, Mapping)]
    text, names = translate(sql, paramstyle)
    return text, [_values(sql, names, row) for row in listed if isinstance(row, Mapping)]


class NamedTransaction:
    """A store transaction that also takes ``:name`` parameters as keyword arguments.

    Wraps the backend's transaction: positional use is passed on unchanged, and the checkpoint
    and savepoint methods a :class:`~eventuality.Projection` uses are the backend's own.
    """

    def __init__(self, inner: BackendTransaction) -> None:
        self._inner = inner
        self.paramstyle: str = inner.paramstyle

    @property
    def inner(self) -> BackendTransaction:
        """The backend's own transaction."""
        return self._inner

    async def execute(self, sql: str, *params: Any, **named: Any) -> None:
        """Run one statement; ``:name`` placeholders take keyword arguments."""
        await self._inner.execute(*_call(sql, self.paramstyle, params, named))

    async def executemany(
        self, sql: str, rows: Iterable[Sequence[Any] | Mapping[str, Any]]
    ) -> None:
        """Run one statement per row: mappings fill ``:name`` placeholders, sequences are
        positional in the store's own style."""
        text, values = bind_rows(sql, self.paramstyle, rows)
        await self._inner.executemany(text, values)

    async def fetchall(self, sql: str, *params: Any, **named: Any) -> list[tuple[Any, ...]]:
        return await self._inner.fetchall(*_call(sql, self.paramstyle, params, named))

    async def fetchone(self, sql: str, *params: Any, **named: Any) -> tuple[Any, ...] | None:
        return await self._inner.fetchone(*_call(sql, self.paramstyle, params, named))

    async def get_checkpoint(self, name: str) -> int | None:
        return await self._inner.get_checkpoint(name)

    async def set_checkpoint(self, name: str, position: int, expected: int | None) -> None:
        await self._inner.set_checkpoint(name, position, expected)

    @asynccontextmanager
    async def savepoint(self) -> AsyncIterator[None]:
        """Undo only what the block wrote if it raises; the transaction goes on."""
        async with self._inner.savepoint():
            yield


def _call(sql: str, paramstyle: str, params: Sequence[Any], named: Mapping[str, Any]) -> list[Any]:
    text, values = bind(sql, paramstyle, params, named)
    return [text, *values]
