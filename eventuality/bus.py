"""EventBus: in-process fan-out of committed events to awaitable listeners.

The bus forgets: what it delivers is lost if the process dies before a listener finishes. Read
models and side effects that must never miss an event belong on a durable Subscription.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio

from . import _telemetry
from .messages import Event

__all__ = ["BusStatistics", "EventBus", "Listener"]

logger = logging.getLogger("eventuality")

Listener = Callable[[Any], Awaitable[None] | None]
ErrorHandler = Callable[[Event, Listener, Exception], Awaitable[None] | None]
EventKey = type[Event] | str
L = TypeVar("L", bound=Listener)


@dataclass(frozen=True, slots=True)
class BusStatistics:
    """Counters since the bus was made, for debugging and health checks."""

    listeners: int
    published: int
    deliveries: int
    failures: int


class EventBus:
    """Fans each published batch out to every matching listener, concurrently.

    A listener is an async function of one event, or a plain function (called in the event
    loop, so keep it quick). A key matches by class (subclasses included; ``Event`` matches
    everything) or by ``event_type`` string (a former name in ``__event_aliases__`` too).
    """

    def __init__(
        self,
        listeners: Mapping[EventKey, Sequence[Listener]] | None = None,
        *,
        on_error: ErrorHandler | None = None,
    ) -> None:
        self._entries: list[tuple[EventKey, Listener]] = []
        self._matches: dict[type[Event], tuple[Listener, ...]] = {}
        self.on_error = on_error
        self._published = self._deliveries = self._failures = 0
        for key, items in (listeners or {}).items():
            if callable(items):
                raise TypeError(
                    f"listeners[{key!r}] must be a sequence of listeners; wrap it: [{items!r}]"
                )
            for listener in items:
                self.subscribe(key, listener)

    def subscribe(self, event_type: EventKey, listener: Listener) -> Callable[[], None]:
        """Deliver events matching ``event_type`` to ``listener``; returns an unsubscribe."""
        if not (
            isinstance(event_type, str)
            or (isinstance(event_type, type) and issubclass(event_type, Event))
        ):
            raise TypeError(f"subscribe() takes an Event class or a type name, not {event_type!r}")
        if not callable(listener):
            raise TypeError(f"listener must be callable, not {listener!r}")
        # A bound method is a new object at each access: keep the first equal one, so that a
        # listener subscribed under two keys is one listener, with its events in order.
        listener = next((known for _, known in self._entries if known == listener), listener)
        entry = (event_type, listener)
        self._entries.append(entry)
        self._matches.clear()

        def unsubscribe() -> None:
            for i, known in enumerate(self._entries):
                if known is entry:
                    del self._entries[i]
                    self._matches.clear()
                    return

        return unsubscribe

    def on(self, event_type: EventKey) -> Callable[[L], L]:
        """Decorator form of :meth:`subscribe`."""

        def register(listener: L) -> L:
            self.subscribe(event_type, listener)
            return listener

        return register

    def statistics(self) -> BusStatistics:
        return BusStatistics(
            listeners=len(self._entries),
            published=self._published,
            deliveries=self._deliveries,
            failures=self._failures,
        )

    def _listeners_for(self, cls: type[Event]) -> tuple[Listener, ...]:
        found = self._matches.get(cls)
        if found is None:
            unique: dict[int, Listener] = {}
            for key, listener in self._entries:
                if (
                    key == cls.event_type or key in cls.__event_aliases__
                    if isinstance(key, str)
                    else issubclass(cls, key)
                ):
                    unique.setdefault(id(listener), listener)
            found = self._matches[cls] = tuple(unique.values())
        return found

    async def publish(self, events: Iterable[Event]) -> None:
        """Deliver ``events`` and return when every listener has finished with them.

        Each listener gets its events in order; listeners run concurrently. A listener's failure
        is logged and handed to ``on_error``; it never stops the others.
        """
        telemetry = _telemetry.hooks
        if telemetry is not None:
            return await telemetry.publish(self, self._publish, _telemetry.as_list(events))
        return await self._publish(events)

    async def _publish(self, events: Iterable[Event]) -> None:
        plan: dict[int, tuple[Listener, list[Event]]] = {}
        count = 0
        for event in events:
            count += 1
            for listener in self._listeners_for(type(event)):
                key = id(listener)
                if key in plan:
                    plan[key][1].append(event)
                else:
                    plan[key] = (listener, [event])
        self._published += count
        if not plan:
            return
        if len(plan) == 1:
            listener, batch = next(iter(plan.values()))
            await self._deliver(listener, batch)
            return
        async with anyio.create_task_group() as tg:
            for listener, batch in plan.values():
                tg.start_soon(self._deliver, listener, batch)

    async def _deliver(self, listener: Listener, events: list[Event]) -> None:
        for event in events:
            self._deliveries += 1
            try:
                result = listener(event)
                if inspect.isawaitable(result):
                    await result
            except Exception as exc:
                await self._failed(event, listener, exc)

    async def _failed(self, event: Event, listener: Listener, exc: Exception) -> None:
        self._failures += 1
        if _telemetry.hooks is not None:
            _telemetry.hooks.listener_failed(event, _name(listener), exc)
        logger.error(
            "listener %s failed on %s event %s (aggregate %s, version %s, position %s)",
            _name(listener),
            event.event_type,
            event.event_id,
            event.aggregate_id,
            event.aggregate_version,
            event.position,
            exc_info=exc,
        )
        if self.on_error is None:
            return
        try:
            result = self.on_error(event, listener, exc)
            if inspect.isawaitable(result):
                await result
        except Exception:
            logger.exception("on_error handler %s failed", _name(self.on_error))


def _name(function: Callable[..., Any]) -> str:
    return getattr(function, "__qualname__", None) or repr(function)
