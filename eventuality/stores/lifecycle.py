"""Stream lifecycle: the events the log keeps about deletes, archives and restores, the state a
store keeps per stream, and the rules every backend applies inside its own transaction.

A deleted or archived stream has no rows left in the live log, so its version reads 0; what it
was is kept per stream (:class:`StreamState`). Backends check that state when an append finds a
stream at version 0 (a new stream, or one that is gone), so appends to live streams pay nothing.

Each operation that removes a stream's rows records a built-in event in the global log, in the
same transaction, in the stream :data:`LIFECYCLE_STREAM`: subscriptions and projections see it
in order with everything else, and the last position never moves backwards.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from ..errors import (
    ConcurrencyError,
    StreamArchived,
    StreamDeleted,
    StreamLifecycleError,
    StreamNotFound,
)
from ..messages import Event
from .rows import StoredEvent

__all__ = [
    "LIFECYCLE_STREAM",
    "Marker",
    "StreamArchival",
    "StreamRestoration",
    "StreamState",
    "Tombstone",
    "check_archived",
    "check_live",
    "check_truncation",
    "refuse_gone",
]

LIFECYCLE_STREAM = "$eventuality-lifecycle"
"""The stream the lifecycle events are appended to (each names the stream it is about)."""


class Tombstone(Event):
    """``stream_id`` was deleted at ``last_version``: its events and snapshots are gone, and
    its id is never reused. ``aggregate_id`` is that of the stream's last event."""

    __event_type__ = "eventuality.Tombstone"

    stream_id: str
    last_version: int


class StreamArchival(Event):
    """``stream_id``'s events (``last_version`` of them at most) moved to the archive: they
    are out of ``read_all`` until restored. ``aggregate_id`` is that of its last event."""

    __event_type__ = "eventuality.StreamArchival"

    stream_id: str
    last_version: int


class StreamRestoration(Event):
    """``stream_id``'s archived events are back in the live log, at their original versions
    and positions (readers already past those positions do not see them again)."""

    __event_type__ = "eventuality.StreamRestoration"

    stream_id: str
    last_version: int


Marker = Callable[[int, str | None], StoredEvent]
"""Builds the lifecycle event's row from the stream's last version and aggregate id, which a
backend learns only inside its transaction."""


@dataclass(frozen=True, slots=True)
class StreamState:
    """What a store keeps about a stream whose rows left the live log."""

    state: Literal["deleted", "archived"]
    version: int


def refuse_gone(stream_id: str, state: StreamState | None, operation: str) -> None:
    """Raise for a deleted or archived stream; nothing for any other.

    :raises StreamDeleted: the stream was deleted.
    :raises StreamArchived: the stream is archived.
    """
    if state is None:
        return
    if state.state == "deleted":
        raise StreamDeleted(stream_id, state.version, operation)
    raise StreamArchived(stream_id, state.version, operation)


def check_live(
    stream_id: str,
    state: StreamState | None,
    version: int,
    operation: str,
    expected_version: int | None = None,
    *,
    allow_archived: bool = False,
) -> int:
    """The rule for delete, truncate and archive: the stream exists, is neither deleted nor
    archived (``allow_archived``: or is archived, as a delete may find it), and is at
    ``expected_version`` when one is given. Returns its version (an archived one's).

    :raises StreamLifecycleError: the stream is where the store records lifecycle events.
    :raises StreamDeleted, StreamArchived, StreamNotFound, ConcurrencyError: as named.
    """
    if stream_id == LIFECYCLE_STREAM:
        raise StreamLifecycleError(
            f"cannot {operation}: {LIFECYCLE_STREAM!r} is where the store records deletes, "
            "archives and restores, and it stays whole. Nothing was changed.",
            stream_id=stream_id,
            operation=operation,
        )
    if allow_archived and state is not None and state.state == "archived":
        version = state.version
    else:
        refuse_gone(stream_id, state, operation)
    if expected_version is not None and expected_version != version:
        raise ConcurrencyError(stream_id, expected_version, version)
    if version == 0:
        raise StreamNotFound(stream_id, operation)
    return version


def check_archived(stream_id: str, state: StreamState | None, version: int) -> StreamState:
    """The rule for restore: the stream is archived.

    :raises StreamDeleted: it was deleted. :raises StreamNotFound: it has no events.
    :raises StreamLifecycleError: it is live (not archived).
    """
    operation = "restore the stream"
    if state is not None and state.state == "deleted":
        raise StreamDeleted(stream_id, state.version, operation)
    if state is None:
        if version == 0:
            raise StreamNotFound(stream_id, operation)
        raise StreamLifecycleError(
            f"cannot restore stream {stream_id!r}: it is not archived (it is live, at version "
            f"{version}). Nothing was changed; only a stream archived with "
            "store.archive_stream() can be restored.",
            stream_id=stream_id,
            operation=operation,
        )
    return state


def check_truncation(
    stream_id: str,
    state: StreamState | None,
    version: int,
    before: int,
    snapshot_version: int | None,
    require_snapshot: bool,
) -> None:
    """The rule for truncate: ``1 <= before <= version`` (the last event always stays, so the
    stream keeps its version), and unless ``require_snapshot`` is false, a snapshot at version
    ``before - 1`` or later (``snapshot_version``: the latest) to load the stream from.

    :raises StreamLifecycleError: ``before`` out of range, or no snapshot to load from.
    """
    operation = f"truncate the stream before version {before}"
    check_live(stream_id, state, version, operation)
    if before > version:
        raise StreamLifecycleError(
            f"cannot truncate stream {stream_id!r} before version {before}: it is at version "
            f"{version}, and its last event always stays (so the stream keeps its version). "
            f"Nothing was changed. Pass before <= {version}; to remove every event, use "
            "store.delete_stream().",
            stream_id=stream_id,
            operation=operation,
        )
    if require_snapshot and before > 1 and (snapshot_version or 0) < before - 1:
        found = "no snapshot" if snapshot_version is None else f"its latest is {snapshot_version}"
        raise StreamLifecycleError(
            f"cannot truncate stream {stream_id!r} before version {before}: a load would need a "
            f"snapshot at version {before - 1} or later, and it has {found}. Nothing was "
            "changed. Save one first (Repository(..., snapshot_every=...) does), truncate "
            "before an earlier version, or pass require_snapshot=False if nothing loads it.",
            stream_id=stream_id,
            operation=operation,
        )
