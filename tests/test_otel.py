"""OpenTelemetry: dispatch, append, load and publish spans, metadata propagation, metrics, and
nothing at all (no import, no metadata key) while instrumentation is off."""

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.trace import SpanKind, StatusCode

from eventuality import (
    AggregateExists,
    Event,
    EventBus,
    Flow,
    InMemoryEventStore,
    Repository,
    SQLiteEventStore,
    otel,
)
from eventuality.stores.base import EventStore
from tests._otel import Telemetry, instrumented, parent_of, span_id, trace_id
from tests._readme import readme_block, run_python
from tests.conftest import requires_postgres
from tests.domain import CreateTodo, MarkAsCompleted, RenameTodo, Todo, TodoCreated, TodoRenamed


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    yield from instrumented()


def todo_flow(store: EventStore, *, bus: EventBus | None = None) -> Flow:
    todos = Repository(Todo, store)
    flow = Flow(store=store, bus=bus)

    @flow.handles(CreateTodo)
    async def create(cmd: CreateTodo) -> Todo:
        return await todos.add(id=cmd.id, description=cmd.description)

    @flow.handles(RenameTodo)
    async def rename(cmd: RenameTodo) -> list[Event]:
        return (await todos.load(cmd.id)).rename(cmd.description)

    return flow


def test_importing_eventuality_imports_no_opentelemetry() -> None:
    code = (
        "import sys, eventuality, eventuality.flow, eventuality.subscriptions, "
        "eventuality.reactions, eventuality.stores.sqlite\n"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))"
    )

    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)

    assert done.stdout.strip() == "[]"


async def test_without_instrumentation_events_carry_no_trace_context() -> None:
    store = InMemoryEventStore()
    async with store:
        flow = todo_flow(store)

        events = await flow.dispatch(CreateTodo(id="1", description="a"))

    assert set(events[0].metadata) == {"causation_id", "correlation_id"}
    assert not otel.instrumented()


async def test_after_uninstrument_nothing_is_traced_or_stamped(telemetry: Telemetry) -> None:
    otel.uninstrument()
    async with InMemoryEventStore() as store:
        events = await todo_flow(store).dispatch(CreateTodo(id="1", description="a"))

    assert telemetry.spans() == []
    assert "traceparent" not in events[0].metadata


async def test_dispatch_span_names_the_command_streams_events_and_outcome(
    telemetry: Telemetry,
) -> None:
    async with InMemoryEventStore() as store:
        command = CreateTodo(id="1", description="a")

        await todo_flow(store).dispatch(command)

    span = telemetry.span("dispatch CreateTodo")
    assert span.kind is SpanKind.INTERNAL
    assert span.attributes is not None
    assert span.attributes["eventuality.command.type"] == "CreateTodo"
    assert span.attributes["eventuality.command.id"] == str(command.command_id)
    assert span.attributes["eventuality.dispatch.streams"] == ("Todo-1",)
    assert span.attributes["eventuality.dispatch.events"] == 1
    assert span.attributes["eventuality.dispatch.retries"] == 0
    assert span.attributes["eventuality.dispatch.outcome"] == "committed"
    assert span.status.status_code is StatusCode.UNSET


async def test_request_dispatch_append_form_one_trace_and_the_event_carries_it(
    telemetry: Telemetry,
) -> None:
    tracer = telemetry.tracer_provider.get_tracer("test")
    async with InMemoryEventStore() as store:
        with tracer.start_as_current_span("GET /todos"):
            events = await todo_flow(store).dispatch(CreateTodo(id="1", description="a"))

    request = telemetry.span("GET /todos")
    dispatch = telemetry.span("dispatch CreateTodo")
    append = telemetry.span("append")
    assert parent_of(dispatch) == span_id(request)
    assert parent_of(append) == span_id(dispatch)
    assert trace_id(append) == trace_id(request)
    version, trace, parent, _flags = events[0].metadata["traceparent"].split("-")
    assert (version, trace, parent) == ("00", f"{trace_id(append):032x}", f"{span_id(append):016x}")


async def test_metadata_given_to_dispatch_keeps_its_own_traceparent(telemetry: Telemetry) -> None:
    given = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    async with InMemoryEventStore() as store:
        events = await todo_flow(store).dispatch(
            CreateTodo(id="1", description="a"), metadata={"traceparent": given}
        )

    assert events[0].metadata["traceparent"] == given


