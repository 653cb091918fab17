"""Verifying a copy: what two stores hold, reduced to digests that can be compared.

Per stream: the number of events and a SHA-256 of their ids, versions, types, schema versions,
payloads, metadata, aggregate ids and times (JSON with sorted keys, times in UTC). For the log:
a digest of event ids in position order. Checkpoints and recorded commands are compared by the
events they point at (how many events lie at or below the position), since the two stores
number positions their own way; snapshots, stream states, keys and key links as they are.
"""

from __future__ import annotations

import bisect
import hashlib
import json
from array import array
from dataclasses import dataclass, field
from datetime import UTC
from typing import TYPE_CHECKING, Any

from ._transfer_log import merged_log
from .records import EventRecord

if TYPE_CHECKING:
    from ._transfer_tables import Dialect
    from .base import EventStore

__all__ = ["StoreDigest", "compare", "digest_store"]


def canonical(record: EventRecord) -> bytes:
    """A record's content (without its position) as canonical JSON bytes."""
    return json.dumps(
        [
            record.event_id,
            record.version,
            record.event_type,
            record.schema_version,
            record.payload,
            record.metadata,
            record.aggregate_id,
            record.occurred_at.astimezone(UTC).isoformat(),
        ],
        sort_keys=True,
        separators=(",", ":"),
    ).encode()


@dataclass
class StoreDigest:
    """What :func:`compare` compares."""

    events: int = 0
    order: str = ""
    streams: dict[str, tuple[int, str]] = field(default_factory=dict)
    sections: dict[str, dict[Any, Any]] = field(default_factory=dict)


async def digest_store(store: EventStore, dialect: Dialect) -> StoreDigest:
    """Read all of ``store`` (every event once) and digest it."""
    order = hashlib.sha256()
    hashers: dict[str, Any] = {}
    counts: dict[str, int] = {}
    positions: array[int] = array("q")
    async for record in merged_log(store, dialect):
        order.update(record.event_id.encode())
        hasher = hashers.get(record.stream_id)
        if hasher is None:
            hasher = hashers[record.stream_id] = hashlib.sha256()
        hasher.update(canonical(record))
        counts[record.stream_id] = counts.get(record.stream_id, 0) + 1
        positions.append(record.position)
    extras = await dialect.extras()

    def ordinal(position: int) -> int:
        return bisect.bisect_right(positions, position)

    def first(position: int) -> int:
        return bisect.bisect_left(positions, position)

    sections: dict[str, dict[Any, Any]] = {
        "checkpoints": {name: ordinal(p) for name, p in extras.checkpoints},
        "snapshots": {
            (s.stream_id, s.version): (s.aggregate_type, s.schema_version, _sha(s.state))
            for s in extras.snapshots
        },
        "stream states": {s: (state, v) for s, state, v in extras.states},
        "commands": {
            c.key: (
                c.command_type,
                c.command_id,
                c.digest,
                c.recorded_at.astimezone(UTC).isoformat(),
                _span(first(c.first_position), ordinal(c.last_position), c.last_position),
            )
            for c in extras.commands
        },
        "personal-data keys": {k.key_id: (k.subject, _sha(k.key)) for k in extras.keys},
        "personal-data links": {(s, t): f for s, t, f in extras.links},
    }
    return StoreDigest(
        events=len(positions),
        order=order.hexdigest(),
        streams={s: (counts[s], h.hexdigest()) for s, h in hashers.items()},
        sections=sections,
    )


def _span(low: int, high: int, last: int) -> tuple[int, int] | None:
    """The events a command record points at, by ordinal; ``None`` when none are left."""
    return (low, high) if last and high > low else None


def _sha(value: str | bytes) -> str:
    data = value.encode("utf-8", "surrogatepass") if isinstance(value, str) else value
    return hashlib.sha256(data).hexdigest()


def compare(source: StoreDigest, target: StoreDigest) -> list[str]:
    """Every difference, one line each (at most five per section); ``[]`` when equal."""
    problems: list[str] = []
    if source.events != target.events:
        problems.append(f"events: the source has {source.events}, the target {target.events}")
    elif source.order != target.order:
        problems.append("log order: the events are in another order in the target")
    problems += _section("streams", source.streams, target.streams, _stream_line)
    for name, found in source.sections.items():
        problems += _section(name, found, target.sections.get(name, {}), _plain_line)
    return problems


def _stream_line(key: Any, mine: Any, theirs: Any) -> str:
    if mine is None:
        return f"stream {key!r}: only in the target ({theirs[0]} events)"
    if theirs is None:
        return f"stream {key!r}: missing from the target ({mine[0]} events)"
    if mine[0] != theirs[0]:
        return f"stream {key!r}: {mine[0]} events in the source, {theirs[0]} in the target"
    return f"stream {key!r}: same count ({mine[0]}), different content (digest differs)"


def _plain_line(key: Any, mine: Any, theirs: Any) -> str:
    if mine is None:
        return f"{key!r}: only in the target"
    if theirs is None:
        return f"{key!r}: missing from the target"
    return f"{key!r}: {mine!r} in the source, {theirs!r} in the target"


def _section(name: str, mine: dict[Any, Any], theirs: dict[Any, Any], line: Any) -> list[str]:
    keys = sorted(mine.keys() | theirs.keys(), key=repr)
    differing = [k for k in keys if mine.get(k) != theirs.get(k)]
    lines = [f"{name}: {line(k, mine.get(k), theirs.get(k))}" for k in differing[:5]]
    if len(differing) > 5:
        lines.append(f"{name}: ... and {len(differing) - 5} more")
    return lines
