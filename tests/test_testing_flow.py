"""eventuality.testing.FlowScenario: a command on given streams, on asyncio and trio."""

from functools import partial
from pathlib import Path

import anyio
import pytest

from eventuality import (
    AggregateNotFound,
    Event,
    EventStore,
    Flow,
    InMemoryEventStore,
    Repository,
    SQLiteEventStore,
)
from eventuality.testing import FlowScenario
from tests.domain import CreateTodo, MarkAsCompleted, Todo, TodoCompleted, TodoCreated

BACKENDS = ["asyncio", "trio"]


def make_flow(store: EventStore) -> Flow:
    """The application's own wiring, as a function of the store."""
    todos = Repository(Todo, store)
    flow = Flow(store=store)

    @flow.handles(CreateTodo)
    async def create(command: CreateTodo) -> None:
        await todos.add(id=command.id, description=command.description)

    @flow.handles(MarkAsCompleted)
    async def complete(command: MarkAsCompleted) -> None:
        todo = await todos.load(command.id)
        todo.complete()

    return flow


def make_flow_completing_new_todos(store: EventStore) -> Flow:
    """A flow whose bus runs a policy: each new todo is completed by a second dispatch."""
    flow = make_flow(store)

    async def complete_new(event: TodoCreated) -> None:
        await flow.dispatch(MarkAsCompleted(id=event.aggregate_id or ""))

    flow.bus.subscribe(TodoCreated, complete_new)
    return flow


CREATED = FlowScenario(make_flow).given("Todo-t1", TodoCreated(description="x"))


@pytest.mark.parametrize("backend", BACKENDS)
def test_then_passes_when_the_command_commits_the_expected_events(backend: str) -> None:
    scenario = CREATED.when(MarkAsCompleted(id="t1"))

    anyio.run(scenario.then, TodoCompleted(), backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_then_without_events_passes_when_nothing_was_committed(backend: str) -> None:
    scenario = CREATED.given("Todo-t1", TodoCompleted()).when(MarkAsCompleted(id="t1"))

    anyio.run(scenario.then, backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_then_fails_with_a_diff_of_expected_and_committed_events(backend: str) -> None:
    scenario = FlowScenario(make_flow).when(CreateTodo(id="t1", description="x"))

    with pytest.raises(AssertionError) as failure:
        anyio.run(scenario.then, TodoCreated(description="y"), backend=backend)

    assert str(failure.value) == (
        "committed events differ from the expected (- expected, + actual):\n"
        "- TodoCreated(description='y')\n"
        "+ TodoCreated(description='x')"
    )


@pytest.mark.parametrize("backend", BACKENDS)
def test_then_raises_passes_on_the_expected_error(backend: str) -> None:
    scenario = FlowScenario(make_flow).when(MarkAsCompleted(id="t1"))

    anyio.run(partial(scenario.then_raises, AggregateNotFound, match="t1"), backend=backend)


def test_then_raises_fails_naming_what_was_committed_instead() -> None:
    scenario = CREATED.when(MarkAsCompleted(id="t1"))

    with pytest.raises(AssertionError) as failure:
        anyio.run(scenario.then_raises, AggregateNotFound)

    assert str(failure.value) == (
        "expected AggregateNotFound to be raised, but the dispatch committed TodoCompleted()"
    )


def test_then_fails_naming_the_error_the_dispatch_raised() -> None:
    scenario = FlowScenario(make_flow).when(MarkAsCompleted(id="t1"))

    with pytest.raises(AssertionError, match="the dispatch raised AggregateNotFound") as failure:
        anyio.run(scenario.then, TodoCompleted())

    assert isinstance(failure.value.__cause__, AggregateNotFound)


@pytest.mark.parametrize("backend", BACKENDS)
def test_then_published_checks_what_the_bus_delivered(backend: str) -> None:
    scenario = FlowScenario(make_flow_completing_new_todos).when(
        CreateTodo(id="t1", description="x")
    )

    anyio.run(
        scenario.then_published, TodoCreated(description="x"), TodoCompleted(), backend=backend
    )


def test_then_published_fails_with_a_diff() -> None:
    scenario = FlowScenario(make_flow).when(CreateTodo(id="t1", description="x"))

    with pytest.raises(AssertionError, match=r"published events differ.*\n\+ TodoCreated"):
        anyio.run(scenario.then_published)


def test_each_check_runs_on_a_fresh_store() -> None:
    scenario = FlowScenario(make_flow).when(CreateTodo(id="t1", description="x"))

    anyio.run(scenario.then, TodoCreated(description="x"))

    anyio.run(scenario.then, TodoCreated(description="x"))  # no AggregateExists: t1 is new again


def test_a_store_factory_gives_the_store_the_scenario_runs_on(tmp_path: Path) -> None:
    scenario = FlowScenario(make_flow, store=lambda: SQLiteEventStore(tmp_path / "flow.db"))

    given = scenario.given("Todo-t1", TodoCreated(description="x"))
    anyio.run(given.when(MarkAsCompleted(id="t1")).then, TodoCompleted())

    async def stored() -> list[Event]:
        async with SQLiteEventStore(tmp_path / "flow.db") as store:
            return await store.read_stream("Todo-t1")

    assert [event.event_type for event in anyio.run(stored)] == ["TodoCreated", "TodoCompleted"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_open_store_is_used_as_it_is_and_left_open(backend: str) -> None:
    async def check() -> list[Event]:
        async with InMemoryEventStore() as store:
            scenario = FlowScenario(make_flow, store=store).when(
                CreateTodo(id="t1", description="x")
            )
            await scenario.then(TodoCreated(description="x"))
            return await store.read_stream("Todo-t1")

    events = anyio.run(check, backend=backend)

    assert [event.payload for event in events] == [{"description": "x"}]


def test_a_check_without_a_command_says_what_is_missing() -> None:
    with pytest.raises(TypeError, match=r"call \.when\(command\)"):
        anyio.run(CREATED.then)
