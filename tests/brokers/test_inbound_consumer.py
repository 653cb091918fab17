"""CommandConsumer against an in-memory source, on every store: what it acknowledges, when,
and what it hands back, dead-letters or retries."""

from collections.abc import Awaitable, Callable

import anyio
import pytest

from eventuality import (
    AggregateNotFound,
    Event,
    EventBus,
    EventStore,
    Flow,
    Repository,
    StoreClosedError,
    StoreConnectionError,
    UnknownCommand,
)
from eventuality.inbound import CommandConsumer
from tests.brokers._memory_source import MemorySource, Message
from tests.domain import CreateTodo, MarkAsCompleted, RenameTodo, Todo

Handler = Callable[[CreateTodo], Awaitable[None]]


def todo_flow(store: EventStore, before: Handler | None = None, bus: EventBus | None = None):
    """A Flow whose CreateTodo handler adds a Todo (after awaiting ``before``, if given)."""
    todos = Repository(Todo, store)
    flow = Flow(store=store, bus=bus)
    runs: list[str] = []

    @flow.handles(CreateTodo)
    async def create(command: CreateTodo) -> None:
        runs.append(command.id)
        if before is not None:
            await before(command)
        await todos.add(id=command.id, description=command.description)

    @flow.handles(RenameTodo)
    async def rename(command: RenameTodo) -> None:
        todo = await todos.load(command.id)  # AggregateNotFound: refused
        todo.rename(command.description)

    flow.runs = runs  # type: ignore[attr-defined]
    return flow


async def count_events(store: EventStore) -> int:
    """How many events the store holds (positions are not a count on every store)."""
    return len([event async for event in store.read_all()])


async def consume_until(consumer: CommandConsumer, done: Callable[[], bool]) -> None:
    async with consumer:
        while not done():
            await anyio.sleep(0.005)


async def test_a_command_commits_and_its_message_is_acknowledged_after_the_commit(
    store: EventStore,
) -> None:
    source = MemorySource()
    seen_at_ack: list[int] = []

    async def on_ack(message: Message) -> None:
        seen_at_ack.append(await store.stream_version("Todo-t1"))

    source.on_ack.append(on_ack)
    source.send(CreateTodo(id="t1", description="from a queue"), message_id="m-1")
    consumer = CommandConsumer(todo_flow(store), source, commands=[CreateTodo])

    await consume_until(consumer, lambda: bool(source.acked))

    assert seen_at_ack == [1]
    assert (await Repository(Todo, store).load("t1")).description == "from a queue"
    assert source.max_in_flight == 16
    assert consumer.statistics().acknowledged == 1


async def test_a_redelivered_message_commits_nothing_new(store: EventStore) -> None:
    source = MemorySource()
    flow = todo_flow(store)
    source.send(CreateTodo(id="t1", description="once"), message_id="m-1")
    source.send(CreateTodo(id="t1", description="once"), message_id="m-1")  # redelivered
    consumer = CommandConsumer(flow, source, commands=[CreateTodo], max_in_flight=1)

    await consume_until(consumer, lambda: len(source.acked) == 2)

    assert await store.stream_version("Todo-t1") == 1
    assert await count_events(store) == 1
    assert flow.runs == ["t1"]  # type: ignore[attr-defined]
    assert source.dead == []


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (Message("m-1", "DeleteEverything", b"{}"), "unknown command type 'DeleteEverything'"),
        (Message("m-2", "CreateTodo", b"{not json"), "Invalid JSON"),
        (Message("m-3", "CreateTodo", b'{"id": "t1"}'), "description"),
        (Message("m-4", "CreateTodo", b'{"id": 1, "description": "x", "extra": 2}'), "extra"),
        (Message("m-5", None, b'{"id": "t1", "description": "x"}'), "eventuality-command"),
        (Message(None, "CreateTodo", b'{"id": "t1", "description": "x"}'), "no message id"),
        (
            Message("m-6", "CreateTodo", b'{"id": "t", "description": "x", "command_id": "a"}'),
            "cannot be set from input",
        ),
    ],
)
async def test_an_invalid_message_is_dead_lettered_with_the_reason_and_not_retried(
    store: EventStore, message: Message, reason: str
) -> None:
    source = MemorySource()
    source.put(message)
    consumer = CommandConsumer(todo_flow(store), source, commands=[CreateTodo])

    await consume_until(consumer, lambda: bool(source.dead))

    assert [m for m, _ in source.dead] == [message]
    assert reason in source.dead[0][1]
    assert source.queue == source.retried == source.acked == []
    assert await count_events(store) == 0


