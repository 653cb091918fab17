"""Flow.dispatch: handlers, unit of work, atomic commit, retries, publish, cancellation."""

from collections import defaultdict
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from eventuality import (
    Command,
    ConcurrencyError,
    Event,
    EventBus,
    EventStore,
    EventualityError,
    Flow,
    InMemoryEventStore,
    Repository,
    UncommittedEventsError,
    UnknownCommand,
)
from tests.domain import (
    CreateTodo,
    MarkAsCompleted,
    RenameTodo,
    Todo,
    TodoRenamed,
)


class FlowRenamePair(Command):
    """Rename two todos in one dispatch: a partial commit would show as one stream ahead."""

    left: str
    right: str
    description: str


class FlowUnhandled(Command):
    pass


async def _stored(store: EventStore) -> list[Event]:
    return [event async for event in store.read_all()]


async def _seed(store: EventStore, *ids: str) -> None:
    todos = Repository(Todo, store)
    for todo_id in ids:
        await todos.add(id=todo_id, description=f"{todo_id} created")


def _rename_pair_flow(store: EventStore, **kwargs: Any) -> Flow:
    todos = Repository(Todo, store)
    flow = Flow(store=store, **kwargs)

    @flow.handles(FlowRenamePair)
    async def rename_pair(cmd: FlowRenamePair) -> list[Event]:
        left = await todos.load(cmd.left)
        await anyio.lowlevel.checkpoint()
        right = await todos.load(cmd.right)
        await anyio.lowlevel.checkpoint()
        return left.rename(cmd.description) + right.rename(cmd.description)

    return flow


# --- construction and registration ---------------------------------------------------------


async def test_flow_defaults_to_a_new_in_memory_store_and_a_new_bus() -> None:
    flow = Flow()
    other = Flow()

    assert isinstance(flow.store, InMemoryEventStore)
    assert isinstance(flow.bus, EventBus)
    assert flow.store is not other.store
    assert flow.bus is not other.bus


async def test_default_flow_dispatches_and_stores_in_its_own_store() -> None:
    flow = Flow()
    todos = Repository(Todo, flow.store)

    @flow.handles(CreateTodo)
    async def create_todo(cmd: CreateTodo) -> Todo:
        return await todos.add(id=cmd.id, description=cmd.description)

    events = await flow.dispatch(CreateTodo(id="t1", description="hello"))

    assert [e.event_type for e in events] == ["TodoCreated"]
    assert await _stored(flow.store) == events


async def test_handlers_mapping_registers_handlers() -> None:
    store = InMemoryEventStore()
    todos = Repository(Todo, store)
    calls: list[str] = []

    async def create_todo(cmd: CreateTodo) -> Todo:
        calls.append(cmd.id)
        return await todos.add(id=cmd.id, description=cmd.description)

    flow = Flow(store=store, handlers={CreateTodo: create_todo})

    events = await flow.dispatch(CreateTodo(id="t1", description="hello"))

    assert calls == ["t1"]
    assert [(e.event_type, e.aggregate_id) for e in events] == [("TodoCreated", "t1")]


async def test_handles_decorator_registers_the_handler_and_returns_it() -> None:
    flow = Flow()
    todos = Repository(Todo, flow.store)

    async def create_todo(cmd: CreateTodo) -> Todo:
        return await todos.add(id=cmd.id, description=cmd.description)

    decorated = flow.handles(CreateTodo)(create_todo)
    events = await flow.dispatch(CreateTodo(id="t1", description="hello"))

    assert decorated is create_todo
    assert [e.event_type for e in events] == ["TodoCreated"]


async def test_unregistered_command_raises_unknown_command() -> None:
    flow = Flow(handlers={CreateTodo: lambda cmd: None})

    with pytest.raises(UnknownCommand) as caught:
        await flow.dispatch(FlowUnhandled())

    assert isinstance(caught.value, LookupError)
    assert isinstance(caught.value, EventualityError)
    assert await flow.store.last_position() == 0


# --- what dispatch returns and stores --------------------------------------------------------


async def test_dispatch_returns_committed_events_in_commit_order_with_positions_and_versions(
    store: EventStore,
) -> None:
    await _seed(store, "a", "b")
    flow = _rename_pair_flow(store)
    before = await store.last_position()

    events = await flow.dispatch(FlowRenamePair(left="a", right="b", description="x"))

    assert [(e.aggregate_id, e.aggregate_version) for e in events] == [("a", 2), ("b", 2)]
    assert before < (events[0].position or 0) < (events[1].position or 0)
    assert events == (await _stored(store))[2:]


