"""eventuality's side of every workload, through its public API only.

Each ``ev_*`` coroutine does one measurement and returns its figures; setup (opening a store,
building the data) stays outside the timed block. The ``build_*`` coroutines make the stores
that read workloads share across rounds.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from pathlib import Path
from typing import Literal

from common import (
    COMMANDS_PER_TODO,
    RENAMES,
    Figures,
    loop_lag,
    median,
    peak_rss_growth,
    rate,
    timer,
)

from eventuality import (
    Aggregate,
    Command,
    Event,
    EventStore,
    Flow,
    InMemoryEventStore,
    Repository,
    SQLiteEventStore,
    StreamAppend,
)

Synchronous = Literal["NORMAL", "FULL"]

# Event type names are global in a process: a prefix keeps these apart from anyone's Todo.


class BenchTodoCreated(Event):
    description: str


class BenchTodoRenamed(Event):
    description: str


class BenchTodoCompleted(Event):
    pass


class BenchTodo(Aggregate):
    description: str = ""
    completed: bool = False

    @classmethod
    def create(cls, id: str, description: str) -> BenchTodo:
        todo = cls(id=id)
        todo.record(BenchTodoCreated(description=description))
        return todo

    def rename(self, description: str) -> list[Event]:
        return [self.record(BenchTodoRenamed(description=description))]

    def complete(self) -> list[Event]:
        if self.completed:
            return []
        return [self.record(BenchTodoCompleted())]

    def apply(self, event: Event) -> None:
        match event:
            case BenchTodoCreated(description=description):
                self.description = description
            case BenchTodoRenamed(description=description):
                self.description = description
            case BenchTodoCompleted():
                self.completed = True


class BenchCreate(Command):
    id: str
    description: str


class BenchRename(Command):
    id: str
    description: str


class BenchComplete(Command):
    id: str


def make_flow(store: EventStore) -> Flow:
    todos = Repository(BenchTodo, store)

    async def create(command: BenchCreate) -> BenchTodo:
        return await todos.add(id=command.id, description=command.description)

    async def rename(command: BenchRename) -> list[Event]:
        todo = await todos.load(command.id)
        return todo.rename(command.description)

    async def complete(command: BenchComplete) -> list[Event]:
        todo = await todos.load(command.id)
        return todo.complete()

    return Flow(
        store=store,
        handlers={BenchCreate: create, BenchRename: rename, BenchComplete: complete},
    )


async def dispatch_todos(flow: Flow, ids: Sequence[str]) -> None:
    """W1's commands for each todo in turn: create, rename three times, complete."""
    for todo_id in ids:
        await flow.dispatch(BenchCreate(id=todo_id, description=f"todo {todo_id}"))
        for n in range(RENAMES):
            await flow.dispatch(BenchRename(id=todo_id, description=f"todo {todo_id} v{n}"))
        await flow.dispatch(BenchComplete(id=todo_id))


def todo_ids(count: int, prefix: str = "todo") -> list[str]:
    return [f"{prefix}-{i}" for i in range(count)]


def sqlite_store(path: Path, synchronous: Synchronous = "NORMAL") -> SQLiteEventStore:
    return SQLiteEventStore(path, synchronous=synchronous)


# --- W1, W2, W6: dispatch -----------------------------------------------------------------


async def ev_dispatch_memory(todos: int) -> Figures:
    """W1: every command through Flow.dispatch on the in-memory store; peak RSS growth too."""
    flow = make_flow(InMemoryEventStore())
    ids = todo_ids(todos)
    with peak_rss_growth() as growth, timer() as elapsed:
        await dispatch_todos(flow, ids)
    return {"commands/s": rate(todos * COMMANDS_PER_TODO, elapsed()), "peak RSS MB": growth()}


async def dispatch_on(
    store: AbstractAsyncContextManager[EventStore],
    todos: int,
    tasks: int,
    idempotency: bool = True,
    lag: bool = False,
) -> Figures:
    """W2 (one task) and W6: ``tasks`` concurrent tasks, each dispatching W2's commands for
    its own todos, on the store ``store`` opens. With ``lag`` (W8), a ticker on the loop
    records how late its 1 ms sleeps wake up while the commands run."""
    async with store as opened:
        flow = make_flow(opened)
        if not idempotency:
            flow.idempotency = None
        ids = todo_ids(todos)
        shares = [ids[k::tasks] for k in range(tasks)]
        with timer() as elapsed:
            async with loop_lag() if lag else nullcontext(dict) as lags:
                await asyncio.gather(*(dispatch_todos(flow, share) for share in shares))
    return {"commands/s": rate(todos * COMMANDS_PER_TODO, elapsed()), **lags()}


