"""Stream lifecycle beyond the store contract: projections reacting to tombstones, flows and
repositories meeting deleted, archived and truncated streams, and the errors they raise."""

import pickle
from collections.abc import Awaitable, Callable

import anyio
import pytest

from eventuality import (
    Event,
    EventStore,
    Flow,
    Projection,
    Repository,
    StreamAppend,
    StreamArchival,
    StreamArchived,
    StreamDeleted,
    StreamLifecycleError,
    StreamNotFound,
    StreamTruncated,
    Subscription,
    Tombstone,
    Transaction,
)
from eventuality.stores.lifecycle import LIFECYCLE_STREAM
from tests.domain import CreateTodo, RenameTodo, Todo, TodoCreated, TodoRenamed


async def _visible(store: EventStore, event: Event) -> None:
    """Wait until ``event`` is readable in the global log (PostgreSQL under load lags)."""
    with anyio.fail_after(60):
        while await store.last_position() < (event.position or 0):
            await store.wait_appended((event.position or 1) - 1, timeout=1)


Setup = Callable[[Transaction], Awaitable[None]]
Project = Callable[[Event, Transaction], Awaitable[None]]


def _todo_list(table: str) -> tuple[Setup, Project]:
    """A read model of todos by id, that forgets a todo whose stream is deleted."""

    async def setup(tx: Transaction) -> None:
        await tx.execute(
            f"CREATE TABLE IF NOT EXISTS {table} (id TEXT PRIMARY KEY, description TEXT)"
        )

    async def project(event: Event, tx: Transaction) -> None:
        if isinstance(event, TodoCreated | TodoRenamed):
            await tx.execute(
                f"INSERT INTO {table} (id, description) VALUES (:id, :d) "
                "ON CONFLICT (id) DO UPDATE SET description = :d",
                id=event.aggregate_id,
                d=event.description,
            )
        elif isinstance(event, Tombstone):
            await tx.execute(f"DELETE FROM {table} WHERE id = :id", id=event.aggregate_id)

    return setup, project


async def test_a_projection_forgets_a_deleted_todo_and_a_rebuild_agrees(
    store: EventStore,
) -> None:
    todos = Repository(Todo, store)
    for todo_id in ("1", "2", "3"):
        todo = await todos.add(id=todo_id, description=f"todo {todo_id}")
        todo.rename(f"renamed {todo_id}")
        await todos.save(todo)
    setup, project = _todo_list("todo_list")
    live = Projection(store, "todo-list", project, setup=setup)
    await live.catch_up()
    assert len(await store.query("SELECT id FROM todo_list")) == 3

    tombstone = await store.delete_stream("Todo-2")
    await _visible(store, tombstone)
    await live.catch_up()

    kept = await store.query("SELECT id, description FROM todo_list ORDER BY id")
    assert kept == [("1", "renamed 1"), ("3", "renamed 3")]
    setup, project = _todo_list("todo_rebuilt")
    await Projection(store, "todo-rebuilt", project, setup=setup).catch_up()
    assert await store.query("SELECT id, description FROM todo_rebuilt ORDER BY id") == kept


async def test_a_tombstone_names_the_aggregate_of_the_deleted_stream(store: EventStore) -> None:
    await Repository(Todo, store).add(id="7", description="x")

    tombstone = await store.delete_stream("Todo-7")

    assert (tombstone.aggregate_id, tombstone.stream_id, tombstone.last_version) == (
        "7",
        "Todo-7",
        1,
    )
    assert tombstone.metadata == {}
    assert [e.event_id for e in await store.read_stream(LIFECYCLE_STREAM)] == [tombstone.event_id]


async def test_a_dispatch_on_a_deleted_todo_raises_stream_deleted_and_stores_nothing(
    store: EventStore,
) -> None:
    todos = Repository(Todo, store)
    flow = Flow(store=store)

    @flow.handles(CreateTodo)
    async def create(cmd: CreateTodo) -> None:
        await todos.add(id=cmd.id, description=cmd.description)

    @flow.handles(RenameTodo)
    async def rename(cmd: RenameTodo) -> None:
        (await todos.load(cmd.id)).rename(cmd.description)

    await flow.dispatch(CreateTodo(id="1", description="first"))
    tombstone = await store.delete_stream("Todo-1")

    with pytest.raises(StreamDeleted):
        await flow.dispatch(RenameTodo(id="1", description="second"))
    with pytest.raises(StreamDeleted):
        await flow.dispatch(CreateTodo(id="1", description="again"))

    assert await store.last_position() <= (tombstone.position or 0)
    assert await store.read_stream(LIFECYCLE_STREAM) == [tombstone]


