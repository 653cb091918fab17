"""Durable subscriptions: follow the global log with a checkpoint, so nothing is ever missed.

A :class:`Subscription` hands each event to an async handler and stores its position under a
name; restarted, it continues where it stopped (at least once: a crash between handling and the
next checkpoint write repeats at most ``checkpoint_every`` events). A :class:`Projection` writes its
read model through the store's own transaction, together with its checkpoint: exactly once.
:class:`SubscriptionRunner` runs several in the background of an application.
"""

from __future__ import annotations

import inspect
import logging
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import anyio
from anyio.abc import TaskGroup

from .errors import CheckpointConflict, SubscriptionTimeout
from .messages import Event
from .stores.base import POLL_MAX, POLL_START, EventStore, Transaction

__all__ = [
    "Projection",
    "Subscription",
    "SubscriptionRunner",
    "SubscriptionStatistics",
    "wait_for_subscriptions",
]

logger = logging.getLogger("eventuality")

Handler = Callable[[Any], Awaitable[None] | None]
ProjectionHandler = Callable[[Any, Transaction], Awaitable[None]]

_IDLE_WAIT = 30.0


class _StoreState:
    """Per store, in this process: one lock per subscription name, and handled positions."""

    def __init__(self) -> None:
        self.locks: dict[str, anyio.Lock] = {}
        self.progress: dict[str, int] = {}
        self.failures: dict[str, BaseException] = {}
        self.changed: anyio.Event | None = None

    def lock(self, name: str) -> anyio.Lock:
        if name not in self.locks:
            self.locks[name] = anyio.Lock()
        return self.locks[name]

    def report(self, name: str, position: int) -> None:
        self.progress[name] = position
        self.failures.pop(name, None)
        self._wake()

    def fail(self, name: str, error: BaseException) -> None:
        self.failures[name] = error
        self._wake()

    def _wake(self) -> None:
        if self.changed is not None:
            self.changed.set()
            self.changed = None

    def wait_event(self) -> anyio.Event:
        if self.changed is None:
            self.changed = anyio.Event()
        return self.changed


_states: weakref.WeakKeyDictionary[EventStore, _StoreState] = weakref.WeakKeyDictionary()


def _state(store: EventStore) -> _StoreState:
    state = _states.get(store)
    if state is None:
        state = _states[store] = _StoreState()
    return state


@dataclass(frozen=True, slots=True)
class SubscriptionStatistics:
    """A snapshot of a subscription's progress, for debugging and health checks."""

    name: str
    position: int
    checkpoint: int | None
    handled: int
    running: bool
    error: BaseException | None


class Subscription:
    """Delivers the global log, in order, to ``handler`` and keeps a checkpoint under ``name``.

    :param event_types: only these (classes, with subclasses, or type names); ``None``: all.
    :param checkpoint_every: write the checkpoint after this many handled events (and always
        when caught up, stopped, cancelled or failed). 1 writes after every event.
    """

    def __init__(
        self,
        store: EventStore,
        name: str,
        handler: Handler,
        *,
        event_types: Iterable[type[Event] | str] | None = None,
        checkpoint_every: int = 100,
    ) -> None:
        if not isinstance(name, str) or not name or "\x00" in name:
            raise ValueError(f"a subscription needs a non-empty name without NUL, not {name!r}")
        if not callable(handler):
            raise TypeError(f"handler must be callable, not {handler!r}")
        if checkpoint_every < 1:
            raise ValueError(f"checkpoint_every must be at least 1, not {checkpoint_every}")
        self.store = store
        self.name = name
        self.handler = handler
        self.event_types = None if event_types is None else list(event_types)
        self.checkpoint_every = checkpoint_every
        self._checkpoint: int | None = None
        self._position = 0
        self._handled = 0
        self._running = False
        self._error: BaseException | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, position={self._position})"

    @property
    def position(self) -> int:
        """The position of the last event handled (or passed over by the type filter)."""
        return self._position

    def statistics(self) -> SubscriptionStatistics:
        return SubscriptionStatistics(
            name=self.name,
            position=self._position,
            checkpoint=self._checkpoint,
            handled=self._handled,
            running=self._running,
            error=self._error,
        )

    async def catch_up(self) -> int:
        """Handle every event after the checkpoint up to the current end; return how many."""
        async with self._exclusive():
            return await self._pass()

    async def run(self) -> None:
        """Catch up, then follow new events as they are appended, until cancelled."""
        async with self._exclusive():
            while True:
                await self._pass()
                await self.store.wait_appended(self._position, _IDLE_WAIT)

    @asynccontextmanager
    async def _exclusive(self) -> AsyncIterator[None]:
        """Hold the name in this process and start from the stored checkpoint."""
        state = _state(self.store)
        try:
            async with state.lock(self.name), self.store.hold_name(self.name):
                self._checkpoint = await self.store.get_checkpoint(self.name)
                self._position = self._checkpoint or 0
                self._running, self._error = True, None
                try:
                    yield
                finally:
                    self._running = False
        except Exception as exc:
            self._error = exc
            state.fail(self.name, exc)
            raise

    async def _pass(self) -> int:
        """One pass to the end of the log as it was when the pass began."""
        horizon = await self.store.last_position()
        handled = await self._handle_until_end()
        if horizon > self._position:
            await self._advance(horizon)
        return handled

    async def _handle_until_end(self) -> int:
        handled = unsaved = 0
        state = _state(self.store)
        try:
            async for event in self.store.read_all(
                from_position=self._position, event_types=self.event_types
            ):
                result = self.handler(event)
                if inspect.isawaitable(result):
                    await result
                self._position = event.position or self._position
                handled += 1
                self._handled += 1
                state.report(self.name, self._position)
                unsaved += 1
                if unsaved >= self.checkpoint_every:
                    await self._save()
                    unsaved = 0
        finally:
            with anyio.CancelScope(shield=True):
                await self._save()
        return handled

    async def _advance(self, position: int) -> None:
        """Move past events the type filter left out, up to ``position``."""
        self._position = position
        await self._save()
        _state(self.store).report(self.name, position)

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


