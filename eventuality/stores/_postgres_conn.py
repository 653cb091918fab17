"""Connections for the PostgreSQL store: its pools and sessions, what the URL asks of the driver,
and which driver errors mean a lost connection (:class:`~eventuality.StoreConnectionError`)
rather than a statement's own failure (:class:`~eventuality.StoreError`), in messages that never
show the password. ``postgres.py`` holds what the store does with them.

**Sessions.** A pooled connection never goes back to its pool inside a transaction or with
session state left by user SQL: transactions are begun and ended with plain statements (so a
``BEGIN`` cut short by a cancellation is rolled back like any other), ended shielded from
cancellation, and a connection that cannot be cleaned is terminated. ``query()`` has a pool of
its own whose sessions start with ``default_transaction_read_only``.

**The URL.** asyncpg reads libpq's URL syntax but sends every query parameter it does not know
to the server as a setting, and the server refuses the ones that are libpq's own
(``unrecognized configuration parameter "connect_timeout"``). :func:`connect_options` takes the
ones that have a meaning here (``connect_timeout``, ``application_name``,
``fallback_application_name``, ``client_encoding``) and refuses the rest at construction.

**Lost or not.** asyncpg raises :class:`asyncpg.InterfaceError` both for a closed connection
and for a caller's mistake (a wrong argument count), so an error counts as a lost connection by
its type (``OSError``, :class:`asyncpg.PostgresConnectionError`, a broken protocol), by its
severity (the server ends the session after a ``FATAL`` error: ``pg_terminate_backend``, a
shutdown), or, for an interface error, by whether the connection it came from is now closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import anyio
import asyncpg

from ..errors import StoreClosedError, StoreConnectionError, StoreError, StoreUsageError
from .base import redact_dsn

__all__ = ["Connections", "Failures", "connect_options", "end_transaction", "is_lost"]

# libpq's URL parameters that asyncpg neither uses nor can honour: it would send each to the
# server as a setting. Each maps to what to do instead ("" when there is nothing to say).
_LIBPQ_ONLY = {
    "hostaddr": "put the address in the URL's host part",
    "requiressl": "use sslmode=require",
    "sslcompression": "",
    "sslsni": "asyncpg sends the host name for TLS already",
    "sslcertmode": "give sslcert and sslkey to present a certificate",
    "sslcrldir": "use sslcrl with a file",
    "sslkeylogfile": "",
    "channel_binding": "",
    "require_auth": "",
    "requirepeer": "",
    "gssencmode": "asyncpg does not encrypt with GSSAPI; use sslmode",
    "gssdelegation": "",
    "keepalives": "",
    "keepalives_idle": "",
    "keepalives_interval": "",
    "keepalives_count": "",
    "tcp_user_timeout": "",
    "load_balance_hosts": "",
    "min_protocol_version": "",
    "max_protocol_version": "",
    "replication": "the store needs an ordinary session",
    "scram_client_key": "",
    "scram_server_key": "",
    "oauth_issuer": "",
    "oauth_client_id": "",
    "oauth_client_secret": "",
    "oauth_scope": "",
    "tty": "",
}
_OURS = ("connect_timeout", "application_name", "fallback_application_name", "client_encoding")
_ROLLBACK_TIMEOUT = 10.0
_SESSION_RESET = "SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL;"
WRITE_UNCERTAIN = "The write may or may not have been committed."


@dataclass(frozen=True)
class ConnectOptions:
    """What every connection of one store is opened with."""

    dsn: str
    """The URL for asyncpg: the parameters taken out here are gone from it."""
    timeout: float | None
    """Seconds to connect (``connect_timeout``); None: asyncpg's default."""
    settings: dict[str, str]
    """Server settings for the store's sessions, ``search_path`` first."""

    def kwargs(self, **extra_settings: str) -> dict[str, Any]:
        """Keyword arguments for ``asyncpg.connect`` and ``asyncpg.create_pool``."""
        found: dict[str, Any] = {"server_settings": {**self.settings, **extra_settings}}
        if self.timeout is not None:
            found["timeout"] = self.timeout
        return found


