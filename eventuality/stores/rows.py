"""Rows: what backends store, and the rules every backend applies to them.

Events become :class:`StoredEvent` rows (payload and metadata as JSON text) here and come back
through the type registry. :func:`settle_versions` and :func:`match_retry` are the
expected-version and retried-append rules; backends call them inside their own transactions, so
the rules are written once and hold the same on every store.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from pydantic import JsonValue, TypeAdapter, ValidationError
from pydantic_core import PydanticSerializationError, from_json, to_json

from .._event_types import _unfinished, check_finished_chains
from ..errors import ConcurrencyError, DuplicateEventError, EventSchemaError, UnknownEventType
from ..messages import Event, JsonMetadata, _registry, event_class, json_safe, upcast_payload
from ._keys import comparable_payload

__all__ = [
    "AppendRequest",
    "CheckpointMove",
    "Snapshot",
    "StoredEvent",
    "from_row",
    "from_rows",
    "events_of",
    "match_retry",
    "refuse_repeat",
    "settle_versions",
    "to_row",
]


class StoredEvent(NamedTuple):
    """One event as a backend keeps it. ``version`` 0 asks the backend for the stream's next
    version; ``position`` is 0 until the backend assigns one. (A named tuple: rows are made for
    every event appended or read, and a tuple is the cheapest immutable record to make.)"""

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


class CheckpointMove(NamedTuple):
    """A checkpoint moved in the same atomic step as an append (a :class:`~eventuality.Reaction`
    commits its effects this way): compare-and-set of checkpoint ``name`` from ``expected``
    (``None``: no checkpoint yet) to ``position``."""

    name: str
    expected: int | None
    position: int


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


def settle_versions(request: AppendRequest, current_version: int) -> list[StoredEvent]:
    """Check ``request`` against the stream's current version and number its rows.

    :raises ConcurrencyError: the stream is not where the request expects it.
    """
    expected = request.expected_version
    if expected is not None and expected != current_version:
        raise ConcurrencyError(request.stream_id, expected, current_version)
    rows = request.rows
    if rows and rows[0].version == 0:
        return [row._replace(version=current_version + i) for i, row in enumerate(rows, 1)]
    return list(rows)


def refuse_repeat(requests: Sequence[AppendRequest], stored: Mapping[str, StoredEvent]) -> None:
    """:func:`match_retry` for an append that moves a checkpoint: even an exact repeat is
    refused, since the first one moved the checkpoint already.

    :raises DuplicateEventError: some of the append's event ids are stored.
    """
    if match_retry(requests, stored) is not None:
        request = next(r for r in requests if r.rows)
        raise DuplicateEventError(
            request.stream_id,
            request.rows[0].event_id,
            "is already stored, and an append that moves a checkpoint is never a repeat",
        )


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
        and comparable_payload(row.data) == comparable_payload(found.data)
        and from_json(row.metadata) == from_json(found.metadata)
        and row.aggregate_id == found.aggregate_id
        and row.occurred_at == found.occurred_at
    )


_JSON_OBJECT: TypeAdapter[dict[str, JsonValue]] = TypeAdapter(JsonMetadata)


HIGHEST_VERSION = 2**31 - 1
"""No stream grows past this version: it keeps every driver clear of integer overflow."""

_SCALARS = frozenset({str, int, float, bool, type(None)})


def _plain_json(value: object) -> bool:
    """A quick yes for values made only of JSON's own types (exactly); a no means: look closer."""
    kind = type(value)
    if kind in _SCALARS:
        return kind is not float or math.isfinite(value)  # type: ignore[arg-type]
    if kind is dict:
        return all(type(k) is str and _plain_json(v) for k, v in value.items())  # type: ignore[attr-defined]
    if kind is list:
        return all(_plain_json(item) for item in value)  # type: ignore[attr-defined]
    return False


