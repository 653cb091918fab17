"""Publishing a relay's messages to RabbitMQ with aio-pika, with publisher confirms.

Every message is persistent, carries the event id as ``message_id`` and the relay's subject as
its routing key, and is published to one (by default durable, topic) exchange. A batch returns
once RabbitMQ confirmed every message: at least once, since a batch published again after a
lost connection or confirm may repeat messages RabbitMQ had taken; consumers drop repeats by
``message_id``. Bind durable queues before the relay runs: RabbitMQ drops (and confirms) a
message no queue takes.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import BrokerError, BrokerUnavailable
from ..relay import ClosingPublisher, OutboundMessage

try:
    import aio_pika
    import aio_pika.exceptions
    import aiormq.exceptions
    from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractExchange
except ImportError as exc:  # pragma: no cover - the extra is installed in development
    raise ImportError(
        'eventuality.brokers.rabbitmq needs aio-pika: pip install "eventuality[rabbitmq]"'
    ) from exc

__all__ = ["RabbitPublisher"]

logger = logging.getLogger("eventuality")

#: AMQP's limit on a routing key (a short string), in UTF-8 bytes.
MAX_ROUTING_KEY = 255

#: Failures after which publishing again later may work.
_TRANSIENT: tuple[type[BaseException], ...] = (
    OSError,  # ConnectionError and aiormq's AMQPConnectionError among them
    TimeoutError,
    aiormq.exceptions.ConnectionClosed,
    aiormq.exceptions.ChannelInvalidStateError,
    aiormq.exceptions.DeliveryError,  # a nack: RabbitMQ could not take it now
    aiormq.exceptions.AMQPConnectionError,
)


class RabbitPublisher(ClosingPublisher):
    """Publishes to RabbitMQ exchange ``exchange``, declaring it (durable) unless told not to.

    :param url: the AMQP URL; the connection opens on the first batch and again after any
        failure. ``connect_options`` go to ``aio_pika.connect``.
    :param exchange: the exchange; ``""`` is RabbitMQ's default exchange (routing key = queue).
    :param declare: declare the exchange (``exchange_type``, durable) if it does not exist;
        ``False`` only checks that it does.
    :param confirm_timeout: seconds to wait for a batch's confirms.
    """

    def __init__(
        self,
        url: str = "amqp://guest:guest@127.0.0.1:5672/",
        *,
        exchange: str = "eventuality",
        exchange_type: str = "topic",
        declare: bool = True,
        confirm_timeout: float = 10.0,
        connect_options: Mapping[str, Any] | None = None,
    ) -> None:
        if not isinstance(exchange, str) or len(exchange.encode()) > MAX_ROUTING_KEY:
            raise ValueError(f"an exchange name is a string of at most 255 bytes: {exchange!r}")
        try:
            kind = aio_pika.ExchangeType(exchange_type)
        except ValueError:
            kinds = [k.value for k in aio_pika.ExchangeType]
            raise ValueError(
                f"exchange_type must be one of {kinds}, not {exchange_type!r}"
            ) from None
        if not confirm_timeout > 0:
            raise ValueError(f"confirm_timeout must be positive seconds, not {confirm_timeout}")
        self.url = url
        self.exchange = exchange
        self.exchange_type = kind
        self.declare = declare
        self.confirm_timeout = confirm_timeout
        self._options = dict(connect_options or {})
        self._connection: AbstractConnection | None = None
        self._channel: AbstractChannel | None = None
        self._exchange: AbstractExchange | None = None

    def __repr__(self) -> str:
        return f"RabbitPublisher(exchange={self.exchange!r})"

    async def publish_batch(self, messages: Sequence[OutboundMessage]) -> None:
        """Publish ``messages`` in order and wait until RabbitMQ confirmed each.

        :raises BrokerUnavailable: not every message was confirmed; publish them again.
        :raises BrokerError: RabbitMQ refused them (no such exchange, a routing key too long).
        """
        if not messages:
            return
        for m in messages:
            if len(m.subject.encode()) > MAX_ROUTING_KEY:
                raise BrokerError(
                    f"routing key {m.subject[:60]!r}... is longer than AMQP's 255 bytes; nothing "
                    "was published. Give the relay a shorter subject function."
                )
        try:
            exchange = await self._connect()
            sent = [
                exchange.publish(
                    aio_pika.Message(
                        m.body,
                        headers=dict(m.headers),
                        message_id=m.message_id,
                        content_type="application/json",
                        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    ),
                    routing_key=m.subject,
                    mandatory=False,
                )
                for m in messages
            ]
            async with asyncio.timeout(self.confirm_timeout):
                await asyncio.gather(*sent)
        except _TRANSIENT as exc:
            await self._drop()
            raise BrokerUnavailable(
                f"RabbitMQ at {_without_password(self.url)} did not confirm {len(messages)} "
                f"message(s) for exchange {self.exchange!r}: {type(exc).__name__}: {exc}"
            ) from exc
        except aiormq.exceptions.AMQPError as exc:
            await self._drop()
            raise BrokerError(
                f"RabbitMQ refused messages for exchange {self.exchange!r}: {exc}"
            ) from exc

    async def aclose(self) -> None:
        """Close the connection (it opens again on the next batch)."""
        await self._drop()

    async def _connect(self) -> AbstractExchange:
        connection = self._connection
        if self._exchange is not None and connection is not None and not connection.is_closed:
            return self._exchange
        await self._drop()
        connection = await aio_pika.connect(self.url, **self._options)
        try:
            channel = await connection.channel(publisher_confirms=True)
            exchange: AbstractExchange
            if self.exchange == "":
                exchange = channel.default_exchange
            elif self.declare:
                exchange = await channel.declare_exchange(
                    self.exchange, self.exchange_type, durable=True
                )
            else:
                try:
                    exchange = await channel.get_exchange(self.exchange, ensure=True)
                except aiormq.exceptions.ChannelNotFoundEntity:
                    raise BrokerError(
                        f"RabbitMQ has no exchange {self.exchange!r}: declare it or pass "
                        "declare=True"
                    ) from None
        except BaseException:
            await connection.close()
            raise
        self._connection, self._channel, self._exchange = connection, channel, exchange
        return exchange

    async def _drop(self) -> None:
        connection, self._connection, self._channel, self._exchange = (
            self._connection,
            None,
            None,
            None,
        )
        if connection is not None and not connection.is_closed:
            try:
                await connection.close()
            except Exception as exc:  # closing a broken connection: nothing more to do
                logger.debug("closing the RabbitMQ connection failed: %r", exc)


def _without_password(url: str) -> str:
    return re.sub(r"//([^:/@]*):[^@/]*@", r"//\1:***@", url)