def connect_options(dsn: str, schema: str) -> ConnectOptions:
    """Read the URL's parameters the way libpq would, for asyncpg.

    :raises ValueError: a parameter that asyncpg cannot honour, or a bad value.
    """
    parts = urlsplit(dsn)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    given = dict(pairs)
    for key in given:
        if key in _LIBPQ_ONLY:
            hint = _LIBPQ_ONLY[key]
            raise ValueError(
                f"the URL parameter {key!r} is a libpq option that asyncpg, the driver of "
                f"PostgresEventStore, does not support{f' ({hint})' if hint else ''}: remove it "
                "from the URL"
            )
    if "search_path" in given:
        raise ValueError(
            "the URL sets search_path, which the store sets itself: name the store's schema "
            "with schema= instead (?schema= with open_store)"
        )
    encoding = given.get("client_encoding", "UTF8")
    if encoding.replace("-", "").replace("_", "").upper() not in ("UTF8", "UNICODE"):
        raise ValueError(
            f"client_encoding={encoding!r}: the store needs UTF8 (events are Unicode text); "
            "remove client_encoding from the URL"
        )
    timeout = _connect_timeout(given.get("connect_timeout", ""))
    name = given.get("application_name") or given.get("fallback_application_name")
    kept = [(key, value) for key, value in pairs if key not in _OURS]
    if len(kept) != len(pairs):
        dsn = urlunsplit(parts._replace(query=urlencode(kept)))
    settings = {"search_path": f'"{schema}", public', "application_name": name or "eventuality"}
    return ConnectOptions(dsn, timeout, settings)


def _connect_timeout(value: str) -> float | None:
    """libpq's ``connect_timeout``: whole seconds; 0, negative or empty waits as long as it
    takes; 1 counts as 2 (libpq's minimum)."""
    if not value.strip():
        return None
    try:
        seconds = int(value)
    except ValueError:
        raise ValueError(
            f"connect_timeout={value!r} is not a whole number of seconds (libpq's meaning)"
        ) from None
    if seconds <= 0:
        return None
    return float(max(seconds, 2))


def _password(dsn: str) -> str | None:
    parts = urlsplit(dsn)
    if parts.password:
        return parts.password
    return next((v for k, v in parse_qsl(parts.query) if k.lower() == "password"), None)


def is_lost(exc: BaseException, connection: asyncpg.Connection | None = None) -> bool:
    """Whether ``exc`` means the connection is gone (or unusable), rather than that a statement
    failed on a connection that still works."""
    if isinstance(
        exc, OSError | asyncpg.PostgresConnectionError | asyncpg.exceptions.ProtocolError
    ):
        return True
    if isinstance(exc, asyncpg.PostgresError):
        return (
            getattr(exc, "severity_en", None) in _FATAL or getattr(exc, "severity", None) in _FATAL
        )
    if isinstance(exc, asyncpg.InterfaceError | asyncpg.InternalClientError):
        return connection is not None and closed(connection)
    return False


def closed(connection: asyncpg.Connection) -> bool:
    """Whether ``connection`` is closed. A pool's proxy whose connection was lost counts as
    closed: asyncpg hands the lost connection back itself, and the proxy then refuses calls."""
    try:
        return bool(connection.is_closed())
    except asyncpg.InterfaceError:
        return True


def terminate(connection: asyncpg.Connection) -> None:
    """Close ``connection`` at once, without a word to the server (its pool replaces it)."""
    with contextlib.suppress(asyncpg.InterfaceError):
        connection.terminate()


_FATAL = ("FATAL", "PANIC")
DRIVER_ERRORS = (
    OSError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
)