def to_row(
    stream_id: str, event: Event, extra: tuple[dict[str, Any], str] | None = None
) -> StoredEvent:
    """Serialise ``event`` for ``stream_id``: payload and metadata as JSON text.

    ``extra`` is metadata to merge in (already checked), with its JSON: events that have no
    metadata of their own then share that one JSON string.
    """
    if not isinstance(event, Event):
        raise TypeError(f"stores take Event instances, not {type(event).__name__}")
    cls = type(event)
    if event.metadata and not _plain_json(event.metadata):
        try:
            _JSON_OBJECT.validate_python(event.metadata, strict=True)
        except ValidationError as exc:
            raise ValueError(
                f"{cls.__name__} {event.event_id}: metadata must hold JSON values only (str, "
                f"int, float, bool, None, lists, dicts with str keys); nothing was written. "
                f"Convert the value, for example str(uuid), before recording. {exc}"
            ) from None
    event = json_safe(event)
    try:
        data = cls.__pydantic_serializer__.to_json(event, include=cls.__payload_include__)
    except PydanticSerializationError as exc:
        raise ValueError(
            f"{cls.__name__} {event.event_id} cannot be stored: its payload does not serialise "
            f"to JSON ({exc}); nothing was written. Give the field a JSON-able type."
        ) from None
    version = event.aggregate_version
    if version is None:
        version = 0
    elif not 1 <= version <= HIGHEST_VERSION:
        raise ValueError(
            f"{cls.__name__} {event.event_id} for {stream_id!r} carries aggregate_version="
            f"{version!r}; versions start at 1 (or leave it None and the store numbers the "
            "event). Nothing was written."
        )
    return StoredEvent(
        stream_id=stream_id,
        version=version,
        event_type=cls.event_type,
        schema_version=cls.__event_version__,
        data=data.decode(),
        metadata=_metadata_json(event, extra),
        event_id=str(event.event_id),
        aggregate_id=event.aggregate_id,
        occurred_at=event.occurred_at,
    )


def _metadata_json(event: Event, extra: tuple[dict[str, Any], str] | None) -> str:
    if extra is None:
        return to_json(event.metadata).decode() if event.metadata else "{}"
    if not event.metadata:
        return extra[1]
    return to_json({**event.metadata, **extra[0]}).decode()


def from_row(row: StoredEvent) -> Event:
    """Rebuild the event a row holds, as an instance of its registered class.

    :raises UnknownEventType: no class is registered under the row's type.
    :raises EventSchemaError: the row does not fit its class (or is damaged).
    Both name the row's stream and position.
    :raises TypeError: an upcaster chain registered after its class is still incomplete though
        its module has finished importing (a programmer error, reported before any read).
    """
    if _unfinished:
        check_finished_chains()
    cls = _registry.get(row.event_type)
    try:
        if cls is None:
            cls = event_class(row.event_type)
        fields = _json_object(row.data, "payload")
        if row.schema_version != cls.__event_version__:
            if row.schema_version > cls.__event_version__:
                raise EventSchemaError(
                    row.event_type,
                    f"it was written at version {row.schema_version} by newer code; this class "
                    f"is at version {cls.__event_version__}",
                )
            fields = _upcast(cls, row.schema_version, fields)
        fields["event_id"] = row.event_id
        fields["aggregate_id"] = row.aggregate_id
        fields["aggregate_version"] = row.version
        fields["position"] = row.position
        fields["occurred_at"] = row.occurred_at
        fields["metadata"] = _json_object(row.metadata, "metadata")
        event: Event = cls.__pydantic_validator__.validate_python(fields)
    except UnknownEventType as exc:
        raise UnknownEventType(
            exc.event_type, stream_id=row.stream_id, position=row.position or None
        ) from None
    except EventSchemaError as exc:
        raise EventSchemaError(
            exc.event_type, exc.detail, stream_id=row.stream_id, position=row.position or None
        ) from exc.__cause__
    except ValidationError as exc:
        detail = f"its payload does not fit the class: {exc}"
        raise EventSchemaError(
            row.event_type, detail, stream_id=row.stream_id, position=row.position or None
        ) from exc
    except _Damaged as exc:
        detail = f"the stored row is damaged ({exc}); restore it from a backup"
        raise EventSchemaError(
            row.event_type, detail, stream_id=row.stream_id, position=row.position or None
        ) from exc.__cause__
    return event


