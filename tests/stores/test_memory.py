"""What only the in-memory store promises."""

from eventuality import InMemoryEventStore, Projection, Transaction
from tests.domain import Todo, TodoCreated


async def _project(event: object, tx: Transaction) -> None:
    if isinstance(event, TodoCreated):
        await tx.execute("INSERT INTO todos (id) VALUES (?)", event.aggregate_id)


async def test_closing_and_reopening_keeps_events_checkpoints_and_read_models() -> None:
    store = InMemoryEventStore()
    async with store:
        async with store.transaction() as tx:
            await tx.execute("CREATE TABLE todos (id TEXT PRIMARY KEY)")
        todo = Todo.create(id="t1", description="x")
        await store.append(todo.stream_id, todo.pending_events)
        await Projection(store, "todos", _project).catch_up()

    async with store:
        handled_again = await Projection(store, "todos", _project).catch_up()
        rows = await store.query("SELECT id FROM todos")
        events = await store.read_stream("Todo-t1")

    assert handled_again == 0
    assert rows == [("t1",)]
    assert len(events) == 1
