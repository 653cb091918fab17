"""The event log of a whole-store copy: every row (live and archived) in position order, and
appending them to another store as they are, with a map from old positions to new ones.

The target assigns positions, so the log's order is kept by appending in the source's order, in
atomic batches. An interrupted copy leaves the target holding a prefix of the source's log
(whole batches), so a rerun walks both logs side by side, checks the target's events are the
source's first ones (same ids, streams and versions), and appends the rest: nothing twice.
"""

from __future__ import annotations

import bisect
from array import array
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

from ..errors import StoreUsageError
from .records import EventRecord, row_of
from .rows import AppendRequest, StoredEvent

if TYPE_CHECKING:
    from ._transfer_tables import Dialect
    from .base import EventStore

__all__ = ["PositionMap", "append_log", "merged_log"]

BATCH = 500
"""Rows per atomic append: a killed copy loses at most one batch, which a rerun appends."""


class PositionMap:
    """Source positions and the target positions of the same events, both increasing."""

    def __init__(self) -> None:
        self.source: array[int] = array("q")
        self.target: array[int] = array("q")

    def add(self, source: int, target: int) -> None:
        self.source.append(source)
        self.target.append(target)

    def at_or_below(self, position: int) -> int:
        """The target position of the last event at or below source ``position`` (0: none):
        where a checkpoint at ``position`` stands in the target."""
        index = bisect.bisect_right(self.source, position)
        return self.target[index - 1] if index else 0

    def at_or_above(self, position: int) -> int:
        """The target position of the first event at or above source ``position`` (0: none)."""
        index = bisect.bisect_left(self.source, position)
        return self.target[index] if index < len(self.target) else 0


async def merged_log(store: EventStore, dialect: Dialect) -> AsyncIterator[EventRecord]:
    """Every row of ``store``, live or archived, in position order."""
    archived = await dialect.archived()
    index = 0
    async for record in store.read_all_records():
        while index < len(archived) and archived[index].position < record.position:
            yield archived[index]
            index += 1
        yield record
    for record in archived[index:]:
        yield record


async def skip_copied(
    source: AsyncIterator[EventRecord],
    target: AsyncIterator[EventRecord],
    positions: PositionMap,
) -> int:
    """Walk the target's log beside the source's; return how many events it already holds.

    :raises StoreUsageError: the target holds events that are not the source's first ones.
    """
    held = 0
    async for found in target:
        expected = await anext(source, None)
        if expected is None or (expected.event_id, expected.stream_id, expected.version) != (
            found.event_id,
            found.stream_id,
            found.version,
        ):
            wanted = "nothing" if expected is None else f"event {expected.event_id}"
            raise StoreUsageError(
                f"the target store is not empty and is not an interrupted copy of this source: "
                f"its event #{held + 1} is {found.event_id} ({found.stream_id!r} v"
                f"{found.version}) where the source has {wanted}. Nothing was written. Copy "
                "into an empty store (a new SQLite file, or a new PostgreSQL schema with "
                "?schema=...)."
            )
        positions.add(expected.position, found.position)
        held += 1
    return held


async def append_log(
    target: EventStore,
    source: AsyncIterator[EventRecord],
    positions: PositionMap,
    progress: Callable[[int], None],
) -> int:
    """Append every remaining record of ``source`` to ``target`` as it is (ids, versions,
    payloads, metadata and times), ``BATCH`` rows per atomic append; return how many."""
    backend = target.backend
    batch: list[EventRecord] = []
    copied = 0

    async def flush() -> None:
        nonlocal copied
        stored = await backend.append(_requests(batch))
        for record, row in zip(batch, stored, strict=True):
            positions.add(record.position, row.position)
        copied += len(batch)
        progress(len(batch))
        batch.clear()

    async for record in source:
        batch.append(record)
        if len(batch) >= BATCH:
            await flush()
    if batch:
        await flush()
    return copied


def _requests(records: list[EventRecord]) -> list[AppendRequest]:
    """Runs of one stream, in log order: each carries its versions, so no expected version
    is needed (a truncated stream starts above 1), and positions follow request order."""
    requests: list[AppendRequest] = []
    run: list[StoredEvent] = []
    for record in records:
        if run and run[-1].stream_id != record.stream_id:
            requests.append(AppendRequest(run[0].stream_id, None, tuple(run)))
            run = []
        run.append(row_of(record))
    if run:
        requests.append(AppendRequest(run[0].stream_id, None, tuple(run)))
    return requests
