"""The SQLite store commits small appends on the event loop's own connection at NORMAL: it must
never wait there for a lock, and the WAL must stay bounded though that connection never
checkpoints."""

import contextlib
import sqlite3
import time
from pathlib import Path

import anyio

from eventuality import Event, SQLiteEventStore
from eventuality.stores._sqlite_group import connect_inline_writer
from tests.domain import TodoCreated, TodoRenamed


async def test_a_commit_that_finds_the_database_locked_waits_off_the_loop_then_lands(
    tmp_path: Path,
) -> None:
    path = tmp_path / "locked.db"
    async with SQLiteEventStore(path, busy_timeout=30) as store:
        await store.append("todo-0", [TodoCreated(description="first")])
        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        stored: list[Event] = []
        gaps: list[float] = []
        try:
            async with anyio.create_task_group() as tg:

                async def append() -> None:
                    stored.extend(await store.append("todo-1", [TodoCreated(description="x")]))

                tg.start_soon(append)
                # Were the commit waiting for the lock on the loop's thread, the loop would
                # stand still for busy_timeout (30 s): one gap between ticks would show it.
                while len(gaps) < 20:
                    before = time.monotonic()
                    await anyio.sleep(0.005)
                    gaps.append(time.monotonic() - before)
                assert stored == []
                assert max(gaps) < 10, f"the event loop stood still for {max(gaps):.1f} s"
                blocker.execute("ROLLBACK")
        finally:
            with contextlib.suppress(sqlite3.Error):
                blocker.execute("ROLLBACK")
            blocker.close()

        assert [(e.aggregate_version, e.position) for e in stored] == [(1, 2)]
        later = await store.append("todo-1", [TodoRenamed(description="y")], expected_version=1)
        assert later[0].position == 3


async def test_many_small_commits_keep_the_wal_bounded_and_the_file_whole(tmp_path: Path) -> None:
    path = tmp_path / "wal.db"
    appends = 3_000
    async with SQLiteEventStore(path) as store:
        for i in range(appends):
            await store.append(f"todo-{i}", [TodoCreated(description="x" * 200)])
        wal_pages = (tmp_path / "wal.db-wal").stat().st_size // 4096
    # Each append writes four or more pages to the WAL: never checkpointed, it would hold
    # 12,000 and more. Checkpoints come every 100 commits; a slow one (a loaded machine) lets
    # it grow meanwhile, hence the margin.
    assert wal_pages < 5_000, wal_pages

    async with SQLiteEventStore(path) as store:
        assert await store.last_position() == appends
        assert len([e async for e in store.read_all()]) == appends
    with contextlib.closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)


async def test_a_write_cancelled_on_its_way_lands_before_the_caller_moves_on(
    tmp_path: Path,
) -> None:
    # A subscription cancelled while saving its checkpoint reads it again on its next start:
    # had the write landed only after that read, its next save would conflict with itself.
    async with SQLiteEventStore(tmp_path / "cancel.db") as store:
        await store.set_checkpoint("name", 0, expected=None)
        for position in range(1, 101):
            expected = await store.get_checkpoint("name")
            async with anyio.create_task_group() as tg:

                async def save(expected: int | None = expected, position: int = position) -> None:
                    await store.set_checkpoint("name", position, expected=expected)

                tg.start_soon(save)
                await anyio.sleep(0)
                await anyio.sleep(0)
                tg.cancel_scope.cancel()
            seen = await store.get_checkpoint("name")
            for _ in range(5):
                await anyio.sleep(0.001)
                assert await store.get_checkpoint("name") == seen, position


def test_the_inline_connection_is_not_made_while_the_file_is_locked_and_is_made_after(
    tmp_path: Path,
) -> None:
    # Another store switching a new file to WAL holds it exclusively for a moment: the store
    # opening then commits on its writer thread, and makes its inline connection later.
    path = tmp_path / "locked.db"
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as other:
        other.execute("CREATE TABLE t (x)")
        other.execute("BEGIN EXCLUSIVE")
        assert connect_inline_writer(str(path)) is None
        other.execute("COMMIT")
    made = connect_inline_writer(str(path))
    assert made is not None
    made.close()