class Projection(Subscription):
    """A subscription whose handler writes a read model in the store's own database, in the
    same transaction as the checkpoint: each event changes the read model exactly once.

    ``handler(event, tx)`` writes through ``tx`` (:class:`~eventuality.stores.base.Transaction`)
    and nothing else: a crash or cancellation at any moment rolls back the read model and the
    checkpoint together, and the events come again. Events are committed ``batch_size`` at a
    time; while a batch is open, appends in this process wait (SQLite has one writer).
    A failing handler undoes only its own event; the ones before it in the batch commit.
    """

    def __init__(
        self,
        store: EventStore,
        name: str,
        handler: ProjectionHandler,
        *,
        event_types: Iterable[type[Event] | str] | None = None,
        batch_size: int = 100,
    ) -> None:
        super().__init__(store, name, _never, event_types=event_types)
        self.project = handler
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, not {batch_size}")
        self.batch_size = batch_size

    async def _handle_until_end(self) -> int:
        handled = 0
        batch: list[Event] = []
        async for event in self.store.read_all(
            from_position=self._position, event_types=self.event_types
        ):
            batch.append(event)
            if len(batch) >= self.batch_size:
                handled += await self._commit(batch)
                batch = []
        if batch:
            handled += await self._commit(batch)
        return handled

    async def _advance(self, position: int) -> None:
        await self._commit([], advance_to=position)

    async def _commit(self, batch: list[Event], advance_to: int = 0) -> int:
        """Handle ``batch`` and move the checkpoint in one transaction; raise the first failure
        after committing the events before it."""
        failure: Exception | None = None
        handled = 0
        position = self._position
        async with self.store.transaction() as tx:
            stored = await tx.get_checkpoint(self.name)
            if stored != self._checkpoint:
                raise CheckpointConflict(self.name, self._checkpoint, stored)
            for event in batch:
                try:
                    async with tx.savepoint():
                        await self.project(event, tx)
                except Exception as exc:
                    failure = exc
                    break
                position = event.position or position
                handled += 1
            if failure is None:
                position = max(position, advance_to)
            moved = position != (stored or 0)
            if moved:
                await tx.set_checkpoint(self.name, position, stored)
        if moved:
            self._checkpoint = position
        self._position = position
        self._handled += handled
        _state(self.store).report(self.name, position)
        if failure is not None:
            raise failure
        return handled

    async def _save(self) -> None:
        """Checkpoints move inside :meth:`_commit`'s transactions only."""


def _never(event: Event) -> None:
    raise AssertionError("a Projection calls its handler with a transaction")


class SubscriptionRunner:
    """Runs subscriptions in the background while the ``async with`` block lasts.

    A subscription that fails is logged and left stopped (the others go on); its error is in
    :meth:`statistics` and makes read-your-writes waits on it fail at once. Leaving the block
    cancels them all and waits until each has saved its checkpoint. Suits an application's
    lifespan (FastAPI: ``async with SubscriptionRunner(a, b): yield``).
    """

    def __init__(self, *subscriptions: Subscription) -> None:
        names = [s.name for s in subscriptions]
        if len(set(names)) != len(names):
            raise ValueError(f"subscription names must be unique in one runner: {names}")
        self.subscriptions = subscriptions
        self._group: TaskGroup | None = None

    async def __aenter__(self) -> Self:
        group = anyio.create_task_group()
        await group.__aenter__()
        self._group = group
        for subscription in self.subscriptions:
            group.start_soon(self._run, subscription, name=f"subscription {subscription.name}")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        assert self._group is not None
        group, self._group = self._group, None
        group.cancel_scope.cancel()
        return await group.__aexit__(exc_type, exc, tb)

    async def _run(self, subscription: Subscription) -> None:
        try:
            await subscription.run()
        except Exception:
            logger.exception("subscription %r stopped on an error", subscription.name)

    def statistics(self) -> list[SubscriptionStatistics]:
        return [s.statistics() for s in self.subscriptions]


async def wait_for_subscriptions(
    store: EventStore, names: Iterable[str], position: int, *, timeout: float = 10.0
) -> None:
    """Wait until each named subscription has handled everything up to ``position``.

    Subscriptions in this process report as they go; those in other processes are seen through
    their stored checkpoints, polled with backoff.

    :raises SubscriptionTimeout: one had not got there within ``timeout`` seconds, or it failed.
    """
    state = _state(store)
    deadline = anyio.current_time() + timeout
    for name in names:
        interval = POLL_START
        while True:
            if state.progress.get(name, 0) >= position:
                break
            failure = state.failures.get(name)
            if failure is not None:
                raise SubscriptionTimeout(name, position, state.progress.get(name), failed=True)
            checkpoint = await store.get_checkpoint(name)
            if checkpoint is not None and checkpoint >= position:
                break
            remaining = deadline - anyio.current_time()
            if remaining <= 0:
                raise SubscriptionTimeout(name, position, checkpoint, timeout=timeout)
            changed = state.wait_event()
            with anyio.move_on_after(min(interval, remaining)):
                await changed.wait()
            interval = min(interval * 2, POLL_MAX)
