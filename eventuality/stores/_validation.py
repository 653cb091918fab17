"""What the store front checks before a backend sees a call: appends (stream ids, expected and
carried versions, duplicate ids, metadata), names, and SQL that ``query()`` must refuse. Bad
input fails here, before anything is written, the same on every store."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import JsonValue, ValidationError
from pydantic_core import to_json

from ..errors import DuplicateEventError, StoreUsageError
from ..messages import Event
from .rows import _JSON_OBJECT, HIGHEST_VERSION, AppendRequest, CheckpointMove, _plain_json, to_row

__all__ = [
    "HIGHEST_POSITION",
    "HIGHEST_VERSION",
    "MAX_STREAM_ID_BYTES",
    "StreamAppend",
    "checked_metadata",
    "checked_name",
    "refuse_transaction_control",
    "checked_move",
    "to_requests",
]

HIGHEST_POSITION = 2**62
"""No log grows past this position: clamping to it keeps every driver clear of overflow."""


MAX_STREAM_ID_BYTES = 1024
"""The longest stream id, in bytes of UTF-8, that every store takes (PostgreSQL's index caps it)."""


@dataclass(frozen=True, slots=True)
class StreamAppend:
    """Public form of one stream's part in :meth:`EventStore.append_streams`."""

    stream_id: str
    events: Sequence[Event]
    expected_version: int | None = None


def to_requests(
    appends: Iterable[StreamAppend], extra: tuple[dict[str, Any], str] | None = None
) -> tuple[list[AppendRequest], list[Event]]:
    """Validate appends and turn them into backend requests; bad input fails before any write."""
    requests: list[AppendRequest] = []
    events: list[Event] = []
    seen_streams: set[str] = set()
    seen_ids: set[str] = set()
    for append in appends:
        stream_id, expected = append.stream_id, append.expected_version
        if not isinstance(stream_id, str) or not stream_id:
            raise ValueError(f"stream id must be a non-empty str, not {stream_id!r}")
        size = len(stream_id)
        if not stream_id.isascii():
            try:
                size = len(stream_id.encode())
            except UnicodeEncodeError:
                raise ValueError(
                    f"stream id {stream_id!r} is not valid Unicode text (it holds a lone "
                    "surrogate) and cannot be stored; nothing was written"
                ) from None
        if size > MAX_STREAM_ID_BYTES:
            raise ValueError(
                f"stream id {stream_id[:40]!r}... is {size} bytes of UTF-8; stream ids may be at "
                f"most {MAX_STREAM_ID_BYTES} bytes on every store. Nothing was written. Use a "
                "shorter id (a hash of a long natural key, for example)."
            )
        if stream_id in seen_streams:
            raise ValueError(f"stream {stream_id!r} appears twice in one commit; merge its events")
        seen_streams.add(stream_id)
        if expected is not None and (
            not isinstance(expected, int) or isinstance(expected, bool) or expected < 0
        ):
            raise ValueError(
                f"expected_version for {stream_id!r} must be None (no check), 0 (stream must not "
                f"exist) or a positive version, not {expected!r}"
            )
        rows = tuple(to_row(stream_id, event, extra) for event in append.events)
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
                    f"versions or none; got {[e.aggregate_version for e in append.events]}. "
                    "Nothing was written."
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


def checked_metadata(
    metadata: Mapping[str, JsonValue] | None,
) -> tuple[dict[str, Any], str] | None:
    """Check metadata once for a whole append, and serialise it once."""
    if not metadata:
        return None
    if type(metadata) is dict and _plain_json(metadata):
        checked = dict(metadata)
        return checked, to_json(checked).decode()
    try:
        checked = _JSON_OBJECT.validate_python(dict(metadata), strict=True)
    except ValidationError as exc:
        raise ValueError(
            "metadata must hold JSON values only (str, int, float, bool, None, lists, dicts "
            f"with str keys); nothing was written. Convert the value, for example str(uuid). "
            f"{exc}"
        ) from None
    return checked, to_json(checked).decode()


_COMMANDS_THAT_CONTROL_TRANSACTIONS = re.compile(
    r"^(?:\s|--[^\n]*(?:\n|$)|/\*.*?\*/)*"
    r"(BEGIN|START|COMMIT|END|ROLLBACK|ABORT|SAVEPOINT|RELEASE|PREPARE|ATTACH|DETACH)\b",
    re.IGNORECASE | re.DOTALL,
)


def refuse_transaction_control(sql: str) -> None:
    """``query()`` reads; a statement that begins or ends a transaction is refused on every
    store alike (each store also refuses writes with its own means)."""
    found = _COMMANDS_THAT_CONTROL_TRANSACTIONS.match(sql) if isinstance(sql, str) else None
    if found:
        raise StoreUsageError(
            f"store.query() is read-only and refused {sql.strip()[:80]!r}: {found.group(1)} "
            "controls transactions. Nothing was done. Write read models through a Projection "
            "(its handler's transaction) or store.transaction()."
        )


def checked_name(name: str) -> str:
    if not isinstance(name, str) or not name or "\x00" in name:
        raise ValueError(
            f"a checkpoint or subscription name must be a non-empty str without NUL, not {name!r}"
        )
    return name


def checked_move(move: CheckpointMove, with_command: bool) -> CheckpointMove:
    """``move`` if an append can carry it (its name checked), else a clear error."""
    if with_command:
        raise ValueError(
            "append_streams() takes a command record or a checkpoint move, not both: the "
            "checkpoint move is the guard against a repeat already. Nothing was stored."
        )
    position = move.position
    if not isinstance(position, int) or isinstance(position, bool) or position < 0:
        raise ValueError(f"checkpoint position must be an int >= 0, not {position!r}")
    if position > HIGHEST_POSITION:
        raise ValueError(
            f"checkpoint position {position} is beyond any position a store assigns (at most "
            f"{HIGHEST_POSITION}); nothing was written"
        )
    return move._replace(name=checked_name(move.name))
