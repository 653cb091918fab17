"""Reactions beyond the store contract: construction rules, dispatches joining the reaction's
unit of work, publishing, and following live events."""

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from eventuality import (
    Event,
    EventBus,
    Flow,
    InMemoryEventStore,
    Reaction,
    Repository,
    SubscriptionRunner,
    UnsupportedOperation,
)
from tests._readme import readme_block, run_python
from tests.domain import CreateTodo, MarkAsCompleted, Todo, TodoCreated
from tests.stores.log_only import LogOnlyStore


@pytest.fixture
async def memory() -> AsyncIterator[InMemoryEventStore]:
    async with InMemoryEventStore() as store:
        yield store


def _todo_flow(store: InMemoryEventStore, bus: EventBus | None = None) -> Flow:
    todos = Repository(Todo, store)
    flow = Flow(store=store, bus=bus)

    @flow.handles(CreateTodo)
    async def create(command: CreateTodo) -> None:
        await todos.add(id=command.id, description=command.description)

    @flow.handles(MarkAsCompleted)
    async def complete(command: MarkAsCompleted) -> None:
        (await todos.load(command.id)).complete()

    return flow


async def _nothing(event: Event) -> None:
    pass


def test_a_store_that_cannot_move_a_checkpoint_with_an_append_is_refused_when_built() -> None:
    store = LogOnlyStore()

    with pytest.raises(UnsupportedOperation, match="Reaction 'r'"):
        Reaction(store, "r", _nothing, flow=Flow())


async def test_a_flow_on_another_store_is_refused_when_built(
    memory: InMemoryEventStore,
) -> None:
    other = InMemoryEventStore()

    with pytest.raises(
        ValueError, match=r"flow commits to InMemoryEventStore\(\) \(another instance\)"
    ):
        Reaction(memory, "r", _nothing, flow=Flow(store=other))


async def test_a_dispatch_through_a_flow_on_another_store_stops_the_reaction_saying_so(
    memory: InMemoryEventStore,
) -> None:
    elsewhere = _todo_flow(InMemoryEventStore())

    async def react(event: Event) -> None:
        if event.aggregate_id == "a":
            await elsewhere.dispatch(CreateTodo(id="b", description="x"))

    await _todo_flow(memory).dispatch(CreateTodo(id="a", description="first"))
    reaction = Reaction(memory, "r", react, flow=Flow())

    with pytest.raises(ValueError, match=r"InMemoryEventStore\(\) \(another instance\)"):
        await reaction.catch_up()

    assert await memory.stream_version("Todo-b") == 0


async def test_a_dispatch_inside_a_reaction_returns_its_events_uncommitted(
    memory: InMemoryEventStore,
) -> None:
    flow = _todo_flow(memory)
    returned: list[list[Event]] = []

    async def react(event: Event) -> None:
        if isinstance(event, TodoCreated) and event.aggregate_id == "a":
            returned.append(await flow.dispatch(CreateTodo(id="b", description="from a")))

    await flow.dispatch(CreateTodo(id="a", description="first"))

    await Reaction(memory, "r", react, flow=flow).catch_up()

    [[event]] = returned
    assert event.position is None
    [stored] = await memory.read_stream("Todo-b")
    assert stored.event_id == event.event_id
    assert stored.position is not None


async def test_committed_events_are_published_on_the_flows_bus_once(
    memory: InMemoryEventStore,
) -> None:
    published: list[Event] = []
    bus = EventBus(listeners={TodoCreated: [published.append]})
    flow = _todo_flow(memory, bus)

    async def react(event: Event) -> None:
        if event.aggregate_id == "a":
            await flow.dispatch(CreateTodo(id="b", description="from a"))

    await flow.dispatch(CreateTodo(id="a", description="first"))
    published.clear()

    await Reaction(memory, "r", react, flow=flow).catch_up()
    await Reaction(memory, "r", react, flow=flow).catch_up()

    assert [(e.aggregate_id, e.position is not None) for e in published] == [("b", True)]


async def test_an_idempotency_key_inside_a_reaction_stops_it_saying_why(
    memory: InMemoryEventStore,
) -> None:
    flow = _todo_flow(memory)

    async def react(event: Event) -> None:
        if event.aggregate_id == "a":
            await flow.dispatch(CreateTodo(id="b", description="x"), idempotency_key="k")

    await flow.dispatch(CreateTodo(id="a", description="first"))
    reaction = Reaction(memory, "r", react, flow=flow)

    with pytest.raises(ValueError, match="records no command keys"):
        await reaction.catch_up()

    assert await memory.stream_version("Todo-b") == 0
    assert reaction.statistics().error is not None


async def test_events_that_lead_to_nothing_move_the_checkpoint_to_the_end(
    memory: InMemoryEventStore,
) -> None:
    flow = _todo_flow(memory)
    for i in range(5):
        await flow.dispatch(CreateTodo(id=str(i), description="x"))

    await Reaction(memory, "r", _nothing, flow=flow, checkpoint_every=2).catch_up()

    assert await memory.get_checkpoint("r") == await memory.last_position()


async def test_a_running_reaction_answers_new_events_and_can_be_waited_for(
    memory: InMemoryEventStore,
) -> None:
    flow = _todo_flow(memory)

    async def complete_new_todos(event: Event) -> None:
        if isinstance(event, TodoCreated):
            await flow.dispatch(MarkAsCompleted(id=event.aggregate_id or ""))

    reaction = Reaction(memory, "completer", complete_new_todos, flow=flow)
    async with SubscriptionRunner(reaction):
        await flow.dispatch(CreateTodo(id="a", description="x"), wait_for=["completer"])

        assert (await Repository(Todo, memory).load("a")).completed


def test_readme_reaction_example_runs_as_written(tmp_path: Path) -> None:
    (tmp_path / "reaction_example.py").write_text(readme_block("reaction-example"))

    output = run_python(tmp_path, "reaction_example.py")

    assert output.splitlines() == ["StockReserved 2"]
