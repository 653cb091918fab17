"""eventsource-py 0.15.1 through its public API: a decider aggregate, ``AggregateRepository``,
its in-memory and SQLite event stores and its SQLite snapshot store.

It needs Python >= 3.13, so this module is only imported by ``child.py`` running on such an
interpreter (see ``py313.py``). Its SQLite store sets WAL and no ``synchronous``: SQLite's
default, FULL, like eventsourcing's.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

from common import COMMANDS_PER_TODO, RENAMES, Figures, median, peak_rss_growth, rate, timer
from eventsource import (
    AggregateRepository,
    DeciderAggregate,
    DomainCommand,
    DomainEvent,
    InMemoryEventStore,
    SQLiteEventStore,
    register_event,
)
from eventsource.adapters.sqlite.snapshots import SQLiteSnapshotStore
from eventsource.ports import FeedReadOptions
from pydantic import BaseModel


@register_event
class EspTodoCreated(DomainEvent):
    aggregate_type: str = "EspTodo"
    description: str


@register_event
class EspTodoRenamed(DomainEvent):
    aggregate_type: str = "EspTodo"
    description: str


@register_event
class EspTodoCompleted(DomainEvent):
    aggregate_type: str = "EspTodo"


class EspCreate(DomainCommand):
    todo_id: UUID
    description: str


class EspRename(DomainCommand):
    todo_id: UUID
    description: str


class EspComplete(DomainCommand):
    todo_id: UUID


EspCommand = EspCreate | EspRename | EspComplete


class EspTodoState(BaseModel):
    description: str = ""
    completed: bool = False


class EspTodo(DeciderAggregate[EspTodoState, EspCommand]):
    """The Todo as a decider, the library's primary aggregate style."""

    aggregate_type = "EspTodo"

    @staticmethod
    def initial_state() -> EspTodoState:
        return EspTodoState()

    @staticmethod
    def decide(command: EspCommand, state: EspTodoState) -> list[DomainEvent]:
        match command:
            case EspCreate(todo_id=todo_id, description=description):
                return [EspTodoCreated(aggregate_id=todo_id, description=description)]
            case EspRename(todo_id=todo_id, description=description):
                return [EspTodoRenamed(aggregate_id=todo_id, description=description)]
            case EspComplete(todo_id=todo_id):
                return [] if state.completed else [EspTodoCompleted(aggregate_id=todo_id)]
        return []

    @staticmethod
    def evolve(state: EspTodoState, event: DomainEvent) -> EspTodoState:
        match event:
            case EspTodoCreated(description=description) | EspTodoRenamed(description=description):
                return state.model_copy(update={"description": description})
            case EspTodoCompleted():
                return state.model_copy(update={"completed": True})
        return state


def _repository(store: Any, snapshots: Any = None) -> AggregateRepository[EspTodo]:
    return AggregateRepository(
        event_store=store, aggregate_factory=EspTodo, snapshot_store=snapshots
    )


async def esp_run_todos(repository: AggregateRepository[EspTodo], todos: int) -> None:
    """W1's commands for each todo in turn, each one load (or create) + execute + save."""
    for i in range(todos):
        todo_id = uuid4()
        todo = repository.create_new(todo_id)
        todo.execute(EspCreate(todo_id=todo_id, description=f"todo {i}"))
        await repository.save(todo)
        for n in range(RENAMES):
            command = EspRename(todo_id=todo_id, description=f"todo {i} v{n}")
            await repository.execute(todo_id, command, create_if_missing=False)
        await repository.execute(todo_id, EspComplete(todo_id=todo_id), create_if_missing=False)


async def esp_dispatch_memory(todos: int) -> Figures:
    """W1 on its in-memory store; peak RSS growth too (run in a fresh process)."""
    repository = _repository(InMemoryEventStore())
    with peak_rss_growth() as growth, timer() as elapsed:
        await esp_run_todos(repository, todos)
    return {"commands/s": rate(todos * COMMANDS_PER_TODO, elapsed()), "peak RSS MB": growth()}


async def esp_dispatch_sqlite(path: Path, todos: int) -> Figures:
    """W2 on its SQLite store (WAL, SQLite's default synchronous: FULL)."""
    async with SQLiteEventStore(str(path)) as store:
        await store.current_position()  # opens the connection and creates the tables
        with timer() as elapsed:
            await esp_run_todos(_repository(store), todos)
    return {"commands/s": rate(todos * COMMANDS_PER_TODO, elapsed())}


