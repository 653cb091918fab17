"""The store front's record reads: stored events without their classes (:class:`EventRecord`).

A mixin of :class:`~eventuality.stores.base.EventStore`, kept apart so the front stays small.
Records are the rows as stored: no upcasting, no type registry, personal data still sealed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import TYPE_CHECKING

from ._validation import HIGHEST_POSITION, HIGHEST_VERSION
from .records import EventRecord, record_of

if TYPE_CHECKING:
    from .boundary import Backend

__all__ = ["RecordCalls"]


class RecordCalls:
    """``read_records`` and ``read_all_records``: what the ``eventuality`` command reads."""

    if TYPE_CHECKING:
        _backend: Backend

        def _check_open(self) -> None: ...

    async def read_records(
        self, stream_id: str, *, from_version: int = 1, to_version: int | None = None
    ) -> list[EventRecord]:
        """The records of one stream in version order (like :meth:`read_stream`, without the
        event classes); ``[]`` when there are none.

        :raises StreamDeleted: the stream was deleted (a backend with the lifecycle tier).
        :raises StreamArchived: its events are archived.
        """
        self._check_open()
        last = None if to_version is None else min(to_version, HIGHEST_VERSION)
        if from_version > HIGHEST_VERSION or (last is not None and last < from_version):
            return []
        rows = await self._backend.read_stream(stream_id, max(from_version, 1), last)
        return [record_of(row) for row in rows]

    async def read_all_records(
        self,
        *,
        from_position: int = 0,
        event_types: Iterable[str] | None = None,
        page_size: int = 1000,
    ) -> AsyncIterator[EventRecord]:
        """Every record after ``from_position`` in global order (like :meth:`read_all`, by
        stored type name), fetched ``page_size`` at a time: memory stays flat."""
        self._check_open()
        if page_size < 1:
            raise ValueError(f"page_size must be at least 1, not {page_size}")
        types = None if event_types is None else frozenset(event_types)
        after = min(from_position, HIGHEST_POSITION)
        while True:
            rows = await self._backend.read_log(after, page_size, types)
            for row in rows:
                yield record_of(row)
            if len(rows) < page_size:
                return
            after = rows[-1].position