async def test_a_commit_racing_a_delete_fails_whole(store: EventStore) -> None:
    todos = Repository(Todo, store)
    await todos.add(id="1", description="first")
    await todos.add(id="2", description="second")
    one, two = await todos.load("1"), await todos.load("2")
    one.rename("one")
    two.rename("two")
    await store.delete_stream("Todo-2")

    appends = [
        StreamAppend("Todo-1", one.pending_events, expected_version=1),
        StreamAppend("Todo-2", two.pending_events, expected_version=1),
    ]

    with pytest.raises(StreamDeleted):
        await store.append_streams(appends)

    assert await store.stream_version("Todo-1") == 1


async def test_a_truncated_stream_without_a_snapshot_fails_to_load_saying_why(
    store: EventStore,
) -> None:
    todo = Todo.create(id="1", description="a")
    for name in "bcd":
        todo.rename(name)
    await Repository(Todo, store).save(todo)
    await store.truncate_stream("Todo-1", 3, require_snapshot=False)

    with pytest.raises(StreamTruncated) as caught:
        await Repository(Todo, store).load("1")

    assert (caught.value.stream_id, caught.value.first_version) == ("Todo-1", 3)
    assert "snapshot" in str(caught.value)


async def test_an_archived_todo_loads_again_after_a_restore(store: EventStore) -> None:
    todos = Repository(Todo, store)
    await todos.add(id="1", description="first")
    archival = await store.archive_stream("Todo-1")
    assert isinstance(archival, StreamArchival)

    with pytest.raises(StreamArchived, match="read_archived"):
        await todos.load("1")
    await store.restore_stream("Todo-1")

    loaded = await todos.load("1")
    loaded.rename("second")
    assert [e.aggregate_version for e in await todos.save(loaded)] == [2]


@pytest.mark.parametrize(
    "error",
    [
        StreamDeleted("Todo-1", 3, "read the stream"),
        StreamArchived("Todo-1", 3, "append to the stream"),
        StreamNotFound("Todo-1", "delete the stream"),
        StreamTruncated("Todo-1", 1, 4),
        StreamLifecycleError("refused", stream_id="Todo-1", operation="truncate"),
    ],
)
def test_lifecycle_errors_keep_their_values_through_pickling(error: Exception) -> None:
    copy = pickle.loads(pickle.dumps(error))

    assert type(copy) is type(error)
    assert str(copy) == str(error)
    assert copy.stream_id == "Todo-1"  # type: ignore[attr-defined]


def test_messages_say_what_was_asked_found_and_what_to_do() -> None:
    deleted = str(StreamDeleted("Todo-1", 3, "append to the stream"))
    archived = str(StreamArchived("Todo-1", 3, "read the stream"))

    assert "cannot append to the stream" in deleted
    assert "version 3" in deleted
    assert "new id" in deleted
    assert "store.read_archived('Todo-1')" in archived
    assert "store.restore_stream('Todo-1')" in archived


async def test_a_running_subscription_is_woken_by_a_tombstone(store: EventStore) -> None:
    await Repository(Todo, store).add(id="1", description="first")
    seen: list[Event] = []
    arrived = anyio.Event()

    async def handle(event: Event) -> None:
        seen.append(event)
        if isinstance(event, Tombstone):
            arrived.set()

    subscription = Subscription(store, "tombstones", handle, event_types=[Tombstone])
    async with anyio.create_task_group() as group:
        group.start_soon(subscription.run)
        await anyio.sleep(0)
        tombstone = await store.delete_stream("Todo-1")
        with anyio.fail_after(60):
            await arrived.wait()
        group.cancel_scope.cancel()

    assert seen == [tombstone]


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda s: s.delete_stream("Todo-1", expected_version=-1), "expected_version"),
        (lambda s: s.archive_stream("Todo-1", expected_version="1"), "expected_version"),
        (lambda s: s.delete_stream(""), "non-empty str"),
        (lambda s: s.truncate_stream("Todo-1", 0), "before must be an int >= 1"),
        (lambda s: s.truncate_stream("Todo-1", 2.5), "before must be an int >= 1"),
    ],
)
async def test_bad_arguments_are_refused_before_anything_is_written(
    store: EventStore, call: Callable[[EventStore], Awaitable[object]], match: str
) -> None:
    stored = await store.append("Todo-1", [TodoCreated(description="a")] * 1)

    with pytest.raises(ValueError, match=match):
        await call(store)

    assert await store.read_stream("Todo-1") == stored
    assert await store.read_stream(LIFECYCLE_STREAM) == []