async def test_load_span_counts_replayed_events_without_a_snapshot(telemetry: Telemetry) -> None:
    async with InMemoryEventStore() as store:
        flow = todo_flow(store)
        await flow.dispatch(CreateTodo(id="1", description="a"))
        await flow.dispatch(RenameTodo(id="1", description="b"))

        await Repository(Todo, store).load("1")

    spans = telemetry.spans("load Todo")
    assert len(spans) == 2  # one inside the rename's dispatch, one here
    inside, alone = spans
    assert parent_of(inside) == span_id(telemetry.span("dispatch RenameTodo"))
    assert alone.attributes is not None
    assert alone.attributes["eventuality.aggregate.type"] == "Todo"
    assert alone.attributes["eventuality.stream.id"] == "Todo-1"
    assert alone.attributes["eventuality.load.events_replayed"] == 2
    assert alone.attributes["eventuality.load.from_snapshot"] is False
    assert alone.attributes["eventuality.aggregate.version"] == 2


async def test_load_span_says_when_it_started_from_a_snapshot(telemetry: Telemetry) -> None:
    async with InMemoryEventStore() as store:
        todos = Repository(Todo, store, snapshot_every=2)
        todo = await todos.add(id="1", description="a")
        todo.rename("b")
        todo.rename("c")
        await todos.save(todo)  # version 3: a snapshot at 3

        await todos.load("1")

    span = telemetry.spans("load Todo")[-1]
    assert span.attributes is not None
    assert span.attributes["eventuality.load.from_snapshot"] is True
    assert span.attributes["eventuality.load.events_replayed"] == 0
    assert span.attributes["eventuality.aggregate.version"] == 3


async def test_a_missing_aggregate_fails_its_load_span(telemetry: Telemetry) -> None:
    async with InMemoryEventStore() as store:
        with pytest.raises(LookupError):
            await Repository(Todo, store).load("nobody")

    span = telemetry.span("load Todo")
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes is not None
    assert span.attributes["error.type"] == "eventuality.AggregateNotFound"


async def test_a_retried_conflict_counts_one_retry(telemetry: Telemetry) -> None:
    async with InMemoryEventStore() as store:
        flow = todo_flow(store)
        await flow.dispatch(CreateTodo(id="1", description="a"))
        todos = Repository(Todo, store)
        runs = 0

        @flow.handles(MarkAsCompleted)
        async def complete(cmd: MarkAsCompleted) -> list[Event]:
            nonlocal runs
            runs += 1
            todo = await todos.load(cmd.id)
            if runs == 1:  # someone else moves the stream between load and commit
                await store.append(f"Todo-{cmd.id}", [TodoRenamed(description="moved")])
            return todo.complete()

        await flow.dispatch(MarkAsCompleted(id="1"))

    span = telemetry.span("dispatch MarkAsCompleted")
    assert span.attributes is not None
    assert span.attributes["eventuality.dispatch.retries"] == 1
    assert span.attributes["eventuality.dispatch.outcome"] == "committed"
    retry = [event for event in span.events if event.name == "retry"]
    assert len(retry) == 1
    assert retry[0].attributes is not None
    assert retry[0].attributes["eventuality.stream.id"] == "Todo-1"
    conflicted = [s for s in telemetry.spans("append") if s.status.status_code is StatusCode.ERROR]
    assert len(conflicted) == 1
    retries = telemetry.points("eventuality.dispatch.retries")
    conflicts = telemetry.points("eventuality.dispatch.conflicts")
    assert [(p.value, dict(p.attributes)) for p in retries] == [
        (1, {"eventuality.command.type": "MarkAsCompleted"})
    ]
    assert [p.value for p in conflicts] == [1]


async def test_a_failing_handler_marks_the_dispatch_span_failed(telemetry: Telemetry) -> None:
    flow = Flow(store=InMemoryEventStore())

    @flow.handles(CreateTodo)
    async def create(cmd: CreateTodo) -> None:
        raise RuntimeError("no todos today")

    async with flow.store:
        with pytest.raises(RuntimeError):
            await flow.dispatch(CreateTodo(id="1", description="a"))

    span = telemetry.span("dispatch CreateTodo")
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes is not None
    assert span.attributes["eventuality.dispatch.outcome"] == "error"
    assert span.attributes["error.type"] == "RuntimeError"
    [exception] = [event for event in span.events if event.name == "exception"]
    assert exception.attributes is not None
    assert exception.attributes["exception.message"] == "no todos today"
    assert telemetry.spans("append") == []
    [point] = telemetry.points("eventuality.dispatch.duration")
    assert point.count == 1
    assert dict(point.attributes) == {
        "eventuality.command.type": "CreateTodo",
        "eventuality.dispatch.outcome": "error",
        "error.type": "RuntimeError",
    }


async def test_an_existing_aggregate_is_an_error_outcome_not_a_conflict(
    telemetry: Telemetry,
) -> None:
    async with InMemoryEventStore() as store:
        flow = todo_flow(store)
        await flow.dispatch(CreateTodo(id="1", description="a"))

        with pytest.raises(AggregateExists):
            await flow.dispatch(CreateTodo(id="1", description="again"))

    failed = telemetry.spans("dispatch CreateTodo")[1]
    assert failed.attributes is not None
    assert failed.attributes["eventuality.dispatch.outcome"] == "error"
    assert telemetry.points("eventuality.dispatch.conflicts") == []


