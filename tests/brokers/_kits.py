"""The real brokers the inbound tests talk to, behind one small interface per broker: a
fresh stream or queue per test, a way to send, to count what the broker still holds, and to
read the dead letters. Tests skip, saying why, when a broker is unreachable."""

import os
import socket
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Any, Protocol
from urllib.parse import urlsplit

import pytest

from eventuality import Command, CommandSource
from eventuality.inbound import COMMAND_HEADER, REASON_HEADER

NATS_URL = os.environ.get("EVENTUALITY_TEST_NATS_URL", "nats://127.0.0.1:4222")
RABBITMQ_URL = os.environ.get("EVENTUALITY_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")


def _reachable(url: str, port: int) -> bool:
    parts = urlsplit(url)
    try:
        socket.create_connection((parts.hostname or "127.0.0.1", parts.port or port), 2).close()
    except OSError:
        return False
    return True


requires_nats = pytest.mark.skipif(
    not _reachable(NATS_URL, 4222),
    reason=f"NATS is unreachable at {NATS_URL} (set EVENTUALITY_TEST_NATS_URL)",
)
requires_rabbitmq = pytest.mark.skipif(
    not _reachable(RABBITMQ_URL, 5672),
    reason=f"RabbitMQ is unreachable at {RABBITMQ_URL} (set EVENTUALITY_TEST_RABBITMQ_URL)",
)
BROKERS = [
    pytest.param("nats", marks=requires_nats),
    pytest.param("rabbitmq", marks=requires_rabbitmq),
]


class Kit(Protocol):
    """One test's stream or queue on one broker."""

    def source(self, **options: Any) -> CommandSource: ...
    async def send(self, command: Command, message_id: str) -> None: ...
    async def send_raw(
        self, message_id: str | None, type_name: str | None, body: bytes
    ) -> None: ...
    async def held(self) -> int:
        """Messages the broker still holds for the consumer (not acknowledged): count it
        when no consumer runs."""

    async def waiting(self) -> int:
        """Messages not handed over to any consumer yet."""

    async def dead_letters(self) -> list[tuple[str | None, str]]:
        """(message id, reason) of each dead letter, in order."""

    def child_args(self) -> list[str]:
        """How a child process makes the same source (see _inbound_child)."""


class NatsKit:
    def __init__(self, nc: Any, tag: str) -> None:
        self.nc = nc
        self.js = nc.jetstream()
        self.stream = f"EVT_{tag}"
        self.subject = f"evt.{tag}.commands"
        self.durable = f"svc_{tag}"

    def source(self, **options: Any) -> CommandSource:
        from eventuality.brokers.nats_inbound import JetStreamCommandSource

        options.setdefault("fetch_timeout", 0.3)
        return JetStreamCommandSource(
            NATS_URL, stream=self.stream, subject=self.subject, durable=self.durable, **options
        )

    async def send(self, command: Command, message_id: str) -> None:
        from eventuality.brokers.nats_inbound import send_command

        await send_command(self.js, self.subject, command, message_id=message_id)

    async def send_raw(self, message_id: str | None, type_name: str | None, body: bytes) -> None:
        headers = {"x": "1"}
        if message_id is not None:
            headers["Nats-Msg-Id"] = message_id
        if type_name is not None:
            headers[COMMAND_HEADER] = type_name
        await self.js.publish(self.subject, body, headers=headers)

    async def held(self) -> int:
        import nats.js.errors

        try:
            info = await self.js.consumer_info(self.stream, self.durable)
        except nats.js.errors.NotFoundError:
            return (await self.js.stream_info(self.stream)).state.messages
        return int(info.num_pending or 0) + int(info.num_ack_pending or 0)

    async def waiting(self) -> int:
        info = await self.js.consumer_info(self.stream, self.durable)
        return int(info.num_pending or 0)

    async def dead_letters(self) -> list[tuple[str | None, str]]:
        import nats.errors

        sub = await self.js.pull_subscribe(f"{self.durable}.dlq", stream=f"{self.stream}_DLQ")
        found: list[tuple[str | None, str]] = []
        while True:
            try:
                msgs = await sub.fetch(100, timeout=0.5)
            except nats.errors.TimeoutError:
                break
            for msg in msgs:
                headers = msg.headers or {}
                found.append((headers.get("Nats-Msg-Id"), headers[REASON_HEADER]))
                await msg.ack()
        await sub.unsubscribe()
        return found

    def child_args(self) -> list[str]:
        return ["nats", NATS_URL, self.stream, self.subject, self.durable]

    async def remove(self) -> None:
        import nats.js.errors

        for name in (self.stream, f"{self.stream}_DLQ"):
            with suppress(nats.js.errors.NotFoundError):
                await self.js.delete_stream(name)


class RabbitKit:
    def __init__(self, connection: Any, channel: Any, tag: str) -> None:
        self.connection = connection
        self.channel = channel
        self.queue = f"evt.{tag}.commands"

    def source(self, **options: Any) -> CommandSource:
        from eventuality.brokers.rabbitmq_inbound import RabbitCommandSource

        options.setdefault("receive_timeout", 0.3)
        return RabbitCommandSource(RABBITMQ_URL, queue=self.queue, **options)

    async def declare(self) -> None:
        """Declare what the source declares, so messages can be sent before it opens."""
        source: Any = self.source()
        await source.open(1)
        await source.close()

    async def send(self, command: Command, message_id: str) -> None:
        from eventuality.brokers.rabbitmq_inbound import send_command

        await send_command(self.channel, self.queue, command, message_id=message_id)

    async def send_raw(self, message_id: str | None, type_name: str | None, body: bytes) -> None:
        import aio_pika

        headers = {} if type_name is None else {COMMAND_HEADER: type_name}
        message = aio_pika.Message(body, headers=headers, message_id=message_id)
        await self.channel.default_exchange.publish(message, routing_key=self.queue)

    async def held(self) -> int:
        queue = await self.channel.declare_queue(self.queue, passive=True)
        return int(queue.declaration_result.message_count)  # unacked ones requeued

    async def waiting(self) -> int:
        return await self.held()  # the ready messages

    async def dead_letters(self) -> list[tuple[str | None, str]]:
        queue = await self.channel.declare_queue(f"{self.queue}.dlq", passive=True)
        found: list[tuple[str | None, str]] = []
        while (message := await queue.get(no_ack=True, fail=False)) is not None:
            reason = message.headers[REASON_HEADER]
            found.append((message.message_id, reason if isinstance(reason, str) else str(reason)))
        return found

    def child_args(self) -> list[str]:
        return ["rabbitmq", RABBITMQ_URL, self.queue]

    async def remove(self) -> None:
        for name in (self.queue, f"{self.queue}.dlq"):
            await self.channel.queue_delete(name)
        await self.channel.exchange_delete(f"{self.queue}.dlx")


@asynccontextmanager
async def open_kit(broker: str) -> AsyncIterator[Any]:
    """A fresh stream or queue on ``broker``, removed afterwards."""
    tag = uuid.uuid4().hex[:12]
    if broker == "nats":
        import nats

        nc = await nats.connect(NATS_URL)
        kit = NatsKit(nc, tag)
        await kit.js.add_stream(name=kit.stream, subjects=[kit.subject])
        try:
            yield kit
        finally:
            await kit.remove()
            await nc.close()
    else:
        import aio_pika

        connection = await aio_pika.connect(RABBITMQ_URL)
        channel = await connection.channel()
        rabbit = RabbitKit(connection, channel, tag)
        await rabbit.declare()
        try:
            yield rabbit
        finally:
            await rabbit.remove()
            await connection.close()
