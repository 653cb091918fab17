"""OpenTelemetry traces and metrics for eventuality: the ``eventuality[otel]`` extra.

Nothing is traced until :func:`instrument` is called; until then (and after
:func:`uninstrument`) the core's hook sites cost one ``is None`` test each, and
``import eventuality`` never imports OpenTelemetry. Instrumentation is explicit rather than
switched on by a configured provider: deciding at every dispatch whether a real provider has
appeared would cost on the hot path, and an application knows when it wants telemetry.

Spans (names and attributes follow the semantic conventions where one applies: database client
spans for store calls, messaging "process" spans for subscriptions):

- ``dispatch {Command}`` (INTERNAL): ``eventuality.command.type``, ``eventuality.command.id``,
  ``eventuality.dispatch.streams``, ``eventuality.dispatch.retries`` (a ``retry`` span event per
  conflict), ``eventuality.dispatch.events``, ``eventuality.dispatch.outcome``, ``error.type``.
- ``append`` (CLIENT): ``db.system.name`` (and the older ``db.system``), ``db.operation.name``,
  ``eventuality.streams``, ``eventuality.events``. Its context is written into every appended
  event's metadata with the global propagator (``traceparent``, ``tracestate``): the event's
  creation context.
- ``load {AggregateType}`` (INTERNAL): ``eventuality.aggregate.type``, ``eventuality.stream.id``,
  ``eventuality.load.events_replayed``, ``eventuality.load.from_snapshot``,
  ``eventuality.aggregate.version``.
- ``publish`` (INTERNAL, when the bus has listeners): ``eventuality.events``,
  ``eventuality.publish.failures``; a child
  ``listener {name}`` span with the exception marks each listener failure.
- ``process {subscription}`` (CONSUMER), one per handled event of a Subscription, Projection or
  Reaction: a child of the event's creation context (so the handling continues the trace of the
  request that appended it, in any process) and linked to it; ``messaging.*`` attributes.
- ``process_batch {subscription}`` (CONSUMER), one per pass that handled events: linked to
  each event's creation context (the conventions' way for a span that handles many messages);
  ``messaging.batch.message_count``, ``eventuality.subscription.positions``.

Metrics: ``eventuality.dispatch.duration`` (histogram, s, by command type and outcome),
``eventuality.append.duration`` (histogram, s), ``eventuality.events.appended``,
``eventuality.dispatch.conflicts``, ``eventuality.dispatch.retries`` (counters), and the
observable gauges ``eventuality.subscription.lag`` (positions behind the end of the log as last
seen in this process) and ``eventuality.subscription.lag.time`` (s: how old the newest event the
subscription handled is, while it is behind; 0 when caught up).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from opentelemetry import metrics, propagate, trace
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.trace import Link, SpanKind

from . import _telemetry
from ._otel_consumers import (
    MAX_LINKS,
    Current,
    Lag,
    Pass,
    current_batch,
    event_attributes,
    failed,
    messaging_attributes,
    type_name,
)
from .errors import AggregateExists, ConcurrencyError
from .messages import Command, Event

if TYPE_CHECKING:
    from .bus import EventBus
    from .repository import Repository
    from .stores.base import EventStore, StreamAppend
    from .subscriptions import Subscription

__all__ = ["instrument", "instrumented", "uninstrument"]

_SCOPE = "eventuality"


def instrument(
    *, tracer_provider: trace.TracerProvider | None = None,
    meter_provider: metrics.MeterProvider | None = None,
) -> None:  # fmt: skip
    """Trace and measure dispatches, appends, loads, publishes and subscriptions from now on.

    Without providers, the global ones are used (``trace.set_tracer_provider``, also when set
    later). Calling it again replaces the earlier instrumentation.
    """
    from . import __version__

    tracer = trace.get_tracer(_SCOPE, __version__, tracer_provider)
    meter = metrics.get_meter(_SCOPE, __version__, meter_provider)
    _telemetry.hooks = _Instrumentation(tracer, meter)


def uninstrument() -> None:
    """Stop tracing and measuring: the hook sites are back to one ``is None`` test each."""
    _telemetry.hooks = None


def instrumented() -> bool:
    """Whether :func:`instrument` is in force."""
    return isinstance(_telemetry.hooks, _Instrumentation)


@dataclass(slots=True)
class _Dispatch:
    """What one dispatch span learns while its dispatch runs."""

    command: Command
    entered: bool = False
    retries: int = 0
    appended: bool = False
    streams: list[str] = field(default_factory=list)


_dispatching: ContextVar[_Dispatch | None] = ContextVar("eventuality_otel_dispatch", default=None)
_publishing: ContextVar[list[int] | None] = ContextVar("eventuality_otel_publish", default=None)


class _Instrumentation:
    """The hooks :mod:`eventuality._telemetry` calls while instrumentation is on."""

    def __init__(self, tracer: trace.Tracer, meter: metrics.Meter) -> None:
        self.tracer = tracer
        self.dispatch_duration = meter.create_histogram(
            "eventuality.dispatch.duration", unit="s", description="Duration of Flow.dispatch."
        )
        self.append_duration = meter.create_histogram(
            "eventuality.append.duration", unit="s", description="Duration of store appends."
        )
        self.appended = meter.create_counter(
            "eventuality.events.appended", unit="{event}", description="Events appended."
        )
        self.conflicts = meter.create_counter(
            "eventuality.dispatch.conflicts",
            unit="{conflict}",
            description="Concurrency conflicts met by dispatches (retried or not).",
        )
        self.retries = meter.create_counter(
            "eventuality.dispatch.retries",
            unit="{retry}",
            description="Handler runs repeated after a concurrency conflict.",
        )
        self.lag = Lag()
        meter.create_observable_gauge(
            "eventuality.subscription.lag",
            callbacks=[self._observe_positions],
            unit="{position}",
            description="Positions between the end of the log and a subscription's position.",
        )
        meter.create_observable_gauge(
            "eventuality.subscription.lag.time",
            callbacks=[self._observe_seconds],
            unit="s",
            description="Age of the newest event a subscription handled while it is behind.",
        )

    # --- Flow.dispatch ------------------------------------------------------------------------

    def opens_dispatch(self, command: Command) -> bool:
        current = _dispatching.get()
        if current is not None and current.command is command and not current.entered:
            current.entered = True  # the call dispatch() below makes: run it, no second span
            return False
        return True

    async def dispatch(
        self, dispatch: Callable[..., Awaitable[list[Event]]], command: Command, **options: Any
    ) -> list[Event]:
        kind = type(command).__name__
        record = _Dispatch(command)
        attributes = {"eventuality.command.type": kind}
        token = _dispatching.set(record)
        started = time.perf_counter()
        outcome = "error"
        error: BaseException | None = None
        with self.tracer.start_as_current_span(
            f"dispatch {kind}",
            kind=SpanKind.INTERNAL,
            attributes={**attributes, "eventuality.command.id": str(command.command_id)},
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                events = await dispatch(command, **options)
            except ConcurrencyError as exc:
                error = exc
                if not isinstance(exc, AggregateExists):
                    outcome = "conflict"
                    self.conflicts.add(1, attributes)
                raise
            except Exception as exc:
                error = exc
                raise
            except BaseException:
                outcome = "cancelled"
                raise
            else:
                outcome = _outcome(events, record)
                span.set_attribute("eventuality.dispatch.events", len(events))
                return events
            finally:
                _dispatching.reset(token)
                span.set_attribute("eventuality.dispatch.outcome", outcome)
                span.set_attribute("eventuality.dispatch.retries", record.retries)
                if record.streams:
                    span.set_attribute("eventuality.dispatch.streams", record.streams)
                measured = {**attributes, "eventuality.dispatch.outcome": outcome}
                if error is not None:
                    measured["error.type"] = failed(span, error)
                self.dispatch_duration.record(time.perf_counter() - started, measured)

    def retrying(self, command: Command, error: Exception, attempt: int) -> None:
        attributes = {"eventuality.command.type": type(command).__name__}
        self.retries.add(1, attributes)
        self.conflicts.add(1, attributes)
        current = _dispatching.get()
        if current is not None and current.command is command:
            current.retries = attempt
        trace.get_current_span().add_event("retry", _conflict_attributes(error, attempt))

    # --- the store ------------------------------------------------------------------------------

    async def append(
        self,
        store: EventStore,
        append: Callable[..., Awaitable[list[Event]]],
        appends: Sequence[StreamAppend],
        metadata: Mapping[str, Any] | None,
        options: dict[str, Any],
    ) -> list[Event]:
        system = _db_system(store)
        streams = [item.stream_id for item in appends]
        count = sum(len(item.events) for item in appends)
        with self.tracer.start_as_current_span(
            "append",
            kind=SpanKind.CLIENT,
            attributes={
                "db.system.name": system,
                "db.system": system,
                "db.operation.name": "append",
                "eventuality.streams": streams,
                "eventuality.events": count,
            },
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            if count and span.is_recording():
                carrier: dict[str, Any] = {}
                propagate.inject(carrier)
                if carrier:  # a creation context the caller gave (metadata=) is kept as it is
                    metadata = {**carrier, **metadata} if metadata else carrier
            measured = {"db.system.name": system}
            started = time.perf_counter()
            try:
                stored = await append(appends, metadata, options["command"], options["checkpoint"])
            except BaseException as exc:
                if isinstance(exc, Exception):
                    measured["error.type"] = failed(span, exc)
                raise
            finally:
                self.append_duration.record(time.perf_counter() - started, measured)
        if stored:
            self.appended.add(len(stored), measured)
            self.lag.saw_end(store, max(event.position or 0 for event in stored))
        current = _dispatching.get()
        if current is not None and not current.appended:
            current.appended, current.streams = True, streams
        return stored

    async def load(
        self, repository: Repository[Any], rebuild: Awaitable[Any], stream_id: str
    ) -> Any:
        kind = repository.aggregate_class.aggregate_type
        with self.tracer.start_as_current_span(
            f"load {kind}",
            kind=SpanKind.INTERNAL,
            attributes={"eventuality.aggregate.type": kind, "eventuality.stream.id": stream_id},
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                aggregate = await rebuild
            except Exception as exc:
                failed(span, exc)
                raise
            span.set_attribute("eventuality.aggregate.version", aggregate.version)
            return aggregate

    def replayed(self, events: int, from_snapshot: bool) -> None:
        span = trace.get_current_span()
        span.set_attribute("eventuality.load.events_replayed", events)
        span.set_attribute("eventuality.load.from_snapshot", from_snapshot)

    # --- the bus --------------------------------------------------------------------------------

    async def publish(
        self, bus: EventBus, publish: Callable[[list[Event]], Awaitable[None]], events: list[Event]
    ) -> None:
        if not events or not bus.statistics().listeners:
            return await publish(events)  # nothing to deliver: no span
        failures = [0]
        token = _publishing.set(failures)
        try:
            with self.tracer.start_as_current_span(
                "publish",
                kind=SpanKind.INTERNAL,
                attributes={"eventuality.events": len(events)},
            ) as span:
                await publish(events)
                span.set_attribute("eventuality.publish.failures", failures[0])
        finally:
            _publishing.reset(token)

    def listener_failed(self, event: Event, listener: str, error: Exception) -> None:
        failures = _publishing.get()
        if failures is not None:
            failures[0] += 1
        with self.tracer.start_as_current_span(
            f"listener {listener}",
            kind=SpanKind.INTERNAL,
            attributes={"eventuality.listener": listener, **event_attributes(event)},
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            failed(span, error)

    # --- subscriptions --------------------------------------------------------------------------

    def handling(self, subscription: Subscription, event: Event) -> AbstractContextManager[None]:
        creation = propagate.extract(event.metadata) if event.metadata else None
        created = trace.get_current_span(creation).get_span_context() if creation else None
        links = [Link(created)] if created is not None and created.is_valid else []
        batch = current_batch.get()
        if batch is not None:
            batch.count += 1
            batch.first = batch.first if batch.first is not None else event.position
            batch.last = event.position
            if links and len(batch.links) < MAX_LINKS:
                batch.links.append(links[0])
        self.lag.handled(subscription, event)
        span = self.tracer.start_span(
            f"process {subscription.name}",
            context=creation if links else None,
            kind=SpanKind.CONSUMER,
            attributes={
                **messaging_attributes(subscription),
                "messaging.operation.type": "process",
                "messaging.operation.name": "process",
                "messaging.message.id": str(event.event_id),
                **event_attributes(event),
            },
            links=links,
        )
        return Current(span)

    def passing(self, subscription: Subscription, horizon: int) -> AbstractContextManager[None]:
        self.lag.saw_end(subscription.store, horizon)
        self.lag.watch(subscription)
        return Pass(self.tracer, subscription)

    def _observe_positions(self, options: CallbackOptions) -> Iterable[Observation]:
        if _telemetry.hooks is not self:
            return []
        return [Observation(behind, attrs) for attrs, behind, _ in self.lag.observe()]

    def _observe_seconds(self, options: CallbackOptions) -> Iterable[Observation]:
        if _telemetry.hooks is not self:
            return []
        return [
            Observation(seconds, attrs)
            for attrs, _, seconds in self.lag.observe()
            if seconds is not None
        ]


def _conflict_attributes(error: Exception, attempt: int) -> dict[str, Any]:
    attributes: dict[str, Any] = {"eventuality.attempt": attempt, "error.type": type_name(error)}
    if isinstance(error, ConcurrencyError):
        attributes["eventuality.stream.id"] = error.stream_id
        if error.expected_version is not None:
            attributes["eventuality.expected_version"] = error.expected_version
        if error.actual_version is not None:
            attributes["eventuality.actual_version"] = error.actual_version
    return attributes


def _outcome(events: list[Event], record: _Dispatch) -> str:
    """How a dispatch that returned ended: committed events, nothing changed, a repeat of an
    earlier dispatch (returned without an append), or joined a Reaction's unit of work."""
    if not events:
        return "unchanged"
    if events[0].position is None:
        return "joined"
    return "committed" if record.appended else "repeat"


_SYSTEMS = {
    "MemoryBackend": "eventuality.memory",
    "SQLiteBackend": "sqlite",
    "PostgresBackend": "postgresql",
}


def _db_system(store: EventStore) -> str:
    """``db.system.name`` of a store: ``sqlite``, ``postgresql`` (the conventions' values), or
    ``eventuality.memory``; another backend may say with a ``db_system`` attribute."""
    backend = store._backend
    named = getattr(backend, "db_system", None)
    if isinstance(named, str):
        return named
    return _SYSTEMS.get(type(backend).__name__, "other_sql")
