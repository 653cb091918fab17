"""Events as records: stored rows read without their classes, for tools and migrations.

:class:`EventRecord` is an event exactly as a store keeps it: type name and schema version as
written, payload and metadata as parsed JSON, no upcasting and no class lookup, so any store can
be read (and copied) without the code that wrote it. Personal-data fields stay sealed: a record
holds their stored ciphertext (``"eventuality-pd:v1:..."`` strings), never the plaintext, so
dumping records never leaks what ``store.forget`` is meant to erase; read events through their
classes to see the values.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic_core import from_json, to_json

from ..errors import EventSchemaError
from .rows import StoredEvent

__all__ = ["EventRecord", "record_of", "row_of"]


@dataclass(frozen=True, slots=True)
class EventRecord:
    """One stored event, as stored: what ``store.read_records`` and ``read_all_records`` return.

    ``payload`` and ``metadata`` are JSON objects (dicts of JSON values); ``payload`` is the
    event's own fields with personal data still sealed. ``position`` is the store's global
    position (another store gives the same event another position); ``version`` its place in
    its stream.
    """

    event_id: str
    stream_id: str
    version: int
    position: int
    event_type: str
    schema_version: int
    payload: dict[str, Any]
    metadata: dict[str, Any]
    aggregate_id: str | None
    occurred_at: datetime

    def to_json(self) -> dict[str, Any]:
        """The record as a JSON-able dict (``occurred_at`` as ISO 8601 text)."""
        return {
            "event_id": self.event_id,
            "stream_id": self.stream_id,
            "version": self.version,
            "position": self.position,
            "event_type": self.event_type,
            "schema_version": self.schema_version,
            "payload": self.payload,
            "metadata": self.metadata,
            "aggregate_id": self.aggregate_id,
            "occurred_at": self.occurred_at.isoformat(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EventRecord:
        """Read back what :meth:`to_json` wrote.

        :raises ValueError: a field is missing or of the wrong type (the message names it).
        """
        try:
            occurred_at = datetime.fromisoformat(data["occurred_at"])
            record = cls(
                event_id=str(uuid.UUID(data["event_id"])),
                stream_id=_typed(data, "stream_id", str),
                version=_typed(data, "version", int),
                position=_typed(data, "position", int),
                event_type=_typed(data, "event_type", str),
                schema_version=_typed(data, "schema_version", int),
                payload=_typed(data, "payload", dict),
                metadata=_typed(data, "metadata", dict),
                aggregate_id=data.get("aggregate_id"),
                occurred_at=occurred_at,
            )
        except KeyError as exc:
            raise ValueError(f"an event record lacks the field {exc.args[0]!r}") from None
        except (TypeError, AttributeError) as exc:
            raise ValueError(f"an event record has a field of the wrong type: {exc}") from None
        if occurred_at.tzinfo is None:
            raise ValueError(f"event record {record.event_id}: occurred_at has no time zone")
        if record.aggregate_id is not None and not isinstance(record.aggregate_id, str):
            raise ValueError(f"event record {record.event_id}: aggregate_id is not a string")
        if record.version < 1:
            raise ValueError(f"event record {record.event_id}: version {record.version} < 1")
        return record


def _typed(data: dict[str, Any], name: str, kind: type) -> Any:
    value = data[name]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise TypeError(f"{name} is {type(value).__name__}, not {kind.__name__}")
    return value


def record_of(row: StoredEvent) -> EventRecord:
    """The record of a stored row.

    :raises EventSchemaError: the row's payload or metadata is not a JSON object (a damaged row).
    """
    return EventRecord(
        event_id=row.event_id,
        stream_id=row.stream_id,
        version=row.version,
        position=row.position,
        event_type=row.event_type,
        schema_version=row.schema_version,
        payload=_object(row, row.data, "payload"),
        metadata=_object(row, row.metadata, "metadata"),
        aggregate_id=row.aggregate_id,
        occurred_at=row.occurred_at,
    )


def row_of(record: EventRecord) -> StoredEvent:
    """The row that stores ``record`` (its position left for the store to assign)."""
    return StoredEvent(
        stream_id=record.stream_id,
        version=record.version,
        event_type=record.event_type,
        schema_version=record.schema_version,
        data=to_json(record.payload).decode(),
        metadata=to_json(record.metadata).decode(),
        event_id=record.event_id,
        aggregate_id=record.aggregate_id,
        occurred_at=record.occurred_at,
    )


def _object(row: StoredEvent, text: str, what: str) -> dict[str, Any]:
    try:
        found = from_json(text)
    except ValueError as exc:
        found = exc
    if type(found) is not dict:
        raise EventSchemaError(
            row.event_type,
            f"the stored row's {what} is not a JSON object ({found}); restore it from a backup",
            stream_id=row.stream_id,
            position=row.position or None,
        )
    return found
