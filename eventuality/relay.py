"""The outbound relay: the global log, in order, to a message broker, checkpointed.

A :class:`Relay` is a :class:`~eventuality.Subscription` whose handler is a broker. It turns each
event into an :class:`OutboundMessage` (a subject from its type, the event id as the message id,
the envelope in headers, the payload as JSON), hands them a batch at a time to a
:class:`Publisher`, and moves its checkpoint only after the broker confirmed the whole batch. A
crash repeats at most the unconfirmed batch and ``checkpoint_every`` events; JetStream drops the
repeats by message id, RabbitMQ consumers can by ``message_id``. The publishers for NATS
JetStream and RabbitMQ live in :mod:`eventuality.brokers`.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import aclosing, suppress
from dataclasses import dataclass
from types import TracebackType
from typing import Literal, Protocol, Self

import anyio
from anyio.streams.memory import MemoryObjectSendStream

from ._progress import SubscriptionStatistics, back_off, progress_of
from .errors import BrokerUnavailable, StoreError
from .messages import Event
from .stores.base import EventStore
from .subscriptions import OnUnknown, Subscription

__all__ = [
    "ClosingPublisher",
    "OutboundMessage",
    "Publisher",
    "Relay",
    "RelayStatistics",
    "SubjectOf",
    "subject_token",
]

logger = logging.getLogger("eventuality")

#: A function from an event to its subject (NATS) or routing key (RabbitMQ).
SubjectOf = Callable[[Event], str]

_TOKEN_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_~")
_HEADER_SAFE = frozenset(chr(c) for c in range(0x20, 0x7F)) - {"%"}
_SUBJECT = re.compile(r"[^\s.*>]+(?:\.[^\s.*>]+)*")


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    """One event as a broker message.

    ``headers`` carry the envelope, each value percent-encoded UTF-8 where it holds anything
    but printable ASCII or ``%`` (``urllib.parse.unquote`` reads any of them):
    ``Eventuality-Event-Type``, ``-Event-Id``, ``-Schema-Version``, ``-Position``,
    ``-Occurred-At`` (ISO 8601), ``-Aggregate-Id`` and ``-Aggregate-Version`` (when it has
    them), ``-Correlation-Id``, ``-Causation-Id`` and ``-Metadata`` (all of it, as JSON) when
    set, and ``Content-Type: application/json``.
    """

    #: The NATS subject or RabbitMQ routing key.
    subject: str
    #: The event id: JetStream's ``Nats-Msg-Id``, RabbitMQ's ``message_id``.
    message_id: str
    headers: Mapping[str, str]
    #: The payload (the event's own fields) as JSON.
    body: bytes
    #: The event's position in the global log.
    position: int


#: What the relay's reader hands its publisher: a batch, a skipped position, or the error that
#: ended the reading.
_Item = list[OutboundMessage] | int | Exception


class Publisher(Protocol):
    """What a :class:`Relay` hands its batches to (see :mod:`eventuality.brokers`)."""

    async def publish_batch(self, messages: Sequence[OutboundMessage]) -> None:
        """Publish ``messages`` in order; return only once the broker confirmed every one.

        :raises BrokerUnavailable: not all were confirmed, and retrying later may work (the
            relay publishes the same messages again).
        :raises BrokerError: the broker refused them for good: the relay stops.
        """
        ...

    async def aclose(self) -> None:
        """Close the connection, if the publisher opened it."""
        ...


class ClosingPublisher:
    """``async with publisher:`` closes it on the way out (a base for the publishers here)."""

    async def aclose(self) -> None:
        """Close the connection, if the publisher opened it."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


@dataclass(frozen=True, slots=True)
class RelayStatistics(SubscriptionStatistics):
    """A relay's progress: ``position`` is the last event the broker confirmed."""

    #: The end of the log when the relay last looked (at each pass and each retry).
    log_end: int = 0
    #: ``log_end - position``: events committed but not yet confirmed by the broker.
    lag: int = 0
    #: The broker failure the relay is waiting out, ``None`` when publishing goes through.
    broker_error: BaseException | None = None


def subject_token(text: str) -> str:
    """``text`` as one token of a subject or routing key: letters, digits, ``-``, ``_`` and
    ``~`` stay, every other character (``.``, spaces, ``*``, ``>``, ``%`` ...) is
    percent-encoded, so distinct texts stay distinct. ``urllib.parse.unquote`` reverses it.

    :raises ValueError: ``text`` is empty.
    """
    if not isinstance(text, str) or not text:
        raise ValueError(f"a subject token needs a non-empty string, not {text!r}")
    if _TOKEN_SAFE.issuperset(text):
        return text
    return "".join(
        c if c in _TOKEN_SAFE else "".join(f"%{b:02X}" for b in c.encode()) for c in text
    )


def _check_subject(subject: str, what: str) -> str:
    if not isinstance(subject, str) or not _SUBJECT.fullmatch(subject):
        raise ValueError(
            f"{what} must be dot-separated non-empty tokens without spaces, '*' or '>' (NATS "
            f"subjects and routing keys), not {subject!r}. Escape names with subject_token()."
        )
    return subject


