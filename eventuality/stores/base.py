"""The event store front and the boundary every backend implements.

Backends see rows (:class:`StoredEvent`), never pydantic models. This module turns events into rows
and back, settles expected versions and recognises retried appends, once for every backend, so a
backend is a handful of async methods that store and fetch rows atomically.
"""

from __future__ import annotations

import json
import logging
from collections import deque
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from types import TracebackType
from typing import Any, Protocol, Self
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pydantic import ValidationError

from ..errors import (
    ConcurrencyError,
    DuplicateEventError,
    EventSchemaError,
    StoreClosedError,
)
from ..messages import Event, event_class, event_type_names, upcast_payload

__all__ = [
    "AppendRequest",
    "Backend",
    "EventStore",
    "Snapshot",
    "StoredEvent",
    "StreamAppend",
    "redact_dsn",
]

logger = logging.getLogger("eventuality")

_PAGE_SIZE = 1000


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """One event as a backend keeps it. ``version`` 0 asks the backend for the stream's next
    version; ``position`` is 0 until the backend assigns one."""

    stream_id: str
    version: int
    event_type: str
    schema_version: int
    data: str
    metadata: str
    event_id: str
    aggregate_id: str | None
    occurred_at: datetime
    position: int = 0


@dataclass(frozen=True, slots=True)
class AppendRequest:
    """Rows for one stream in one atomic commit, with the version the stream must be at.

    Either every row carries its version (``expected_version`` then agrees with them) or none does.
    """

    stream_id: str
    expected_version: int | None
    rows: tuple[StoredEvent, ...]


@dataclass(frozen=True, slots=True)
class Snapshot:
    """An aggregate's state as of ``version``, serialised as JSON."""

    stream_id: str
    version: int
    aggregate_type: str
    schema_version: int
    state: str


@dataclass(frozen=True, slots=True)
class StreamAppend:
    """Public form of one stream's part in :meth:`EventStore.append_streams`."""

    stream_id: str
    events: Sequence[Event]
    expected_version: int | None = None


class Backend(Protocol):
    """What a storage backend implements. Every method is atomic on its own."""

    async def open(self) -> None: ...
    async def close(self) -> None: ...

    async def append(self, requests: Sequence[AppendRequest]) -> list[StoredEvent]:
        """Store every request or none; return the rows as stored, in request order.

        Inside its transaction a backend calls :func:`settle_versions` per request and, when a
        request conflicts or an event id is already stored, :func:`match_retry` before failing.
        """
        ...

    async def read_stream(
        self, stream_id: str, from_version: int, to_version: int | None
    ) -> list[StoredEvent]: ...

    async def read_log(
        self, after: int, limit: int, types: frozenset[str] | None
    ) -> list[StoredEvent]:
        """Up to ``limit`` rows with ``position > after`` in position order. Never returns a row
        while a lower position may still appear."""
        ...

    async def stream_version(self, stream_id: str) -> int: ...
    async def last_position(self) -> int: ...

    async def wait_appended(self, after: int, timeout: float) -> bool:
        """Wait until a position above ``after`` may be readable, or ``timeout`` seconds pass."""
        ...

    async def get_checkpoint(self, name: str) -> int | None: ...

    async def set_checkpoint(self, name: str, position: int, expected: int | None) -> None:
        """Compare-and-set: raise :class:`CheckpointConflict` unless the stored value is
        ``expected`` (``None``: no checkpoint yet)."""
        ...

    async def save_snapshot(self, snapshot: Snapshot) -> None: ...
    async def load_snapshot(self, stream_id: str, max_version: int | None) -> Snapshot | None: ...


def settle_versions(request: AppendRequest, current_version: int) -> list[StoredEvent]:
    """Check ``request`` against the stream's current version and number its rows.

    :raises ConcurrencyError: the stream is not where the request expects it.
    """
    expected = request.expected_version
    if expected is not None and expected != current_version:
        raise ConcurrencyError(request.stream_id, expected, current_version)
    rows = request.rows
    if rows and rows[0].version == 0:
        return [replace(row, version=current_version + i) for i, row in enumerate(rows, 1)]
    return list(rows)