async def ev_dispatch_sqlite(
    path: Path, todos: int, synchronous: Synchronous, *, idempotency: bool = True
) -> Figures:
    """W2: one command after another, one transaction each, on a fresh file. Without
    ``idempotency`` the flow records no command keys: what remembering them costs."""
    return await dispatch_on(sqlite_store(path, synchronous), todos, 1, idempotency)


async def ev_dispatch_concurrent(
    path: Path, todos: int, tasks: int, synchronous: Synchronous
) -> Figures:
    """W6: ``tasks`` concurrent tasks, each dispatching W2's commands for its own todos."""
    return await dispatch_on(sqlite_store(path, synchronous), todos, tasks)


async def ev_loop_lag(path: Path, todos: int, tasks: int, synchronous: Synchronous) -> Figures:
    """W8: W2 (one task) or W6 (``tasks`` tasks) with a ticker measuring the loop's lag."""
    return await dispatch_on(sqlite_store(path, synchronous), todos, tasks, lag=True)


# --- W3, W7: loads ------------------------------------------------------------------------

LONG_ID = "long"
SNAPSHOT_ID = "long-snapshot"


def long_todo(todo_id: str, events: int) -> BenchTodo:
    """A new todo with ``events`` pending events: created, then renamed again and again."""
    todo = BenchTodo.create(id=todo_id, description="v0")
    for n in range(1, events):
        todo.rename(f"v{n}")
    return todo


async def build_long_streams(store: EventStore, events: int, snapshot_gap: int) -> None:
    """Two streams of ``events`` events: ``long``, and ``long-snapshot`` with a snapshot
    ``snapshot_gap`` events before its end (taken by a Repository with ``snapshot_every``)."""
    await Repository(BenchTodo, store).save(long_todo(LONG_ID, events))
    snapshotting = Repository(BenchTodo, store, snapshot_every=events - snapshot_gap)
    todo = long_todo(SNAPSHOT_ID, events - snapshot_gap)
    await snapshotting.save(todo)  # crosses the mark: a snapshot at events - snapshot_gap
    for n in range(snapshot_gap):
        todo.rename(f"after snapshot {n}")
    await snapshotting.save(todo)


async def build_w3(path: Path, events: int, snapshot_gap: int) -> None:
    async with sqlite_store(path) as store:
        await build_long_streams(store, events, snapshot_gap)


async def _median_load_seconds(
    repository: Repository[BenchTodo], todo_id: str, loads: int
) -> float:
    times: list[float] = []
    for _ in range(loads):
        with timer() as elapsed:
            todo = await repository.load(todo_id)
        times.append(elapsed())
        assert todo.version > 0
    return median(times)


async def ev_load(path: Path, events: int, loads: int) -> Figures:
    """W3: replay the long stream from its first event; events/s of the median load."""
    async with sqlite_store(path) as store:
        seconds = await _median_load_seconds(Repository(BenchTodo, store), LONG_ID, loads)
    return {"events/s": rate(events, seconds)}


async def ev_load_snapshot(path: Path, events: int, snapshot_gap: int, loads: int) -> Figures:
    """W3: load from the snapshot near the end plus the few events after it."""
    async with sqlite_store(path) as store:
        repository = Repository(BenchTodo, store, snapshot_every=events - snapshot_gap)
        seconds = await _median_load_seconds(repository, SNAPSHOT_ID, loads)
    return {"ms": seconds * 1000}


# --- W4: read the whole log ---------------------------------------------------------------


def _todo_appends(start: int, count: int, prefix: str) -> list[StreamAppend]:
    """``count`` new todos with W1's five events each, recorded by the aggregate."""
    appends: list[StreamAppend] = []
    for i in range(start, start + count):
        todo = BenchTodo.create(id=f"{prefix}-{i}", description=f"todo {i}")
        for n in range(RENAMES):
            todo.rename(f"todo {i} v{n}")
        todo.complete()
        appends.append(StreamAppend(todo.stream_id, todo.pending_events, 0))
    return appends


