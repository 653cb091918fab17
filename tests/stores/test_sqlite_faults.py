"""The SQLite store under faults: its file moved or replaced, damaged files and rows, writes
through query(), opens that fail, and trio."""

import os
import shutil
import sqlite3
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import anyio
import pytest

from eventuality import (
    EventStore,
    SQLiteEventStore,
    StoreError,
    UnsupportedEventLoop,
)
from eventuality.stores.base import Snapshot
from tests.domain import TodoCreated

ROOT = Path(__file__).resolve().parents[2]
MOVED = "moved, replaced or deleted"


async def _append(store: EventStore) -> None:
    await store.append("todo-2", [TodoCreated(description="lost?")])


async def _set_checkpoint(store: EventStore) -> None:
    await store.set_checkpoint("counts", 1, expected=None)


async def _save_snapshot(store: EventStore) -> None:
    await store.save_snapshot(Snapshot("todo-1", 1, "Todo", 1, "{}"))


async def _transaction(store: EventStore) -> None:
    async with store.transaction() as tx:
        await tx.execute("CREATE TABLE rm (id TEXT)")


async def _written(store: EventStore) -> list[object]:
    """What any of the writes above would have left, as the open store sees its own file."""
    tables = await store.query("SELECT name FROM sqlite_master WHERE name = 'rm'")
    return [
        await store.last_position(),
        await store.get_checkpoint("counts"),
        await store.load_snapshot("todo-1"),
        tables,
    ]


WRITES: list[Callable[[EventStore], Awaitable[None]]] = [
    _append,
    _set_checkpoint,
    _save_snapshot,
    _transaction,
]


@pytest.mark.parametrize("write", WRITES, ids=lambda w: w.__name__.strip("_"))
async def test_writes_are_refused_once_the_database_directory_is_removed(
    tmp_path: Path, write: Callable[[EventStore], Awaitable[None]]
) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    async with SQLiteEventStore(folder / "events.db") as store:
        await store.append("todo-1", [TodoCreated(description="kept")])
        before = await _written(store)
        shutil.rmtree(folder)

        with pytest.raises(StoreError, match=MOVED) as caught:
            await write(store)

        assert await _written(store) == before
    assert str(folder / "events.db") in str(caught.value)


@pytest.mark.parametrize("write", WRITES, ids=lambda w: w.__name__.strip("_"))
async def test_writes_are_refused_once_the_database_file_is_replaced(
    tmp_path: Path, write: Callable[[EventStore], Awaitable[None]]
) -> None:
    path, other = tmp_path / "events.db", tmp_path / "other.db"
    async with SQLiteEventStore(other) as store:
        await store.append("other-1", [TodoCreated(description="other")])
    async with SQLiteEventStore(path) as store:
        await store.append("todo-1", [TodoCreated(description="kept")])
        before = await _written(store)
        os.replace(other, path)

        with pytest.raises(StoreError, match=MOVED):
            await write(store)

        assert await _written(store) == before
    async with SQLiteEventStore(path) as store:
        assert await store.stream_version("other-1") == 1
        assert await store.last_position() == 1


