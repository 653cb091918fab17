"""OpenTelemetry on the consuming side: subscriptions, projections and reactions continue the
trace their events carry in metadata (another store object, another process), batches link to
it, and the lag gauges say how far behind a subscription is."""

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.trace import SpanKind, StatusCode

from eventuality import (
    Event,
    Flow,
    InMemoryEventStore,
    Projection,
    Reaction,
    Repository,
    SQLiteEventStore,
    Subscription,
    Transaction,
)
from eventuality.stores.base import EventStore
from tests._otel import Telemetry, instrumented, parent_of, span_id, trace_id
from tests.domain import CreateTodo, MarkAsCompleted, Todo, TodoCreated

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    yield from instrumented()


def todo_flow(store: EventStore) -> Flow:
    todos = Repository(Todo, store)
    flow = Flow(store=store)

    @flow.handles(CreateTodo)
    async def create(cmd: CreateTodo) -> Todo:
        return await todos.add(id=cmd.id, description=cmd.description)

    @flow.handles(MarkAsCompleted)
    async def complete(cmd: MarkAsCompleted) -> list[Event]:
        return (await todos.load(cmd.id)).complete()

    return flow


async def create_todos(telemetry: Telemetry, store: EventStore, count: int) -> None:
    tracer = telemetry.tracer_provider.get_tracer("test")
    flow = todo_flow(store)
    for i in range(count):
        with tracer.start_as_current_span(f"POST /todos/{i}"):
            await flow.dispatch(CreateTodo(id=str(i), description="a"))


async def test_each_handled_event_continues_the_trace_of_its_append(
    telemetry: Telemetry,
) -> None:
    handled: list[Event] = []
    async with InMemoryEventStore() as store:
        await create_todos(telemetry, store, 3)

        await Subscription(store, "list", handled.append).catch_up()

    appends = telemetry.spans("append")
    processes = telemetry.spans("process list")
    assert len(handled) == len(processes) == 3
    for append, process in zip(appends, processes, strict=True):
        assert process.kind is SpanKind.CONSUMER
        assert parent_of(process) == span_id(append)
        assert trace_id(process) == trace_id(append)
        assert [link.context.span_id for link in process.links] == [span_id(append)]
        assert process.attributes is not None
        assert process.attributes["messaging.operation.type"] == "process"
        assert process.attributes["messaging.destination.subscription.name"] == "list"
        assert process.attributes["eventuality.event.type"] == "TodoCreated"
    traces = {trace_id(span) for span in processes}
    assert len(traces) == 3  # three requests, three traces


async def test_a_pass_is_one_batch_span_linked_to_every_event(telemetry: Telemetry) -> None:
    async with InMemoryEventStore() as store:
        await create_todos(telemetry, store, 3)

        await Subscription(store, "list", lambda event: None).catch_up()

    batch = telemetry.span("process_batch list")
    assert batch.kind is SpanKind.CONSUMER
    assert batch.parent is None
    assert batch.attributes is not None
    assert batch.attributes["messaging.batch.message_count"] == 3
    assert batch.attributes["eventuality.subscription.positions"] == (1, 3)
    appends = [span_id(span) for span in telemetry.spans("append")]
    assert [link.context.span_id for link in batch.links] == appends


async def test_a_pass_with_nothing_to_handle_records_no_batch(telemetry: Telemetry) -> None:
    async with InMemoryEventStore() as store:
        await Subscription(store, "list", lambda event: None).catch_up()

    assert telemetry.spans("process_batch list") == []


async def test_a_failing_handler_fails_its_process_span(telemetry: Telemetry) -> None:
    async def broken(event: Event) -> None:
        raise KeyError("gone")

    async with InMemoryEventStore() as store:
        await create_todos(telemetry, store, 1)

        with pytest.raises(KeyError):
            await Subscription(store, "list", broken).catch_up()

    process = telemetry.span("process list")
    assert process.status.status_code is StatusCode.ERROR
    assert process.attributes is not None
    assert process.attributes["error.type"] == "KeyError"
    assert telemetry.span("process_batch list").status.status_code is StatusCode.ERROR


