"""What only the JetStream source promises: leases renewed while a command takes longer than
``ack_wait``, and clear refusals of a durable consumer or dead-letter subject that cannot work."""

import asyncio

import anyio
import pytest

from eventuality import CommandConsumer, EventStore
from tests.brokers._kits import NatsKit, open_kit, requires_nats
from tests.brokers.test_inbound_consumer import todo_flow
from tests.domain import CreateTodo

pytestmark = [requires_nats, pytest.mark.parametrize("store_kind", ["memory"])]


@pytest.fixture
async def kit() -> NatsKit:  # type: ignore[misc]
    async with open_kit("nats") as opened:
        yield opened


@pytest.mark.slow
async def test_a_command_longer_than_ack_wait_keeps_its_lease_and_runs_once(
    kit: NatsKit, store: EventStore
) -> None:
    runs = 0

    async def slow(command: CreateTodo) -> None:
        nonlocal runs
        runs += 1
        await anyio.sleep(2.5)  # past ack_wait: without in_progress, JetStream redelivers

    await kit.send(CreateTodo(id="t1", description="x"), message_id="m-1")
    consumer = CommandConsumer(
        todo_flow(store, slow), kit.source(ack_wait=1.0), commands=[CreateTodo]
    )

    async with consumer:
        while consumer.statistics().acknowledged < 1:
            await anyio.sleep(0.05)

    assert runs == 1
    assert consumer.statistics().received == 1
    assert await kit.held() == 0


async def test_a_shared_durable_allowing_fewer_unacked_messages_than_max_in_flight_is_refused(
    kit: NatsKit, store: EventStore
) -> None:
    first = CommandConsumer(todo_flow(store), kit.source(), commands=[CreateTodo], max_in_flight=2)
    async with first:
        pass
    second = CommandConsumer(todo_flow(store), kit.source(), commands=[CreateTodo], max_in_flight=5)

    with pytest.raises(ValueError, match="max_ack_pending"):
        await second.run()


async def test_a_dead_letter_subject_inside_the_command_stream_is_refused(
    kit: NatsKit, store: EventStore
) -> None:
    source = kit.source(dead_letter_subject=kit.subject)
    consumer = CommandConsumer(todo_flow(store), source, commands=[CreateTodo])

    with pytest.raises(ValueError, match="would come back as commands"):
        await consumer.run()


async def test_the_private_pending_queue_the_source_drains_after_a_cancel_still_exists(
    kit: NatsKit, store_kind: str
) -> None:
    # JetStreamCommandSource hands back what a cancelled fetch's pull request delivered late
    # through nats-py's pending queue (it has no public way). nats-py is pinned to < 3 for it;
    # this test fails the day the attribute moves, instead of redeliveries quietly slowing down.
    await kit.js.add_stream(name=f"{kit.stream}_PQ", subjects=[f"{kit.subject}.pq"])
    sub = await kit.js.pull_subscribe(f"{kit.subject}.pq", durable=f"{kit.durable}_pq")
    try:
        assert isinstance(sub._sub._pending_queue, asyncio.Queue)
    finally:
        await sub.unsubscribe()