async def prefill(store: EventStore, events: int, prefix: str, per_commit: int = 1000) -> None:
    """Add ``events`` events (rounded down to whole todos) through the public API, as atomic
    appends of ``per_commit`` events over many streams."""
    todos = events // COMMANDS_PER_TODO
    per_append = max(1, per_commit // COMMANDS_PER_TODO)
    for start in range(0, todos, per_append):
        await store.append_streams(_todo_appends(start, min(per_append, todos - start), prefix))


async def build_log(path: Path, todos: int) -> None:
    """W4's store: ``todos`` todos of five events each."""
    async with sqlite_store(path) as store:
        await prefill(store, todos * COMMANDS_PER_TODO, "todo")


async def ev_read_all(path: Path) -> Figures:
    """W4: the whole global log in order, counting events per type; run in a fresh process."""
    async with sqlite_store(path) as store:
        counts: Counter[str] = Counter()
        with peak_rss_growth() as growth, timer() as elapsed:
            async for event in store.read_all():
                counts[event.event_type] += 1
    total = sum(counts.values())
    return {"events/s": rate(total, elapsed()), "peak RSS MB": growth(), "events": total}


# --- W5: batches --------------------------------------------------------------------------


async def append_batches_on(
    store: AbstractAsyncContextManager[EventStore], saves: int, batch: int
) -> Figures:
    """W5: ``saves`` new todos, each recording ``batch`` events, each one Repository.save."""
    async with store as opened:
        repository = Repository(BenchTodo, opened)
        with timer() as elapsed:
            for i in range(saves):
                await repository.save(long_todo(f"batch-{i}", batch))
    return {"events/s": rate(saves * batch, elapsed())}


async def ev_append_batch(path: Path, saves: int, batch: int, synchronous: Synchronous) -> Figures:
    """W5 on a fresh SQLite file."""
    return await append_batches_on(sqlite_store(path, synchronous), saves, batch)


# --- W7: the same on a small and a large store -------------------------------------------


async def build_scale_store(path: Path, total: int, events: int) -> float:
    """A store holding ``total`` events: W3's long stream of ``events`` plus todos. Returns the
    seconds the prefill through the public API took."""
    async with sqlite_store(path) as store:
        await Repository(BenchTodo, store).save(long_todo(LONG_ID, events))
        with timer() as elapsed:
            await prefill(store, max(0, total - events), "old")
    return elapsed()


async def ev_scale_dispatch(path: Path, todos: int, prefix: str) -> Figures:
    """W7: W2 at the default setting on a store that already holds many events."""
    async with sqlite_store(path) as store:
        flow = make_flow(store)
        ids = todo_ids(todos, prefix)
        with timer() as elapsed:
            await dispatch_todos(flow, ids)
    return {"commands/s": rate(todos * COMMANDS_PER_TODO, elapsed())}


# --- W2, W5, W6 on PostgreSQL (when a server is given) ------------------------------------


@asynccontextmanager
async def postgres_store(dsn: str) -> AsyncIterator[EventStore]:
    """An open PostgresEventStore in a new schema of its own, dropped afterwards."""
    import asyncpg

    from eventuality import PostgresEventStore

    schema = f"bench_{uuid.uuid4().hex[:12]}"
    try:
        async with PostgresEventStore(dsn, schema=schema) as store:
            yield store
    finally:
        connection = await asyncpg.connect(dsn)
        try:
            await connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await connection.close()


async def ev_dispatch_postgres(dsn: str, todos: int) -> Figures:
    """W2 on PostgreSQL: one command after another, one transaction each."""
    return await dispatch_on(postgres_store(dsn), todos, 1)


async def ev_append_batch_postgres(dsn: str, saves: int, batch: int) -> Figures:
    """W5 on PostgreSQL."""
    return await append_batches_on(postgres_store(dsn), saves, batch)


async def ev_dispatch_concurrent_postgres(dsn: str, todos: int, tasks: int) -> Figures:
    """W6 on PostgreSQL: ``tasks`` concurrent tasks, each on its own todos."""
    return await dispatch_on(postgres_store(dsn), todos, tasks)
