"""The consuming side of :mod:`eventuality.otel`: spans for a subscription's handled events
and passes, the lag its gauges report, and the helpers both sides share."""

from __future__ import annotations

import time
import weakref
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode

from .messages import Event

if TYPE_CHECKING:
    from .stores.base import EventStore
    from .subscriptions import Subscription

__all__ = [
    "MAX_LINKS",
    "Batch",
    "Current",
    "Lag",
    "Pass",
    "current_batch",
    "event_attributes",
    "failed",
    "messaging_attributes",
    "type_name",
]

#: At most this many links on a batch span (the SDK's default limit too).
MAX_LINKS = 128

_MESSAGING_SYSTEM = "eventuality"


@dataclass(slots=True)
class Batch:
    """The events one subscription pass handled, for its batch span."""

    links: list[Link] = field(default_factory=list)
    count: int = 0
    first: int | None = None
    last: int | None = None


current_batch: ContextVar[Batch | None] = ContextVar("eventuality_otel_batch", default=None)


class Current:
    """Makes ``span`` current while the block runs, records a failure on it, then ends it."""

    __slots__ = ("_span", "_token")

    def __init__(self, span: Span) -> None:
        self._span = span
        self._token: Token[Any] | None = None

    def __enter__(self) -> None:
        self._token = otel_context.attach(trace.set_span_in_context(self._span))

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._token is not None:
            otel_context.detach(self._token)
        if isinstance(error, Exception):
            failed(self._span, error)
        self._span.end()


class Pass:
    """One subscription pass: collects what its events' spans saw, and on exit, if it handled
    any, records a ``process_batch`` span from the pass's start, linked to their contexts."""

    __slots__ = ("_started", "_subscription", "_token", "_tracer", "batch")

    def __init__(self, tracer: trace.Tracer, subscription: Subscription) -> None:
        self._tracer = tracer
        self._subscription = subscription
        self._started = time.time_ns()
        self.batch = Batch()
        self._token: Token[Batch | None] | None = None

    def __enter__(self) -> None:
        self._token = current_batch.set(self.batch)

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._token is not None:
            current_batch.reset(self._token)
        batch = self.batch
        if not batch.count:
            return
        span = self._tracer.start_span(
            f"process_batch {self._subscription.name}",
            kind=SpanKind.CONSUMER,
            attributes={
                **messaging_attributes(self._subscription),
                "messaging.operation.type": "process",
                "messaging.operation.name": "process_batch",
                "messaging.batch.message_count": batch.count,
                "eventuality.subscription.positions": [batch.first or 0, batch.last or 0],
            },
            links=batch.links,
            start_time=self._started,
        )
        if isinstance(error, Exception):
            failed(span, error)
        span.end()


class Lag:
    """What the lag gauges report: the end of each store's log as last seen in this process
    (appends through it, and subscriptions' passes), and each watched subscription's position
    and the time of the newest event it handled."""

    def __init__(self) -> None:
        self.ends: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()
        self.watched: weakref.WeakSet[Any] = weakref.WeakSet()
        self.newest: weakref.WeakKeyDictionary[Any, float] = weakref.WeakKeyDictionary()

    def saw_end(self, store: EventStore, position: int) -> None:
        if position > self.ends.get(store, 0):
            self.ends[store] = position

    def watch(self, subscription: Subscription) -> None:
        self.watched.add(subscription)

    def handled(self, subscription: Subscription, event: Event) -> None:
        self.newest[subscription] = event.occurred_at.timestamp()

    def observe(self) -> list[tuple[dict[str, Any], int, float | None]]:
        """(attributes, positions behind, seconds behind or None when unknown) per watched
        subscription."""
        now = time.time()
        found = []
        for subscription in list(self.watched):
            position = subscription._position
            behind = max(self.ends.get(subscription.store, 0) - position, 0)
            newest = self.newest.get(subscription)
            seconds = 0.0 if not behind else None if newest is None else max(now - newest, 0.0)
            found.append((messaging_attributes(subscription), behind, seconds))
        return found


def messaging_attributes(subscription: Subscription) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "messaging.system": _MESSAGING_SYSTEM,
        "messaging.destination.subscription.name": subscription.name,
        "messaging.consumer.group.name": subscription.name,
    }
    partition = subscription._partition
    if partition is not None:
        attributes["messaging.destination.partition.id"] = f"{partition[0]}/{partition[1]}"
    return attributes


def event_attributes(event: Event) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "eventuality.event.type": event.event_type,
        "eventuality.event.id": str(event.event_id),
    }
    if event.position is not None:
        attributes["eventuality.event.position"] = event.position
    correlation = event.metadata.get("correlation_id")
    if isinstance(correlation, str):
        attributes["messaging.message.conversation_id"] = correlation
    return attributes


def failed(span: Span, error: BaseException) -> str:
    """Mark ``span`` failed by ``error`` (status, exception event, ``error.type``)."""
    name = type_name(error)
    span.record_exception(error)
    span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
    span.set_attribute("error.type", name)
    return name


def type_name(error: BaseException) -> str:
    cls = type(error)
    return (
        cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
    )
