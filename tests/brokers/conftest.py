"""The brokers the relay tests talk to: the machine's NATS (with JetStream) and RabbitMQ, found
and skipped as for the inbound tests (``_kits.py``: ``EVENTUALITY_TEST_NATS_URL``,
``EVENTUALITY_TEST_RABBITMQ_URL``). Every relay test works in a stream or exchange of its own,
removed afterwards, and may put a TCP proxy in front of a broker."""

import uuid
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import pytest

from tests.brokers._kits import NATS_URL, RABBITMQ_URL, requires_nats, requires_rabbitmq
from tests.brokers._support import Proxy

__all__ = ["NATS_URL", "RABBITMQ_URL", "requires_nats", "requires_rabbitmq", "unique_name"]


def address(url: str, port: int) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or port


@pytest.fixture
async def nats_proxy() -> AsyncIterator[Proxy]:
    """A started TCP proxy to the NATS server, stopped after the test."""
    proxy = Proxy(*address(NATS_URL, 4222))
    await proxy.start()
    yield proxy
    await proxy.stop()


@pytest.fixture
async def rabbitmq_proxy() -> AsyncIterator[Proxy]:
    """A started TCP proxy to RabbitMQ, stopped after the test."""
    proxy = Proxy(*address(RABBITMQ_URL, 5672))
    await proxy.start()
    yield proxy
    await proxy.stop()


def unique_name(kind: str) -> str:
    return f"evtest_{kind}_{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def jetstream_name() -> AsyncIterator[str]:
    """A fresh stream name (also its subject prefix), deleted after the test."""
    import nats
    import nats.js.errors

    name = unique_name("stream")
    yield name
    nc = await nats.connect(NATS_URL)
    try:
        await nc.jetstream().delete_stream(name)
    except nats.js.errors.NotFoundError:
        pass
    finally:
        await nc.close()


@pytest.fixture
async def exchange_name() -> AsyncIterator[str]:
    """A fresh exchange name, deleted after the test."""
    import aio_pika

    name = unique_name("exchange")
    yield name
    connection = await aio_pika.connect(RABBITMQ_URL)
    async with connection:
        channel = await connection.channel()
        await channel.exchange_delete(name)