async def test_a_command_the_handler_refuses_is_dead_lettered_with_the_reason(
    store: EventStore,
) -> None:
    source = MemorySource()
    source.send(RenameTodo(id="nobody", description="x"), message_id="m-1")
    consumer = CommandConsumer(todo_flow(store), source, commands=[CreateTodo, RenameTodo])

    await consume_until(consumer, lambda: bool(source.dead))

    reason = source.dead[0][1]
    assert reason.startswith(AggregateNotFound.__name__)
    assert "nobody" in reason
    assert source.queue == source.retried == []


async def test_the_same_message_id_for_another_command_is_dead_lettered(
    store: EventStore,
) -> None:
    source = MemorySource()
    source.send(CreateTodo(id="t1", description="one"), message_id="m-1")
    source.send(CreateTodo(id="t2", description="two"), message_id="m-1")
    consumer = CommandConsumer(todo_flow(store), source, commands=[CreateTodo], max_in_flight=1)

    await consume_until(consumer, lambda: len(source.acked) + len(source.dead) == 2)

    assert len(source.acked) == 1
    assert "IdempotencyKeyReused" in source.dead[0][1]
    assert await store.stream_version("Todo-t2") == 0


async def test_a_transient_failure_hands_the_message_back_and_it_commits_later(
    store: EventStore,
) -> None:
    failures = [StoreConnectionError("the database went away")]

    async def flaky(command: CreateTodo) -> None:
        if failures:
            raise failures.pop()

    source = MemorySource()
    source.send(CreateTodo(id="t1", description="eventually"), message_id="m-1")
    consumer = CommandConsumer(todo_flow(store, flaky), source, commands=[CreateTodo])

    await consume_until(consumer, lambda: bool(source.acked))

    assert [m.message_id for m in source.retried] == ["m-1"]
    assert source.dead == []
    assert await store.stream_version("Todo-t1") == 1


async def test_an_error_type_named_transient_is_retried_not_dead_lettered(
    store: EventStore,
) -> None:
    failures = [ConnectionResetError("the pricing service hung up")]

    async def flaky(command: CreateTodo) -> None:
        if failures:
            raise failures.pop()

    source = MemorySource()
    source.send(CreateTodo(id="t1", description="x"), message_id="m-1")
    consumer = CommandConsumer(
        todo_flow(store, flaky), source, commands=[CreateTodo], transient=[ConnectionError]
    )

    await consume_until(consumer, lambda: bool(source.acked))

    assert len(source.retried) == 1
    assert source.dead == []


