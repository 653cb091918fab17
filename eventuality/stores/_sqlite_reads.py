"""The SQLite store's reads of events, run on a connection (inline or on a reader's thread):
one stream's rows, a page of the log, each row made a :class:`StoredEvent` as it is read."""

from __future__ import annotations

import sqlite3
from datetime import datetime

from .rows import StoredEvent

COLUMNS = (
    "stream_id, version, event_type, schema_version, data, metadata, event_id, aggregate_id, "
    "occurred_at, position"
)
_SELECT = f"SELECT {COLUMNS} FROM eventuality_events"
_SELECT_STREAM = f"SELECT {COLUMNS.removeprefix('stream_id, ')} FROM eventuality_events"


class DamagedRow(Exception):
    """A stored event whose ``occurred_at`` is not an ISO 8601 time; the store names it."""

    def __init__(self, stream_id: str, version: int, position: int, value: object) -> None:
        super().__init__(stream_id, version, position, value)
        self.stream_id = stream_id
        self.version = version
        self.position = position
        self.value = value


def read_stream(
    db: sqlite3.Connection,
    stream_id: str,
    from_version: int,
    to_version: int | None,
    limit: int = -1,
) -> list[StoredEvent]:
    """Up to ``limit`` rows (-1: all) of one stream, from ``from_version`` to ``to_version``."""
    found = db.execute(
        f"{_SELECT_STREAM} WHERE stream_id = ? AND version >= ? AND version <= ? "
        "ORDER BY version LIMIT ?",
        (stream_id, from_version, 2**62 if to_version is None else to_version, limit),
    )
    return _stream_rows(found, stream_id)


def read_log(
    db: sqlite3.Connection, after: int, limit: int, types: frozenset[str] | None
) -> list[StoredEvent]:
    """Up to ``limit`` rows after position ``after`` (of ``types`` only, unless None)."""
    if types is None:
        found = db.execute(
            f"{_SELECT} WHERE position > ? ORDER BY position LIMIT ?", [after, limit]
        )
    elif not types:
        return []
    else:
        names = sorted(types)
        marks = ", ".join("?" * len(names))
        found = db.execute(
            f"{_SELECT} WHERE position > ? AND event_type IN ({marks}) ORDER BY position LIMIT ?",
            (after, *names, limit),
        )
    return _log_rows(found)


# Both loops below read straight from the cursor (each row's tuple is dropped as soon as it is
# read, instead of a whole list of them living beside the rows made from them) and call nothing
# per row but the time's parse: 0.3 µs less per row than a function making each row.


def _log_rows(cursor: sqlite3.Cursor) -> list[StoredEvent]:
    parse, make = datetime.fromisoformat, tuple.__new__
    stored: list[StoredEvent] = []
    append = stored.append
    for sid, version, kind, schema, data, meta, eid, agg, at, position in cursor:
        try:
            occurred_at = parse(at)
        except (TypeError, ValueError):
            raise DamagedRow(sid, version, position, at) from None
        append(
            make(
                StoredEvent,
                (sid, version, kind, schema, data, meta, eid, agg, occurred_at, position),
            )
        )
    return stored


def _stream_rows(cursor: sqlite3.Cursor, sid: str) -> list[StoredEvent]:
    """``_log_rows`` of rows selected without their stream id (``_SELECT_STREAM``)."""
    parse, make = datetime.fromisoformat, tuple.__new__
    stored: list[StoredEvent] = []
    append = stored.append
    for version, kind, schema, data, meta, eid, agg, at, position in cursor:
        try:
            occurred_at = parse(at)
        except (TypeError, ValueError):
            raise DamagedRow(sid, version, position, at) from None
        append(
            make(
                StoredEvent,
                (sid, version, kind, schema, data, meta, eid, agg, occurred_at, position),
            )
        )
    return stored