def match_retry(
    requests: Sequence[AppendRequest], stored: Mapping[str, StoredEvent]
) -> list[StoredEvent] | None:
    """Decide what an append means when some of its event ids are already stored.

    ``stored`` maps the event ids of ``requests`` that the store holds to their rows. Returns the
    stored rows when the append repeats one that already succeeded (a retry after a lost
    acknowledgement), ``None`` when none of its ids are stored.

    :raises DuplicateEventError: some ids are stored, but not as this exact append.
    """
    if not stored:
        return None
    result: list[StoredEvent] = []
    for request in requests:
        previous: StoredEvent | None = None
        for row in request.rows:
            found = stored.get(row.event_id)
            if found is None:
                raise DuplicateEventError(
                    request.stream_id,
                    next(iter(stored)),
                    "is already stored, and this append mixes stored and new events",
                )
            expected_version = (
                previous.version + 1
                if previous is not None
                else (
                    request.expected_version + 1
                    if request.expected_version is not None
                    else found.version
                )
            )
            if not _same_event(row, found) or found.version != expected_version:
                where = f"stream {found.stream_id!r} at version {found.version}"
                raise DuplicateEventError(
                    request.stream_id, row.event_id, f"is already stored as another event ({where})"
                )
            if row.version not in (0, found.version):
                raise DuplicateEventError(
                    request.stream_id, row.event_id, f"is stored at version {found.version}"
                )
            previous = found
            result.append(found)
    return result


def _same_event(row: StoredEvent, found: StoredEvent) -> bool:
    return (
        row.stream_id == found.stream_id
        and row.event_type == found.event_type
        and row.schema_version == found.schema_version
        and json.loads(row.data) == json.loads(found.data)
        and json.loads(row.metadata) == json.loads(found.metadata)
        and row.aggregate_id == found.aggregate_id
        and row.occurred_at == found.occurred_at
    )


def to_row(stream_id: str, event: Event) -> StoredEvent:
    """Serialise ``event`` for ``stream_id``: payload and metadata as JSON text."""
    if not isinstance(event, Event):
        raise TypeError(f"stores take Event instances, not {type(event).__name__}")
    cls = type(event)
    try:
        metadata = json.dumps(event.metadata, ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"{cls.__name__} {event.event_id}: metadata must hold JSON values only "
            f"(str, int, float, bool, None, lists, dicts with str keys): {exc}. Convert the value, "
            f"for example str(uuid), before recording."
        ) from None
    return StoredEvent(
        stream_id=stream_id,
        version=event.aggregate_version or 0,
        event_type=cls.event_type,
        schema_version=cls.__event_version__,
        data=event.model_dump_json(include=set(cls.__payload_fields__)),
        metadata=metadata,
        event_id=str(event.event_id),
        aggregate_id=event.aggregate_id,
        occurred_at=event.occurred_at,
    )


def from_row(row: StoredEvent) -> Event:
    """Rebuild the event a row holds, as an instance of its registered class."""
    cls = event_class(row.event_type)
    fields: dict[str, Any] = json.loads(row.data)
    if row.schema_version != cls.__event_version__:
        if row.schema_version > cls.__event_version__:
            raise EventSchemaError(
                row.event_type,
                f"it was written at version {row.schema_version} by newer code; this class is at "
                f"version {cls.__event_version__}",
            )
        fields = upcast_payload(cls, row.schema_version, fields)
    fields["event_id"] = row.event_id
    fields["aggregate_id"] = row.aggregate_id
    fields["aggregate_version"] = row.version
    fields["position"] = row.position
    fields["occurred_at"] = row.occurred_at
    fields["metadata"] = json.loads(row.metadata)
    try:
        return cls.model_validate(fields)
    except ValidationError as exc:
        detail = f"its payload does not fit the class: {exc}"
        raise EventSchemaError(row.event_type, detail) from exc


