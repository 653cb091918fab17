"""Relay throughput: events/s the Relay publishes with broker confirms, beside the raw client.

For each broker (NATS JetStream, RabbitMQ) and round: ``--events`` events in an in-memory store
are published by a :class:`~eventuality.Relay` (reading the log, building messages, publishing
``--batch`` at a time, waiting for every confirm, moving its checkpoint), then the same messages,
built beforehand, by the raw client with the same confirm discipline (JetStream: ``publish_async``
with ``Nats-Msg-Id``, every ack of a batch awaited; RabbitMQ: persistent messages on a confirming
channel, every confirm of a batch awaited, a durable queue bound so that messages are stored).
The two take turns going first; each measurement gets a fresh stream, exchange and queue, removed
afterwards. Prints the median of each and the ratio relay / raw (1.0: the relay costs nothing
over the client).

    python benchmarks/relay.py                 # 20,000 events, 5 rounds
    python benchmarks/relay.py --quick         # a smoke run: 2,000 events, 1 round
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence

from eventuality import Event, InMemoryEventStore, OutboundMessage, Publisher, Relay

NATS_URL = os.environ.get("EVENTUALITY_TEST_NATS_URL", "nats://127.0.0.1:4222")
RABBITMQ_URL = os.environ.get("EVENTUALITY_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")


class OrderPlaced(Event):
    order_id: str
    amount: int
    note: str


async def _filled(count: int) -> InMemoryEventStore:
    store = InMemoryEventStore()
    await store.open()
    for start in range(0, count, 500):
        events = [
            OrderPlaced(order_id=f"o{n}", amount=n, note="x" * 40)
            for n in range(start, min(start + 500, count))
        ]
        await store.append(f"Order-{start}", events)
    return store


async def _messages(store: InMemoryEventStore, prefix: str) -> list[OutboundMessage]:
    relay = Relay(store, "prepare", _Nothing(), prefix=prefix)
    return [relay.message(event) async for event in store.read_all()]


class _Nothing:
    async def publish_batch(self, messages: Sequence[OutboundMessage]) -> None:
        pass

    async def aclose(self) -> None:
        pass


async def _relay_rate(
    store: InMemoryEventStore, publisher: Publisher, prefix: str, batch: int
) -> float:
    relay = Relay(store, f"bench-{uuid.uuid4().hex[:6]}", publisher, prefix=prefix, batch=batch)
    started = time.perf_counter()
    published = await relay.catch_up()
    return published / (time.perf_counter() - started)


async def nats_round(count: int, batch: int, order: tuple[str, str]) -> tuple[float, float]:
    import nats

    from eventuality.brokers.nats import JetStreamPublisher

    store = await _filled(count)
    nc = await nats.connect(NATS_URL)
    js = nc.jetstream()
    rates: dict[str, float] = {}
    try:
        for kind in order:
            name = f"bench_{kind}_{uuid.uuid4().hex[:8]}"
            await js.add_stream(name=name, subjects=[f"{name}.>"])
            try:
                if kind == "relay":
                    async with JetStreamPublisher(
                        NATS_URL, stream=name, subjects=[f"{name}.>"]
                    ) as publisher:
                        rates["relay"] = await _relay_rate(store, publisher, name, batch)
                else:
                    messages = await _messages(store, name)
                    started = time.perf_counter()
                    for i in range(0, len(messages), batch):
                        acks = [
                            await js.publish_async(
                                m.subject,
                                m.body,
                                headers={**m.headers, "Nats-Msg-Id": m.message_id},
                                stream=name,
                            )
                            for m in messages[i : i + batch]
                        ]
                        await asyncio.gather(*acks)
                    rates["raw"] = len(messages) / (time.perf_counter() - started)
            finally:
                await js.delete_stream(name)
    finally:
        await nc.close()
        await store.close()
    return rates["relay"], rates["raw"]


async def rabbitmq_round(count: int, batch: int, order: tuple[str, str]) -> tuple[float, float]:
    import aio_pika

    from eventuality.brokers.rabbitmq import RabbitPublisher

    store = await _filled(count)
    connection = await aio_pika.connect(RABBITMQ_URL)
    rates: dict[str, float] = {}
    try:
        admin = await connection.channel()
        for kind in order:
            name = f"bench_{kind}_{uuid.uuid4().hex[:8]}"
            exchange = await admin.declare_exchange(name, aio_pika.ExchangeType.TOPIC, durable=True)
            queue = await admin.declare_queue(name, durable=True)
            await queue.bind(exchange, "#")
            try:
                if kind == "relay":
                    async with RabbitPublisher(RABBITMQ_URL, exchange=name) as publisher:
                        rates["relay"] = await _relay_rate(store, publisher, "events", batch)
                else:
                    messages = await _messages(store, "events")
                    channel = await connection.channel(publisher_confirms=True)
                    target = await channel.get_exchange(name)
                    started = time.perf_counter()
                    for i in range(0, len(messages), batch):
                        await asyncio.gather(
                            *(
                                target.publish(
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
                                for m in messages[i : i + batch]
                            )
                        )
                    rates["raw"] = len(messages) / (time.perf_counter() - started)
                    await channel.close()
            finally:
                await queue.delete(if_unused=False, if_empty=False)
                await exchange.delete()
    finally:
        await connection.close()
        await store.close()
    return rates["relay"], rates["raw"]


BROKERS: dict[str, Callable[[int, int, tuple[str, str]], Awaitable[tuple[float, float]]]] = {
    "nats": nats_round,
    "rabbitmq": rabbitmq_round,
}


async def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--only", choices=sorted(BROKERS), action="append")
    parser.add_argument("--quick", action="store_true", help="2,000 events, 1 round")
    args = parser.parse_args(argv)
    if args.quick:
        args.events, args.rounds = 2_000, 1
    print(f"relay throughput: {args.events} events, batch {args.batch}, {args.rounds} round(s)")
    print(f"{'broker':<10} {'relay ev/s':>12} {'raw ev/s':>12} {'ratio':>7}")
    for broker in args.only or sorted(BROKERS):
        relay, raw = [], []
        for round_ in range(args.rounds):
            print(f"  {broker} round {round_ + 1}/{args.rounds}", file=sys.stderr, flush=True)
            order = ("relay", "raw") if round_ % 2 == 0 else ("raw", "relay")
            relay_rate, raw_rate = await BROKERS[broker](args.events, args.batch, order)
            relay.append(relay_rate)
            raw.append(raw_rate)
        r, w = statistics.median(relay), statistics.median(raw)
        print(f"{broker:<10} {r:>12,.0f} {w:>12,.0f} {r / w:>7.2f}")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
