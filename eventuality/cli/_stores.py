"""Opening the store a command names: clear errors, no password shown, and reading commands
that never create a store by accident (a mistyped path or schema is an error, not a new store).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import parse_qsl, urlencode

import click

from ..errors import EventualityError
from ..stores import EventStore, open_store
from ..stores.base import redact_dsn

__all__ = ["CommandError", "opened"]


class CommandError(click.ClickException):
    """An error the command reports in one line on stderr, exiting with status 1."""

    def format_message(self) -> str:
        return self.message


@asynccontextmanager
async def opened(url: str, *, must_exist: bool = True) -> AsyncIterator[EventStore]:
    """The open store ``url`` names. ``must_exist``: refuse a SQLite file or PostgreSQL
    schema that is not there yet rather than create it.

    :raises CommandError: a bad URL, a missing store, or a store that cannot be opened.
    """
    shown = redact_dsn(url)
    try:
        store = open_store(url)
    except EventualityError as exc:
        raise CommandError(str(exc)) from None
    kind = type(store).__name__
    if kind == "InMemoryEventStore" or getattr(store, "path", None) == ":memory:":
        raise CommandError(
            f"{shown} is a store that lives inside one process: there is nothing to read or "
            "write from the command line. Use a SQLite file (sqlite:///events.db) or "
            "PostgreSQL (postgresql://...)."
        )
    if must_exist:
        await _check_exists(store, url, shown)
    try:
        await store.open()
    except EventualityError as exc:
        raise CommandError(f"cannot open {shown}: {exc}") from None
    except OSError as exc:
        raise CommandError(f"cannot open {shown}: {exc.strerror or exc}") from None
    try:
        yield store
    finally:
        await store.close()


async def _check_exists(store: EventStore, url: str, shown: str) -> None:
    path = getattr(store, "path", None)
    if isinstance(path, str):
        if not _is_file(path):
            raise CommandError(
                f"{shown}: there is no SQLite file at {path!r} (nothing was "
                "created). Check the path: sqlite:///relative.db, sqlite:////absolute.db."
            )
        return
    schema = str(getattr(store, "schema", "public"))
    if not await _postgres_schema_exists(url, schema):
        raise CommandError(
            f"{shown}: the PostgreSQL schema {schema!r} holds no eventuality store (nothing was "
            "created). Check ?schema= in the URL."
        )


def _is_file(path: str) -> bool:
    return os.path.isfile(path)


async def _postgres_schema_exists(url: str, schema: str) -> bool:
    import asyncpg

    from ..stores._postgres_conn import connect_options

    base, _, query = url.partition("?")
    kept = [(k, v) for k, v in parse_qsl(query) if k not in ("schema", "min_size", "max_size")]
    options = connect_options(f"{base}?{urlencode(kept)}" if kept else base, schema)
    try:
        connection = await asyncpg.connect(options.dsn, **options.kwargs())
    except (OSError, asyncpg.PostgresError) as exc:
        message = redact_dsn(str(exc))
        raise CommandError(f"cannot connect to {redact_dsn(url)}: {message}") from None
    try:
        found = await connection.fetchval(
            "SELECT to_regclass(quote_ident($1) || '.eventuality_events') IS NOT NULL", schema
        )
    finally:
        await connection.close()
    return bool(found)
