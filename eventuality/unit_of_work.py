"""The unit of work a dispatch runs in: which aggregates it touched, committed together.

Repositories find the active unit of work through a context variable, so a handler needs no
extra argument, and tasks the handler starts (which copy the context) join the same one.
Repositories on every store join it: an aggregate changed on a store the dispatch does not
commit to fails the dispatch loudly instead of losing its events. A :class:`~eventuality.Reaction`
runs its handler in one too, named after it: ``Flow.dispatch`` inside it joins that unit
(:meth:`UnitOfWork.join`) instead of committing on its own.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from contextvars import ContextVar, Token
from typing import Any, NamedTuple, Protocol

from .aggregate import Aggregate
from .errors import AggregateExists, UncommittedEventsError
from .messages import Event
from .stores.base import EventStore

__all__ = ["Pending", "Snapshotter", "UnitOfWork", "active_unit_of_work", "check_result"]


class Snapshotter(Protocol):
    """What the unit of work asks of a repository after the commit."""

    async def snapshot_if_due(self, aggregate: Any, appended: int) -> None: ...


class _Entry(NamedTuple):
    aggregate: Aggregate
    store: EventStore
    repository: Snapshotter | None
    new: bool


class Pending(NamedTuple):
    """One tracked aggregate with events to commit."""

    aggregate: Aggregate
    events: list[Event]
    repository: Snapshotter | None


_current: ContextVar[UnitOfWork | None] = ContextVar("eventuality_unit_of_work", default=None)


class UnitOfWork:
    """Aggregates loaded or added during one dispatch, keyed by store and stream.

    It is also an identity map: loading the same aggregate twice in one dispatch returns the same
    instance, so two changes to it can never be written as two conflicting commits. ``store`` is
    the store the commit must go to; ``None`` lets the repositories' store decide.
    ``reaction`` names the :class:`~eventuality.Reaction` whose unit this is (``None``: a
    dispatch's): dispatches inside it join it.
    """

    __slots__ = ("_entries", "_token", "closed", "reaction", "store")

    def __init__(self, store: EventStore | None = None, *, reaction: str | None = None) -> None:
        self.store = store
        self.reaction = reaction
        self._entries: dict[tuple[EventStore, str], _Entry] = {}
        self.closed = False
        self._token: Token[UnitOfWork | None] | None = None

    def get(self, store: EventStore, stream_id: str) -> Aggregate | None:
        entry = self._entries.get((store, stream_id))
        return None if entry is None else entry.aggregate

    def tracks(self, aggregate: Aggregate) -> bool:
        """Whether this very instance is tracked."""
        return any(entry.aggregate is aggregate for entry in self._entries.values())

    def is_new(self, stream_id: str) -> bool:
        """Whether an aggregate on ``stream_id`` was created by ``add`` in this unit of work."""
        return any(entry.new and key[1] == stream_id for key, entry in self._entries.items())

    def store_of(self, stream_id: str) -> EventStore | None:
        """The store of the tracked aggregate on ``stream_id`` (the first, if several)."""
        for (store, tracked), _ in self._entries.items():
            if tracked == stream_id:
                return store
        return self.store

    def any_store(self) -> EventStore | None:
        """The commit's store if set, else the store of the first aggregate tracked."""
        if self.store is not None:
            return self.store
        return next((entry.store for entry in self._entries.values()), None)

    def track(
        self,
        aggregate: Aggregate,
        store: EventStore,
        repository: Snapshotter | None = None,
        *,
        new: bool = False,
    ) -> None:
        """Take ``aggregate``, read from or written to ``store``, into the commit. ``new``: it
        was just created by ``add``. ``repository`` is asked after the commit whether a snapshot
        is due.

        :raises AggregateExists: ``new`` and the stream is tracked already.
        """
        key = (store, aggregate.stream_id)
        known = self._entries.get(key)
        if known is None:
            self._entries[key] = _Entry(aggregate, store, repository, new)
        elif known.aggregate is not aggregate:
            if new:
                raise AggregateExists(aggregate.stream_id, known.aggregate.version)
            raise ValueError(
                f"two different instances of stream {aggregate.stream_id!r} in one dispatch; "
                "their events would conflict. Load the aggregate once (Repository.load returns "
                "the same instance within a dispatch) and change that one."
            )

    def pending(self) -> tuple[EventStore | None, list[Pending]]:
        """The store to commit to and the tracked aggregates with events, in joining order.

        :raises UncommittedEventsError: the events are on a store other than the dispatch's, or
            on two stores; nothing is written.
        """
        found: list[Pending] = []
        target = self.store
        first: _Entry | None = None
        for entry in self._entries.values():
            events = list(entry.aggregate.pending_events)
            if not events:
                continue
            if target is None:
                target, first = entry.store, entry
            elif entry.store is not target:
                raise _foreign_store(entry, events, target, first)
            found.append(Pending(entry.aggregate, events, entry.repository))
        return (target if found else self.store), found

    def recorded(self) -> list[Event]:
        """Every pending event of every tracked aggregate, in joining order."""
        return [e for entry in self._entries.values() for e in entry.aggregate.pending_events]

    async def join(self, handler: Callable[[Any], Awaitable[Any]], command: Any) -> list[Event]:
        """Run a command's handler in this unit (a dispatch inside a reaction) and return the
        events it recorded, not yet committed (no positions): the reaction commits them.

        A command is all or nothing here too: if its handler raises, the aggregates tracked
        before it are put back as they were and those it loaded are forgotten, so a reaction
        handler that catches the error commits none of the failed command's events.

        :raises UncommittedEventsError: the handler returned events no repository tracks.
        """
        entries = dict(self._entries)
        undo = [entry.aggregate._savepoint() for entry in entries.values()]
        before = {id(event) for event in self.recorded()}
        try:
            result = handler(command)
            if inspect.isawaitable(result):
                result = await result
            recorded = self.recorded()
            check_result(self, result, [recorded])
        except BaseException:
            for restore in undo:
                restore()
            self._entries = entries
            raise
        return [event for event in recorded if id(event) not in before]

    def active(self) -> UnitOfWork:
        """Use as ``with uow.active():`` to make this the unit of work repositories join, for
        the block's duration."""
        return self

    def __enter__(self) -> UnitOfWork:
        self._token = _current.set(self)
        return self

    def __exit__(self, *exc_info: object) -> None:
        # Tasks the handler started keep this context; once the handler has returned they
        # must write for themselves, not into a unit of work that was already committed.
        self.closed = True
        if self._token is not None:
            _current.reset(self._token)


def _foreign_store(
    entry: _Entry, events: list[Event], target: EventStore, first: _Entry | None
) -> UncommittedEventsError:
    here, there = repr(entry.store), repr(target)
    if here == there:
        here += " (another instance)"
    if first is None:
        why = f"but this dispatch commits to the flow's store, {there}"
        todo = "Use repositories on the flow's store, or a Flow whose store= is that store."
    else:
        why = (
            f"but {first.aggregate.stream_id!r} changed on {there}, and one dispatch commits "
            "to one store"
        )
        todo = "Change aggregates of one store per command (or dispatch one command per store)."
    return UncommittedEventsError(
        f"stream {entry.aggregate.stream_id!r} has {len(events)} pending event(s) on {here}, "
        f"{why}. Nothing was written. {todo}",
        stream_ids=(entry.aggregate.stream_id,),
    )


def active_unit_of_work() -> UnitOfWork | None:
    """The unit of work of the running dispatch, if any."""
    uow = _current.get()
    return uow if uow is not None and not uow.closed else None


def check_result(uow: UnitOfWork, result: object, pending: list[list[Event]]) -> None:
    """Refuse a handler result that would silently lose events: ones no unit of work tracks."""
    if isinstance(result, Aggregate):
        if result.pending_events and not uow.tracks(result):
            raise UncommittedEventsError(
                f"the handler returned {result.stream_id} with {len(result.pending_events)} "
                "pending events, but it was not loaded or added through a Repository "
                "during this dispatch, so they would be lost. Create it with "
                "repository.add(...) or load it with repository.load(...).",
                stream_ids=(result.stream_id,),
            )
    elif isinstance(result, list | tuple) and any(isinstance(e, Event) for e in result):
        tracked = {id(e) for events in pending for e in events}
        stray = [e for e in result if isinstance(e, Event) and id(e) not in tracked]
        if stray:
            raise UncommittedEventsError(
                f"the handler returned {len(stray)} event(s) ({stray[0].event_type}, ...) that are "
                "not pending on any aggregate loaded or added through a Repository during this "
                "dispatch, so they would be lost. Record events on an "
                "aggregate you got from repository.load(...) or repository.add(...).",
                stream_ids=tuple(dict.fromkeys(e.aggregate_id for e in stray if e.aggregate_id)),
            )
