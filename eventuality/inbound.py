"""Commands in from other services: a broker's messages, dispatched through a Flow.

:class:`CommandConsumer` takes messages from a :class:`CommandSource` (a NATS JetStream consumer,
a RabbitMQ queue: ``eventuality.brokers``), turns each into a Command, dispatches it with the
message id as its idempotency key, and acknowledges the message only once the dispatch has
returned, so only after its events are committed. A broker that delivers a message again (the
consumer crashed before its acknowledgement arrived) gets it acknowledged without a second
commit: the flow recognises the key and returns the first dispatch's events.

The message format, the same on every broker:

- the body is the command's JSON, its own fields only (``command_id`` and ``metadata`` are the
  consumer's to set, as for any input from outside; see ``trust_envelope``);
- the header ``eventuality-command`` names the command type (a key of ``commands``);
- the broker's message id (``Nats-Msg-Id``, AMQP ``message_id``) is the idempotency key. A
  message without one is dead-lettered: a redelivery of it could commit twice.

What happens to a message:

- **invalid** (no id, no or an unknown type, bad JSON, a validation error): dead-lettered with
  the reason, never retried, since no retry could make it valid;
- **refused** (the handler raised: a domain rule said no, an aggregate was missing, the key
  was used for another command): dead-lettered with the reason, never retried;
- **transient** (the store is unreachable or busy, conflicts outlasted the flow's retries, or
  an error type listed in ``transient=``): the consumer waits (jittered, doubling from 0.1 s to
  5 s while failures go on) and hands the message back to the broker for redelivery;
- **the consumer cannot work** (the store is closed or records no commands): the message is
  handed back and :meth:`CommandConsumer.run` raises the error;
- **stopped or cancelled** before its dispatch returned: handed back unacknowledged (or, if even
  that fails, left for the broker to redeliver when its lease runs out). A command whose events
  were committed but whose acknowledgement was lost commits nothing when it comes back.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Self

import anyio
from anyio.abc import TaskGroup, TaskStatus

from ._inbound_format import (
    COMMAND_HEADER,
    REASON_HEADER,
    CommandDelivery,
    CommandSource,
    InvalidCommandMessage,
    command_table,
    decode_command,
    encode_command,
)
from ._progress import retry_delay
from .errors import (
    AggregateExists,
    ConcurrencyError,
    StoreUsageError,
    TransientStoreError,
    UnsupportedOperation,
)
from .flow import Flow
from .messages import TRUSTED_ENVELOPE, Command

__all__ = [
    "COMMAND_HEADER",
    "REASON_HEADER",
    "CommandConsumer",
    "CommandDelivery",
    "CommandSource",
    "ConsumerStatistics",
    "InvalidCommandMessage",
    "decode_command",
    "encode_command",
]

_REASON_LIMIT = 2000
_RELEASE_TIMEOUT = 5.0

logger = logging.getLogger("eventuality")


@dataclass(frozen=True, slots=True)
class ConsumerStatistics:
    """A snapshot of a :class:`CommandConsumer`'s work, for debugging and health checks."""

    received: int
    acknowledged: int
    dead_lettered: int
    retried: int
    released: int
    in_flight: int
    running: bool
    error: BaseException | None


