"""``read_all``'s iterator: the global log a page at a time, its rows decoded a few at a time."""

from __future__ import annotations

from ..messages import Event
from ._partition_hash import partition_of
from ._sealing import opened
from .boundary import Backend
from .rows import DECODED_AT_ONCE, StoredEvent, decoded_prefix, from_row

__all__ = ["LogReader"]


class LogReader:
    """Async iterator over the global log that holds one page at a time and no connection.

    Events are decoded a few rows at a time (:func:`~.rows.decoded_prefix`), not one call per
    row: few enough that a caller who drops each event as it goes keeps the garbage collector
    idle (a whole page decoded at once would survive its collections, and cost more than it
    saves). A row that does not decode raises its error when the iteration reaches it, after
    the events before it, and the iteration can go on past it, as it would one row at a time.
    """

    def __init__(
        self,
        backend: Backend,
        after: int,
        types: frozenset[str] | None,
        page_size: int,
        keeps_keys: bool,
        partition: tuple[int, int] | None = None,
    ) -> None:
        self._backend = backend
        self._partition = partition
        self._keeps_keys = keeps_keys
        self._after = after
        self._types = types
        self._page_size = page_size
        self._events: list[Event] = []
        self._next = 0  # in _events
        self._rows: list[StoredEvent] = []
        self._start = 0  # the first row of _rows not yet decoded
        self._exhausted = False

    def __aiter__(self) -> LogReader:
        return self

    async def __anext__(self) -> Event:
        index = self._next
        events = self._events
        if index < len(events):
            self._next = index + 1
            return events[index]
        while self._start >= len(self._rows):
            if self._exhausted:
                raise StopAsyncIteration
            rows = await self._backend.read_log(self._after, self._page_size, self._types)
            if len(rows) < self._page_size:
                self._exhausted = True
            if not rows:
                raise StopAsyncIteration
            self._after = rows[-1].position
            if self._partition is not None:
                part, count = self._partition
                rows = [row for row in rows if partition_of(row.stream_id, count) == part]
            self._rows, self._start = await opened(self._backend, rows, self._keeps_keys), 0
        start = self._start
        events = decoded_prefix(self._rows[start : start + DECODED_AT_ONCE])
        if events:
            self._events, self._next, self._start = events, 1, start + len(events)
            return events[0]
        self._events, self._next, self._start = events, 0, start + 1
        return from_row(self._rows[start])  # raises the row's error