async def test_dispatch_returns_an_empty_list_when_nothing_changes(store: EventStore) -> None:
    await _seed(store, "a", "b")
    flow = _rename_pair_flow(store)
    await flow.dispatch(FlowRenamePair(left="a", right="b", description="x"))
    published: list[Event] = []
    flow.bus.subscribe(Event, published.append)
    before = await store.last_position()

    events = await flow.dispatch(FlowRenamePair(left="a", right="b", description="x"))

    assert events == []
    assert published == []
    assert await store.last_position() == before


async def test_handler_may_return_the_aggregate_it_added(store: EventStore) -> None:
    todos = Repository(Todo, store)

    async def create_todo(cmd: CreateTodo) -> Todo:
        return await todos.add(id=cmd.id, description=cmd.description)

    flow = Flow(store=store, handlers={CreateTodo: create_todo})

    events = await flow.dispatch(CreateTodo(id="t1", description="hello"))

    assert [(e.event_type, e.payload) for e in events] == [
        ("TodoCreated", {"description": "hello"})
    ]
    assert (await todos.load("t1")).description == "hello"


async def test_handler_may_return_a_list_of_events(store: EventStore) -> None:
    await _seed(store, "t1")
    todos = Repository(Todo, store)

    async def mark_as_completed(cmd: MarkAsCompleted) -> list[Event]:
        todo = await todos.load(cmd.id)
        return todo.complete()

    flow = Flow(store=store, handlers={MarkAsCompleted: mark_as_completed})

    events = await flow.dispatch(MarkAsCompleted(id="t1"))

    assert [(e.event_type, e.aggregate_version) for e in events] == [("TodoCompleted", 2)]
    assert (await todos.load("t1")).completed


async def test_events_carry_the_command_id_as_causation_id(store: EventStore) -> None:
    await _seed(store, "a", "b")
    flow = _rename_pair_flow(store)
    command = FlowRenamePair(left="a", right="b", description="x")

    events = await flow.dispatch(command)

    stored = (await _stored(store))[2:]
    assert len(events) == 2
    assert {e.metadata["causation_id"] for e in events + stored} == {str(command.command_id)}


async def test_correlation_id_defaults_to_the_command_id(store: EventStore) -> None:
    await _seed(store, "a", "b")
    flow = _rename_pair_flow(store)
    command = FlowRenamePair(left="a", right="b", description="x")

    events = await flow.dispatch(command)

    stored = (await _stored(store))[2:]
    assert {e.metadata["correlation_id"] for e in events + stored} == {str(command.command_id)}


async def test_correlation_id_comes_from_the_metadata_argument(store: EventStore) -> None:
    await _seed(store, "a", "b")
    flow = _rename_pair_flow(store)

    events = await flow.dispatch(
        FlowRenamePair(left="a", right="b", description="x"),
        metadata={"correlation_id": "saga-42", "user": "ada"},
    )

    stored = (await _stored(store))[2:]
    assert {e.metadata["correlation_id"] for e in events + stored} == {"saga-42"}
    assert {e.metadata["user"] for e in events + stored} == {"ada"}


# --- publishing -----------------------------------------------------------------------------


async def test_committed_events_are_published_after_the_commit(store: EventStore) -> None:
    await _seed(store, "a", "b")
    flow = _rename_pair_flow(store)
    readable_when_published: list[bool] = []

    async def listener(event: Event) -> None:
        stream = await store.read_stream(f"Todo-{event.aggregate_id}")
        readable_when_published.append(event.event_id in {e.event_id for e in stream})

    flow.bus.subscribe(TodoRenamed, listener)

    await flow.dispatch(FlowRenamePair(left="a", right="b", description="x"))

    assert readable_when_published == [True, True]


async def test_published_events_are_the_committed_ones_with_positions(store: EventStore) -> None:
    await _seed(store, "a", "b")
    flow = _rename_pair_flow(store)
    published: list[Event] = []
    flow.bus.subscribe(Event, published.append)

    events = await flow.dispatch(FlowRenamePair(left="a", right="b", description="x"))

    assert published == events
    assert all(e.position is not None for e in published)


