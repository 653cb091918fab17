"""Durable subscriptions: follow the global log with a checkpoint, so nothing is ever missed.

A :class:`Subscription` hands each event to an async handler and stores its position under a
name; restarted, it continues where it stopped (at least once: a crash between handling and the
next checkpoint write repeats at most ``checkpoint_every`` events). A
:class:`~eventuality.Projection` (``projections.py``) writes its read model through the store's
own transaction, together with its checkpoint: exactly once.
:class:`SubscriptionRunner` runs several in the background of an application.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterable
from contextlib import aclosing, asynccontextmanager, nullcontext
from typing import Any, Literal

import anyio

from . import _telemetry
from ._log import log_after
from ._partitions import Partitions, refuse_partitioned
from ._progress import (
    TRANSIENT_ERRORS,
    SubscriptionStatistics,
    back_off,
    progress_of,
    wait_for_subscriptions,
)
from ._runner import SubscriptionRunner
from .errors import CheckpointConflict
from .messages import Event
from .stores._partition_hash import check_partitions
from .stores.base import EventStore

__all__ = [
    "Subscription",
    "SubscriptionRunner",
    "SubscriptionStatistics",
    "wait_for_subscriptions",
]

logger = logging.getLogger("eventuality")

Handler = Callable[[Any], Awaitable[None] | None]
OnUnknown = Literal["stop", "skip"]

_IDLE_WAIT = 30.0


class Subscription:
    """Delivers the global log, in order, to ``handler`` and keeps a checkpoint under ``name``.

    :param event_types: only these (classes, with subclasses, or type names); ``None``: all.
    :param checkpoint_every: write the checkpoint after this many handled events (and always
        when caught up, stopped, cancelled or failed). 1 writes after every event.
    :param on_unknown: what to do with a stored event whose type has no class in this process:
        ``"stop"`` (the default) raises :class:`~eventuality.UnknownEventType`, naming its
        stream and position; ``"skip"`` logs a warning and moves the checkpoint past it.
    :param partitions: split the log into this many partitions by stream (``_partitions.py``),
        each with its own checkpoint, shared between the processes that run this name.
    """

    def __init__(
        self,
        store: EventStore,
        name: str,
        handler: Handler,
        *,
        event_types: Iterable[type[Event] | str] | None = None,
        checkpoint_every: int = 100,
        on_unknown: OnUnknown = "stop",
        partitions: int | None = None,
    ) -> None:
        if not isinstance(name, str) or not name or "\x00" in name:
            raise ValueError(f"a subscription needs a non-empty name without NUL, not {name!r}")
        if not callable(handler):
            raise TypeError(f"handler must be callable, not {handler!r}")
        if checkpoint_every < 1:
            raise ValueError(f"checkpoint_every must be at least 1, not {checkpoint_every}")
        if on_unknown not in ("stop", "skip"):
            raise ValueError(f"on_unknown must be 'stop' or 'skip', not {on_unknown!r}")
        self.partitions = None if partitions is None else check_partitions(partitions)
        self._check_store(store, name)
        self.store = store
        self.name = name
        self.handler = handler
        self.event_types = None if event_types is None else list(event_types)
        self.checkpoint_every = checkpoint_every
        self.on_unknown = on_unknown
        self._checkpoint: int | None = None
        self._position = 0
        self._handled = 0
        self._running = False
        self._error: BaseException | None = None
        self._handler_error: BaseException | None = None
        self._partition: tuple[int, int] | None = None  # set on the copy that runs a partition
        self._partitions = None if partitions is None else Partitions(self, partitions)
        progress_of(store).known.add(name)
        if self.partitions is not None:
            progress_of(store).partitioned[name] = self.partitions

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, position={self._position})"

    def _check_store(self, store: EventStore, name: str) -> None:
        """Refuse, when built, a store that cannot keep this subscription's checkpoint.

        :raises UnsupportedOperation: the store keeps no checkpoints.
        """
        store.require("checkpoints", f"keep the checkpoint of {type(self).__name__} {name!r}")

    @property
    def position(self) -> int:
        """The position of the last event handled (or passed over by the type filter); with
        partitions, the lowest among those this process runs."""
        return self.statistics().position

    def statistics(self) -> SubscriptionStatistics:
        if self._partitions is not None:
            return self._partitions.statistics()
        return SubscriptionStatistics(
            name=self.name,
            position=self._position,
            checkpoint=self._checkpoint,
            handled=self._handled,
            running=self._running,
            error=self._error,
        )

    async def set_up(self) -> None:
        """Prepare what the subscription needs before its first event (a Projection's tables).
        Nothing for a plain subscription."""

    async def catch_up(self) -> int:
        """Handle every event after the checkpoint up to the current end; return how many."""
        if self._partitions is not None:
            return await self._partitions.catch_up()
        async with self._exclusive(retrying=False):
            return await self._pass()

    async def run(self) -> None:
        """Catch up, then follow new events as they are appended, until cancelled.

        A transient store failure (:class:`~eventuality.StoreConnectionError`,
        :class:`~eventuality.StoreBusyError`, or :class:`~eventuality.SubscriptionLocked`: the
        cross-process hold was lost) is logged as a warning; it waits, 0.1 s doubling to 5 s,
        and resumes from the stored checkpoint, taking the hold again. Any other error,
        a handler's first of all, stops it.
        """
        if self._partitions is not None:
            return await self._partitions.run()
        attempt = 0
        while True:
            try:
                async with self._exclusive(retrying=True):
                    while True:
                        await self._pass()
                        await self.store.wait_appended(self._position, _IDLE_WAIT)
                        attempt = 0  # a whole round went through
            except TRANSIENT_ERRORS as exc:
                if not self._transient(exc):
                    raise
                attempt += 1
                await back_off(self.name, exc, attempt, "resuming from its checkpoint")

    @asynccontextmanager
    async def _exclusive(self, *, retrying: bool) -> AsyncIterator[None]:
        """Set up, hold the name in this process and start from the stored checkpoint, storing
        one at 0 if there is none (so that waits in other processes know the name)."""
        state = progress_of(self.store)
        try:
            await self.set_up()
            if self._partition is None:  # a partition is held by whoever runs the partitions
                await refuse_partitioned(self.store, self.name)
            hold = nullcontext() if self._partition else self.store.hold_name(self.name)
            async with state.lock(self.name), hold:
                checkpoint = await self.store.get_checkpoint(self.name)
                if checkpoint is None:
                    try:
                        await self.store.set_checkpoint(self.name, 0, expected=None)
                        checkpoint = 0
                    except CheckpointConflict as exc:  # another instance stored it first
                        checkpoint = exc.actual
                self._checkpoint = checkpoint
                self._position = checkpoint or 0
                self._running, self._error = True, None
                state.start(self.name)
                try:
                    yield
                finally:
                    self._running = False
        except Exception as exc:
            self._error = exc
            if not (retrying and self._transient(exc)):
                state.fail(self.name, exc)
            raise

    def _transient(self, error: BaseException) -> bool:
        """Whether ``run()`` retries after ``error``: a store failure, not a handler's."""
        return isinstance(error, TRANSIENT_ERRORS) and error is not self._handler_error

    async def _pass(self) -> int:
        """One pass to the end of the log as it was when the pass began."""
        horizon = await self.store.last_position()
        with _telemetry.passing(self, horizon):
            handled = await self._handle_until_end()
        if horizon > self._position:
            await self._advance(horizon)
        return handled

    def _events(self) -> AsyncGenerator[Event | int]:
        """The log after the position (of this partition, if one), as :func:`log_after` reads it."""
        return log_after(self, self._position, self._partition)

    async def _handle_until_end(self) -> int:
        handled = unsaved = 0
        state = progress_of(self.store)
        try:
            async with aclosing(self._events()) as events:
                async for event in events:
                    if isinstance(event, int):
                        self._position = max(self._position, event)
                    else:
                        try:
                            with _telemetry.handling(self, event):
                                await self._handle(event)
                        except Exception as exc:
                            self._handler_error = exc
                            raise
                        self._position = event.position or self._position
                        handled += 1
                        self._handled += 1
                    state.report(self.name, self._position)
                    unsaved += 1
                    if unsaved >= self.checkpoint_every:
                        await self._save()
                        unsaved = 0
        except BaseException:
            with anyio.CancelScope(shield=True):
                try:
                    await self._save()
                except Exception as exc:  # the error on its way out says more
                    logger.warning(
                        "subscription %r could not save its checkpoint: %r", self.name, exc
                    )
            raise
        with anyio.CancelScope(shield=True):
            await self._save()
        return handled

    async def _handle(self, event: Event) -> None:
        """Hand ``event`` to the handler (a subclass may wrap it: a partition's copy calls
        its own override, so nothing may be bound to the original instance)."""
        result = self.handler(event)
        if inspect.isawaitable(result):
            await result

    async def _advance(self, position: int) -> None:
        """Move past events the type filter left out, up to ``position``."""
        self._position = position
        await self._save()
        progress_of(self.store).report(self.name, position)

    async def _save(self) -> None:
        if self._position == (self._checkpoint or 0):
            return
        try:
            await self.store.set_checkpoint(self.name, self._position, expected=self._checkpoint)
        except CheckpointConflict as exc:
            if exc.actual != self._position:
                raise
            # Our own write landed, but we did not hear back (cancelled, or a lost reply).
        self._checkpoint = self._position


def __getattr__(name: str) -> Any:
    """``Projection`` moved to :mod:`eventuality.projections`; this name still finds it."""
    if name == "Projection":
        from .projections import Projection

        return Projection
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
