"""CommandConsumer on real brokers (NATS JetStream, RabbitMQ): acknowledgements after the
commit, redeliveries that commit nothing new, dead letters with their reasons, the in-flight
bound, shutdown and cancellation that hand messages back."""

from collections.abc import Callable, Sequence
from typing import Any

import anyio
import pytest

from eventuality import (
    CommandConsumer,
    Event,
    EventBus,
    EventStore,
    Repository,
    StoreConnectionError,
)
from eventuality.inbound import CommandDelivery, CommandSource
from tests.brokers._kits import BROKERS, Kit, NatsKit, open_kit
from tests.brokers.test_inbound_consumer import count_events, todo_flow
from tests.conftest import requires_postgres
from tests.domain import CreateTodo, RenameTodo, Todo

COMMANDS = [CreateTodo, RenameTodo]
FEW_STORES = ["memory", "sqlite-file"]


@pytest.fixture(params=BROKERS)
async def kit(request: pytest.FixtureRequest) -> Any:
    async with open_kit(request.param) as opened:
        yield opened


async def until(condition: Callable[[], bool]) -> None:
    while not condition():
        await anyio.sleep(0.01)


class AckSpy:
    """A source whose deliveries note, when acknowledged, how far the Todo stream is."""

    def __init__(self, source: CommandSource, store: EventStore) -> None:
        self.source = source
        self.store = store
        self.keep_alive = source.keep_alive
        self.versions_at_ack: dict[str | None, int] = {}

    async def open(self, max_in_flight: int) -> None:
        await self.source.open(max_in_flight)

    async def receive(self, limit: int) -> Sequence[CommandDelivery]:
        return [_Spied(self, d) for d in await self.source.receive(limit)]

    async def close(self) -> None:
        await self.source.close()


class _Spied:
    def __init__(self, spy: AckSpy, delivery: CommandDelivery) -> None:
        self.spy = spy
        self.delivery = delivery
        self.message_id = delivery.message_id
        self.command_type = delivery.command_type
        self.body = delivery.body

    async def ack(self) -> None:
        version = await self.spy.store.stream_version(f"Todo-{self.message_id}")
        self.spy.versions_at_ack[self.message_id] = version
        await self.delivery.ack()

    async def retry(self) -> None:
        await self.delivery.retry()

    async def release(self) -> None:
        await self.delivery.release()

    async def dead_letter(self, reason: str) -> None:
        await self.delivery.dead_letter(reason)

    async def in_progress(self) -> None:
        await self.delivery.in_progress()


@pytest.mark.parametrize(
    "store_kind", [*FEW_STORES, pytest.param("postgres", marks=requires_postgres)]
)
async def test_sent_commands_commit_and_are_acknowledged_only_after_their_commit(
    kit: Kit, store: EventStore
) -> None:
    for i in range(3):
        await kit.send(CreateTodo(id=f"t{i}", description=f"#{i}"), message_id=f"t{i}")
    spy = AckSpy(kit.source(), store)
    consumer = CommandConsumer(todo_flow(store), spy, commands=COMMANDS)

    async with consumer:
        await until(lambda: consumer.statistics().acknowledged == 3)

    assert spy.versions_at_ack == {"t0": 1, "t1": 1, "t2": 1}
    assert [(await Repository(Todo, store).load(f"t{i}")).description for i in range(3)] == [
        "#0",
        "#1",
        "#2",
    ]
    assert await kit.held() == 0


@pytest.mark.parametrize("store_kind", FEW_STORES)
async def test_one_message_sent_twice_commits_once(kit: Kit, store: EventStore) -> None:
    command = CreateTodo(id="t1", description="once")
    await kit.send(command, message_id="m-1")
    await kit.send(command, message_id="m-1")  # a sender's retry
    await kit.send(CreateTodo(id="t2", description="after"), message_id="m-2")
    consumer = CommandConsumer(todo_flow(store), kit.source(), commands=COMMANDS)

    async with consumer:
        await until(lambda: consumer.statistics().acknowledged >= 2)
        while await store.stream_version("Todo-t2") == 0 or await kit.held():
            await anyio.sleep(0.01)

    assert await count_events(store) == 2
    assert consumer.statistics().dead_lettered == 0


