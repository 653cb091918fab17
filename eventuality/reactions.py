"""Reactions (process managers): answer events from the log with new events, exactly once.

A :class:`Reaction` follows the global log like a :class:`~eventuality.Subscription`. Its
handler runs, per input event, in one unit of work: ``flow.dispatch(command)`` inside it joins
that unit, and repositories used directly are tracked by it. When the handler returns, every
event it recorded is appended in one store call that also moves the reaction's checkpoint to
the input event (compare-and-set), so a crash or a cancellation at any instant leaves both or
neither: each input event's effects are committed exactly once.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import anyio

from .errors import AggregateExists, CheckpointConflict, ConcurrencyError
from .flow import Flow, _backoff, _RetryLocks, _StreamLock
from .messages import Event
from .stores.base import EventStore, StreamAppend
from .stores.rows import CheckpointMove
from .subscriptions import OnUnknown, Subscription
from .unit_of_work import UnitOfWork

__all__ = ["Reaction", "ReactionHandler"]

ReactionHandler = Callable[[Any], Awaitable[None] | None]


class Reaction(Subscription):
    """Hands each event of the log to ``handler``, which may dispatch commands through
    ``flow`` (or change aggregates through repositories); what it records is committed with
    the reaction's checkpoint in one atomic step on ``store``.

    The committed events carry ``causation_id`` (the input event's id) and ``correlation_id``
    (the input's, or its id when it has none), then are published on ``flow.bus``. A
    :class:`~eventuality.ConcurrencyError` runs the handler again for that input event on fresh
    loads, up to ``retries`` times (default: the flow's). A handler that raises stops the
    reaction with that error, its checkpoint just before that event: a restart handles it
    again. Events that lead to nothing move the checkpoint ``checkpoint_every`` at a time (it
    never passes an event whose effects are not committed). ``partitions=N`` splits the log by
    stream as for a :class:`~eventuality.Subscription`: each partition moves its own checkpoint
    with its effects, and on PostgreSQL several processes share them.

    :raises UnsupportedOperation: ``store`` cannot move a checkpoint with an append.
    :raises ValueError: ``flow`` commits to another store.
    """

    def __init__(
        self,
        store: EventStore,
        name: str,
        handler: ReactionHandler,
        *,
        flow: Flow,
        event_types: Iterable[type[Event] | str] | None = None,
        checkpoint_every: int = 100,
        on_unknown: OnUnknown = "stop",
        retries: int | None = None,
        partitions: int | None = None,
    ) -> None:
        if not isinstance(flow, Flow):
            raise TypeError(f"flow must be a Flow, not {flow!r}")
        if not callable(handler):
            raise TypeError(f"handler must be callable, not {handler!r}")
        super().__init__(
            store,
            name,
            handler,
            event_types=event_types,
            checkpoint_every=checkpoint_every,
            on_unknown=on_unknown,
            partitions=partitions,
        )
        if retries is None:
            retries = flow.retries
        if not isinstance(retries, int) or isinstance(retries, bool) or retries < 0:
            raise ValueError(f"retries must be an int >= 0, not {retries!r}")
        commit_store = flow._commit_store()
        if commit_store is not None and commit_store is not store:
            theirs = repr(commit_store)
            if theirs == repr(store):
                theirs += " (another instance)"
            raise ValueError(
                f"Reaction {name!r} commits to {store!r}, but its flow commits to {theirs}. "
                "Give it a Flow on the same store object (or one without store=)."
            )
        self.react = handler
        self.flow = flow
        self.retries = retries
        self._uncertain = False
        self._failure: BaseException | None = None

    def _check_store(self, store: EventStore, name: str) -> None:
        """A reaction commits its effects and its checkpoint in one atomic step.

        :raises UnsupportedOperation: the store has no such step (or no checkpoints).
        """
        store.require(
            "reactions",
            f"run Reaction {name!r}, which commits its events and its checkpoint in one atomic "
            "step (for a store without one, use a Subscription that dispatches commands: at "
            "least once)",
        )
        super()._check_store(store, name)

    async def set_up(self) -> None:
        """Every start reads the checkpoint from the store: what an interrupted commit did is
        known again."""
        self._uncertain = False

    def _transient(self, error: BaseException) -> bool:
        """Store failures are retried by ``run()``; the handler's own never."""
        return super()._transient(error) and error is not self._failure

    async def _save(self) -> None:
        """After a commit that may or may not have landed, write nothing: the next start
        reads the checkpoint from the store."""
        if not self._uncertain:
            await super()._save()

    async def _handle(self, event: Event) -> None:
        """Run the handler for ``event`` in a unit of work and commit what it recorded with the
        checkpoint; on a conflict, run it again on fresh loads."""
        attempt = 0
        locks = _RetryLocks()
        try:
            while True:
                uow = UnitOfWork(self.store, reaction=self.name)
                try:
                    with uow.active():
                        try:
                            result = self.react(event)
                            if inspect.isawaitable(result):
                                await result
                        except ConcurrencyError:
                            raise
                        except Exception as exc:
                            self._failure = exc
                            raise
                    await self._commit(uow, event)
                    return
                except ConcurrencyError as exc:
                    if isinstance(exc, AggregateExists) or attempt >= self.retries:
                        if not isinstance(exc, AggregateExists):
                            exc.add_note(
                                f"Reaction {self.name!r} ran its handler {attempt + 1} times for "
                                f"the event at position {event.position} and the stream kept "
                                "moving: raise Reaction(retries=...) for a stream this contended."
                            )
                        self._failure = exc
                        raise
                    attempt += 1
                    locks.after_conflict(uow.store_of(exc.stream_id), exc.stream_id)
                    await anyio.sleep(_backoff(attempt))
                    await locks.acquire()
        finally:
            locks.release()

    async def _commit(self, uow: UnitOfWork, event: Event) -> None:
        """Append every tracked aggregate's pending events and move the checkpoint to
        ``event``, in one store call; publish them. Nothing recorded: nothing to write now."""
        try:
            _, touched = uow.pending()
        except Exception as exc:  # changed aggregates of another store: the handler's fault
            self._failure = exc
            raise
        if not touched:
            return
        position = event.position or self._position
        await _StreamLock.wait_for_retries(self.store, [p.aggregate.stream_id for p in touched])
        appends = [
            StreamAppend(p.aggregate.stream_id, *p.aggregate.collect_events()) for p in touched
        ]
        correlation = event.metadata.get("correlation_id") or event.event_id
        envelope = {"causation_id": str(event.event_id), "correlation_id": str(correlation)}
        move = CheckpointMove(self.name, self._checkpoint, position)
        try:
            committed = await self.store.append_streams(appends, metadata=envelope, checkpoint=move)
        except ConcurrencyError:
            raise  # nothing was stored: the handler runs again
        except CheckpointConflict as exc:
            if exc.actual != position:
                raise
            # An earlier commit of this very input landed after we stopped hearing from it
            # (cancelled, lost reply) and a restart read the checkpoint before it: its effects
            # are stored, so these are a repeat. Drop them; the event is done.
            self._checkpoint = self._position = position
            return
        except BaseException:
            self._uncertain = True
            raise
        # Committed: from here on a cancellation (a slow listener) must not save the position
        # before this event over the checkpoint that just moved past it.
        self._checkpoint = self._position = position
        await self.flow.bus.publish(committed)
        for pending in touched:
            if pending.repository is not None:
                await pending.repository.snapshot_if_due(pending.aggregate, len(pending.events))
