"""Flow: one command's whole cycle: handler, unit of work, atomic commit, retries, publish."""

from __future__ import annotations

import inspect
import random
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, TypeVar

import anyio

from .aggregate import Aggregate
from .bus import EventBus, _name
from .errors import ConcurrencyError, UncommittedEventsError, UnknownCommand
from .messages import Command, Event
from .stores.base import EventStore, StreamAppend
from .stores.memory import InMemoryEventStore
from .subscriptions import wait_for_subscriptions
from .unit_of_work import UnitOfWork

__all__ = ["Flow", "Handler"]

Handler = Callable[[Any], Awaitable[Any]]
H = TypeVar("H", bound=Handler)


class Flow:
    """Dispatches commands to handlers and commits what they decide, all or nothing."""

    def __init__(
        self,
        *,
        store: EventStore | None = None,
        bus: EventBus | None = None,
        handlers: Mapping[type[Command], Handler] | None = None,
        retries: int = 3,
    ) -> None:
        if not isinstance(retries, int) or retries < 0:
            raise ValueError(f"retries must be an int >= 0, not {retries!r}")
        self.store: EventStore = store if store is not None else InMemoryEventStore()
        self.bus: EventBus = bus if bus is not None else EventBus()
        self.retries = retries
        self._handlers: dict[type[Command], Handler] = {}
        for command_class, handler in (handlers or {}).items():
            self._register(command_class, handler)

    def handles(self, command_class: type[Command]) -> Callable[[H], H]:
        """Register the decorated function as the handler of ``command_class``."""

        def register(handler: H) -> H:
            self._register(command_class, handler)
            return handler

        return register

    def _register(self, command_class: type[Command], handler: Handler) -> None:
        if not (isinstance(command_class, type) and issubclass(command_class, Command)):
            raise TypeError(f"handlers are keyed by Command subclasses, not {command_class!r}")
        if not callable(handler):
            raise TypeError(f"the handler of {command_class.__name__} is not callable: {handler!r}")
        if command_class in self._handlers:
            raise ValueError(
                f"{command_class.__name__} already has a handler "
                f"({_name(self._handlers[command_class])}); a command has exactly one"
            )
        self._handlers[command_class] = handler

    def _handler_for(self, command_class: type[Command]) -> Handler:
        for cls in command_class.__mro__:
            handler = self._handlers.get(cls)
            if handler is not None:
                return handler
        raise UnknownCommand(command_class, [c.__name__ for c in self._handlers])

    async def dispatch(
        self,
        command: Command,
        *,
        metadata: Mapping[str, Any] | None = None,
        wait_for: Iterable[str] = (),
        wait_timeout: float = 10.0,
    ) -> list[Event]:
        """Run ``command``'s handler and commit every aggregate it touched in one transaction.

        On a :class:`ConcurrencyError` the handler runs again on fresh loads, up to ``retries``
        times. The committed events are published, then returned in commit order; an empty list
        means nothing changed.

        ``wait_for`` names subscriptions (in this process or another) to wait for before
        returning, until each has handled the committed events: read your own writes.

        :raises UnknownCommand: no handler is registered for the command's class.
        :raises ConcurrencyError: still conflicting after every retry.
        :raises SubscriptionTimeout: a ``wait_for`` subscription did not get there in
            ``wait_timeout`` seconds, or failed (the events are committed all the same).
        """
        if isinstance(wait_for, str):
            raise TypeError(f"wait_for takes subscription names, e.g. [{wait_for!r}]")
        if not isinstance(command, Command):
            raise TypeError(f"dispatch() takes a Command instance, not {type(command).__name__}")
        handler = self._handler_for(type(command))
        envelope = _envelope(command, metadata)
        attempt = 0
        while True:
            uow = UnitOfWork(self.store)
            try:
                with uow.active():
                    result = handler(command)
                    if inspect.isawaitable(result):
                        result = await result
                committed, touched = await _commit(uow, result, envelope)
                break
            except ConcurrencyError:
                if attempt >= self.retries:
                    raise
                attempt += 1
                await anyio.sleep(_backoff(attempt))
        if committed:
            await self.bus.publish(committed)
            for aggregate, appended in touched:
                repository = uow.repository_of(aggregate)
                if repository is not None:
                    await repository.snapshot_if_due(aggregate, appended)
            if wait_for:
                last = max(event.position or 0 for event in committed)
                await wait_for_subscriptions(self.store, wait_for, last, timeout=wait_timeout)
        return committed


def _backoff(attempt: int) -> float:
    """No wait before the first retry, then jittered and growing, capped at 50 ms."""
    return 0.0 if attempt == 1 else random.uniform(0, min(0.05, 0.001 * 2**attempt))


def _envelope(command: Command, metadata: Mapping[str, Any] | None) -> dict[str, Any]:
    """Metadata every event of this dispatch carries: the command's, the caller's, and the
    causation and correlation ids."""
    given = dict(metadata) if metadata else {}
    correlation = given.get("correlation_id") or command.metadata.get("correlation_id")
    return {
        **command.metadata,
        **given,
        "causation_id": str(command.command_id),
        "correlation_id": str(correlation or command.command_id),
    }


async def _commit(
    uow: UnitOfWork, result: object, envelope: dict[str, Any]
) -> tuple[list[Event], list[tuple[Aggregate, int]]]:
    """Append every touched aggregate's pending events in one atomic store call."""
    touched = [(a, a._pending_list()) for a in uow.aggregates]
    touched = [(a, pending) for a, pending in touched if pending]
    _check_result(uow, result, [pending for _, pending in touched])
    if not touched:
        return [], []
    appends = [
        StreamAppend(a.stream_id, pending, a.version - len(pending)) for a, pending in touched
    ]
    committed = await uow.store.append_streams(appends, metadata=envelope)
    counts = [(a, len(pending)) for a, pending in touched]
    for aggregate, _ in touched:
        aggregate._forget_pending()
    return committed, counts


def _check_result(uow: UnitOfWork, result: object, pending: list[list[Event]]) -> None:
    """Refuse a handler result that would silently lose events: ones no unit of work tracks."""
    if isinstance(result, Aggregate):
        if result.pending_events and uow.get(result.stream_id) is not result:
            raise UncommittedEventsError(
                f"the handler returned {result.stream_id} with {len(result.pending_events)} "
                "pending events, but it was not loaded or added through a Repository on the "
                "flow's store during this dispatch, so they would be lost. Create it with "
                "repository.add(...) or load it with repository.load(...)."
            )
    elif isinstance(result, list | tuple) and any(isinstance(e, Event) for e in result):
        tracked = {id(e) for events in pending for e in events}
        stray = [e for e in result if isinstance(e, Event) and id(e) not in tracked]
        if stray:
            raise UncommittedEventsError(
                f"the handler returned {len(stray)} event(s) ({stray[0].event_type}, ...) that are "
                "not pending on any aggregate loaded or added through a Repository on the flow's "
                "store during this dispatch, so they would be lost. Record events on an "
                "aggregate you got from repository.load(...) or repository.add(...)."
            )