class Failures:
    """The store's errors for driver errors, naming the server with the password hidden."""

    def __init__(self, dsn: str) -> None:
        self.where = redact_dsn(dsn)
        self._password = _password(dsn)

    def scrub(self, exc: BaseException) -> str:
        text = (str(exc) or type(exc).__name__).strip()
        return text.replace(self._password, "***") if self._password else text

    def connect_failed(self, exc: BaseException) -> StoreConnectionError:
        return StoreConnectionError(
            f"could not connect to PostgreSQL at {self.where}: {self.scrub(exc)}. Check that "
            "the server is running and reachable at that host and port, and that the URL's "
            "database, user and password are right."
        )

    def lost(self, what: str, exc: BaseException, uncertain: str = "") -> StoreConnectionError:
        return StoreConnectionError(
            f"could not {what}: the connection to PostgreSQL ({self.where}) was lost "
            f"({self.scrub(exc)}). The next call reconnects.{f' {uncertain}' if uncertain else ''}"
        )

    def failed(self, what: str, exc: BaseException, statement: str | None = None) -> StoreError:
        told = f" (statement: {_short(statement)})" if statement else ""
        return StoreError(f"could not {what} in PostgreSQL ({self.where}): {self.scrub(exc)}{told}")

    def read_only(self, exc: BaseException, statement: str) -> StoreError:
        return StoreUsageError(
            f"store.query() is read-only, and PostgreSQL refused {_short(statement)!r}: "
            f"{self.scrub(exc)}. Nothing was written. Write read models from a Projection's "
            "handler (through its tx) or inside `async with store.transaction() as tx:`."
        )

    def mapped(
        self,
        what: str,
        exc: BaseException,
        connection: asyncpg.Connection | None,
        *,
        uncertain: str = "",
        statement: str | None = None,
    ) -> StoreError | None:
        """The store's error for a driver error (a lost connection is terminated, so its pool
        replaces it), or None for anything else, to pass through as it is."""
        if is_lost(exc, connection):
            if connection is not None:
                terminate(connection)
            return self.lost(what, exc, uncertain)
        if isinstance(exc, DRIVER_ERRORS):
            return self.failed(what, exc, statement)
        return None

    @asynccontextmanager
    async def mapping(
        self,
        what: str,
        connection: asyncpg.Connection | None = None,
        *,
        keep: type[BaseException] | tuple[type[BaseException], ...] = (),
        uncertain: str = "",
        statement: str | None = None,
    ) -> AsyncIterator[None]:
        """Raise the store's error for a driver error in the block; ``keep`` passes the given
        ones through for the caller to handle."""
        try:
            yield
        except keep:
            raise
        except Exception as exc:
            store_error = self.mapped(
                what, exc, connection, uncertain=uncertain, statement=statement
            )
            if store_error is None:
                raise
            raise store_error from exc


def _short(statement: str) -> str:
    flat = " ".join(statement.split())
    return flat if len(flat) <= 200 else flat[:197] + "..."


async def end_transaction(connection: asyncpg.Connection) -> None:
    """Roll back whatever transaction ``connection`` may be in, shielded from cancellation, or
    terminate it if that fails: a connection never goes back to its pool inside a transaction
    (asyncpg would report it to the loop's exception handler). After a cancelled statement,
    asyncpg waits for the server to confirm the cancellation before it sends ``ROLLBACK``."""
    with anyio.CancelScope(shield=True):
        if closed(connection):
            return
        try:
            await connection.execute("ROLLBACK", timeout=_ROLLBACK_TIMEOUT)
        except Exception:
            terminate(connection)


_savepoint_ids = itertools.count(1)


def savepoint_name() -> str:
    return f"eventuality_{next(_savepoint_ids)}"


class _PooledConnection(asyncpg.Connection):  # type: ignore[misc]
    """Pool connections keep no session state between uses (no LISTEN, advisory lock or
    cursor: the listener and subscription locks have connections of their own; user SQL is
    reset after it runs), so handing one back needs no reset round trip."""

    def get_reset_query(self) -> str:
        return ""


Keep = type[BaseException] | tuple[type[BaseException], ...]


