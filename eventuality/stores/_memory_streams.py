"""The memory store's stream lifecycle: delete, truncate, archive and restore.

A mixin of :class:`~eventuality.stores.memory.MemoryBackend`. Each operation passes one
cancellation point, checks everything, then changes the lists without awaiting: atomic on the
event loop, and a refused one changes nothing. Rows that leave the log leave a ``None`` behind
(counted in ``_holes``), so positions stay list indexes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from anyio.lowlevel import checkpoint

from ..errors import DuplicateEventError
from .lifecycle import Marker, StreamState, check_archived, check_live, check_truncation
from .rows import Snapshot, StoredEvent

if TYPE_CHECKING:
    import anyio

__all__ = ["MemoryLifecycle"]


class MemoryLifecycle:
    """The ``stream_lifecycle`` tier of the memory backend."""

    if TYPE_CHECKING:
        _log: list[StoredEvent | None]
        _holes: int
        _streams: dict[str, list[StoredEvent]]
        _states: dict[str, StreamState]
        _archive: dict[str, list[StoredEvent]]
        _by_id: dict[str, StoredEvent]
        _snapshots: dict[str, dict[int, Snapshot]]
        _appended: anyio.Event | None

    async def stream_state(self, stream_id: str) -> StreamState | None:
        await checkpoint()
        return self._states.get(stream_id)

    async def delete_stream(
        self, stream_id: str, expected_version: int | None, marker: Marker
    ) -> StoredEvent:
        await checkpoint()
        rows = self._streams.get(stream_id) or self._archive.get(stream_id) or []
        version = check_live(
            stream_id,
            self._states.get(stream_id),
            rows[-1].version if rows else 0,
            "delete the stream",
            expected_version,
            allow_archived=True,
        )
        row = self._marker_row(marker, version, rows[-1].aggregate_id if rows else None)
        self._remove(self._streams.pop(stream_id, []))
        self._archive.pop(stream_id, None)
        self._snapshots.pop(stream_id, None)
        self._states[stream_id] = StreamState("deleted", version)
        return self._append_marker(row)

    async def truncate_stream(self, stream_id: str, before: int, require_snapshot: bool) -> int:
        await checkpoint()
        rows = self._streams.get(stream_id) or []
        by_version = self._snapshots.get(stream_id, {})
        latest = max(by_version, default=None)
        version = rows[-1].version if rows else 0
        state = self._states.get(stream_id)
        check_truncation(stream_id, state, version, before, latest, require_snapshot)
        gone = [row for row in rows if row.version < before]
        self._remove(gone)
        self._streams[stream_id] = rows[len(gone) :]
        for old in [v for v in by_version if v < before - 1]:
            del by_version[old]
        return len(gone)

    async def archive_stream(
        self, stream_id: str, expected_version: int | None, marker: Marker
    ) -> StoredEvent:
        await checkpoint()
        rows = self._streams.get(stream_id) or []
        version = rows[-1].version if rows else 0
        state = self._states.get(stream_id)
        check_live(stream_id, state, version, "archive the stream", expected_version)
        row = self._marker_row(marker, version, rows[-1].aggregate_id)
        self._remove(self._streams.pop(stream_id))
        self._archive[stream_id] = rows
        self._states[stream_id] = StreamState("archived", version)
        return self._append_marker(row)

    async def restore_stream(self, stream_id: str, marker: Marker) -> StoredEvent:
        await checkpoint()
        rows = self._archive.get(stream_id, [])
        live = self._streams.get(stream_id)
        state = check_archived(
            stream_id, self._states.get(stream_id), live[-1].version if live else 0
        )
        clash = next((row for row in rows if row.event_id in self._by_id), None)
        if clash is not None:
            raise DuplicateEventError(
                stream_id,
                clash.event_id,
                "was appended to another stream while this one was archived",
            )
        row = self._marker_row(marker, state.version, rows[-1].aggregate_id if rows else None)
        for restored in rows:
            self._log[restored.position - 1] = restored
            self._by_id[restored.event_id] = restored
        self._holes -= len(rows)
        self._streams[stream_id] = self._archive.pop(stream_id, [])
        del self._states[stream_id]
        return self._append_marker(row)

    async def read_archived(self, stream_id: str) -> list[StoredEvent]:
        await checkpoint()
        return list(self._archive.get(stream_id, ()))

    def _remove(self, rows: list[StoredEvent]) -> None:
        """Take ``rows`` out of the log (leaving holes) and the event id index."""
        for row in rows:
            self._log[row.position - 1] = None
            del self._by_id[row.event_id]
        self._holes += len(rows)

    def _marker_row(self, marker: Marker, version: int, aggregate_id: str | None) -> StoredEvent:
        """The lifecycle event's row, numbered in its stream (built before anything changes,
        so a failure there changes nothing)."""
        row = marker(version, aggregate_id)
        stream = self._streams.get(row.stream_id)
        next_version = (stream[-1].version if stream else 0) + 1
        return row._replace(version=next_version, position=len(self._log) + 1)

    def _append_marker(self, row: StoredEvent) -> StoredEvent:
        self._log.append(row)
        self._streams.setdefault(row.stream_id, []).append(row)
        self._by_id[row.event_id] = row
        if self._appended is not None:
            self._appended.set()
            self._appended = None
        return row