async def test_dispatch_awaits_listeners_before_returning() -> None:
    flow = _rename_pair_flow(InMemoryEventStore())
    await _seed(flow.store, "a", "b")
    finished: list[str | None] = []

    async def slow_listener(event: Event) -> None:
        await anyio.sleep(0.02)
        finished.append(event.aggregate_id)

    flow.bus.subscribe(TodoRenamed, slow_listener)

    await flow.dispatch(FlowRenamePair(left="a", right="b", description="x"))

    assert finished == ["a", "b"]


async def test_failing_listener_neither_undoes_the_commit_nor_fails_dispatch() -> None:
    flow = _rename_pair_flow(InMemoryEventStore())
    await _seed(flow.store, "a", "b")

    def failing(event: Event) -> None:
        raise RuntimeError("read model down")

    flow.bus.subscribe(TodoRenamed, failing)

    events = await flow.dispatch(FlowRenamePair(left="a", right="b", description="x"))

    assert len(events) == 2
    assert (await _stored(flow.store))[2:] == events


# --- unit of work and atomicity -------------------------------------------------------------


async def test_handler_touching_two_aggregates_commits_both(store: EventStore) -> None:
    await _seed(store, "a", "b")
    flow = _rename_pair_flow(store)

    await flow.dispatch(FlowRenamePair(left="a", right="b", description="x"))

    todos = Repository(Todo, store)
    assert [(t.description, t.version) for t in [await todos.load("a"), await todos.load("b")]] == [
        ("x", 2),
        ("x", 2),
    ]


async def test_conflict_on_the_second_aggregate_stores_nothing_of_the_first(
    store: EventStore,
) -> None:
    await _seed(store, "a", "b")
    todos = Repository(Todo, store)
    flow = Flow(store=store, retries=0)

    @flow.handles(FlowRenamePair)
    async def rename_pair(cmd: FlowRenamePair) -> list[Event]:
        left, right = await todos.load(cmd.left), await todos.load(cmd.right)
        events = left.rename(cmd.description) + right.rename(cmd.description)
        await store.append("Todo-b", [TodoRenamed(description="another writer")])
        return events

    with pytest.raises(ConcurrencyError) as caught:
        await flow.dispatch(FlowRenamePair(left="a", right="b", description="x"))

    assert caught.value.stream_id == "Todo-b"
    assert [e.aggregate_version for e in await store.read_stream("Todo-a")] == [1]
    assert [e.payload for e in await store.read_stream("Todo-b")] == [
        {"description": "b created"},
        {"description": "another writer"},
    ]


async def test_conflict_is_retried_with_fresh_loads(store: EventStore) -> None:
    await _seed(store, "a", "b")
    todos = Repository(Todo, store)
    flow = Flow(store=store, retries=1)
    loaded_versions: list[tuple[int, int]] = []

    @flow.handles(FlowRenamePair)
    async def rename_pair(cmd: FlowRenamePair) -> list[Event]:
        left, right = await todos.load(cmd.left), await todos.load(cmd.right)
        loaded_versions.append((left.version, right.version))
        events = left.rename(cmd.description) + right.rename(cmd.description)
        if len(loaded_versions) == 1:
            await store.append("Todo-b", [TodoRenamed(description="another writer")])
        return events

    events = await flow.dispatch(FlowRenamePair(left="a", right="b", description="x"))

    assert loaded_versions == [(1, 1), (1, 2)]
    assert [(e.aggregate_id, e.aggregate_version) for e in events] == [("a", 2), ("b", 3)]
    assert [e.payload["description"] for e in await store.read_stream("Todo-a")] == [
        "a created",
        "x",
    ]
    assert [e.payload["description"] for e in await store.read_stream("Todo-b")] == [
        "b created",
        "another writer",
        "x",
    ]


async def test_concurrency_error_raised_inside_the_handler_is_retried(store: EventStore) -> None:
    await _seed(store, "t1")
    todos = Repository(Todo, store)
    flow = Flow(store=store, retries=2)
    calls = 0

    @flow.handles(RenameTodo)
    async def rename(cmd: RenameTodo) -> list[Event]:
        nonlocal calls
        calls += 1
        todo = await todos.load(cmd.id)
        if calls == 1:
            await store.append(todo.stream_id, [TodoRenamed(description="y")], expected_version=0)
        return todo.rename(cmd.description)

    events = await flow.dispatch(RenameTodo(id="t1", description="z"))

    assert calls == 2
    assert [e.aggregate_version for e in events] == [2]