class Connections:
    """One store's pools (the store's own and the read-only one for queries) and its single
    connections, with driver errors mapped (:class:`Failures`)."""

    def __init__(self, dsn: str, schema: str, min_size: int, max_size: int) -> None:
        self.failures = Failures(dsn)
        self.options = connect_options(dsn, schema)
        self._where = self.failures.where
        self._sizes = min_size, max_size
        self._pool: asyncpg.Pool | None = None
        self._query_pool: asyncpg.Pool | None = None
        self._background: set[asyncio.Future[Any]] = set()

    @property
    def is_open(self) -> bool:
        return self._pool is not None

    def check_open(self) -> None:
        if self._pool is None:
            raise StoreClosedError(f"PostgreSQL store ({self._where}) was closed")

    async def open(self) -> None:
        """Open the pools: the store's own connects ``min_size`` connections now (a failure is
        a StoreConnectionError saying so), the query pool none until queries come."""
        min_size, max_size = self._sizes
        options = self.options
        try:
            self._pool = await asyncpg.create_pool(
                options.dsn,
                min_size=min_size,
                max_size=max_size,
                connection_class=_PooledConnection,
                **options.kwargs(),
            )
            self._query_pool = await asyncpg.create_pool(
                options.dsn,
                min_size=0,
                max_size=max_size,
                connection_class=_PooledConnection,
                **options.kwargs(default_transaction_read_only="on"),
            )
        except Exception as exc:
            await self.close()
            raise self.failures.connect_failed(exc) from exc

    async def close(self) -> None:
        with anyio.CancelScope(shield=True):
            if self._background:  # connects whose callers were cancelled: let them end
                with anyio.move_on_after(_ROLLBACK_TIMEOUT):
                    await asyncio.gather(*self._background, return_exceptions=True)
            pools = self._pool, self._query_pool
            self._pool = self._query_pool = None
            for pool in pools:
                if pool is not None:
                    with contextlib.suppress(Exception):
                        await pool.close()

    async def connect(self) -> asyncpg.Connection:
        """A connection of its own, outside the pools (the listener, a name's holder)."""
        self.check_open()

        async def connect() -> asyncpg.Connection:
            return await asyncpg.connect(self.options.dsn, **self.options.kwargs())

        try:
            return await self._uncancelled(connect(), terminate)
        except Exception as exc:
            raise self.failures.connect_failed(exc) from exc

    async def _acquire(self, read_only: bool) -> tuple[asyncpg.Pool, asyncpg.Connection]:
        pool = self._query_pool if read_only else self._pool
        if pool is None:
            raise StoreClosedError(f"PostgreSQL store ({self._where}) was closed")
        try:
            if pool.get_idle_size():  # a connection is ready: nothing to connect
                return pool, await pool.acquire()

            async def acquire() -> asyncpg.Connection:
                return await pool.acquire()

            return pool, await self._uncancelled(acquire(), partial(self._release_later, pool))
        except Exception as exc:
            if self._pool is None:  # closed meanwhile
                raise StoreClosedError(f"PostgreSQL store ({self._where}) was closed") from exc
            raise self.failures.connect_failed(exc) from exc

    async def _uncancelled(
        self,
        connecting: Coroutine[Any, Any, asyncpg.Connection],
        undo: Callable[[asyncpg.Connection], None],
    ) -> asyncpg.Connection:
        """Connect without cutting the connect short when the caller is cancelled: asyncpg
        cancelled during its TLS negotiation leaves a future whose exception nobody retrieves
        (reported to the loop's exception handler). The connect goes on in its own task; if
        the caller was cancelled meanwhile, ``undo`` gets its connection when it comes."""
        task = asyncio.ensure_future(connecting)
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            self._background.add(task)
            task.add_done_callback(partial(self._connected_late, undo))
            raise

    def _connected_late(self, undo: Callable[[asyncpg.Connection], None], task: Any) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is None:
            undo(task.result())

    def _release_later(self, pool: asyncpg.Pool, connection: asyncpg.Connection) -> None:
        task = asyncio.ensure_future(self._release(pool, connection))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    @staticmethod
    async def _release(pool: asyncpg.Pool, connection: asyncpg.Connection) -> None:
        """Hand ``connection`` back (asyncpg shields that from cancellation and terminates a
        connection it cannot reset)."""
        with contextlib.suppress(Exception):
            await pool.release(connection)

    @asynccontextmanager
    async def pooled(
        self, what: str, keep: Keep = (), uncertain: str = ""
    ) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection for the store's own statements, with driver errors mapped. A
        lost one is terminated rather than returned, so the next call reconnects."""
        pool, connection = await self._acquire(read_only=False)
        try:
            yield connection
        except keep:
            raise
        except Exception as exc:
            error = self.failures.mapped(what, exc, connection, uncertain=uncertain)
            if error is None:
                raise
            raise error from exc
        finally:
            await self._release(pool, connection)

    @asynccontextmanager
    async def transaction(
        self, what: str, keep: Keep = (), begin: str = "BEGIN", uncertain: str = WRITE_UNCERTAIN
    ) -> AsyncIterator[asyncpg.Connection]:
        """A transaction for the store's own statements that begins with ``begin`` and
        commits, or rolls back, shielded from cancellation."""
        async with self.pooled(what, keep, uncertain) as connection:
            try:
                await connection.execute(begin)
                yield connection
            except BaseException:
                await end_transaction(connection)
                raise
            with anyio.CancelScope(shield=True):
                await connection.execute("COMMIT")

    @asynccontextmanager
    async def user_session(self, read_only: bool) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection for user SQL (errors are the caller's to map), reset before it
        goes back: user SQL may change session state (SET, LISTEN, advisory locks, BEGIN). A
        connection that cannot be reset is terminated, never handed back dirty."""
        pool, connection = await self._acquire(read_only)
        try:
            yield connection
        finally:
            with anyio.CancelScope(shield=True):
                if not closed(connection):
                    try:
                        if connection.is_in_transaction():
                            await end_transaction(connection)
                        await connection.execute(_SESSION_RESET)
                    except Exception:
                        terminate(connection)
                await self._release(pool, connection)