async def test_a_repeated_command_is_a_repeat_outcome(telemetry: Telemetry) -> None:
    async with InMemoryEventStore() as store:
        flow = todo_flow(store)
        command = CreateTodo(id="1", description="a")
        await flow.dispatch(command)

        again = await flow.dispatch(command)

    assert len(again) == 1
    second = telemetry.spans("dispatch CreateTodo")[1]
    assert second.attributes is not None
    assert second.attributes["eventuality.dispatch.outcome"] == "repeat"


@pytest.mark.parametrize(
    ("store_kind", "system"),
    [
        ("memory", "eventuality.memory"),
        ("sqlite-file", "sqlite"),
        pytest.param("postgres", "postgresql", marks=requires_postgres),
    ],
    indirect=["store_kind"],
)
async def test_append_span_is_a_database_client_span(
    telemetry: Telemetry, store: EventStore, system: str
) -> None:
    await todo_flow(store).dispatch(CreateTodo(id="1", description="a"))

    span = telemetry.span("append")
    assert span.kind is SpanKind.CLIENT
    assert span.attributes is not None
    assert span.attributes["db.system.name"] == system
    assert span.attributes["db.system"] == system
    assert span.attributes["db.operation.name"] == "append"
    assert span.attributes["eventuality.streams"] == ("Todo-1",)
    assert span.attributes["eventuality.events"] == 1
    [appended] = telemetry.points("eventuality.events.appended")
    assert appended.value == 1
    assert dict(appended.attributes) == {"db.system.name": system}
    [latency] = telemetry.points("eventuality.append.duration")
    assert latency.count == 1


async def test_publish_span_and_a_span_for_each_failing_listener(telemetry: Telemetry) -> None:
    def broken(event: Event) -> None:
        raise ValueError("listener broke")

    seen: list[Event] = []
    bus = EventBus(listeners={TodoCreated: [broken, seen.append]})
    async with InMemoryEventStore() as store:
        await todo_flow(store, bus=bus).dispatch(CreateTodo(id="1", description="a"))

    publish = telemetry.span("publish")
    assert parent_of(publish) == span_id(telemetry.span("dispatch CreateTodo"))
    assert publish.attributes is not None
    assert publish.attributes["eventuality.events"] == 1
    assert publish.attributes["eventuality.publish.failures"] == 1
    listener = telemetry.span(f"listener {broken.__qualname__}")
    assert parent_of(listener) == span_id(publish)
    assert listener.status.status_code is StatusCode.ERROR
    assert listener.attributes is not None
    assert listener.attributes["eventuality.event.type"] == "TodoCreated"
    assert [event.name for event in listener.events] == ["exception"]
    assert len(seen) == 1


async def test_dispatch_duration_is_recorded_by_command_type_and_outcome(
    telemetry: Telemetry,
) -> None:
    async with InMemoryEventStore() as store:
        flow = todo_flow(store)
        await flow.dispatch(CreateTodo(id="1", description="a"))
        await flow.dispatch(RenameTodo(id="1", description="b"))
        await flow.dispatch(RenameTodo(id="1", description="b"))  # nothing changes

    points = {
        (p.attributes["eventuality.command.type"], p.attributes["eventuality.dispatch.outcome"]): (
            p.count
        )
        for p in telemetry.points("eventuality.dispatch.duration")
    }
    assert points == {
        ("CreateTodo", "committed"): 1,
        ("RenameTodo", "committed"): 1,
        ("RenameTodo", "unchanged"): 1,
    }
    [appended] = telemetry.points("eventuality.events.appended")
    assert appended.value == 2


async def test_sqlite_append_injects_the_context_it_stores(
    telemetry: Telemetry, tmp_path: Path
) -> None:
    path = f"{tmp_path}/events.db"
    async with SQLiteEventStore(path) as store:
        await todo_flow(store).dispatch(CreateTodo(id="1", description="a"))
    async with SQLiteEventStore(path) as again:
        [stored] = await again.read_stream("Todo-1")

    append = telemetry.span("append")
    assert stored.metadata["traceparent"].split("-")[2] == f"{span_id(append):016x}"


def test_readme_example_prints_one_trace(tmp_path: Path) -> None:
    (tmp_path / "otel_example.py").write_text(readme_block("otel-example"))

    output = run_python(tmp_path, "otel_example.py").splitlines()

    assert output[0] == "['causation_id', 'correlation_id', 'traceparent']"
    parents = {line.split("<-")[0].strip(): line.split("<-")[1].strip() for line in output[1:]}
    assert parents == {
        "POST /todos": "-",
        "dispatch CreateTodo": "POST /todos",
        "append": "dispatch CreateTodo",
        "process todo-list": "append",
        "process_batch todo-list": "-",
    }