def from_rows(rows: Sequence[StoredEvent]) -> list[Event]:
    """:func:`from_row` of each row, in one loop: the same events, and the same error at the
    same row (the rows before it are decoded, the error is :func:`from_row`'s own).

    Rows this way skip what a call per row repeats: the checks and lookups made once per page,
    and the JSON parse of empty metadata. A row the loop cannot decode goes through
    :func:`from_row`, which raises its error (its upcasters and validators then run a second
    time: they are meant to be pure).
    """
    events = decoded_prefix(rows)
    for row in rows[len(events) :]:  # from the row decoded_prefix stopped at: raises there
        events.append(from_row(row))
    return events


DECODED_AT_ONCE = 32
"""Rows decoded per call where events are used one by one (a replay, ``read_all``)."""


def events_of(rows: Sequence[StoredEvent]) -> Iterator[Event]:
    """:func:`from_rows` of ``rows``, :data:`DECODED_AT_ONCE` rows at a time.

    For a caller that drops each event as it goes (a replay): it never holds more than a few,
    so they die before the garbage collector's next pass. A list of 10,000 events survives
    every pass made while it is built, and the passes cost more than the decoding saves.
    """
    for start in range(0, len(rows), DECODED_AT_ONCE):
        yield from from_rows(rows[start : start + DECODED_AT_ONCE])


def decoded_prefix(rows: Sequence[StoredEvent]) -> list[Event]:
    """The events of ``rows`` up to the first row that does not decode (unknown type, damaged
    JSON, a payload its class refuses, a failing upcaster): :func:`from_row` says why."""
    if _unfinished:
        check_finished_chains()
    events: list[Event] = []
    append = events.append
    classes = _registry
    try:
        for row in rows:
            _, version, kind, schema, data, metadata, event_id, aggregate_id, at, position = row
            cls = classes.get(kind)
            if cls is None:
                break
            fields = from_json(data)
            if type(fields) is not dict:
                break
            if schema != cls.__event_version__:
                if schema > cls.__event_version__:
                    break
                fields = upcast_payload(cls, schema, fields)
            fields["event_id"] = event_id
            fields["aggregate_id"] = aggregate_id
            fields["aggregate_version"] = version
            fields["position"] = position
            fields["occurred_at"] = at
            fields["metadata"] = {} if metadata == "{}" else from_json(metadata)
            append(cls.__pydantic_validator__.validate_python(fields))
    except Exception:
        pass  # from_row raises it again, naming the row's stream and position
    return events


class _Damaged(Exception):
    """A stored row's JSON is not what eventuality wrote."""


def _json_object(text: str, what: str) -> dict[str, Any]:
    try:
        found = from_json(text)
    except ValueError as exc:
        raise _Damaged(f"its {what} is not JSON: {exc}") from exc
    if type(found) is not dict:
        raise _Damaged(f"its {what} is {type(found).__name__}, not a JSON object")
    return found


def _upcast(cls: type[Event], version: int, fields: dict[str, Any]) -> dict[str, Any]:
    """Run the class's upcasters; a failure in one is a bug in it, reported as such."""
    try:
        return upcast_payload(cls, version, fields)
    except EventSchemaError:
        raise
    except Exception as exc:
        raise EventSchemaError(
            cls.event_type,
            f"an upcaster of {cls.event_type!r} (from version {version} up to "
            f"{cls.__event_version__}) raised {type(exc).__name__}: {exc}. Fix the upcaster",
        ) from exc