class CommandConsumer:
    """Dispatches the commands a :class:`CommandSource` delivers through ``flow``, acknowledging
    each message only after its dispatch returned (see this module's docstring for what
    happens to each kind of message).

    ``commands`` names the command types it takes: a list of Command classes, each under its
    class name, or a mapping from header value to class. At most ``max_in_flight`` messages are
    being handled at once (the broker is told so: prefetch, ``max_ack_pending``). Stopping gives
    the messages in flight ``grace_period`` seconds to finish; the rest are handed back
    unacknowledged. ``transient`` adds error types (raised by handlers) after which a message
    is retried instead of dead-lettered. ``trust_envelope`` lets a body set ``command_id`` and
    ``metadata`` (only for senders you trust).

    Run it with ``async with consumer:`` (in the background while the block lasts) or ``await
    consumer.run()`` in a task group of your own; :meth:`stop` ends it gracefully.
    """

    def __init__(
        self,
        flow: Flow,
        source: CommandSource,
        *,
        commands: Iterable[type[Command]] | Mapping[str, type[Command]],
        max_in_flight: int = 16,
        grace_period: float = 10.0,
        transient: Iterable[type[BaseException]] = (),
        trust_envelope: bool = False,
        name: str | None = None,
    ) -> None:
        if not isinstance(flow, Flow):
            raise TypeError(f"CommandConsumer takes a Flow, not {type(flow).__name__}")
        if flow.idempotency is None:
            raise ValueError(
                "CommandConsumer needs a Flow that remembers commands: the message id is each "
                "dispatch's idempotency key, so a redelivered message commits nothing new. "
                "Build the Flow without idempotency=None."
            )
        if not isinstance(source, CommandSource):
            raise TypeError(f"source must be a CommandSource, not {type(source).__name__}")
        if isinstance(max_in_flight, bool) or not isinstance(max_in_flight, int):
            raise TypeError(f"max_in_flight must be an int >= 1, not {max_in_flight!r}")
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight must be an int >= 1, not {max_in_flight!r}")
        if not isinstance(grace_period, int | float) or grace_period < 0:
            raise ValueError(f"grace_period must be seconds >= 0, not {grace_period!r}")
        self.flow = flow
        self.source = source
        self.commands = command_table(commands)
        self.max_in_flight = max_in_flight
        self.grace_period = float(grace_period)
        self.name = name or f"commands from {type(source).__name__}"
        extra = tuple(transient)
        for error_type in extra:
            if not (isinstance(error_type, type) and issubclass(error_type, BaseException)):
                raise TypeError(f"transient takes exception classes, not {error_type!r}")
        self._transient: tuple[type[BaseException], ...] = (
            ConcurrencyError, TransientStoreError, *extra,
        )  # fmt: skip
        self._context = TRUSTED_ENVELOPE if trust_envelope else None
        self._counts = dict.fromkeys(("received", "acked", "dead", "retried", "released"), 0)
        self._in_flight = 0
        self._failures = 0  # transient failures in a row: how long to back off
        self._running = False
        self._stopping = False
        self._reading: anyio.CancelScope | None = None
        self._receiving = False
        self._workers: anyio.CancelScope | None = None
        self._idle: anyio.Event | None = None
        self._error: BaseException | None = None
        self._group: TaskGroup | None = None
        self._opened = False
        self._failed_to_start: Exception | None = None

    def statistics(self) -> ConsumerStatistics:
        c = self._counts
        return ConsumerStatistics(
            c["received"], c["acked"], c["dead"], c["retried"], c["released"],
            self._in_flight, self._running, self._error,
        )  # fmt: skip

    def stop(self) -> None:
        """Take no more messages; those in flight get ``grace_period`` seconds to finish."""
        self._stopping = True
        if self._reading is not None and not self._receiving:
            self._reading.cancel()  # waiting for a free slot

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Consume until :meth:`stop` (or cancellation); return once every message taken is
        settled or handed back and the source is closed.

        :raises UnknownCommand: a command type in ``commands`` has no handler in the flow.
        :raises UnsupportedOperation: the flow's store records no commands (no idempotency).
        :raises StoreUsageError: the store cannot be used (closed): the message is handed back.
        """
        if self._running:
            raise RuntimeError(f"{self.name!r} is running already")
        self._check_flow()
        self._running, self._stopping, self._error = True, False, None
        try:
            await self.source.open(self.max_in_flight)
            try:
                self._opened = True
                task_status.started()
                await self._consume()
            finally:
                with anyio.CancelScope(shield=True):
                    await self.source.close()
        except BaseException as exc:
            self._error = self._error or (exc if isinstance(exc, Exception) else None)
            raise
        finally:
            self._running = False
        if self._error is not None:
            raise self._error

    async def aclose(self) -> None:
        """Stop gracefully and wait until the consumer has ended (``async with``'s exit)."""
        self.stop()
        group, self._group = self._group, None
        if group is not None:
            await group.__aexit__(None, None, None)
            if self._error is not None:
                raise self._error

    async def __aenter__(self) -> Self:
        group = anyio.create_task_group()
        await group.__aenter__()
        try:
            await group.start(self._run_in_background)
        except BaseException as exc:
            await group.__aexit__(type(exc), exc, exc.__traceback__)
            raise
        if self._failed_to_start is not None:  # raised here as itself, not in a group
            await group.__aexit__(None, None, None)
            raise self._failed_to_start
        self._group = group
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
        group, self._group = self._group, None
        if group is not None:
            await group.__aexit__(exc_type, exc, tb)
        if exc is None and self._error is not None:
            raise self._error

    async def _run_in_background(self, *, task_status: TaskStatus[None]) -> None:
        self._opened = False
        self._failed_to_start = None
        try:
            await self.run(task_status=task_status)
        except Exception as exc:
            if not self._opened:  # never started: ``async with`` raises it
                self._failed_to_start = exc
                task_status.started()
                return
            logger.exception("command consumer %r stopped on an error", self.name)

    def _check_flow(self) -> None:
        for command_class in self.commands.values():
            self.flow._handler_for(command_class)  # raises UnknownCommand
        store = self.flow._commit_store()
        if store is not None and not store.capabilities.commands:
            store.require("commands", f"{self.name!r} (message ids as idempotency keys)")

    async def _consume(self) -> None:
        slots = anyio.Semaphore(self.max_in_flight)
        async with anyio.create_task_group() as workers:
            self._workers = workers.cancel_scope
            with anyio.CancelScope() as self._reading:
                while not self._stopping:
                    await slots.acquire()
                    limit = 1
                    while limit < self.max_in_flight and slots.value > 0:
                        await slots.acquire()
                        limit += 1
                    # Never cancelled by stop(): a broker may go on delivering to a receive
                    # cut short (a JetStream pull request lives until it expires).
                    self._receiving = True
                    try:
                        deliveries = await self.source.receive(limit)
                    finally:
                        self._receiving = False
                    for _ in range(limit - len(deliveries)):
                        slots.release()
                    for delivery in deliveries:
                        self._counts["received"] += 1
                        self._in_flight += 1
                        if self._stopping:  # arrived after stop(): straight back
                            workers.start_soon(self._hand_back, delivery, slots)
                        else:
                            workers.start_soon(self._handle, delivery, slots)
            # Stopping: let the messages in flight finish, within the grace period.
            with anyio.move_on_after(self.grace_period if self._error is None else 0):
                while self._in_flight:
                    self._idle = anyio.Event()
                    await self._idle.wait()
            workers.cancel_scope.cancel()

    async def _hand_back(self, delivery: CommandDelivery, slots: anyio.Semaphore) -> None:
        try:
            await self._release(delivery)
        finally:
            self._done(slots)

    def _done(self, slots: anyio.Semaphore) -> None:
        self._in_flight -= 1
        slots.release()
        if self._idle is not None and not self._in_flight:
            self._idle.set()

    async def _handle(self, delivery: CommandDelivery, slots: anyio.Semaphore) -> None:
        settled = False
        try:
            try:
                command = decode_command(delivery, self.commands, self._context)
            except InvalidCommandMessage as invalid:
                await self._dead_letter(delivery, str(invalid), "invalid")
                settled = True
                return
            async with anyio.create_task_group() as keeper:
                if self.source.keep_alive:
                    keeper.start_soon(self._keep_alive, delivery, self.source.keep_alive)
                settled = await self._dispatch(delivery, command)
                keeper.cancel_scope.cancel()
        except Exception as exc:  # settling failed (the broker went away): it redelivers
            logger.warning(
                "command consumer %r: could not settle message %s: %s",
                self.name, delivery.message_id, _describe(exc),
            )  # fmt: skip
        finally:
            if not settled:
                await self._release(delivery)
            self._done(slots)

    async def _dispatch(self, delivery: CommandDelivery, command: Command) -> bool:
        """Dispatch and settle; False: hand the message back (the consumer cannot go on)."""
        try:
            await self.flow.dispatch(command, idempotency_key=delivery.message_id)
        except AggregateExists as exc:
            await self._dead_letter(delivery, _describe(exc), "refused")
        except self._transient as exc:
            self._failures += 1
            delay = retry_delay(self._failures)
            logger.warning(
                "command consumer %r: %s %s: %s; handed back for redelivery in %.2f s",
                self.name, type(command).__name__, delivery.message_id, _describe(exc), delay,
            )  # fmt: skip
            await anyio.sleep(delay)
            await delivery.retry()
            self._counts["retried"] += 1
        except (StoreUsageError, UnsupportedOperation) as exc:
            self._error = exc
            self.stop()
            if self._workers is not None:
                self._workers.cancel()
            return False
        except Exception as exc:
            await self._dead_letter(delivery, _describe(exc), "refused")
        else:
            self._failures = 0
            await delivery.ack()
            self._counts["acked"] += 1
        return True

    async def _dead_letter(self, delivery: CommandDelivery, reason: str, kind: str) -> None:
        reason = reason if len(reason) <= _REASON_LIMIT else reason[: _REASON_LIMIT - 3] + "..."
        logger.warning(
            "command consumer %r: message %s %s, dead-lettered: %s",
            self.name, delivery.message_id, kind, reason,
        )  # fmt: skip
        await delivery.dead_letter(reason)
        self._counts["dead"] += 1

    async def _release(self, delivery: CommandDelivery) -> None:
        """Hand back a message whose dispatch did not return, even while being cancelled."""
        with anyio.CancelScope(shield=True), anyio.move_on_after(_RELEASE_TIMEOUT):
            try:
                await delivery.release()
                self._counts["released"] += 1
            except Exception as exc:  # the broker redelivers it once its lease runs out
                logger.warning(
                    "command consumer %r: could not hand back message %s (%s); the broker "
                    "redelivers it when its lease runs out",
                    self.name, delivery.message_id, _describe(exc),
                )  # fmt: skip

    @staticmethod
    async def _keep_alive(delivery: CommandDelivery, every: float) -> None:
        while True:
            await anyio.sleep(every)
            try:
                await delivery.in_progress()
            except Exception as exc:
                logger.debug("keep-alive of message %s failed: %s", delivery.message_id, exc)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"
