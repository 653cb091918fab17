"""A read model of the todos, kept exactly once by a projection in the same SQLite file.

    python examples/todo_projection.py [path.db] [--todos N] [--rebuild]

The first run fills the store with N todos (20,000 by default; every third one completed), then
keeps a read model (a list, and open/completed counts) with a Projection running in the
background, and dispatches a few commands that wait until the read model shows them
(read-your-writes). ``--rebuild`` drops the read model and replays the whole log from position 0,
printing progress as it goes.
"""

import argparse

import anyio
from todo import CreateTodo, MarkAsCompleted, Todo, TodoCompleted, TodoCreated

from eventuality import (
    Event,
    EventStore,
    Flow,
    Projection,
    Repository,
    SQLiteEventStore,
    StreamAppend,
    SubscriptionRunner,
    Transaction,
)

READ_MODEL = "todo-read-model"


async def project(event: Event, tx: Transaction) -> None:
    """Keep the list and the counts; runs once per event, in the checkpoint's transaction."""
    match event:
        case TodoCreated(description=description):
            await tx.execute(
                "INSERT INTO todo_list (id, description, completed) VALUES (?, ?, 0)",
                event.aggregate_id,
                description,
            )
            await tx.execute("UPDATE todo_counts SET n = n + 1 WHERE state = 'open'")
        case TodoCompleted():
            await tx.execute("UPDATE todo_list SET completed = 1 WHERE id = ?", event.aggregate_id)
            await tx.execute(
                "UPDATE todo_counts SET n = n + (CASE state WHEN 'open' THEN -1 ELSE 1 END)"
            )


async def create_read_model(store: EventStore) -> None:
    async with store.transaction() as tx:
        await tx.execute(
            "CREATE TABLE IF NOT EXISTS todo_list "
            "(id TEXT PRIMARY KEY, description TEXT NOT NULL, completed INTEGER NOT NULL)"
        )
        await tx.execute(
            "CREATE TABLE IF NOT EXISTS todo_counts (state TEXT PRIMARY KEY, n INTEGER NOT NULL)"
        )
        await tx.execute(
            "INSERT OR IGNORE INTO todo_counts (state, n) VALUES ('open', 0), ('completed', 0)"
        )


async def reset_read_model(store: EventStore) -> None:
    """Empty the read model and move its checkpoint to 0, together."""
    async with store.transaction() as tx:
        await tx.execute("DELETE FROM todo_list")
        await tx.execute("UPDATE todo_counts SET n = 0")
        checkpoint = await tx.get_checkpoint(READ_MODEL)
        if checkpoint is not None:
            await tx.set_checkpoint(READ_MODEL, 0, checkpoint)


async def fill(store: EventStore, todos: int) -> None:
    """Store ``todos`` todos quickly: 200 streams per atomic append."""
    print(f"filling the store with {todos:,} todos ...")
    for start in range(0, todos, 200):
        appends = []
        for i in range(start, min(start + 200, todos)):
            todo = Todo.create(id=f"bulk{i}", description=f"bulk todo {i}")
            if i % 3 == 0:
                todo.complete()
            appends.append(StreamAppend(todo.stream_id, todo.pending_events, 0))
        await store.append_streams(appends)


async def show(store: EventStore) -> None:
    counts = dict(await store.query("SELECT state, n FROM todo_counts"))
    latest = await store.query(
        "SELECT id, description, completed FROM todo_list ORDER BY rowid DESC LIMIT 3"
    )
    print(f"  read model: {counts.get('open', 0):,} open, {counts.get('completed', 0):,} completed")
    for todo_id, description, completed in latest:
        print(f"    {todo_id}: {description!r}{' (done)' if completed else ''}")


async def rebuild(store: EventStore) -> None:
    """Replay the whole log into an empty read model, printing progress twice a second."""
    await reset_read_model(store)
    projection = Projection(store, READ_MODEL, project, batch_size=500)
    total = await store.last_position()
    started = anyio.current_time()

    async def report() -> None:
        while True:
            await anyio.sleep(0.5)
            done, elapsed = projection.position, anyio.current_time() - started
            print(
                f"  rebuilding: {done:,} / {total:,} events "
                f"({100 * done / max(total, 1):.0f} %, {done / elapsed:,.0f} events/s)"
            )

    async with anyio.create_task_group() as tg:
        tg.start_soon(report)
        handled = await projection.catch_up()
        tg.cancel_scope.cancel()
    elapsed = anyio.current_time() - started
    print(f"rebuilt from position 0: {handled:,} events in {elapsed:.1f} s")


async def main(path: str, todos: int, rebuild_first: bool) -> None:
    async with SQLiteEventStore(path) as store:
        await create_read_model(store)
        if await store.last_position() == 0:
            await fill(store, todos)
        print(f"store: {path}, {await store.last_position():,} events")
        if rebuild_first:
            await rebuild(store)

        repository = Repository(Todo, store)
        flow = Flow(store=store)

        @flow.handles(CreateTodo)
        async def create_todo(command: CreateTodo) -> None:
            await repository.add(id=command.id, description=command.description)

        @flow.handles(MarkAsCompleted)
        async def mark_as_completed(command: MarkAsCompleted) -> None:
            todo = await repository.load(command.id)
            todo.complete()

        async with SubscriptionRunner(Projection(store, READ_MODEL, project, batch_size=500)):
            print("catching up and following the log in the background")
            runs = await store.query("SELECT count(*) FROM todo_list WHERE id LIKE 'live%'")
            number = runs[0][0] + 1
            for command in (
                CreateTodo(id=f"live{number}", description=f"written by run {number}"),
                MarkAsCompleted(id=f"live{number}"),
            ):
                events = await flow.dispatch(command, wait_for=[READ_MODEL], wait_timeout=600)
                print(f"> {type(command).__name__}: {[e.event_type for e in events]}")
                await show(store)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("path", nargs="?", default="todo_projection.db")
    parser.add_argument("--todos", type=int, default=20_000)
    parser.add_argument("--rebuild", action="store_true")
    args = parser.parse_args()
    anyio.run(main, args.path, args.todos, args.rebuild)
