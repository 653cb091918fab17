"""Commands in from RabbitMQ: a queue, consumed with manual acknowledgements, as a
:class:`CommandSource`.

``RabbitCommandSource`` consumes ``queue`` on a channel whose prefetch is the
:class:`CommandConsumer`'s ``max_in_flight``. With ``declare`` (the default) it declares, durable:
the queue, with ``x-dead-letter-exchange`` set to a dead-letter exchange; that exchange (direct);
and a dead-letter queue bound to it. A message the consumer dead-letters is published there
(persistent, with publisher confirms) with the reason in the ``eventuality-dead-letter-reason``
header, then acknowledged: RabbitMQ's own dead-lettering (``basic.reject``) cannot carry a
reason, but messages RabbitMQ itself dead-letters (expired, over a quorum queue's delivery
limit) land in the same queue. A message handed back for a retry is ``reject``-ed with requeue
(a failed attempt: it counts toward a quorum queue's delivery limit); one handed back at
shutdown is ``nack``-ed with requeue (not a failure). Unsettled messages return to the queue
when the channel closes, as RabbitMQ does for any consumer that goes away.

:func:`send_command` publishes a command in the format the consumer reads, from any service.
Needs ``pip install "eventuality[rabbitmq]"`` (aio-pika) and asyncio.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from .._inbound_format import COMMAND_HEADER, REASON_HEADER, encode_command
from ..messages import Command

try:
    import aio_pika
    from aio_pika.abc import (
        AbstractChannel,
        AbstractConnection,
        AbstractExchange,
        AbstractIncomingMessage,
        AbstractQueue,
    )
except ModuleNotFoundError as exc:  # pragma: no cover - depends on the environment
    raise ModuleNotFoundError(
        f"eventuality.brokers.rabbitmq_inbound needs aio-pika ({exc}): "
        'pip install "eventuality[rabbitmq]"'
    ) from exc

__all__ = ["RabbitCommandSource", "RabbitDelivery", "send_command"]

#: The header carrying the queue a dead-lettered message was read from.
QUEUE_HEADER = "eventuality-queue"
logger = logging.getLogger("eventuality")


class RabbitDelivery:
    """One AMQP delivery, settled on the channel that received it."""

    __slots__ = ("_message", "_source")

    def __init__(self, source: RabbitCommandSource, message: AbstractIncomingMessage) -> None:
        self._source = source
        self._message = message

    @property
    def message_id(self) -> str | None:
        return self._message.message_id

    @property
    def command_type(self) -> str | None:
        value = self._message.headers.get(COMMAND_HEADER)
        if isinstance(value, bytes):
            return value.decode("utf-8", "replace")
        return value if isinstance(value, str) else None

    @property
    def body(self) -> bytes:
        return self._message.body

    @property
    def redelivered(self) -> bool:
        """Whether RabbitMQ delivered this message before (to this or another consumer)."""
        return bool(self._message.redelivered)

    async def ack(self) -> None:
        await self._message.ack()

    async def retry(self) -> None:
        await self._message.reject(requeue=True)

    async def release(self) -> None:
        await self._message.nack(requeue=True)

    async def dead_letter(self, reason: str) -> None:
        message = self._message
        headers: dict[str, Any] = dict(message.headers)
        headers[REASON_HEADER] = reason
        headers[QUEUE_HEADER] = self._source.queue
        copy = aio_pika.Message(
            message.body,
            headers=headers,
            message_id=message.message_id,
            content_type=message.content_type,
            correlation_id=message.correlation_id,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        )
        await self._source.dead_letter_exchange_object.publish(
            copy, routing_key=self._source.queue, timeout=self._source.request_timeout
        )
        await message.ack()

    async def in_progress(self) -> None:
        """RabbitMQ holds a delivery for as long as its channel lives: nothing to renew."""


class RabbitCommandSource:
    """Commands from the RabbitMQ queue ``queue``; instances of one service may share it (each
    message goes to one of them).

    ``connection`` is an AMQP URL (the source connects, robustly, and disconnects) or a
    connected aio-pika connection (left open; the source opens a channel of its own). Dead
    letters go to the exchange ``dead_letter_exchange`` (default ``f"{queue}.dlx"``) and the
    queue ``dead_letter_queue`` (default ``f"{queue}.dlq"``). ``declare=False`` declares nothing
    and expects all three to exist. ``receive_timeout`` bounds each wait for a message, so
    stopping takes at most that long.
    """

    keep_alive: float | None = None

    def __init__(
        self,
        connection: str | AbstractConnection = "amqp://guest:guest@127.0.0.1:5672/",
        *,
        queue: str,
        dead_letter_exchange: str | None = None,
        dead_letter_queue: str | None = None,
        declare: bool = True,
        receive_timeout: float = 1.0,
        request_timeout: float = 10.0,
    ) -> None:
        if not isinstance(queue, str) or not queue:
            raise ValueError(f"queue must be a non-empty string, not {queue!r}")
        if receive_timeout <= 0 or request_timeout <= 0:
            raise ValueError("receive_timeout and request_timeout must be > 0 seconds")
        self.connection = connection
        self.queue = queue
        self.dead_letter_exchange = dead_letter_exchange or f"{queue}.dlx"
        self.dead_letter_queue = dead_letter_queue or f"{queue}.dlq"
        self.declare = declare
        self.receive_timeout = float(receive_timeout)
        self.request_timeout = float(request_timeout)
        self._connection: AbstractConnection | None = None
        self._owned = False
        self._channel: AbstractChannel | None = None
        self._dlx: AbstractExchange | None = None
        self._queue: AbstractQueue | None = None
        self._tag: str | None = None
        self._arrived: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()

    def __repr__(self) -> str:
        return f"RabbitCommandSource(queue={self.queue!r})"

    @property
    def dead_letter_exchange_object(self) -> AbstractExchange:
        if self._dlx is None:
            raise RuntimeError(f"{self!r} is not open")
        return self._dlx

    async def open(self, max_in_flight: int) -> None:
        if isinstance(self.connection, str):
            self._connection = await aio_pika.connect_robust(self.connection)
            self._owned = True
        else:
            self._connection, self._owned = self.connection, False
        try:
            channel = self._channel = await self._connection.channel(publisher_confirms=True)
            await channel.set_qos(prefetch_count=max_in_flight)
            if self.declare:
                self._dlx = await channel.declare_exchange(
                    self.dead_letter_exchange, aio_pika.ExchangeType.DIRECT, durable=True
                )
                dlq = await channel.declare_queue(self.dead_letter_queue, durable=True)
                await dlq.bind(self._dlx, routing_key=self.queue)
                self._queue = await channel.declare_queue(
                    self.queue,
                    durable=True,
                    arguments={
                        "x-dead-letter-exchange": self.dead_letter_exchange,
                        "x-dead-letter-routing-key": self.queue,
                    },
                )
            else:
                self._dlx = await channel.get_exchange(self.dead_letter_exchange)
                self._queue = await channel.get_queue(self.queue)
            self._arrived = asyncio.Queue()
            self._tag = await self._queue.consume(self._arrived.put, no_ack=False)
        except BaseException:
            await self.close()
            raise

    async def receive(self, limit: int) -> Sequence[RabbitDelivery]:
        if self._queue is None:
            raise RuntimeError(f"{self!r} is not open")
        try:
            first = await asyncio.wait_for(self._arrived.get(), self.receive_timeout)
        except TimeoutError:
            return []
        messages = [first]
        while len(messages) < limit and not self._arrived.empty():
            messages.append(self._arrived.get_nowait())
        return [RabbitDelivery(self, message) for message in messages]

    async def close(self) -> None:
        queue, tag, self._queue, self._tag = self._queue, self._tag, None, None
        channel, self._channel, self._dlx = self._channel, None, None
        connection, self._connection = self._connection, None
        try:
            if queue is not None and tag is not None and channel and not channel.is_closed:
                await queue.cancel(tag)
        except Exception as exc:  # closing the channel below ends the consumer too
            logger.debug("cancelling the consumer of %r failed: %s", self.queue, exc)
        try:
            if channel is not None and not channel.is_closed:
                await channel.close()  # RabbitMQ requeues whatever is still unacknowledged
        finally:
            if connection is not None and self._owned and not connection.is_closed:
                await connection.close()


async def send_command(
    channel: AbstractChannel,
    routing_key: str,
    command: Command,
    *,
    exchange: str = "",
    message_id: str | None = None,
    type_name: str | None = None,
    headers: dict[str, Any] | None = None,
    timeout: float | None = None,
) -> None:
    """Publish ``command`` (persistent, confirmed when ``channel`` has publisher confirms, as
    aio-pika's channels do by default) in the format :class:`CommandConsumer` reads.

    With the default exchange, ``routing_key`` is the queue's name. ``message_id`` (default:
    the command's id) is the AMQP ``message_id`` and the idempotency key: send a retry with
    the same id and the consumer's flow dispatches it once.
    """
    name, body = encode_command(command, type_name=type_name)
    sent = dict(headers or {})
    sent[COMMAND_HEADER] = name
    message = aio_pika.Message(
        body,
        headers=sent,
        message_id=message_id or str(command.command_id),
        content_type="application/json",
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
    )
    target = channel.default_exchange if not exchange else await channel.get_exchange(exchange)
    await target.publish(message, routing_key=routing_key, timeout=timeout)
