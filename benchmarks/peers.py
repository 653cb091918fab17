"""The peers: eventsourcing through its public Application API (called directly, and through
``anyio.to_thread.run_sync`` as an asyncio service has to), and the physical limits (raw sqlite3,
raw aiosqlite, a bare asyncio loop) doing the bare inserts and selects. eventsource-py, which needs
Python >= 3.13, is in ``peers_esp.py``.

Neither eventsourcing nor the raw peers set ``synchronous`` unless told: SQLite's default, FULL.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any
from uuid import UUID

import aiosqlite
import anyio
import anyio.lowlevel
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
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event

# --- eventsourcing ------------------------------------------------------------------------


class EsTodo(Aggregate):
    @event("Created")
    def __init__(self, description: str) -> None:
        self.description = description
        self.completed = False

    @event("Renamed")
    def rename(self, description: str) -> None:
        self.description = description

    @event("Completed")
    def complete(self) -> None:
        self.completed = True


class EsTodos(Application[UUID]):
    """The Todo application: one method per command, each get + trigger + save."""

    name = "BenchTodos"
    log_section_size = 1000  # notification log pages as large as eventuality's read_all pages

    def create(self, description: str) -> UUID:
        todo = EsTodo(description)
        self.save(todo)
        return todo.id

    def rename(self, todo_id: UUID, description: str) -> None:
        todo: EsTodo = self.repository.get(todo_id)
        todo.rename(description)
        self.save(todo)

    def complete(self, todo_id: UUID) -> None:
        todo: EsTodo = self.repository.get(todo_id)
        todo.complete()
        self.save(todo)


class EsSnapshottingTodos(EsTodos):
    """The same application with its snapshot store switched on."""

    is_snapshotting_enabled = True


def es_popo() -> EsTodos:
    return EsTodos(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})


def es_sqlite(path: Path, app_class: type[EsTodos] = EsTodos) -> EsTodos:
    return app_class(env={"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(path)})


def es_run_todos(app: EsTodos, todos: int) -> None:
    for i in range(todos):
        todo_id = app.create(f"todo {i}")
        for n in range(RENAMES):
            app.rename(todo_id, f"todo {i} v{n}")
        app.complete(todo_id)


def es_dispatch_memory(todos: int) -> Figures:
    """W1 on POPO persistence; peak RSS growth too."""
    app = es_popo()
    with peak_rss_growth() as growth, timer() as elapsed:
        es_run_todos(app, todos)
    return {"commands/s": rate(todos * COMMANDS_PER_TODO, elapsed()), "peak RSS MB": growth()}


def es_dispatch_sqlite(path: Path, todos: int) -> Figures:
    """W2 on its SQLite module (WAL, SQLite's default synchronous: FULL)."""
    app = es_sqlite(path)
    with timer() as elapsed:
        es_run_todos(app, todos)
    app.close()
    return {"commands/s": rate(todos * COMMANDS_PER_TODO, elapsed())}


async def es_commands_async(
    app: EsTodos, first: int, todos: int, step: int = 1, thread: bool = True
) -> None:
    """W2's commands for todos ``first, first + step, ...`` from a coroutine: each command
    through ``anyio.to_thread.run_sync`` (``thread``), or called on the event loop, which it
    blocks for the whole command, with a yield to the loop between commands (as between two
    requests of a service)."""

    async def call(method: Callable[..., Any], *args: Any) -> Any:
        if thread:
            return await anyio.to_thread.run_sync(partial(method, *args))
        result = method(*args)
        await anyio.lowlevel.checkpoint()
        return result

    for i in range(first, todos, step):
        todo_id = await call(app.create, f"todo {i}")
        for n in range(RENAMES):
            await call(app.rename, todo_id, f"todo {i} v{n}")
        await call(app.complete, todo_id)


def es_dispatch_sqlite_thread(path: Path, todos: int) -> Figures:
    """W2 from an asyncio loop, each command in a worker thread (``anyio.to_thread.run_sync``)."""
    app = es_sqlite(path)

    async def run() -> float:
        with timer() as elapsed:
            await es_commands_async(app, 0, todos)
        return elapsed()

    seconds = asyncio.run(run())
    app.close()
    return {"commands/s": rate(todos * COMMANDS_PER_TODO, seconds)}


def es_loop_lag(path: Path, todos: int, tasks: int, thread: bool) -> Figures:
    """W8: W2 (one task) or W6 (``tasks`` tasks, each on its own todos) from an asyncio loop,
    eventsourcing called directly on the loop or through a worker thread, while a ticker
    records how late each 1 ms sleep wakes up."""
    app = es_sqlite(path)

    async def run() -> Figures:
        with timer() as elapsed:
            async with loop_lag() as lags, anyio.create_task_group() as group:
                for k in range(tasks):
                    group.start_soon(es_commands_async, app, k, todos, tasks, thread)
        return {"commands/s": rate(todos * COMMANDS_PER_TODO, elapsed()), **lags()}

    figures = asyncio.run(run())
    app.close()
    return figures


def es_long_todo(events: int) -> EsTodo:
    todo = EsTodo("v0")
    for n in range(1, events):
        todo.rename(f"v{n}")
    return todo


def build_es_w3(path: Path, events: int, snapshot_gap: int) -> dict[str, str]:
    """W3's two long streams; the second with a snapshot ``snapshot_gap`` events before its
    end. Returns their ids."""
    app = es_sqlite(path, EsSnapshottingTodos)
    plain = es_long_todo(events)
    app.save(plain)
    snapshotted = es_long_todo(events - snapshot_gap)
    app.save(snapshotted)
    app.take_snapshot(snapshotted.id, version=events - snapshot_gap)
    for n in range(snapshot_gap):
        snapshotted.rename(f"after snapshot {n}")
    app.save(snapshotted)
    app.close()
    return {"long": str(plain.id), "snapshot": str(snapshotted.id)}


def _es_median_load(app: EsTodos, todo_id: UUID, loads: int) -> float:
    times: list[float] = []
    for _ in range(loads):
        with timer() as elapsed:
            todo: EsTodo = app.repository.get(todo_id)
        times.append(elapsed())
        assert todo.version > 0
    return median(times)


def es_load(path: Path, todo_id: str, events: int, loads: int) -> Figures:
    app = es_sqlite(path)
    seconds = _es_median_load(app, UUID(todo_id), loads)
    app.close()
    return {"events/s": rate(events, seconds)}


def es_load_snapshot(path: Path, todo_id: str, loads: int) -> Figures:
    app = es_sqlite(path, EsSnapshottingTodos)
    seconds = _es_median_load(app, UUID(todo_id), loads)
    app.close()
    return {"ms": seconds * 1000}


def build_es_log(path: Path, todos: int, per_save: int = 200) -> None:
    """W4's store: ``todos`` todos of five events, saved ``per_save`` todos at a time."""
    app = es_sqlite(path)
    for start in range(0, todos, per_save):
        batch: list[EsTodo] = []
        for i in range(start, min(start + per_save, todos)):
            todo = EsTodo(f"todo {i}")
            for n in range(RENAMES):
                todo.rename(f"todo {i} v{n}")
            todo.complete()
            batch.append(todo)
        app.save(*batch)
    app.close()


def es_read_all(path: Path) -> Figures:
    """W4 through the notification log, each notification turned back into its domain event."""
    app = es_sqlite(path)
    counts: Counter[str] = Counter()
    with peak_rss_growth() as growth, timer() as elapsed:
        start = 1
        while True:
            notifications = app.notification_log.select(start, app.log_section_size)
            for notification in notifications:
                counts[type(app.mapper.to_domain_event(notification)).__qualname__] += 1
            if len(notifications) < app.log_section_size:
                break
            start = notifications[-1].id + 1
    app.close()
    total = sum(counts.values())
    return {"events/s": rate(total, elapsed()), "peak RSS MB": growth(), "events": total}


def es_append_batch(path: Path, saves: int, batch: int) -> Figures:
    """W5: ``saves`` new todos, each with ``batch`` events, each one Application.save."""
    app = es_sqlite(path)
    with timer() as elapsed:
        for _ in range(saves):
            app.save(es_long_todo(batch))
    app.close()
    return {"events/s": rate(saves * batch, elapsed())}


# --- eventsourcing on PostgreSQL ----------------------------------------------------------


@contextmanager
def es_postgres(dsn: str) -> Iterator[EsTodos]:
    """An eventsourcing application on its PostgreSQL module (psycopg 3), its tables in a new
    schema of its own, dropped afterwards."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    parts = conninfo_to_dict(dsn)
    schema = f"bench_es_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute(f'CREATE SCHEMA "{schema}"')
    env = {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": str(parts.get("dbname") or parts.get("user") or "postgres"),
        "POSTGRES_HOST": str(parts.get("host") or "127.0.0.1"),
        "POSTGRES_PORT": str(parts.get("port") or 5432),
        "POSTGRES_USER": str(parts.get("user") or "postgres"),
        "POSTGRES_PASSWORD": str(parts.get("password") or ""),
        "POSTGRES_SCHEMA": schema,
    }
    app = EsTodos(env=env)
    try:
        yield app
    finally:
        app.close()
        with psycopg.connect(dsn, autocommit=True) as admin:
            admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def es_dispatch_postgres(dsn: str, todos: int) -> Figures:
    """W2 on eventsourcing's PostgreSQL module."""
    with es_postgres(dsn) as app, timer() as elapsed:
        es_run_todos(app, todos)
    return {"commands/s": rate(todos * COMMANDS_PER_TODO, elapsed())}


def es_append_batch_postgres(dsn: str, saves: int, batch: int) -> Figures:
    """W5 on eventsourcing's PostgreSQL module."""
    with es_postgres(dsn) as app:
        with timer() as elapsed:
            for _ in range(saves):
                app.save(es_long_todo(batch))
        seconds = elapsed()
    return {"events/s": rate(saves * batch, seconds)}


# --- asyncio ------------------------------------------------------------------------------


async def asyncio_floor(commands: int) -> Figures:
    """The loop doing nothing but one await per command (a yield to the loop)."""
    with timer() as elapsed:
        for _ in range(commands):
            await asyncio.sleep(0)
    return {"awaits/s": rate(commands, elapsed())}


# --- raw sqlite3 and aiosqlite ------------------------------------------------------------

# The bare event row: the columns an event store keeps, and only the constraint every event store
# needs (one event per stream and version, for optimistic concurrency). eventuality's own table
# adds a UNIQUE event_id and an (event_type, position) index: what those cost is part of its
# figures, not of the limit.
RAW_SCHEMA = """
CREATE TABLE events (
    position INTEGER PRIMARY KEY,
    stream_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    event_type TEXT NOT NULL,
    data TEXT NOT NULL,
    metadata TEXT NOT NULL,
    event_id TEXT NOT NULL,
    occurred_at TEXT NOT NULL,
    UNIQUE (stream_id, version)
)
"""
RAW_INSERT = (
    "INSERT INTO events (stream_id, version, event_type, data, metadata, event_id, occurred_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)
# Reads go to eventuality's own table, so raw and eventuality read the very same rows.
EV_COLUMNS = "stream_id, version, event_type, data, metadata, event_id, occurred_at, position"


def raw_rows(count: int, per_stream: int, prefix: str = "raw") -> Iterator[tuple[Any, ...]]:
    """``count`` event rows, ``per_stream`` to a stream. The raw peers make them before the
    clock starts: they measure the database and the driver, nothing else."""
    for i in range(count):
        stream, version = divmod(i, per_stream)
        yield (
            f"{prefix}-{stream}",
            version + 1,
            "Renamed",
            json.dumps({"description": f"todo {stream} v{version}"}),
            json.dumps({"causation_id": str(uuid.uuid4())}),
            str(uuid.uuid4()),
            datetime.now(UTC).isoformat(),
        )


def raw_connect(path: Path, synchronous: str) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute(f"PRAGMA synchronous = {synchronous}")
    db.execute(RAW_SCHEMA)
    return db


async def raw_aconnect(path: Path, synchronous: str) -> aiosqlite.Connection:
    db = await aiosqlite.connect(path)  # default isolation: execute() begins, commit() ends
    await db.execute("PRAGMA journal_mode = WAL")
    await db.execute(f"PRAGMA synchronous = {synchronous}")
    await db.execute(RAW_SCHEMA)
    await db.commit()
    return db


def sqlite3_insert_each(path: Path, count: int, synchronous: str) -> Figures:
    """One INSERT per transaction: BEGIN IMMEDIATE, INSERT, COMMIT."""
    db = raw_connect(path, synchronous)
    rows = list(raw_rows(count, COMMANDS_PER_TODO))
    with timer() as elapsed:
        for row in rows:
            db.execute("BEGIN IMMEDIATE")
            db.execute(RAW_INSERT, row)
            db.execute("COMMIT")
    db.close()
    return {"inserts/s": rate(count, elapsed())}


async def aiosqlite_insert_each(path: Path, count: int, synchronous: str) -> Figures:
    """One INSERT per transaction: ``await execute(INSERT)``, ``await commit()``."""
    db = await raw_aconnect(path, synchronous)
    rows = list(raw_rows(count, COMMANDS_PER_TODO))
    with timer() as elapsed:
        for row in rows:
            await db.execute(RAW_INSERT, row)
            await db.commit()
    await db.close()
    return {"inserts/s": rate(count, elapsed())}


def sqlite3_insert_batches(path: Path, saves: int, batch: int, synchronous: str) -> Figures:
    """executemany of ``batch`` rows per transaction."""
    db = raw_connect(path, synchronous)
    rows = list(raw_rows(saves * batch, batch))
    with timer() as elapsed:
        for start in range(0, saves * batch, batch):
            db.execute("BEGIN IMMEDIATE")
            db.executemany(RAW_INSERT, rows[start : start + batch])
            db.execute("COMMIT")
    db.close()
    return {"events/s": rate(saves * batch, elapsed())}


async def aiosqlite_insert_batches(path: Path, saves: int, batch: int, synchronous: str) -> Figures:
    db = await raw_aconnect(path, synchronous)
    rows = list(raw_rows(saves * batch, batch))
    with timer() as elapsed:
        for start in range(0, saves * batch, batch):
            await db.executemany(RAW_INSERT, rows[start : start + batch])
            await db.commit()
    await db.close()
    return {"events/s": rate(saves * batch, elapsed())}


def _decode(row: tuple[Any, ...]) -> tuple[Any, Any]:
    return json.loads(row[3]), json.loads(row[4])


def sqlite3_select_stream(path: Path, stream_id: str, loads: int) -> Figures:
    """W3's limit: select one stream's rows in version order and decode their JSON."""
    db = sqlite3.connect(path)
    sql = f"SELECT {EV_COLUMNS} FROM eventuality_events WHERE stream_id = ? ORDER BY version"
    times: list[float] = []
    count = 0
    for _ in range(loads):
        with timer() as elapsed:
            decoded = [_decode(row) for row in db.execute(sql, (stream_id,))]
        times.append(elapsed())
        count = len(decoded)
    db.close()
    return {"events/s": rate(count, median(times))}


async def aiosqlite_select_stream(path: Path, stream_id: str, loads: int) -> Figures:
    db = await aiosqlite.connect(path)
    sql = f"SELECT {EV_COLUMNS} FROM eventuality_events WHERE stream_id = ? ORDER BY version"
    times: list[float] = []
    count = 0
    for _ in range(loads):
        with timer() as elapsed:
            decoded = [_decode(tuple(row)) for row in await db.execute_fetchall(sql, (stream_id,))]
        times.append(elapsed())
        count = len(decoded)
    await db.close()
    return {"events/s": rate(count, median(times))}


_SCAN = f"SELECT {EV_COLUMNS} FROM eventuality_events ORDER BY position"


def sqlite3_scan(path: Path, page: int = 1000) -> Figures:
    """W4's limit: the whole table in position order, JSON decoded, counted per type."""
    db = sqlite3.connect(path)
    counts: Counter[str] = Counter()
    with peak_rss_growth() as growth, timer() as elapsed:
        cursor = db.execute(_SCAN)
        while rows := cursor.fetchmany(page):
            for row in rows:
                _decode(row)
                counts[row[2]] += 1
    db.close()
    total = sum(counts.values())
    return {"events/s": rate(total, elapsed()), "peak RSS MB": growth(), "events": total}


async def aiosqlite_scan(path: Path, page: int = 1000) -> Figures:
    db = await aiosqlite.connect(path)
    counts: Counter[str] = Counter()
    with peak_rss_growth() as growth, timer() as elapsed:
        async with db.execute(_SCAN) as cursor:
            while rows := await cursor.fetchmany(page):
                for row in rows:
                    _decode(tuple(row))
                    counts[row[2]] += 1
    await db.close()
    total = sum(counts.values())
    return {"events/s": rate(total, elapsed()), "peak RSS MB": growth(), "events": total}