@pytest.mark.parametrize("store_kind", FEW_STORES)
async def test_a_message_redelivered_after_its_commit_commits_nothing_new(
    kit: Kit, store: EventStore
) -> None:
    hold = True
    published = anyio.Event()

    async def slow_listener(event: Event) -> None:  # after the commit, before the ack
        if hold:
            published.set()
            await anyio.sleep_forever()

    bus = EventBus()
    bus.subscribe(Event, slow_listener)
    flow = todo_flow(store, bus=bus)
    await kit.send(CreateTodo(id="t1", description="x"), message_id="m-1")

    with anyio.CancelScope() as scope:
        async with CommandConsumer(flow, kit.source(), commands=COMMANDS):
            await published.wait()
            scope.cancel()
            await anyio.sleep_forever()
    held_after_cancel = await kit.held()
    hold = False
    consumer = CommandConsumer(flow, kit.source(), commands=COMMANDS)
    async with consumer:
        await until(lambda: consumer.statistics().acknowledged == 1)

    assert held_after_cancel == 1
    assert await count_events(store) == 1
    assert flow.runs == ["t1"]  # type: ignore[attr-defined]
    assert await kit.held() == 0


@pytest.mark.parametrize("store_kind", ["sqlite-file"])
async def test_invalid_and_refused_messages_are_dead_lettered_with_the_reason_once(
    kit: Kit, store: EventStore
) -> None:
    await kit.send_raw("bad-type", "DropTables", b"{}")
    await kit.send_raw("bad-json", "CreateTodo", b"{nope")
    await kit.send_raw("bad-field", "CreateTodo", b'{"id": "t1"}')
    # aio-pika (aiormq) gives every message it publishes an id: only NATS can send none.
    without_id = isinstance(kit, NatsKit)
    if without_id:
        await kit.send_raw(None, "CreateTodo", b'{"id": "t1", "description": "x"}')
    await kit.send(RenameTodo(id="missing", description="x"), message_id="refused")
    consumer = CommandConsumer(todo_flow(store), kit.source(), commands=COMMANDS)

    async with consumer:
        await until(lambda: consumer.statistics().dead_lettered == 4 + without_id)
    dead = dict(await kit.dead_letters())

    assert "unknown command type 'DropTables'" in dead["bad-type"]
    assert "Invalid JSON" in dead["bad-json"]
    assert "description" in dead["bad-field"]
    assert dead["refused"].startswith("AggregateNotFound")
    if without_id:
        assert "no message id" in dead[None]
    assert len(dead) == 4 + without_id
    assert await kit.held() == 0
    assert await count_events(store) == 0
    assert consumer.statistics().retried == 0


@pytest.mark.parametrize("store_kind", ["memory"])
async def test_the_broker_hands_over_no_more_than_max_in_flight_messages(
    kit: Kit, store: EventStore
) -> None:
    running = 0
    peak = 0
    go = anyio.Event()

    async def blocked(command: CreateTodo) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        try:
            await go.wait()
        finally:
            running -= 1

    for i in range(10):
        await kit.send(CreateTodo(id=f"t{i}", description="x"), message_id=f"m-{i}")
    consumer = CommandConsumer(
        todo_flow(store, blocked), kit.source(), commands=COMMANDS, max_in_flight=3
    )

    async with consumer:
        await until(lambda: running == 3)
        waiting_at_broker = await kit.waiting()
        go.set()
        await until(lambda: consumer.statistics().acknowledged == 10)

    assert peak == 3
    assert waiting_at_broker == 7  # the broker handed over three
    assert await count_events(store) == 10


