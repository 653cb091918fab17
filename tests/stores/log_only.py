"""A backend of plain lists with the event log tier only: proof that the tiers stand alone.

No checkpoints, snapshots, transactions, locks or ``wait_appended``: the front fills in what it
can and refuses the rest. Each method passes one cancellation point, then runs without awaiting,
which makes it atomic on the event loop.
"""

from collections.abc import Sequence

from anyio.lowlevel import checkpoint

from eventuality import ConcurrencyError, EventStore
from eventuality.stores.base import AppendRequest, StoredEvent, match_retry, settle_versions
from eventuality.stores.boundary import Backend


class LogOnlyBackend:
    """Every row in one list, in position order; a stream is the rows with its id."""

    gap_free_positions = True

    def __init__(self) -> None:
        self.rows: list[StoredEvent] = []

    async def open(self) -> None:
        await checkpoint()

    async def close(self) -> None:
        await checkpoint()

    async def append(self, requests: Sequence[AppendRequest]) -> list[StoredEvent]:
        await checkpoint()
        ids = {row.event_id for request in requests for row in request.rows}
        known = {row.event_id: row for row in self.rows if row.event_id in ids}
        try:
            settled = [settle_versions(r, self._version(r.stream_id)) for r in requests]
        except ConcurrencyError:
            replay = match_retry(requests, known)  # a repeat of a stored append returns it
            if replay is None:
                raise
            return replay
        if known:  # the stored rows of an exact repeat, else DuplicateEventError
            return match_retry(requests, known) or []
        stored = []
        for row in (row for rows in settled for row in rows):
            stored.append(row._replace(position=len(self.rows) + 1))
            self.rows.append(stored[-1])
        return stored

    async def read_stream(
        self, stream_id: str, from_version: int, to_version: int | None
    ) -> list[StoredEvent]:
        await checkpoint()
        last = self._version(stream_id) if to_version is None else to_version
        rows = (r for r in self.rows if r.stream_id == stream_id)
        return [r for r in rows if from_version <= r.version <= last]

    async def read_log(
        self, after: int, limit: int, types: frozenset[str] | None
    ) -> list[StoredEvent]:
        await checkpoint()
        found = [r for r in self.rows[max(after, 0) :] if types is None or r.event_type in types]
        return found[:limit]

    async def stream_version(self, stream_id: str) -> int:
        await checkpoint()
        return self._version(stream_id)

    async def last_position(self) -> int:
        await checkpoint()
        return len(self.rows)

    def _version(self, stream_id: str) -> int:
        return sum(1 for row in self.rows if row.stream_id == stream_id)


class LogOnlyStore(EventStore):
    """An :class:`EventStore` over :class:`LogOnlyBackend`."""

    def __init__(self) -> None:
        super().__init__(LogOnlyBackend())

    def __repr__(self) -> str:
        return "LogOnlyStore()"


_conforms: Backend = LogOnlyBackend()
