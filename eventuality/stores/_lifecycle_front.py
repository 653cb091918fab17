"""The store front's stream lifecycle calls: delete, truncate, archive, restore, read archived.

A mixin of :class:`~eventuality.stores.base.EventStore`, kept apart so the front stays small:
it checks the arguments, builds the lifecycle event a backend records, and hands the rest to
the backend's ``stream_lifecycle`` tier (:class:`~eventuality.stores.boundary.StreamLifecycle`),
which does each operation in one transaction.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar, cast

from ..messages import Event, evolve
from .lifecycle import (
    LIFECYCLE_STREAM,
    Marker,
    StreamArchival,
    StreamRestoration,
    Tombstone,
)
from .rows import HIGHEST_VERSION, from_row, to_row

if TYPE_CHECKING:
    from .boundary import Backend, StreamLifecycle

__all__ = ["LifecycleCalls"]

M = TypeVar("M", Tombstone, StreamArchival, StreamRestoration)


class LifecycleCalls:
    """Deleting, truncating, archiving and restoring streams (the ``stream_lifecycle`` tier)."""

    if TYPE_CHECKING:
        _backend: Backend

        def _check_open(self) -> None: ...
        def _tier(self, capability: Any, operation: str) -> Any: ...
        def _woken(self) -> None: ...

    async def delete_stream(
        self, stream_id: str, *, expected_version: int | None = None
    ) -> Tombstone:
        """Delete a stream for good: its events and snapshots are removed, later loads and
        appends raise :class:`~eventuality.StreamDeleted`, and its id is never reused. A
        :class:`~eventuality.Tombstone` event is appended to the global log in the same
        transaction (subscriptions and projections react to it) and returned, with its
        position. An archived stream may be deleted too (its archive goes).

        :raises StreamNotFound: the stream has no events.
        :raises StreamDeleted: it was deleted already.
        :raises ConcurrencyError: it is not at ``expected_version``.
        """
        tier = self._lifecycle(stream_id, "delete a stream", expected_version)
        row = await tier.delete_stream(stream_id, expected_version, _marker(Tombstone, stream_id))
        return cast(Tombstone, self._appended_marker(row))

    async def truncate_stream(
        self, stream_id: str, before: int, *, require_snapshot: bool = True
    ) -> int:
        """Remove the stream's events below version ``before`` (and snapshots below
        ``before - 1``), returning how many events went. The events that stay keep their
        versions and positions; the stream keeps its version and appends continue after it.

        A load then starts from a snapshot, so unless ``require_snapshot=False`` the stream
        must have one at version ``before - 1`` or later. The last event always stays
        (``before <= version``): to remove them all, delete the stream.

        :raises StreamLifecycleError: ``before`` beyond the stream's version, or no snapshot.
        :raises StreamNotFound, StreamDeleted, StreamArchived: as named.
        """
        if not isinstance(before, int) or isinstance(before, bool) or before < 1:
            raise ValueError(
                f"before must be an int >= 1 (the first version to keep), not {before!r}; "
                "nothing was changed"
            )
        tier = self._lifecycle(stream_id, "truncate a stream", None)
        return await tier.truncate_stream(
            stream_id, min(before, HIGHEST_VERSION + 1), bool(require_snapshot)
        )

    async def archive_stream(
        self, stream_id: str, *, expected_version: int | None = None
    ) -> StreamArchival:
        """Move the stream's events out of the live log into the store's archive: ``read_all``
        no longer yields them, loads and appends raise :class:`~eventuality.StreamArchived`,
        and :meth:`read_archived` reads them. A :class:`~eventuality.StreamArchival` event is
        appended in the same transaction and returned. Snapshots stay, for after a restore.

        :raises StreamNotFound, StreamDeleted, StreamArchived, ConcurrencyError: as named.
        """
        tier = self._lifecycle(stream_id, "archive a stream", expected_version)
        row = await tier.archive_stream(
            stream_id, expected_version, _marker(StreamArchival, stream_id)
        )
        return cast(StreamArchival, self._appended_marker(row))

    async def restore_stream(self, stream_id: str) -> StreamRestoration:
        """Move an archived stream's events back into the live log, with their original
        versions and positions (a reader already past those positions does not get them
        again). A :class:`~eventuality.StreamRestoration` event is appended and returned.

        :raises StreamLifecycleError: the stream is not archived.
        :raises StreamNotFound, StreamDeleted: as named.
        """
        tier = self._lifecycle(stream_id, "restore a stream", None)
        row = await tier.restore_stream(stream_id, _marker(StreamRestoration, stream_id))
        return cast(StreamRestoration, self._appended_marker(row))

    async def read_archived(self, stream_id: str) -> list[Event]:
        """The archived events of ``stream_id`` in version order, with their original
        versions and positions; ``[]`` when it is not archived."""
        tier = self._lifecycle(stream_id, "read archived events", None)
        return [from_row(row) for row in await tier.read_archived(stream_id)]

    def _lifecycle(
        self, stream_id: str, operation: str, expected_version: int | None
    ) -> StreamLifecycle:
        """The backend's tier, once the store is open and the arguments are sound."""
        self._check_open()
        tier: StreamLifecycle = self._tier("stream_lifecycle", operation)
        from ._tiers_front import refuse_inside_transaction

        refuse_inside_transaction(self._backend, operation)
        if not isinstance(stream_id, str) or not stream_id:
            raise ValueError(f"stream id must be a non-empty str, not {stream_id!r}")
        if expected_version is not None and (
            not isinstance(expected_version, int)
            or isinstance(expected_version, bool)
            or expected_version < 0
        ):
            raise ValueError(
                f"expected_version must be None (no check) or an int >= 0, not "
                f"{expected_version!r}; nothing was changed"
            )
        return tier

    def _appended_marker(self, row: Any) -> Event:
        self._woken()
        return from_row(row)


def _marker(cls: type[M], stream_id: str) -> Marker:
    """The row of ``cls`` about ``stream_id``, once the backend knows its version."""

    def build(version: int, aggregate_id: str | None) -> Any:
        event = cls(stream_id=stream_id, last_version=version)
        return to_row(LIFECYCLE_STREAM, evolve(event, {"aggregate_id": aggregate_id}))

    return build
