"""Repository: loads aggregates by replaying their streams and saves what they recorded."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any, Generic, TypeVar

from pydantic import ValidationError

from . import _telemetry
from .aggregate import Aggregate, state_fingerprint
from .errors import AggregateExists, AggregateNotFound, ConcurrencyError, StreamTruncated
from .messages import Event
from .stores.base import EventStore, Snapshot
from .stores.rows import events_of
from .unit_of_work import active_unit_of_work

__all__ = ["Repository"]

logger = logging.getLogger("eventuality")

A = TypeVar("A", bound=Aggregate)


class Repository(Generic[A]):
    """Loads and saves one kind of aggregate on one store.

    Outside :meth:`Flow.dispatch <eventuality.Flow.dispatch>` ``add`` and ``save`` write at once.
    Inside a dispatch they join its unit of work, and the flow writes every touched aggregate in
    one atomic commit when the handler returns.
    """

    def __init__(
        self, aggregate_class: type[A], store: EventStore, *, snapshot_every: int | None = None
    ) -> None:
        if not (isinstance(aggregate_class, type) and issubclass(aggregate_class, Aggregate)):
            raise TypeError(f"Repository takes an Aggregate subclass, not {aggregate_class!r}")
        if snapshot_every is not None and snapshot_every < 1:
            raise ValueError(f"snapshot_every must be None or at least 1, not {snapshot_every}")
        if snapshot_every is not None:
            store.require(
                "snapshots",
                f"keep snapshots for Repository({aggregate_class.__name__}, snapshot_every=...)",
            )
        self.aggregate_class = aggregate_class
        self.store = store
        self.snapshot_every = snapshot_every

    def __repr__(self) -> str:
        return f"Repository({self.aggregate_class.__name__}, {self.store!r})"

    def stream_id(self, aggregate_id: str) -> str:
        return f"{self.aggregate_class.aggregate_type}-{aggregate_id}"

    async def add(self, **attrs: Any) -> A:
        """Create an aggregate with ``AggregateClass.create(**attrs)`` and save it as new.

        Inside a dispatch the stream is checked at once, so a handler can catch the error.

        :raises AggregateExists: an aggregate with that id exists already (a
            :class:`ConcurrencyError` no retry can cure, so ``Flow.dispatch`` does not retry it).
        """
        create = getattr(self.aggregate_class, "create", None)
        if create is None:
            raise TypeError(
                f"{self.aggregate_class.__name__} has no create() classmethod; Repository.add "
                "calls it with the attributes you pass"
            )
        aggregate = create(**attrs)
        if not isinstance(aggregate, self.aggregate_class):
            raise TypeError(
                f"{self.aggregate_class.__name__}.create() returned {type(aggregate).__name__}, "
                f"not a {self.aggregate_class.__name__}"
            )
        if not aggregate.pending_events or aggregate.version != len(aggregate.pending_events):
            raise ValueError(
                f"{self.aggregate_class.__name__}.create() must return a new aggregate that "
                "recorded at least one event (an aggregate with no events cannot be loaded)"
            )
        uow = active_unit_of_work()
        if uow is None:
            try:
                await self._write(aggregate)
            except AggregateExists:
                raise
            except ConcurrencyError as exc:
                raise AggregateExists(exc.stream_id, exc.actual_version) from exc
            return aggregate
        stream_id = aggregate.stream_id
        known = uow.get(self.store, stream_id)
        if known is None:
            actual = await self.store.stream_version(stream_id)
            if actual:
                raise AggregateExists(stream_id, actual)
        uow.track(aggregate, self.store, self, new=True)
        return aggregate

    async def load(self, aggregate_id: str, *, version: int | None = None) -> A:
        """Rebuild an aggregate from its latest snapshot and later events.

        ``version`` rebuilds the state as of that version (never tracked by a dispatch).

        :raises AggregateNotFound: the stream has no events (or fewer than ``version``).
        :raises StreamDeleted: the stream was deleted.
        :raises StreamArchived: the stream is archived (restore it first).
        :raises StreamTruncated: the stream was truncated and no snapshot reaches its events.
        """
        if version is not None and version < 1:
            raise ValueError(f"version must be None or at least 1, not {version}")
        stream_id = self.stream_id(aggregate_id)
        uow = active_unit_of_work() if version is None else None
        if uow is not None:
            known = uow.get(self.store, stream_id)
            if isinstance(known, self.aggregate_class):
                return known
        rebuild = self._rebuild(aggregate_id, stream_id, version)
        telemetry = _telemetry.hooks
        aggregate = await (
            rebuild if telemetry is None else telemetry.load(self, rebuild, stream_id)
        )
        if uow is not None:
            uow.track(aggregate, self.store, self)
        return aggregate

    async def save(self, aggregate: A) -> list[Event]:
        """Append the aggregate's pending events, expecting the stream where it left it.

        Returns the events as stored, with positions. Inside a dispatch the aggregate joins the
        unit of work instead and its events, still without positions, are returned.

        :raises ConcurrencyError: the stream moved on since the aggregate was loaded.
        """
        if not isinstance(aggregate, self.aggregate_class):
            raise TypeError(
                f"this repository saves {self.aggregate_class.__name__}, "
                f"not {type(aggregate).__name__}"
            )
        uow = active_unit_of_work()
        if uow is not None:
            uow.track(aggregate, self.store, self)
            return list(aggregate.pending_events)
        return await self._write(aggregate)

    async def _write(self, aggregate: A) -> list[Event]:
        events = aggregate.pending_events
        if not events:
            return []
        stored = await self.store.append(
            aggregate.stream_id, events, expected_version=aggregate.version - len(events)
        )
        aggregate.collect_events()  # stored: no longer pending (a failed save keeps them)
        await self.snapshot_if_due(aggregate, len(events))
        return stored

    async def _rebuild(self, aggregate_id: str, stream_id: str, version: int | None) -> A:
        cls = self.aggregate_class
        snapshot = None
        if self.snapshot_every is not None:
            snapshot = await self.store.load_snapshot(stream_id, max_version=version)
        aggregate = self._from_snapshot(snapshot) if snapshot is not None else None
        start = aggregate.version + 1 if aggregate is not None else 1
        events: Iterable[Event]
        if getattr(self.store.read_stream, "__func__", None) is EventStore.read_stream:
            # The store's own read_stream (not one a subclass or a wrapper put in its place):
            # take its rows and decode them as they are replayed, so a long stream's events
            # die a few at a time instead of all surviving the garbage collector's passes.
            rows = await self.store._stream_rows(stream_id, start, version)
            first, count, events = (rows[0].version if rows else None), len(rows), events_of(rows)
        else:
            events = await self.store.read_stream(stream_id, from_version=start, to_version=version)
            first, count = (events[0].aggregate_version if events else None), len(events)
        if first is not None and first != start:
            aggregate, events = await self._past_truncation(stream_id, start, version, list(events))
            count = len(events)
        if _telemetry.hooks is not None:
            _telemetry.hooks.replayed(count, aggregate is not None)
        if aggregate is None:
            if not count:
                raise AggregateNotFound(cls.aggregate_type, aggregate_id, version)
            aggregate = cls(id=aggregate_id)
        aggregate.replay(events)
        if version is not None and aggregate.version < version:
            raise AggregateNotFound(cls.aggregate_type, aggregate_id, version)
        if snapshot is not None and start == 1 and version is None:
            await self._save_snapshot(aggregate)  # replace the one that did not fit
        return aggregate

    async def _past_truncation(
        self, stream_id: str, start: int, version: int | None, events: list[Event]
    ) -> tuple[A, list[Event]]:
        """The stream was truncated (``store.truncate_stream``): its events begin after
        ``start``. Start from the latest snapshot that reaches them, if there is one.

        :raises StreamTruncated: no snapshot reaches the oldest stored event.
        """
        first = events[0].aggregate_version or start
        if self.store.capabilities.snapshots:
            snapshot = await self.store.load_snapshot(stream_id, max_version=version)
            if snapshot is not None and snapshot.version >= first - 1:
                aggregate = self._from_snapshot(snapshot)
                if aggregate is not None:
                    later = [e for e in events if (e.aggregate_version or 0) > aggregate.version]
                    return aggregate, later
        raise StreamTruncated(stream_id, start, first)

    def _from_snapshot(self, snapshot: Snapshot) -> A | None:
        """The snapshot's aggregate, or None when another shape of state or ``apply`` wrote it."""
        cls = self.aggregate_class
        envelope = _envelope_start(cls)
        state = snapshot.state
        if (
            snapshot.aggregate_type != cls.aggregate_type
            or snapshot.schema_version != cls.__snapshot_version__
            or not state.startswith(envelope)
            or not state.endswith("}")
        ):
            return None
        try:
            return cls.model_validate_json(state[len(envelope) : -1])
        except ValidationError:
            logger.warning(
                "snapshot of %s at version %d no longer fits %s; replaying from the start",
                snapshot.stream_id,
                snapshot.version,
                cls.__qualname__,
                exc_info=True,
            )
            return None

    async def snapshot_if_due(self, aggregate: A, appended: int) -> None:
        """Save a snapshot when the last ``appended`` events crossed a ``snapshot_every`` mark.

        A snapshot is an optimisation: failing to write one is logged, never raised.
        """
        every = self.snapshot_every
        if every is None or aggregate.version // every == (aggregate.version - appended) // every:
            return
        await self._save_snapshot(aggregate)

    async def _save_snapshot(self, aggregate: A) -> None:
        snapshot = Snapshot(
            stream_id=aggregate.stream_id,
            version=aggregate.version,
            aggregate_type=aggregate.aggregate_type,
            schema_version=aggregate.__snapshot_version__,
            state=f"{_envelope_start(type(aggregate))}{aggregate.model_dump_json()}}}",
        )
        try:
            await self.store.save_snapshot(snapshot)
        except Exception:
            logger.warning("could not save a snapshot of %s", aggregate.stream_id, exc_info=True)


def _envelope_start(cls: type[Aggregate]) -> str:
    """A snapshot's state is ``{"fingerprint": ..., "state": {...}}``: the state with the
    :func:`state_fingerprint` of the class that wrote it. This is the text before the state."""
    return f'{{"fingerprint":"{state_fingerprint(cls)}","state":'