async def test_a_projection_on_another_store_object_continues_the_request_trace(
    telemetry: Telemetry, tmp_path: Path
) -> None:
    path = tmp_path / "events.db"

    async def project(event: Event, tx: Transaction) -> None:
        await tx.execute("INSERT INTO names (id) VALUES (?)", event.aggregate_id)

    async def setup(tx: Transaction) -> None:
        await tx.execute("CREATE TABLE IF NOT EXISTS names (id TEXT PRIMARY KEY)")

    async with SQLiteEventStore(path) as writer:
        await create_todos(telemetry, writer, 1)
    async with SQLiteEventStore(path) as reader:
        await Projection(reader, "names", project, setup=setup).catch_up()

    request = telemetry.span("POST /todos/0")
    dispatch = telemetry.span("dispatch CreateTodo")
    append = telemetry.span("append")
    process = telemetry.span("process names")
    assert parent_of(dispatch) == span_id(request)
    assert parent_of(append) == span_id(dispatch)
    assert parent_of(process) == span_id(append)
    assert {trace_id(s) for s in (request, dispatch, append, process)} == {trace_id(request)}


@pytest.mark.slow
async def test_a_subscription_in_another_process_continues_the_trace(
    telemetry: Telemetry, tmp_path: Path
) -> None:
    path = tmp_path / "events.db"
    async with SQLiteEventStore(path) as store:
        await create_todos(telemetry, store, 2)

    done = subprocess.run(
        [sys.executable, "-m", "tests._otel_child", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert done.returncode == 0, done.stderr
    seen = done.stdout.split("\n")[:-1]
    expected = [f"{trace_id(s):032x} {span_id(s):016x}" for s in telemetry.spans("append")]
    assert seen == expected


async def test_a_reaction_handles_in_the_trace_and_its_commit_continues_it(
    telemetry: Telemetry,
) -> None:
    async with InMemoryEventStore() as store:
        flow = todo_flow(store)
        await create_todos(telemetry, store, 1)

        async def complete_new(event: TodoCreated) -> None:
            await flow.dispatch(MarkAsCompleted(id=event.aggregate_id or ""))

        reaction = Reaction(store, "completer", complete_new, flow=flow, event_types=[TodoCreated])
        await reaction.catch_up()
        [completed] = await store.read_stream("Todo-0", from_version=2)

    first_append, second_append = telemetry.spans("append")
    process = telemetry.span("process completer")
    dispatch = telemetry.span("dispatch MarkAsCompleted")
    assert parent_of(process) == span_id(first_append)
    assert parent_of(dispatch) == span_id(process)
    assert dispatch.attributes is not None
    assert dispatch.attributes["eventuality.dispatch.outcome"] == "joined"
    assert parent_of(second_append) == span_id(process)
    assert trace_id(second_append) == trace_id(telemetry.span("POST /todos/0"))
    assert completed.metadata["traceparent"].split("-")[2] == f"{span_id(second_append):016x}"


async def test_lag_gauges_say_how_far_behind_a_subscription_is(telemetry: Telemetry) -> None:
    async with InMemoryEventStore() as store:
        subscription = Subscription(store, "list", lambda event: None)
        await subscription.catch_up()
        await create_todos(telemetry, store, 3)

        behind = telemetry.points("eventuality.subscription.lag")
        seconds = telemetry.points("eventuality.subscription.lag.time")
        await subscription.catch_up()
        caught_up = telemetry.points("eventuality.subscription.lag")
        caught_up_seconds = telemetry.points("eventuality.subscription.lag.time")

    assert [(p.value, dict(p.attributes)) for p in behind] == [
        (
            3,
            {
                "messaging.system": "eventuality",
                "messaging.destination.subscription.name": "list",
                "messaging.consumer.group.name": "list",
            },
        )
    ]
    assert seconds == []  # behind, but it has handled no event yet: its age is unknown
    assert [p.value for p in caught_up] == [0]
    assert [p.value for p in caught_up_seconds] == [0.0]