def _long_todo(todo_id: UUID, events: int) -> EspTodo:
    todo = EspTodo(todo_id)
    todo.execute(EspCreate(todo_id=todo_id, description="v0"))
    for n in range(1, events):
        todo.execute(EspRename(todo_id=todo_id, description=f"v{n}"))
    return todo


async def build_esp_w3(path: Path, events: int, snapshot_gap: int) -> dict[str, str]:
    """W3's two long streams; the second with a snapshot ``snapshot_gap`` events before its
    end (in its SQLite snapshot store, ``<path>.snapshots``). Returns their ids."""
    async with SQLiteEventStore(str(path)) as store:
        snapshots = SQLiteSnapshotStore(str(path) + ".snapshots")
        repository = _repository(store, snapshots)
        plain = _long_todo(uuid4(), events)
        await repository.save(plain)
        snapshotted = _long_todo(uuid4(), events - snapshot_gap)
        await repository.save(snapshotted)
        await repository.create_snapshot(snapshotted)
        for n in range(snapshot_gap):
            todo_id = snapshotted.aggregate_id
            snapshotted.execute(EspRename(todo_id=todo_id, description=f"after snapshot {n}"))
        await repository.save(snapshotted)
        await snapshots.close()
    return {"long": str(plain.aggregate_id), "snapshot": str(snapshotted.aggregate_id)}


async def _median_load(
    repository: AggregateRepository[EspTodo], todo_id: UUID, loads: int
) -> float:
    times: list[float] = []
    for _ in range(loads):
        with timer() as elapsed:
            todo = await repository.load(todo_id)
        times.append(elapsed())
        assert todo.version > 0
    return median(times)


async def esp_load(path: Path, todo_id: str, events: int, loads: int) -> Figures:
    """W3: replay the long stream."""
    async with SQLiteEventStore(str(path)) as store:
        seconds = await _median_load(_repository(store), UUID(todo_id), loads)
    return {"events/s": rate(events, seconds)}


async def esp_load_snapshot(path: Path, todo_id: str, loads: int) -> Figures:
    """W3: load from the snapshot near the end plus the events after it."""
    async with SQLiteEventStore(str(path)) as store:
        snapshots = SQLiteSnapshotStore(str(path) + ".snapshots")
        seconds = await _median_load(_repository(store, snapshots), UUID(todo_id), loads)
        await snapshots.close()
    return {"ms": seconds * 1000}


async def build_esp_log(path: Path, todos: int) -> None:
    """W4's store: ``todos`` todos of five events, one save each."""
    async with SQLiteEventStore(str(path)) as store:
        repository = _repository(store)
        for i in range(todos):
            todo_id = uuid4()
            todo = EspTodo(todo_id)
            todo.execute(EspCreate(todo_id=todo_id, description=f"todo {i}"))
            for n in range(RENAMES):
                todo.execute(EspRename(todo_id=todo_id, description=f"todo {i} v{n}"))
            todo.execute(EspComplete(todo_id=todo_id))
            await repository.save(todo)


async def esp_read_all(path: Path, page: int = 1000) -> Figures:
    """W4: the global feed in pages of ``page`` (its ``read_all`` without a limit fetches every
    row at once), counting events per type; run in a fresh process."""
    async with SQLiteEventStore(str(path)) as store:
        counts: Counter[str] = Counter()
        with peak_rss_growth() as growth, timer() as elapsed:
            position = None
            while True:
                seen = 0
                async for envelope in store.read_all(position, FeedReadOptions(limit=page)):
                    counts[envelope.event.event_type] += 1
                    position = envelope.position
                    seen += 1
                if seen < page:
                    break
    total = sum(counts.values())
    return {"events/s": rate(total, elapsed()), "peak RSS MB": growth(), "events": total}


async def esp_append_batch(path: Path, saves: int, batch: int) -> Figures:
    """W5: ``saves`` new todos, each with ``batch`` events, each one ``repository.save``."""
    async with SQLiteEventStore(str(path)) as store:
        await store.current_position()
        repository = _repository(store)
        with timer() as elapsed:
            for _ in range(saves):
                await repository.save(_long_todo(uuid4(), batch))
    return {"events/s": rate(saves * batch, elapsed())}


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)