def _requests(appends: Iterable[StreamAppend]) -> tuple[list[AppendRequest], list[Event]]:
    """Validate appends and turn them into backend requests; bad input fails before any write."""
    requests: list[AppendRequest] = []
    events: list[Event] = []
    seen_streams: set[str] = set()
    seen_ids: set[str] = set()
    for append in appends:
        stream_id, expected = append.stream_id, append.expected_version
        if not isinstance(stream_id, str) or not stream_id:
            raise ValueError(f"stream id must be a non-empty str, not {stream_id!r}")
        if stream_id in seen_streams:
            raise ValueError(f"stream {stream_id!r} appears twice in one commit; merge its events")
        seen_streams.add(stream_id)
        if expected is not None and (not isinstance(expected, int) or expected < 0):
            raise ValueError(
                f"expected_version for {stream_id!r} must be None (no check), 0 (stream must not "
                f"exist) or a positive version, not {expected!r}"
            )
        rows = tuple(to_row(stream_id, event) for event in append.events)
        for row in rows:
            if row.event_id in seen_ids:
                raise DuplicateEventError(stream_id, row.event_id, "appears twice in one append")
            seen_ids.add(row.event_id)
        carried = [(i, row.version) for i, row in enumerate(rows) if row.version]
        if carried:
            bases = {version - i - 1 for i, version in carried}
            if len(carried) != len(rows) or len(bases) != 1:
                raise ValueError(
                    f"events for {stream_id!r} must either all carry consecutive aggregate "
                    f"versions or none; got {[row.version or None for row in rows]}"
                )
            base = bases.pop()
            if expected is not None and expected != base:
                raise ValueError(
                    f"expected_version={expected} for {stream_id!r} contradicts the events' own "
                    f"versions, which continue version {base}"
                )
            expected = base
        requests.append(AppendRequest(stream_id, expected, rows))
        events.extend(append.events)
    return requests, events