async def test_concurrency_error_propagates_when_retries_are_exhausted(store: EventStore) -> None:
    await _seed(store, "t1")
    todos = Repository(Todo, store)
    flow = Flow(store=store, retries=3)
    calls = 0

    @flow.handles(RenameTodo)
    async def rename(cmd: RenameTodo) -> list[Event]:
        nonlocal calls
        calls += 1
        todo = await todos.load(cmd.id)
        events = todo.rename(f"{cmd.description} {calls}")
        await store.append(todo.stream_id, [TodoRenamed(description=f"other {calls}")])
        return events

    with pytest.raises(ConcurrencyError):
        await flow.dispatch(RenameTodo(id="t1", description="mine"))

    assert calls == 4
    assert [e.payload["description"] for e in await store.read_stream("Todo-t1")] == [
        "t1 created",
        "other 1",
        "other 2",
        "other 3",
        "other 4",
    ]


async def test_failing_handler_stores_nothing_publishes_nothing_and_propagates(
    store: EventStore,
) -> None:
    await _seed(store, "a")
    todos = Repository(Todo, store)
    published: list[Event] = []
    flow = Flow(store=store, bus=EventBus(listeners={Event: [published.append]}))

    @flow.handles(FlowRenamePair)
    async def rename_then_fail(cmd: FlowRenamePair) -> list[Event]:
        (await todos.load(cmd.left)).rename(cmd.description)
        await todos.add(id=cmd.right, description="new")
        raise RuntimeError("handler failed")

    with pytest.raises(RuntimeError, match="handler failed"):
        await flow.dispatch(FlowRenamePair(left="a", right="b", description="x"))

    assert [e.payload for e in await _stored(store)] == [{"description": "a created"}]
    assert published == []


async def test_handler_returning_an_untracked_aggregate_raises_uncommitted_events_error(
    store: EventStore,
) -> None:
    async def create_todo(cmd: CreateTodo) -> Todo:
        return Todo.create(id=cmd.id, description=cmd.description)

    flow = Flow(store=store, handlers={CreateTodo: create_todo})

    with pytest.raises(UncommittedEventsError):
        await flow.dispatch(CreateTodo(id="t1", description="lost"))

    assert await store.last_position() == 0


async def test_handler_returning_untracked_events_raises_uncommitted_events_error(
    store: EventStore,
) -> None:
    await _seed(store, "a")
    todos = Repository(Todo, store)

    async def rename_a_and_a_stray(cmd: RenameTodo) -> list[Event]:
        tracked = await todos.load(cmd.id)
        stray = Todo(id="stray", version=1)
        return tracked.rename(cmd.description) + stray.rename(cmd.description)

    flow = Flow(store=store, handlers={RenameTodo: rename_a_and_a_stray})
    before = await store.last_position()

    with pytest.raises(UncommittedEventsError):
        await flow.dispatch(RenameTodo(id="a", description="x"))

    assert await store.last_position() == before


async def test_save_inside_a_handler_writes_nothing_before_the_handler_returns(
    store: EventStore,
) -> None:
    await _seed(store, "t1")
    todos = Repository(Todo, store)
    version_seen_after_save: list[int] = []

    async def rename(cmd: RenameTodo) -> None:
        todo = await todos.load(cmd.id)
        todo.rename(cmd.description)
        await todos.save(todo)
        version_seen_after_save.append(await store.stream_version(todo.stream_id))

    flow = Flow(store=store, handlers={RenameTodo: rename})

    events = await flow.dispatch(RenameTodo(id="t1", description="x"))

    assert version_seen_after_save == [1]
    assert [e.aggregate_version for e in events] == [2]
    assert await store.stream_version("Todo-t1") == 2


async def test_add_inside_a_handler_writes_nothing_before_the_handler_returns(
    store: EventStore,
) -> None:
    todos = Repository(Todo, store)
    position_seen_after_add: list[int] = []

    async def create_todo(cmd: CreateTodo) -> Todo:
        todo = await todos.add(id=cmd.id, description=cmd.description)
        position_seen_after_add.append(await store.last_position())
        return todo

    flow = Flow(store=store, handlers={CreateTodo: create_todo})

    events = await flow.dispatch(CreateTodo(id="t1", description="x"))

    assert position_seen_after_add == [0]
    assert [e.position for e in events] == [await store.last_position()]


