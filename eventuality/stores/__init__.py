"""Event stores and ``open_store(url)``, which picks one from a URL."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlencode

from ..errors import InvalidStoreURL
from .base import EventStore, Snapshot, StoredEvent, StreamAppend, redact_dsn
from .memory import InMemoryEventStore
from .sqlite import SQLiteEventStore

__all__ = [
    "EventStore",
    "InMemoryEventStore",
    "PostgresEventStore",
    "SQLiteEventStore",
    "Snapshot",
    "StoredEvent",
    "StreamAppend",
    "open_store",
]

_SCHEMES = (
    "memory://, sqlite:///relative.db, sqlite:////absolute.db, sqlite:///:memory:, postgresql://…"
)


def __getattr__(name: str) -> Any:
    if name == "PostgresEventStore":  # imported on first use: asyncpg is an optional extra
        from .postgres import PostgresEventStore

        return PostgresEventStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def open_store(url: str) -> EventStore:
    """The store a URL names, not yet opened: use it with ``async with``.

    ``memory://``; ``sqlite:///relative.db``, ``sqlite:////absolute.db`` or ``sqlite:///:memory:``
    (options as query parameters: ``?synchronous=FULL&busy_timeout=10``); ``postgresql://…``.

    :raises InvalidStoreURL: the scheme is unknown or the URL is malformed.
    """
    if not isinstance(url, str):
        raise InvalidStoreURL(f"open_store takes a URL string, not {type(url).__name__}")
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep:
        raise _invalid(url, "it has no scheme")
    if scheme == "memory":
        if rest.strip("/"):
            raise _invalid(url, "memory:// takes no path")
        return InMemoryEventStore()
    if scheme == "sqlite":
        return _sqlite(url, rest)
    if scheme in ("postgresql", "postgres"):
        try:
            from .postgres import PostgresEventStore
        except ImportError as exc:
            raise InvalidStoreURL(
                f"{redact_dsn(url)} needs the PostgreSQL extra: "
                f"pip install 'eventuality[postgres]' ({exc})"
            ) from exc
        return _postgres(PostgresEventStore, url)
    raise _invalid(url, f"the scheme {scheme!r} is not one eventuality knows")


def _sqlite(url: str, rest: str) -> EventStore:
    path, _, query = rest.partition("?")
    if not path.startswith("/"):
        raise _invalid(
            url, "a SQLite URL needs three slashes before a relative path, four before an absolute"
        )
    path = path[1:]
    if not path:
        raise _invalid(url, "the SQLite URL names no file")
    options: dict[str, Any] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key == "synchronous":
            options["synchronous"] = value.upper()
        elif key in ("busy_timeout", "readers"):
            try:
                options[key] = float(value) if key == "busy_timeout" else int(value)
            except ValueError:
                raise _invalid(url, f"{key}={value!r} is not a number") from None
        else:
            raise _invalid(
                url, f"unknown option {key!r} (known: synchronous, busy_timeout, readers)"
            )
    try:
        return SQLiteEventStore(path, **options)
    except ValueError as exc:
        raise _invalid(url, str(exc)) from None


def _postgres(store_class: Any, url: str) -> EventStore:
    """``?schema=``, ``?min_size=``, ``?max_size=`` are ours; other parameters go to libpq."""
    base, _, query = url.partition("?")
    options: dict[str, Any] = {}
    passed: list[tuple[str, str]] = []
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key == "schema":
            options["schema"] = value
        elif key in ("min_size", "max_size"):
            try:
                options[key] = int(value)
            except ValueError:
                raise _invalid(url, f"{key}={value!r} is not a whole number") from None
        else:
            passed.append((key, value))
    dsn = f"{base}?{urlencode(passed)}" if passed else base
    try:
        store: EventStore = store_class(dsn, **options)
    except ValueError as exc:
        raise _invalid(url, str(exc)) from None
    return store


def _invalid(url: str, why: str) -> InvalidStoreURL:
    return InvalidStoreURL(
        f"cannot open store URL {redact_dsn(url)!r}: {why}. Accepted: {_SCHEMES}."
    )