class EventStore:
    """The store every caller uses: events in, events out, over a row-level :class:`Backend`."""

    def __init__(self, backend: Backend) -> None:
        self._backend = backend
        self._open = False

    async def open(self) -> None:
        """Connect and create the schema if needed."""
        if not self._open:
            await self._backend.open()
            self._open = True

    async def close(self) -> None:
        """Release every connection. Closing twice is harmless."""
        if self._open:
            self._open = False
            await self._backend.close()

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def backend(self) -> Backend:
        """The row-level backend, for what only it offers."""
        self._check_open()
        return self._backend

    def _check_open(self) -> None:
        if not self._open:
            raise StoreClosedError(
                f"{self!r} is not open. Use `async with store:` or `await store.open()` first."
            )

    async def append(
        self, stream_id: str, events: Sequence[Event], *, expected_version: int | None = None
    ) -> list[Event]:
        """Append ``events`` to one stream, all or none.

        :raises ConcurrencyError: the stream is not at ``expected_version``.
        :raises DuplicateEventError: an event id is stored already, as a different event.
        """
        return await self.append_streams([StreamAppend(stream_id, events, expected_version)])

    async def append_streams(self, appends: Iterable[StreamAppend]) -> list[Event]:
        """Append to several streams in one atomic commit, each with its own version check."""
        self._check_open()
        requests, events = _requests(appends)
        if not events:
            return []
        stored = await self._backend.append(requests)
        return [
            event.model_copy(update={"position": row.position, "aggregate_version": row.version})
            for event, row in zip(events, stored, strict=True)
        ]

    async def read_stream(
        self, stream_id: str, *, from_version: int = 1, to_version: int | None = None
    ) -> list[Event]:
        """The events of one stream in version order, from ``from_version`` up to
        ``to_version`` (inclusive; ``None``: the end). ``[]`` when there are none."""
        self._check_open()
        rows = await self._backend.read_stream(stream_id, from_version, to_version)
        return [from_row(row) for row in rows]

    def read_all(
        self,
        *,
        from_position: int = 0,
        event_types: Iterable[type[Event] | str] | None = None,
        page_size: int = _PAGE_SIZE,
    ) -> AsyncIterator[Event]:
        """Every event after ``from_position`` in global order, fetched ``page_size`` at a time."""
        self._check_open()
        if page_size < 1:
            raise ValueError(f"page_size must be at least 1, not {page_size}")
        types = None if event_types is None else event_type_names(event_types)
        if types is not None and Event in (t for t in event_types or () if isinstance(t, type)):
            types = None
        return _LogReader(self._backend, from_position, types, page_size)

    async def stream_version(self, stream_id: str) -> int:
        """The stream's current version: 0 when it has no events."""
        self._check_open()
        return await self._backend.stream_version(stream_id)

    async def last_position(self) -> int:
        """The highest global position readable now: 0 when the store is empty."""
        self._check_open()
        return await self._backend.last_position()

    async def wait_appended(self, after: int, timeout: float) -> bool:
        """Wait until something may have been appended after ``after``; False on timeout."""
        self._check_open()
        return await self._backend.wait_appended(after, timeout)

    async def get_checkpoint(self, name: str) -> int | None:
        """The position stored under ``name``, ``None`` if there is none."""
        self._check_open()
        return await self._backend.get_checkpoint(name)

    async def set_checkpoint(self, name: str, position: int, *, expected: int | None) -> None:
        """Move checkpoint ``name`` from ``expected`` to ``position``, atomically.

        :raises CheckpointConflict: the checkpoint is not at ``expected``.
        """
        self._check_open()
        if position < 0:
            raise ValueError(f"checkpoint position must be >= 0, not {position}")
        await self._backend.set_checkpoint(name, position, expected)

    async def save_snapshot(self, snapshot: Snapshot) -> None:
        """Store ``snapshot``, replacing one of the same stream and version."""
        self._check_open()
        await self._backend.save_snapshot(snapshot)

    async def load_snapshot(
        self, stream_id: str, *, max_version: int | None = None
    ) -> Snapshot | None:
        """The latest snapshot of ``stream_id`` at or below ``max_version``."""
        self._check_open()
        return await self._backend.load_snapshot(stream_id, max_version)


class _LogReader:
    """Async iterator over the global log that holds one page at a time and no connection."""

    def __init__(
        self, backend: Backend, after: int, types: frozenset[str] | None, page_size: int
    ) -> None:
        self._backend = backend
        self._after = after
        self._types = types
        self._page_size = page_size
        self._rows: deque[StoredEvent] = deque()
        self._exhausted = False

    def __aiter__(self) -> _LogReader:
        return self

    async def __anext__(self) -> Event:
        if not self._rows:
            if self._exhausted:
                raise StopAsyncIteration
            rows = await self._backend.read_log(self._after, self._page_size, self._types)
            if len(rows) < self._page_size:
                self._exhausted = True
            if not rows:
                raise StopAsyncIteration
            self._after = rows[-1].position
            self._rows.extend(rows)
        return from_row(self._rows.popleft())


def redact_dsn(dsn: str) -> str:
    """``dsn`` with any password replaced by ``***``, fit for reprs, logs and error messages."""
    parts = urlsplit(dsn)
    if parts.password is None:
        text = dsn
    else:
        netloc = parts.netloc.rpartition("@")
        user = netloc[0].partition(":")[0]
        text = urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[2]}"))
    query = parse_qsl(urlsplit(text).query, keep_blank_values=True)
    if any(key.lower() == "password" for key, _ in query):
        safe = [(k, "***" if k.lower() == "password" else v) for k, v in query]
        text = urlunsplit(urlsplit(text)._replace(query=urlencode(safe, safe="*")))
    return text