async def test_loading_an_aggregate_twice_in_one_dispatch_returns_the_same_instance() -> None:
    flow = Flow()
    await _seed(flow.store, "t1")
    todos = Repository(Todo, flow.store)
    loaded: list[Todo] = []

    @flow.handles(RenameTodo)
    async def rename_twice(cmd: RenameTodo) -> None:
        first = await todos.load(cmd.id)
        first.rename(cmd.description)
        second = await todos.load(cmd.id)
        second.complete()
        loaded.extend([first, second])

    events = await flow.dispatch(RenameTodo(id="t1", description="x"))

    assert loaded[0] is loaded[1]
    assert [(e.event_type, e.aggregate_version) for e in events] == [
        ("TodoRenamed", 2),
        ("TodoCompleted", 3),
    ]


async def test_save_in_a_task_that_outlives_the_dispatch_writes_at_once() -> None:
    flow = Flow()
    await _seed(flow.store, "t1")
    todos = Repository(Todo, flow.store)
    dispatch_returned = anyio.Event()
    saved: list[Event] = []

    async def rename_later() -> None:
        await dispatch_returned.wait()
        todo = await todos.load("t1")
        todo.rename("renamed after the dispatch")
        saved.extend(await todos.save(todo))

    async with anyio.create_task_group() as tg:

        @flow.handles(RenameTodo)
        async def start_background_work(cmd: RenameTodo) -> None:
            tg.start_soon(rename_later)

        await flow.dispatch(RenameTodo(id="t1", description="x"))
        dispatch_returned.set()

    assert [e.position for e in saved] == [2]
    assert await flow.store.stream_version("Todo-t1") == 2


# --- concurrency ------------------------------------------------------------------------------


def _contended_rename_flow(
    store: EventStore, *, retries: int, contenders: int
) -> tuple[Flow, list[int]]:
    """A flow whose first attempts all load before any commits, then yield before committing."""
    todos = Repository(Todo, store)
    flow = Flow(store=store, retries=retries)
    first_loads = 0
    everyone_loaded = anyio.Event()
    calls = [0]

    @flow.handles(RenameTodo)
    async def rename(cmd: RenameTodo) -> list[Event]:
        nonlocal first_loads
        calls[0] += 1
        todo = await todos.load(cmd.id)
        if not everyone_loaded.is_set():
            first_loads += 1
            if first_loads == contenders:
                everyone_loaded.set()
            await everyone_loaded.wait()
        await anyio.lowlevel.checkpoint()
        return todo.rename(cmd.description)

    return flow, calls


async def test_concurrent_dispatches_to_one_aggregate_all_succeed_with_enough_retries(
    store: EventStore,
) -> None:
    await _seed(store, "hot")
    contenders = 50
    flow, calls = _contended_rename_flow(store, retries=contenders, contenders=contenders)
    results: dict[int, list[Event]] = {}

    async def dispatch(i: int) -> None:
        results[i] = await flow.dispatch(RenameTodo(id="hot", description=f"task {i}"))

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            for i in range(contenders):
                tg.start_soon(dispatch, i)

    stream = await store.read_stream("Todo-hot")
    assert [e.aggregate_version for e in stream] == list(range(1, contenders + 2))
    assert sorted(e.payload["description"] for e in stream[1:]) == sorted(
        f"task {i}" for i in range(contenders)
    )
    assert sorted(e.event_id for r in results.values() for e in r) == sorted(
        e.event_id for e in stream[1:]
    )
    assert calls[0] > contenders  # they really conflicted and were retried


