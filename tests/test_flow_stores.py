"""Which store a dispatch commits to: the flow's, or without one the repositories' own; never
events recorded on one store silently dropped or written to another."""

from pathlib import Path

import pytest

from eventuality import (
    Command,
    Event,
    EventBus,
    EventStore,
    Flow,
    InMemoryEventStore,
    Repository,
    SQLiteEventStore,
    UncommittedEventsError,
)
from tests.domain import CreateTodo, RenameTodo, Todo


class StoresCopyTodo(Command):
    """Rename the todo ``id`` on the flow's store after the one of the same id elsewhere."""

    id: str


async def _seed(store: EventStore, todo_id: str, description: str) -> None:
    await Repository(Todo, store).add(id=todo_id, description=description)


async def _rename_flow(flow: Flow, todos: Repository[Todo]) -> Flow:
    @flow.handles(RenameTodo)
    async def rename(cmd: RenameTodo) -> None:
        (await todos.load(cmd.id)).rename(cmd.description)

    return flow


async def test_flow_without_a_store_commits_to_the_store_its_repositories_use(
    store: EventStore,
) -> None:
    await _seed(store, "t1", "first")
    flow = await _rename_flow(Flow(), Repository(Todo, store))

    events = await flow.dispatch(RenameTodo(id="t1", description="second"))

    assert [(e.event_type, e.aggregate_version) for e in events] == [("TodoRenamed", 2)]
    assert await store.read_stream("Todo-t1") == [
        *(await store.read_stream("Todo-t1", to_version=1)),
        *events,
    ]


async def test_flow_without_a_store_commits_an_add_atomically_with_the_dispatch(
    store: EventStore,
) -> None:
    todos = Repository(Todo, store)
    published: list[Event] = []
    flow = Flow(bus=EventBus(listeners={Event: [published.append]}))
    position_seen_after_add: list[int] = []

    @flow.handles(CreateTodo)
    async def create(cmd: CreateTodo) -> None:
        await todos.add(id=cmd.id, description=cmd.description)
        position_seen_after_add.append(await store.last_position())

    events = await flow.dispatch(CreateTodo(id="t1", description="new"))

    assert position_seen_after_add == [0]
    assert [e.position for e in events] == [await store.last_position()]
    assert published == events


async def test_events_recorded_on_another_store_than_the_flows_fail_the_dispatch(
    tmp_path: Path,
) -> None:
    flows_store = InMemoryEventStore()
    async with SQLiteEventStore(tmp_path / "other.db") as other:
        await _seed(other, "t1", "first")
        flow = await _rename_flow(Flow(store=flows_store), Repository(Todo, other))

        with pytest.raises(UncommittedEventsError) as caught:
            await flow.dispatch(RenameTodo(id="t1", description="second"))

        message = str(caught.value)
        assert "'Todo-t1'" in message
        assert repr(other) in message
        assert repr(flows_store) in message
        assert await other.stream_version("Todo-t1") == 1
        assert await flows_store.last_position() == 0


async def test_events_recorded_on_two_stores_in_one_dispatch_fail_it_and_write_nothing() -> None:
    left, right = InMemoryEventStore(), InMemoryEventStore()
    await _seed(left, "a", "a first")
    await _seed(right, "b", "b first")
    on_left, on_right = Repository(Todo, left), Repository(Todo, right)
    flow = Flow()

    @flow.handles(RenameTodo)
    async def rename_both(cmd: RenameTodo) -> None:
        (await on_left.load("a")).rename(cmd.description)
        (await on_right.load("b")).rename(cmd.description)

    with pytest.raises(UncommittedEventsError, match="another instance"):
        await flow.dispatch(RenameTodo(id="a", description="x"))

    assert await left.stream_version("Todo-a") == 1
    assert await right.stream_version("Todo-b") == 1


async def test_add_on_another_store_than_the_flows_writes_nothing() -> None:
    flows_store, other = InMemoryEventStore(), InMemoryEventStore()
    todos = Repository(Todo, other)
    flow = Flow(store=flows_store)

    @flow.handles(CreateTodo)
    async def create(cmd: CreateTodo) -> None:
        await todos.add(id=cmd.id, description=cmd.description)

    with pytest.raises(UncommittedEventsError):
        await flow.dispatch(CreateTodo(id="t1", description="new"))

    assert await other.last_position() == 0
    assert await flows_store.last_position() == 0


async def test_reading_another_store_inside_a_dispatch_commits_to_the_flows_store() -> None:
    flows_store, other = InMemoryEventStore(), InMemoryEventStore()
    await _seed(flows_store, "t1", "mine")
    await _seed(other, "t1", "theirs")
    mine, theirs = Repository(Todo, flows_store), Repository(Todo, other)
    flow = Flow(store=flows_store)

    @flow.handles(StoresCopyTodo)
    async def copy_description(cmd: StoresCopyTodo) -> None:
        source = await theirs.load(cmd.id)
        (await mine.load(cmd.id)).rename(f"copy of {source.description}")

    events = await flow.dispatch(StoresCopyTodo(id="t1"))

    assert [e.payload for e in events] == [{"description": "copy of theirs"}]
    assert (await mine.load("t1")).description == "copy of theirs"
    assert await other.stream_version("Todo-t1") == 1


async def test_one_stream_loaded_from_two_stores_in_one_dispatch_gives_each_stores_state() -> None:
    flows_store, other = InMemoryEventStore(), InMemoryEventStore()
    await _seed(flows_store, "t1", "mine")
    await _seed(other, "t1", "theirs")
    mine, theirs = Repository(Todo, flows_store), Repository(Todo, other)
    flow = Flow(store=flows_store)
    seen: list[str | None] = []

    @flow.handles(StoresCopyTodo)
    async def load_both_twice(cmd: StoresCopyTodo) -> None:
        for repository in (theirs, mine, theirs, mine):
            seen.append((await repository.load(cmd.id)).description)

    await flow.dispatch(StoresCopyTodo(id="t1"))

    assert seen == ["theirs", "mine", "theirs", "mine"]


async def test_flow_store_read_without_a_store_is_where_its_repositories_commit() -> None:
    flow = Flow()
    todos = Repository(Todo, flow.store)

    @flow.handles(CreateTodo)
    async def create(cmd: CreateTodo) -> None:
        await todos.add(id=cmd.id, description=cmd.description)

    events = await flow.dispatch(CreateTodo(id="t1", description="new"))

    assert [e async for e in flow.store.read_all()] == events
