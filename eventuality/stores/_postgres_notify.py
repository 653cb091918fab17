"""Live following on PostgreSQL: the listener that wakes ``wait_appended``, and the
notifications an append sends once it has committed.

**Beside other appends, after the commit, not in it.** PostgreSQL serialises the commits of
transactions that ran ``NOTIFY``: each holds a database-wide lock from before its commit record
until after its WAL flush, so concurrent appends that notified could never share a flush (100
concurrent commands ran at the speed of one). An append that starts alone (no other
one-statement append of this backend on its way) notifies in its own transaction, which costs
no round trip; one that starts beside others does not, and once it has committed hands a
``NOTIFY`` to a background task, which sends one notification for every append that committed
while the previous one was on its way. That notification commits with no WAL flush of its own
(it writes nothing before its commit record). If it is lost (a lost connection, a closed
store, a killed process), other processes' waits still poll with backoff (10 to 250 ms), as
they do for any lost notification. Either way this process's own waiters are woken at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from typing import TYPE_CHECKING

import anyio
import asyncpg

from ..errors import StoreConnectionError
from .base import poll_appended

if TYPE_CHECKING:
    from ._postgres_conn import Connections
    from ._postgres_sql import Statements

__all__ = ["PostgresNotifications"]


class PostgresNotifications:
    """``wait_appended`` and ``announce`` of the PostgreSQL backend."""

    if TYPE_CHECKING:
        db: Connections
        sql: Statements

        async def last_position(self) -> int: ...

    _listener: asyncpg.Connection | None = None
    _listener_retry_at = 0.0
    _appended: anyio.Event | None = None
    _notifier: asyncio.Future[None] | None = None
    _notify_again = False

    @property
    def listening(self) -> bool:
        """Whether the notification connection is up (else waits poll)."""
        return self._listener is not None and not self._listener.is_closed()

    def _appended_event(self) -> anyio.Event:
        if self._appended is None:
            self._appended = anyio.Event()
        return self._appended

    async def wait_appended(self, after: int, timeout: float) -> bool:
        """Woken by NOTIFY; polls with backoff as well, for notifications that cannot come (a
        blocking transaction that rolled back) or a listener that is down."""

        async def wake() -> anyio.Event:
            await self._listen()
            return self._appended_event()

        return await poll_appended(self.last_position, wake, after, timeout)

    async def _listen(self) -> None:
        """(Re)connect the notification listener, at most once a second after a failure. A
        failure here is never an error: polling covers for it and the next wait tries again."""
        self.db.check_open()
        if self.listening or anyio.current_time() < self._listener_retry_at:
            return
        self._listener_retry_at = anyio.current_time() + 1.0
        try:
            listener = await self.db.connect()
        except StoreConnectionError:
            return
        try:
            await listener.add_listener(self.sql.channel, self._notified)
        except BaseException as exc:
            listener.terminate()
            if isinstance(exc, Exception):
                return
            raise  # cancelled
        if not self.db.is_open:  # closed while we connected: leave no listener behind
            listener.terminate()
            self.db.check_open()
        listener.add_termination_listener(self._listener_lost)
        self._listener = listener

    async def _close_notifications(self) -> None:
        """Let a notification on its way go (for a few seconds at most), close the listener."""
        if self._notifier is not None:
            with anyio.move_on_after(5):
                await asyncio.wait([self._notifier])
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(Exception):
                await listener.close(timeout=5)

    def _notified(self, *_: object) -> None:
        if self._appended is not None:
            self._appended.set()
            self._appended = None

    def _listener_lost(self, *_: object) -> None:
        self._listener = None
        self._notified()

    def announce(self, notified: bool) -> None:
        """An append has committed: wake this process's waiters now and, unless it
        ``notified`` in its own transaction, other processes' through a NOTIFY sent in the
        background (see the module docstring)."""
        self._notified()
        if notified:
            return
        self._notify_again = True
        if self._notifier is None:
            # In a context of its own: nothing of the caller's (a trace, a unit of work).
            loop = asyncio.get_running_loop()
            self._notifier = loop.create_task(self._notify(), context=contextvars.Context())

    async def _notify(self) -> None:
        try:
            while self._notify_again:
                self._notify_again = False
                async with self.db.pooled("notify listeners") as connection:
                    await connection.execute(self.sql.notify, self.sql.channel)
        except Exception:
            pass
        finally:
            self._notifier = None