@pytest.fixture(params=["file", ":memory:"])
async def read_model(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[SQLiteEventStore]:
    """An open store (one reader) holding a read model ``rm`` with one row."""
    path = tmp_path / "q.db" if request.param == "file" else ":memory:"
    async with SQLiteEventStore(path, readers=1) as store:
        async with store.transaction() as tx:
            await tx.execute("CREATE TABLE rm (id TEXT)")
            await tx.execute("INSERT INTO rm VALUES ('x')")
        yield store


async def test_query_refuses_a_write_and_writes_nothing(read_model: SQLiteEventStore) -> None:
    with pytest.raises(StoreError, match=r"query\(\) is read-only") as caught:
        await read_model.query("DELETE FROM rm")

    assert "Projection" in str(caught.value)
    assert await read_model.query("SELECT count(*) FROM rm") == [(1,)]


async def test_query_cannot_switch_read_only_off(read_model: SQLiteEventStore) -> None:
    with pytest.raises(StoreError, match=r"query\(\) is read-only"):
        await read_model.query("PRAGMA query_only = 0")

    with pytest.raises(StoreError, match=r"query\(\) is read-only"):
        await read_model.query("DELETE FROM rm")


async def test_query_may_read_pragmas_about_tables(read_model: SQLiteEventStore) -> None:
    columns = await read_model.query("PRAGMA table_info(rm)")

    assert [column[1] for column in columns] == ["id"]


async def test_query_refuses_to_open_a_transaction_and_later_queries_see_new_rows(
    read_model: SQLiteEventStore,
) -> None:
    with pytest.raises(StoreError, match=r"query\(\) is read-only"):
        await read_model.query("BEGIN")
    await read_model.query("SELECT count(*) FROM rm")

    async with read_model.transaction() as tx:
        await tx.execute("INSERT INTO rm VALUES ('y')")

    assert await read_model.query("SELECT count(*) FROM rm") == [(2,)]


def _garbage(path: Path) -> None:
    path.write_bytes(b"not a database " * 300)


def _non_utf8_schema(path: Path) -> None:
    async def create() -> None:
        async with SQLiteEventStore(path):
            pass

    anyio.run(create)
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA writable_schema = ON")
        db.execute(
            "UPDATE sqlite_master SET sql = CAST(? AS TEXT) WHERE name = 'eventuality_snapshots'",
            (b"CREATE TABLE eventuality_snapshots (stream_id, version) \xff",),
        )
    db.close()


def _locked(statements: list[str]) -> Callable[[Path], sqlite3.Connection]:
    def lock(path: Path) -> sqlite3.Connection:
        db = sqlite3.connect(path, isolation_level=None)
        for statement in statements:
            db.execute(statement)
        return db

    return lock


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        (_garbage, "StoreError could not configure the connection"),
        (_non_utf8_schema, "damaged or not an eventuality database"),
        (_locked(["CREATE TABLE t (x)", "BEGIN EXCLUSIVE"]), "StoreBusyError"),
        (_locked(["PRAGMA locking_mode = EXCLUSIVE", "CREATE TABLE t (x)"]), "StoreBusyError"),
    ],
    ids=["garbage", "non-utf8-schema", "begin-exclusive", "locking-mode-exclusive"],
)
def test_a_failed_open_raises_a_store_error_and_the_process_exits_by_itself(
    tmp_path: Path, damage: Callable[[Path], object], expected: str
) -> None:
    path = tmp_path / "bad.db"
    holder = damage(path)
    try:
        # A connection thread left running would keep the child alive: the timeout says so.
        child = subprocess.run(
            [sys.executable, "-m", "tests.stores._sqlite_child", "open", str(path), "0.05"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        if isinstance(holder, sqlite3.Connection):
            holder.close()

    assert child.returncode == 0, child.stderr
    assert expected in child.stdout
    assert str(path) in child.stdout


async def _read_all(store: EventStore) -> None:
    async for _ in store.read_all():
        pass


@pytest.mark.parametrize("read", ["stream", "log"])
async def test_a_damaged_occurred_at_raises_a_store_error_naming_the_event(
    tmp_path: Path, read: str
) -> None:
    path = tmp_path / "dates.db"
    async with SQLiteEventStore(path) as store:
        await store.append("todo-1", [TodoCreated(description=str(i)) for i in range(3)])
    with sqlite3.connect(path) as db:
        db.execute("UPDATE eventuality_events SET occurred_at = 'yesterday' WHERE position = 2")
    db.close()

    async with SQLiteEventStore(path) as store:
        reading = store.read_stream("todo-1") if read == "stream" else _read_all(store)
        with pytest.raises(StoreError, match="occurred_at") as caught:
            await reading

    message = str(caught.value)
    assert "position 2" in message
    assert "stream 'todo-1', version 2" in message
    assert "'yesterday'" in message


def test_opening_under_trio_raises_unsupported_event_loop_and_leaves_no_thread(
    tmp_path: Path,
) -> None:
    before = set(threading.enumerate())

    async def main() -> None:
        await SQLiteEventStore(tmp_path / "trio.db").open()

    with pytest.raises(UnsupportedEventLoop):
        anyio.run(main, backend="trio")

    assert set(threading.enumerate()) <= before