def _header_value(text: str) -> str:
    if _HEADER_SAFE.issuperset(text):
        return text
    return "".join(
        c if c in _HEADER_SAFE else "".join(f"%{b:02X}" for b in c.encode()) for c in text
    )


def _headers(event: Event) -> dict[str, str]:
    """The envelope of ``event`` as message headers (see :class:`OutboundMessage`)."""
    headers = {
        "Content-Type": "application/json",
        "Eventuality-Event-Type": _header_value(event.event_type),
        "Eventuality-Event-Id": str(event.event_id),
        "Eventuality-Schema-Version": str(type(event).__event_version__),
        "Eventuality-Position": str(event.position),
        "Eventuality-Occurred-At": event.occurred_at.isoformat(),
    }
    if event.aggregate_id is not None:
        headers["Eventuality-Aggregate-Id"] = _header_value(event.aggregate_id)
        headers["Eventuality-Aggregate-Version"] = str(event.aggregate_version)
    metadata = event.metadata
    if metadata:
        for key, name in (("correlation_id", "Correlation-Id"), ("causation_id", "Causation-Id")):
            value = metadata.get(key)
            if isinstance(value, str):
                headers[f"Eventuality-{name}"] = _header_value(value)
        text = json.dumps(metadata, separators=(",", ":"), allow_nan=False)
        headers["Eventuality-Metadata"] = _header_value(text)
    return headers


def _never(event: Event) -> None:
    raise AssertionError("a Relay hands its events to its publisher")


