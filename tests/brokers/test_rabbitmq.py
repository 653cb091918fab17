"""The relay to RabbitMQ, against the real server: every event arrives at least once, persistent,
with its id as message_id, also when RabbitMQ closes the connection mid-run."""

import asyncio
import json
import os
import shutil
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import pytest

from eventuality import BrokerError, InMemoryEventStore, Relay
from tests.brokers._support import Proxy, feed, fill, log_ids
from tests.brokers.conftest import RABBITMQ_URL, requires_rabbitmq, unique_name

pytestmark = requires_rabbitmq

RABBITMQCTL = shutil.which("rabbitmqctl") or "/usr/sbin/rabbitmqctl"
requires_rabbitmqctl = pytest.mark.skipif(
    not os.access(RABBITMQCTL, os.X_OK),
    reason="closing connections from the server side needs rabbitmqctl on this machine",
)


def _publisher(exchange: str, url: str = RABBITMQ_URL, **options: object):
    from eventuality.brokers.rabbitmq import RabbitPublisher

    return RabbitPublisher(url, exchange=exchange, **options)


@asynccontextmanager
async def _bound_queue(exchange: str) -> AsyncIterator[asyncio.Queue[object]]:
    """A queue bound to every routing key of ``exchange`` (declared as the relay does), whose
    messages land in the yielded asyncio queue."""
    import aio_pika

    connection = await aio_pika.connect(RABBITMQ_URL)
    async with connection:
        channel = await connection.channel()
        target = await channel.declare_exchange(exchange, aio_pika.ExchangeType.TOPIC, durable=True)
        queue = await channel.declare_queue(unique_name("queue"), exclusive=True)
        await queue.bind(target, "#")
        received: asyncio.Queue[object] = asyncio.Queue()

        async def take(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            await message.ack()
            await received.put(message)

        await queue.consume(take)
        yield received


async def _drain(received: asyncio.Queue[object], until: set[str]) -> list[object]:
    messages: list[object] = []
    seen: set[str] = set()
    with anyio.fail_after(60):
        while not until <= seen:
            message = await received.get()
            messages.append(message)
            seen.add(message.message_id)
    return messages


async def test_every_event_arrives_persistent_with_its_id_as_message_id(exchange_name: str) -> None:
    async with (
        InMemoryEventStore() as store,
        _bound_queue(exchange_name) as received,
        _publisher(exchange_name) as publisher,
    ):
        await fill(store, 300)

        published = await Relay(store, "out", publisher, batch=64).catch_up()

        ids = await log_ids(store)
        messages = await _drain(received, set(ids))
        event = await anext(store.read_all())
    first = messages[0]
    assert published == 300
    assert [m.message_id for m in messages[:300]] == ids
    assert first.delivery_mode == 2
    assert first.routing_key == "events.relay%2Eticked"
    assert first.content_type == "application/json"
    assert json.loads(first.body) == {"n": 0, "note": ""}
    assert first.headers["Eventuality-Position"] == str(event.position)


@pytest.mark.slow
@requires_rabbitmqctl
async def test_connections_closed_by_rabbitmq_mid_run_lose_nothing(exchange_name: str) -> None:
    name = unique_name("connection")
    publisher = _publisher(
        exchange_name, connect_options={"client_properties": {"connection_name": name}}
    )
    async with (
        InMemoryEventStore() as store,
        _bound_queue(exchange_name) as received,
        publisher,
    ):
        relay = Relay(store, "out", publisher, batch=20)
        closed = 0
        stop = anyio.Event()
        async with anyio.create_task_group() as group:
            group.start_soon(relay.run)
            group.start_soon(feed, store, stop)
            for _ in range(3):
                await anyio.sleep(0.2)
                closed += await anyio.to_thread.run_sync(_close_connections, name)
            stop.set()
            await anyio.sleep(0.05)
            with anyio.fail_after(60):
                while relay.statistics().position < await store.last_position():
                    await anyio.sleep(0.05)
            group.cancel_scope.cancel()

        ids = await log_ids(store)
        messages = await _drain(received, set(ids))

    assert closed >= 1
    assert {m.message_id for m in messages} == set(ids)


def _close_connections(name: str) -> int:
    """Have RabbitMQ close every connection named ``name``; how many it closed."""
    listed = subprocess.run(
        [RABBITMQCTL, "list_connections", "-q", "--no-table-headers", "pid", "client_properties"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    closed = 0
    for line in listed.splitlines():
        if f'"{name}"' in line:
            connection = line.split("\t")[0]
            subprocess.run(
                [RABBITMQCTL, "close_connection", connection, "closed by the relay test"],
                capture_output=True,
                timeout=60,
                check=True,
            )
            closed += 1
    return closed


@pytest.mark.slow
async def test_while_rabbitmq_is_away_the_relay_waits_with_its_lag_in_statistics(
    exchange_name: str, rabbitmq_proxy: Proxy
) -> None:
    url = RABBITMQ_URL.replace(f":{rabbitmq_proxy.port}", f":{rabbitmq_proxy.listen_port}")
    publisher = _publisher(exchange_name, url)
    async with (
        InMemoryEventStore() as store,
        _bound_queue(exchange_name) as received,
        publisher,
    ):
        relay = Relay(store, "out", publisher)
        async with anyio.create_task_group() as group:
            group.start_soon(relay.run)
            await fill(store, 50)
            with anyio.fail_after(30):
                while relay.statistics().position < 50:
                    await anyio.sleep(0.02)
            await rabbitmq_proxy.stop()

            await fill(store, 70, first=50)
            with anyio.fail_after(30):
                while relay.statistics().broker_error is None:
                    await anyio.sleep(0.02)
            waiting = relay.statistics()
            await rabbitmq_proxy.start()
            with anyio.fail_after(30):
                while relay.statistics().position < 120:
                    await anyio.sleep(0.02)
            group.cancel_scope.cancel()

        ids = await log_ids(store)
        messages = await _drain(received, set(ids))

    assert (waiting.position, waiting.log_end, waiting.lag) == (50, 120, 70)
    assert relay.statistics().lag == 0
    assert {m.message_id for m in messages} == set(ids)


async def test_a_missing_exchange_is_refused_when_told_not_to_declare_it() -> None:
    async with (
        InMemoryEventStore() as store,
        _publisher(unique_name("absent"), declare=False) as publisher,
    ):
        await fill(store, 2)

        with pytest.raises(BrokerError, match="no exchange"):
            await Relay(store, "out", publisher).catch_up()


async def test_a_routing_key_longer_than_amqp_allows_is_refused_before_publishing(
    exchange_name: str,
) -> None:
    async with InMemoryEventStore() as store, _publisher(exchange_name) as publisher:
        await fill(store, 2)
        relay = Relay(store, "out", publisher, subject=lambda e: "k" * 256)

        with pytest.raises(BrokerError, match="longer than AMQP's 255 bytes"):
            await relay.catch_up()

        assert await store.get_checkpoint("out") == 0


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"exchange_type": "fanoutish"}, "exchange_type must be"),
        ({"confirm_timeout": 0}, "positive"),
    ],
)
def test_bad_publisher_options_are_refused(options: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        _publisher("x", **options)