async def test_no_more_than_max_in_flight_commands_are_handled_at_once(
    store: EventStore,
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

    source = MemorySource()
    for i in range(10):
        source.send(CreateTodo(id=f"t{i}", description="x"), message_id=f"m-{i}")
    consumer = CommandConsumer(
        todo_flow(store, blocked), source, commands=[CreateTodo], max_in_flight=3
    )

    async with consumer:
        while running < 3:
            await anyio.sleep(0.005)
        for _ in range(20):  # give a fourth handler every chance to start
            await anyio.sleep(0)
        blocked_peak = peak
        go.set()
        while len(source.acked) < 10:
            await anyio.sleep(0.005)

    assert blocked_peak == 3
    assert peak == 3
    assert source.max_in_flight == 3
    assert await count_events(store) == 10


async def test_stopping_lets_the_messages_in_flight_finish_within_the_grace_period(
    store: EventStore,
) -> None:
    started = anyio.Event()
    go = anyio.Event()

    async def blocked(command: CreateTodo) -> None:
        started.set()
        await go.wait()

    source = MemorySource()
    source.send(CreateTodo(id="t1", description="x"), message_id="m-1")
    source.send(CreateTodo(id="t2", description="x"), message_id="m-2")
    consumer = CommandConsumer(
        todo_flow(store, blocked), source, commands=[CreateTodo], max_in_flight=1
    )

    async with anyio.create_task_group() as tg:
        tg.start_soon(consumer.run)
        await started.wait()
        consumer.stop()
        go.set()

    assert [m.message_id for m in source.acked] == ["m-1"]
    assert [m.message_id for m in source.queue] == ["m-2"]  # never taken
    assert await store.stream_version("Todo-t1") == 1


async def test_messages_still_in_flight_after_the_grace_period_go_back_unacknowledged(
    store: EventStore,
) -> None:
    started = anyio.Event()

    async def stuck(command: CreateTodo) -> None:
        started.set()
        await anyio.sleep_forever()

    source = MemorySource()
    source.send(CreateTodo(id="t1", description="x"), message_id="m-1")
    consumer = CommandConsumer(
        todo_flow(store, stuck), source, commands=[CreateTodo], grace_period=0
    )

    async with consumer:
        await started.wait()

    assert source.acked == []
    assert [m.message_id for m in source.released] == ["m-1"]
    assert [m.message_id for m in source.queue] == ["m-1"]
    assert await count_events(store) == 0


async def test_cancelling_mid_dispatch_never_acknowledges_and_the_command_commits_later(
    store: EventStore,
) -> None:
    hold = True
    started = anyio.Event()

    async def blocked(command: CreateTodo) -> None:
        if hold:
            started.set()
            await anyio.sleep_forever()

    source = MemorySource()
    source.send(CreateTodo(id="t1", description="x"), message_id="m-1")
    flow = todo_flow(store, blocked)

    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as tg:
            tg.start_soon(CommandConsumer(flow, source, commands=[CreateTodo]).run)
            await started.wait()
            scope.cancel()

    assert source.acked == []
    assert await count_events(store) == 0
    hold = False
    await consume_until(
        CommandConsumer(flow, source, commands=[CreateTodo]), lambda: bool(source.acked)
    )
    assert [m.message_id for m in source.acked] == ["m-1"]
    assert await store.stream_version("Todo-t1") == 1


async def test_a_command_committed_but_cancelled_before_its_ack_commits_nothing_new_later(
    store: EventStore,
) -> None:
    hold = True
    published = anyio.Event()

    async def slow_listener(event: Event) -> None:  # runs after the commit, before the ack
        if hold:
            published.set()
            await anyio.sleep_forever()

    bus = EventBus()
    bus.subscribe(Event, slow_listener)
    flow = todo_flow(store, bus=bus)
    source = MemorySource()
    source.send(CreateTodo(id="t1", description="x"), message_id="m-1")

    with anyio.CancelScope() as scope:
        async with CommandConsumer(flow, source, commands=[CreateTodo]):
            await published.wait()
            scope.cancel()
            await anyio.sleep_forever()

    assert source.acked == []
    assert [m.message_id for m in source.released] == ["m-1"]
    assert await store.stream_version("Todo-t1") == 1
    hold = False
    await consume_until(
        CommandConsumer(flow, source, commands=[CreateTodo]), lambda: bool(source.acked)
    )
    assert await store.stream_version("Todo-t1") == 1
    assert await count_events(store) == 1
    assert flow.runs == ["t1"]  # type: ignore[attr-defined]


def test_a_consumer_needs_a_flow_that_remembers_commands() -> None:
    with pytest.raises(ValueError, match="remembers commands"):
        CommandConsumer(Flow(idempotency=None), MemorySource(), commands=[CreateTodo])


@pytest.mark.parametrize(
    ("commands", "error"),
    [([], ValueError), (["CreateTodo"], TypeError), ({"x": Todo}, TypeError)],
)
def test_commands_must_name_command_classes(commands: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        CommandConsumer(Flow(), MemorySource(), commands=commands)  # type: ignore[arg-type]


@pytest.mark.parametrize("max_in_flight", [0, -1, 1.5, True])
def test_max_in_flight_must_be_a_positive_int(max_in_flight: object) -> None:
    with pytest.raises((TypeError, ValueError), match="max_in_flight"):
        CommandConsumer(
            Flow(),
            MemorySource(),
            commands=[CreateTodo],
            max_in_flight=max_in_flight,  # type: ignore[arg-type]
        )


async def test_a_command_type_without_a_handler_fails_before_taking_any_message(
    store: EventStore,
) -> None:
    source = MemorySource()
    source.send(MarkAsCompleted(id="t1"), message_id="m-1")
    consumer = CommandConsumer(todo_flow(store), source, commands=[MarkAsCompleted])

    with pytest.raises(UnknownCommand):
        await consumer.run()

    assert source.max_in_flight is None  # never opened
    assert len(source.queue) == 1


async def test_a_closed_store_stops_the_consumer_and_hands_the_message_back(
    store: EventStore,
) -> None:
    source = MemorySource()
    flow = todo_flow(store)
    await store.close()
    source.send(CreateTodo(id="t1", description="x"), message_id="m-1")

    with pytest.raises(StoreClosedError):
        await CommandConsumer(flow, source, commands=[CreateTodo]).run()

    assert source.acked == []
    assert source.dead == []
    assert [m.message_id for m in source.queue] == ["m-1"]


async def test_async_with_raises_a_start_up_error_as_itself(store: EventStore) -> None:
    source = MemorySource()
    consumer = CommandConsumer(todo_flow(store), source, commands=[MarkAsCompleted])

    with pytest.raises(UnknownCommand, match="MarkAsCompleted"):
        async with consumer:
            pytest.fail("the block must not run")

    assert source.max_in_flight is None
