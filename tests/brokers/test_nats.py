"""The relay to NATS JetStream, against the real server: each event once, in log order, with
its envelope, through crashes, lost connections and a server that is away for a while."""

import json
import random
import signal
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from eventuality import (
    BrokerError,
    EventStore,
    InMemoryEventStore,
    Relay,
    SQLiteEventStore,
)
from tests.brokers._support import Proxy, feed, fill, jetstream_messages, log_ids
from tests.brokers.conftest import NATS_URL, requires_nats

pytestmark = requires_nats

ROOT = Path(__file__).resolve().parents[2]


def _publisher(stream: str, url: str = NATS_URL, **options: object):
    from eventuality.brokers.nats import JetStreamPublisher

    return JetStreamPublisher(url, stream=stream, subjects=[f"{stream}.>"], **options)


async def test_each_event_is_in_the_stream_once_in_log_order_with_its_envelope(
    store: EventStore, jetstream_name: str
) -> None:
    await fill(store, 300, chunk=40)
    publisher = _publisher(jetstream_name)

    async with publisher:
        published = await Relay(store, "out", publisher, prefix=jetstream_name, batch=64).catch_up()

    messages = await jetstream_messages(NATS_URL, jetstream_name)
    events = [e async for e in store.read_all()]
    assert published == 300
    assert [m.headers["Nats-Msg-Id"] for m in messages] == [str(e.event_id) for e in events]
    first, event = messages[0], events[0]
    assert first.subject == f"{jetstream_name}.relay%2Eticked"
    assert json.loads(first.data) == {"n": 0, "note": ""}
    assert first.headers["Eventuality-Event-Type"] == "relay.ticked"
    assert first.headers["Eventuality-Position"] == str(event.position)
    assert first.headers["Eventuality-Occurred-At"] == event.occurred_at.isoformat()


async def test_a_relay_that_publishes_the_log_again_adds_nothing_to_the_stream(
    jetstream_name: str,
) -> None:
    async with InMemoryEventStore() as store, _publisher(jetstream_name) as publisher:
        await fill(store, 200)
        await Relay(store, "first", publisher, prefix=jetstream_name).catch_up()

        again = await Relay(store, "second", publisher, prefix=jetstream_name).catch_up()

        messages = await jetstream_messages(NATS_URL, jetstream_name)
        assert again == 200
        assert [m.headers["Nats-Msg-Id"] for m in messages] == await log_ids(store)


async def test_a_subject_the_stream_does_not_take_stops_the_relay_before_publishing(
    jetstream_name: str,
) -> None:
    async with InMemoryEventStore() as store, _publisher(jetstream_name) as publisher:
        await fill(store, 10)
        relay = Relay(store, "out", publisher, prefix="elsewhere")

        with pytest.raises(BrokerError, match=r"does not take subject 'elsewhere\.relay%2Eticked'"):
            await relay.catch_up()

        assert await store.get_checkpoint("out") == 0


async def test_a_missing_stream_is_refused_when_told_not_to_create_it(jetstream_name: str) -> None:
    async with (
        InMemoryEventStore() as store,
        _publisher(jetstream_name, create_stream=False) as publisher,
    ):
        await fill(store, 3)

        with pytest.raises(BrokerError, match="no stream"):
            await Relay(store, "out", publisher, prefix=jetstream_name).catch_up()


@pytest.mark.slow
async def test_a_relay_killed_at_random_moments_leaves_each_event_once_in_log_order(
    tmp_path: Path, jetstream_name: str
) -> None:
    path = tmp_path / "events.db"
    command = [sys.executable, "-m", "tests.brokers._relay_child", str(path), NATS_URL]
    command.append(jetstream_name)
    rng = random.Random(15)
    kills = 0
    async with SQLiteEventStore(path) as store:
        await fill(store, 10_000)
        for _ in range(10):
            child = subprocess.Popen(
                command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
            target = await _stored(jetstream_name) + rng.randint(50, 1500)
            while child.poll() is None:
                if await _stored(jetstream_name) >= target:
                    await anyio.sleep(rng.uniform(0, 0.02))
                    child.send_signal(signal.SIGKILL)
                    kills += 1
                    break
                await anyio.sleep(0.002)
            _, err = child.communicate()
            assert child.returncode in (0, -signal.SIGKILL), err

        final = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)

        assert final.returncode == 0, final.stderr
        assert kills >= 5
        messages = await jetstream_messages(NATS_URL, jetstream_name)
        assert [m.headers["Nats-Msg-Id"] for m in messages] == await log_ids(store)
        assert [m.sequence for m in messages] == list(range(1, 10_001))


async def _stored(stream: str) -> int:
    import nats
    import nats.js.errors

    nc = await nats.connect(NATS_URL)
    try:
        return (await nc.jetstream().stream_info(stream)).state.messages
    except nats.js.errors.NotFoundError:
        return 0
    finally:
        await nc.close()


@pytest.mark.slow
async def test_connections_closed_by_the_server_mid_run_lose_and_repeat_nothing(
    jetstream_name: str, nats_proxy: Proxy
) -> None:
    proxy = nats_proxy
    publisher = _publisher(jetstream_name, f"nats://127.0.0.1:{proxy.listen_port}")
    async with InMemoryEventStore() as store, publisher:
        relay = Relay(store, "out", publisher, prefix=jetstream_name, batch=20)
        stop = anyio.Event()
        async with anyio.create_task_group() as group:
            group.start_soon(relay.run)
            group.start_soon(feed, store, stop)
            for _ in range(6):
                await anyio.sleep(0.1)
                proxy.cut()
            stop.set()
            await anyio.sleep(0.05)
            with anyio.fail_after(60):
                while relay.statistics().position < await store.last_position():
                    await anyio.sleep(0.05)
            group.cancel_scope.cancel()

        messages = await jetstream_messages(NATS_URL, jetstream_name)
        assert [m.headers["Nats-Msg-Id"] for m in messages] == await log_ids(store)
        assert len(messages) == await store.last_position() > 1000
        assert proxy.connections > 1  # the cuts did break the relay's connections


@pytest.mark.slow
async def test_while_the_server_is_away_the_relay_waits_with_its_lag_in_statistics(
    jetstream_name: str, nats_proxy: Proxy
) -> None:
    proxy = nats_proxy
    publisher = _publisher(jetstream_name, f"nats://127.0.0.1:{proxy.listen_port}")
    async with InMemoryEventStore() as store, publisher:
        relay = Relay(store, "out", publisher, prefix=jetstream_name)
        async with anyio.create_task_group() as group:
            group.start_soon(relay.run)
            await fill(store, 100)
            with anyio.fail_after(30):
                while relay.statistics().position < 100:
                    await anyio.sleep(0.02)
            await proxy.stop()

            await fill(store, 250, first=100)
            with anyio.fail_after(30):
                while relay.statistics().broker_error is None:
                    await anyio.sleep(0.02)
            waiting = relay.statistics()
            await proxy.start()
            with anyio.fail_after(30):
                while relay.statistics().position < 350:
                    await anyio.sleep(0.02)
            group.cancel_scope.cancel()

        assert (waiting.position, waiting.log_end, waiting.lag) == (100, 350, 250)
        assert relay.statistics().broker_error is None
        assert relay.statistics().lag == 0
        messages = await jetstream_messages(NATS_URL, jetstream_name)
        assert [m.headers["Nats-Msg-Id"] for m in messages] == await log_ids(store)