async def test_concurrent_dispatches_without_retries_store_exactly_the_successful_ones(
    store: EventStore,
) -> None:
    await _seed(store, "hot")
    contenders = 50
    flow, calls = _contended_rename_flow(store, retries=0, contenders=contenders)
    succeeded: dict[int, list[Event]] = {}
    failed: list[int] = []

    async def dispatch(i: int) -> None:
        try:
            succeeded[i] = await flow.dispatch(RenameTodo(id="hot", description=f"task {i}"))
        except ConcurrencyError:
            failed.append(i)

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            for i in range(contenders):
                tg.start_soon(dispatch, i)

    stream = await store.read_stream("Todo-hot")
    assert len(succeeded) == 1  # all loaded version 1 before anyone committed
    assert len(failed) == contenders - 1
    assert calls[0] == contenders
    assert [e.aggregate_version for e in stream] == [1, 2]
    assert [e for r in succeeded.values() for e in r] == stream[1:]


# --- cancellation -----------------------------------------------------------------------------


def _sweep_delay(i: int) -> float:
    return (i % 60) * 0.00005  # 0 to ~3 ms, cycling


def _assert_all_or_none(
    stored: list[Event], commands: dict[str, FlowRenamePair], completed: set[str]
) -> set[str]:
    """Each command's events are all stored or none; returns the ids of stored commands."""
    by_command: dict[str, list[Event]] = defaultdict(list)
    for event in stored:
        if "causation_id" in event.metadata:
            by_command[event.metadata["causation_id"]].append(event)
    assert set(by_command) <= set(commands)
    for command_id, events in by_command.items():
        command = commands[command_id]
        assert sorted(e.aggregate_id or "" for e in events) == sorted([command.left, command.right])
        assert {e.payload["description"] for e in events} == {command.description}
    assert completed <= set(by_command)
    return set(by_command)


async def test_cancelled_dispatches_store_all_of_their_events_or_none(store: EventStore) -> None:
    await _seed(store, "left", "right")
    flow = _rename_pair_flow(store)
    published: list[Event] = []

    async def listener(event: Event) -> None:
        await anyio.lowlevel.checkpoint()
        published.append(event)

    flow.bus.subscribe(TodoRenamed, listener)
    commands: dict[str, FlowRenamePair] = {}
    completed: set[str] = set()
    cancelled = 0

    for i in range(300):
        command = FlowRenamePair(left="left", right="right", description=f"sweep {i}")
        commands[str(command.command_id)] = command
        with anyio.move_on_after(_sweep_delay(i)) as scope:
            await flow.dispatch(command)
        if scope.cancelled_caught:
            cancelled += 1
        else:
            completed.add(str(command.command_id))

    stored = await _stored(store)
    stored_commands = _assert_all_or_none(stored, commands, completed)
    assert cancelled > 0
    assert await store.stream_version("Todo-left") == await store.stream_version("Todo-right")
    assert await store.stream_version("Todo-left") == len(stored_commands) + 1
    assert {e.event_id for e in published} <= {e.event_id for e in stored}
    after = await flow.dispatch(FlowRenamePair(left="left", right="right", description="after"))
    assert [e.aggregate_id for e in after] == ["left", "right"]


async def test_concurrent_cancelled_dispatches_store_all_of_their_events_or_none(
    store: EventStore,
) -> None:
    pairs = [(f"left{k}", f"right{k}") for k in range(4)]
    await _seed(store, *(todo_id for pair in pairs for todo_id in pair))
    flow = _rename_pair_flow(store, retries=20)
    published: list[Event] = []
    flow.bus.subscribe(TodoRenamed, published.append)
    commands: dict[str, FlowRenamePair] = {}
    completed: set[str] = set()

    async def dispatch(command: FlowRenamePair, delay: float) -> None:
        with anyio.move_on_after(delay):
            try:
                await flow.dispatch(command)
            except ConcurrencyError:
                return
            completed.add(str(command.command_id))

    for wave in range(30):
        async with anyio.create_task_group() as tg:
            for j in range(10):
                i = wave * 10 + j
                left, right = pairs[i % len(pairs)]
                command = FlowRenamePair(left=left, right=right, description=f"sweep {i}")
                commands[str(command.command_id)] = command
                tg.start_soon(dispatch, command, _sweep_delay(i * 7))

    stored = await _stored(store)
    _assert_all_or_none(stored, commands, completed)
    for left, right in pairs:
        assert await store.stream_version(f"Todo-{left}") == await store.stream_version(
            f"Todo-{right}"
        )
    assert {e.event_id for e in published} <= {e.event_id for e in stored}
    after = await flow.dispatch(FlowRenamePair(left="left0", right="right0", description="after"))
    assert [e.aggregate_id for e in after] == ["left0", "right0"]