class Relay(Subscription):
    """Publishes the global log, in order, through ``publisher`` and keeps a checkpoint under
    ``name``; the checkpoint moves only past events the broker confirmed.

    ``run()`` waits out a broker that is down or restarting: it keeps the unconfirmed batch,
    logs a warning, and publishes it again after a back-off (0.1 s doubling to 5 s), for as
    long as it takes; ``statistics()`` shows the error and the lag meanwhile. It never skips an
    event. A refusal for good (:class:`~eventuality.BrokerError`), or a ``subject`` function
    that fails, stops it with that error. ``catch_up()`` raises broker failures at once.

    :param subject: the subject (routing key) of an event; default
        ``f"{prefix}.{subject_token(event.event_type)}"``. Each must be dot-separated tokens
        without spaces, ``*`` or ``>``: build yours with :func:`subject_token`.
    :param batch: events per publish; the broker confirms a batch as a whole.
    :param checkpoint_every: write the checkpoint once this many confirmed events have not been
        written yet (and always when caught up, stopped or cancelled).
    :param event_types: only these (classes, with subclasses, or type names); ``None``: all.
    :param on_unknown: as for :class:`~eventuality.Subscription`.
    :param personal_data: an event with personal data (fields marked
        :class:`~eventuality.PersonalData`) stops the relay with a ``ValueError`` by default
        (``"refuse"``), nothing of it published: a broker's copy is plaintext beyond the reach of
        ``forget_subject``. Leave such events out with ``event_types``, or pass ``"publish"`` to
        publish them knowingly.
    """

    def __init__(
        self,
        store: EventStore,
        name: str,
        publisher: Publisher,
        *,
        subject: SubjectOf | None = None,
        prefix: str = "events",
        event_types: Iterable[type[Event] | str] | None = None,
        checkpoint_every: int = 1000,
        on_unknown: OnUnknown = "stop",
        batch: int = 256,
        personal_data: Literal["refuse", "publish"] = "refuse",
    ) -> None:
        if not callable(getattr(publisher, "publish_batch", None)):
            raise TypeError(
                f"Relay {name!r} needs a publisher with an async publish_batch(messages) (see "
                f"eventuality.brokers), not {publisher!r}"
            )
        if subject is not None and not callable(subject):
            raise TypeError(f"subject must be a function of an event, not {subject!r}")
        if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
            raise ValueError(f"batch must be an int of at least 1, not {batch!r}")
        _check_subject(prefix, "prefix")
        if personal_data not in ("refuse", "publish"):
            raise ValueError(f'personal_data must be "refuse" or "publish", not {personal_data!r}')
        super().__init__(
            store,
            name,
            _never,
            event_types=event_types,
            checkpoint_every=checkpoint_every,
            on_unknown=on_unknown,
        )
        self.publisher = publisher
        self.prefix = prefix
        self.batch = batch
        self._subject_of = subject
        self.personal_data = personal_data
        self._subjects: dict[str, str] = {}  # event type -> default subject
        self._unsaved = 0
        self._log_end = 0
        self._broker_error: BaseException | None = None
        self._retrying = False

    def statistics(self) -> RelayStatistics:
        base = super().statistics()
        position = base.position
        log_end = max(self._log_end, position)
        return RelayStatistics(
            name=base.name,
            position=position,
            checkpoint=base.checkpoint,
            handled=base.handled,
            running=base.running,
            error=base.error,
            log_end=log_end,
            lag=log_end - position,
            broker_error=self._broker_error,
        )

    def message(self, event: Event) -> OutboundMessage:
        """``event`` as the relay publishes it.

        :raises ValueError: the subject function returned an invalid subject, or the event
            carries personal data and ``personal_data="refuse"``.
        """
        cls = type(event)
        if cls.__personal_fields__ and self.personal_data == "refuse":
            raise ValueError(
                f"Relay {self.name!r}: the {event.event_type} event at position {event.position} "
                f"holds personal data ({', '.join(sorted(cls.__personal_fields__))}); nothing of "
                "it was published. A broker's copy is plaintext that forget_subject cannot "
                "erase. Leave such events out with event_types=..., or pass "
                'personal_data="publish" to publish them knowingly.'
            )
        if self._subject_of is None:
            subject = self._subjects.get(event.event_type)
            if subject is None:
                subject = f"{self.prefix}.{subject_token(event.event_type)}"
                self._subjects[event.event_type] = subject
        else:
            subject = self._subject_of(event)
            _check_subject(
                subject,
                f"Relay {self.name!r}: the subject for the {event.event_type} event at position "
                f"{event.position}",
            )
        return OutboundMessage(
            subject=subject,
            message_id=str(event.event_id),
            headers=_headers(event),
            body=cls.__pydantic_serializer__.to_json(event, include=cls.__payload_include__),
            position=event.position or 0,
        )

    async def run(self) -> None:
        """As :meth:`Subscription.run`; a broker failure that may pass is waited out too."""
        self._retrying = True
        try:
            await super().run()
        finally:
            self._retrying = False

    async def _pass(self) -> int:
        self._log_end = max(self._log_end, await self.store.last_position())
        return await super()._pass()

    async def _handle_until_end(self) -> int:
        """Publish batches while the next one is read and built (one ahead, in a task of its
        own), so building overlaps the broker's confirms; the order stays the log's."""
        handled = 0
        send, receive = anyio.create_memory_object_stream[_Item](1)
        failure: Exception | None = None
        try:
            async with anyio.create_task_group() as group:
                group.start_soon(self._read_ahead, send)
                async with receive:
                    async for item in receive:
                        if isinstance(item, Exception):  # raised after what came before it
                            failure = item
                            break
                        if isinstance(item, int):  # an unknown type, skipped: move past it
                            self._position = max(self._position, item)
                            continue
                        try:
                            handled += await self._flush(item)
                        except Exception as exc:
                            failure = exc
                            break
                group.cancel_scope.cancel()
            if failure is not None:
                raise failure
        except BaseException:
            with anyio.CancelScope(shield=True):
                try:
                    await self._save()
                except Exception as exc:  # the error on its way out says more
                    logger.warning("relay %r could not save its checkpoint: %r", self.name, exc)
            raise
        with anyio.CancelScope(shield=True):
            await self._save()
        return handled

    async def _read_ahead(self, send: MemoryObjectSendStream[_Item]) -> None:
        """Send the log as batches of messages (and skipped positions), then the error that
        ended the reading, if any; never raises one itself."""
        batch: list[OutboundMessage] = []
        with suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
            async with send:
                try:
                    async with aclosing(self._events()) as events:
                        async for event in events:
                            if isinstance(event, int):
                                if batch:
                                    await send.send(batch)
                                    batch = []
                                await send.send(event)
                                continue
                            try:
                                batch.append(self.message(event))
                            except Exception as exc:
                                self._handler_error = exc
                                raise
                            if len(batch) >= self.batch:
                                await send.send(batch)
                                batch = []
                except Exception as exc:
                    if batch:  # the checkpoint stops just before the event that failed
                        await send.send(batch)
                    await send.send(exc)
                    return
                if batch:
                    await send.send(batch)

    async def _flush(self, batch: list[OutboundMessage]) -> int:
        """Publish ``batch`` until the broker confirms it, then move the position past it."""
        if not batch:
            return 0
        await self._publish(batch)
        self._position = batch[-1].position
        self._handled += len(batch)
        self._unsaved += len(batch)
        progress_of(self.store).report(self.name, self._position)
        if self._unsaved >= self.checkpoint_every:
            await self._save()
        return len(batch)

    async def _publish(self, batch: list[OutboundMessage]) -> None:
        attempt = 0
        while True:
            try:
                await self.publisher.publish_batch(batch)
            except BrokerUnavailable as exc:
                if not self._retrying:
                    self._handler_error = exc
                    raise
                attempt += 1
                self._broker_error = exc
                with suppress(StoreError):  # only for the lag; the store may be down too
                    self._log_end = max(self._log_end, await self.store.last_position())
                await back_off(self.name, exc, attempt, f"publishing {len(batch)} event(s) again")
                continue
            except Exception as exc:
                self._handler_error = exc
                raise
            self._broker_error = None
            return

    async def _save(self) -> None:
        await super()._save()
        self._unsaved = 0