@pytest.mark.parametrize("store_kind", ["sqlite-file"])
async def test_stopping_finishes_the_message_in_flight_and_leaves_the_rest_queued(
    kit: Kit, store: EventStore
) -> None:
    started = anyio.Event()
    go = anyio.Event()

    async def blocked(command: CreateTodo) -> None:
        started.set()
        await go.wait()

    await kit.send(CreateTodo(id="t1", description="x"), message_id="m-1")
    await kit.send(CreateTodo(id="t2", description="x"), message_id="m-2")
    consumer = CommandConsumer(
        todo_flow(store, blocked), kit.source(), commands=COMMANDS, max_in_flight=1
    )

    async with anyio.create_task_group() as tg:
        tg.start_soon(consumer.run)
        await started.wait()
        consumer.stop()
        go.set()

    assert consumer.statistics().acknowledged == 1
    assert await count_events(store) == 1
    assert await kit.held() == 1


@pytest.mark.parametrize("store_kind", ["sqlite-file"])
async def test_a_message_still_in_flight_after_the_grace_period_is_handed_back(
    kit: Kit, store: EventStore
) -> None:
    stuck = True
    started = anyio.Event()

    async def maybe_stuck(command: CreateTodo) -> None:
        if stuck:
            started.set()
            await anyio.sleep_forever()

    flow = todo_flow(store, maybe_stuck)
    await kit.send(CreateTodo(id="t1", description="x"), message_id="m-1")

    async with CommandConsumer(flow, kit.source(), commands=COMMANDS, grace_period=0):
        await started.wait()
    held = await kit.held()
    stuck = False
    consumer = CommandConsumer(flow, kit.source(), commands=COMMANDS)
    async with consumer:
        await until(lambda: consumer.statistics().acknowledged == 1)

    assert held == 1
    assert await store.stream_version("Todo-t1") == 1
    assert await kit.held() == 0


@pytest.mark.parametrize("store_kind", FEW_STORES)
async def test_cancelled_mid_dispatch_the_message_is_not_acknowledged_and_commits_later(
    kit: Kit, store: EventStore
) -> None:
    hold = True
    started = anyio.Event()

    async def blocked(command: CreateTodo) -> None:
        if hold:
            started.set()
            await anyio.Event().wait()

    flow = todo_flow(store, blocked)
    await kit.send(CreateTodo(id="t1", description="x"), message_id="m-1")

    with anyio.move_on_after(60) as scope:  # cancelled below, once the handler is blocked
        async with anyio.create_task_group() as tg:
            tg.start_soon(CommandConsumer(flow, kit.source(), commands=COMMANDS).run)
            await started.wait()
            scope.cancel()
    held = await kit.held()
    committed = await count_events(store)
    hold = False
    consumer = CommandConsumer(flow, kit.source(), commands=COMMANDS)
    async with consumer:
        await until(lambda: consumer.statistics().acknowledged == 1)

    assert (held, committed) == (1, 0)
    assert await store.stream_version("Todo-t1") == 1
    assert await kit.held() == 0


@pytest.mark.parametrize("store_kind", ["sqlite-file"])
async def test_a_transient_failure_goes_back_to_the_broker_and_commits_on_redelivery(
    kit: Kit, store: EventStore
) -> None:
    failures = [StoreConnectionError("the database went away")]

    async def flaky(command: CreateTodo) -> None:
        if failures:
            raise failures.pop()

    await kit.send(CreateTodo(id="t1", description="x"), message_id="m-1")
    consumer = CommandConsumer(todo_flow(store, flaky), kit.source(), commands=COMMANDS)

    async with consumer:
        await until(lambda: consumer.statistics().acknowledged == 1)

    assert consumer.statistics().retried == 1
    assert consumer.statistics().received == 2  # delivered again by the broker
    assert await store.stream_version("Todo-t1") == 1
    assert await kit.dead_letters() == []
    assert await kit.held() == 0
