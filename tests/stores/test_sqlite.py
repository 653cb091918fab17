"""What only the SQLite store promises: durability, several processes, cancellation, resources."""

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import anyio
import pytest

from eventuality import (
    ConcurrencyError,
    Event,
    Projection,
    SchemaVersionError,
    SQLiteEventStore,
    StoreBusyError,
    StoreError,
    StreamAppend,
    Transaction,
)
from tests.domain import TodoCreated, TodoRenamed

ROOT = Path(__file__).resolve().parents[2]


def _child(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.stores._sqlite_child", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
@pytest.mark.parametrize("round_", range(3))
async def test_events_acknowledged_before_sigkill_survive_and_no_batch_is_partial(
    tmp_path: Path, round_: int
) -> None:
    path = tmp_path / "crash.db"
    child = _child("crash", str(path))
    acknowledged: list[tuple[int, int]] = []
    assert child.stdout is not None
    for line in child.stdout:
        _, batch, position = line.split()
        acknowledged.append((int(batch), int(position)))
        if len(acknowledged) >= 40 + 25 * round_:
            break

    child.send_signal(signal.SIGKILL)
    child.communicate()

    async with SQLiteEventStore(path) as store:
        events = [event async for event in store.read_all()]
    batches = Counter(event.metadata["batch"] for event in events)
    assert all(count == 5 for count in batches.values()), batches
    for batch, position in acknowledged:
        assert batches[batch] == 5
        assert events[position - 1].position == position
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)


@pytest.mark.slow
async def test_processes_appending_to_one_file_keep_counts_positions_and_versions_exact(
    tmp_path: Path,
) -> None:
    path = tmp_path / "shared.db"
    async with SQLiteEventStore(path):
        pass  # create the schema before the workers race for it

    workers = [_child("contend", str(path), str(worker), "40", "3") for worker in range(4)]
    summaries = []
    for worker in workers:
        out, err = worker.communicate(timeout=300)
        assert worker.returncode == 0, err
        summaries.append(json.loads(out))

    async with SQLiteEventStore(path) as store:
        events = [event async for event in store.read_all()]
    assert len(events) == sum(s["committed"] for s in summaries)
    assert sum(s["committed"] + 3 * s["conflicts"] for s in summaries) == 4 * 40 * 3
    assert [e.position for e in events] == list(range(1, len(events) + 1))
    by_stream: dict[str, list[int]] = {}
    async with SQLiteEventStore(path) as store:
        for stream in {f"shared-{i}" for i in range(3)} | {f"own-{w}" for w in range(4)}:
            by_stream[stream] = [e.aggregate_version or 0 for e in await store.read_stream(stream)]
    assert all(v == list(range(1, len(v) + 1)) for v in by_stream.values())
    assert sum(len(v) for v in by_stream.values()) == len(events)


async def test_a_write_lock_held_past_busy_timeout_raises_store_busy_error(tmp_path: Path) -> None:
    path = tmp_path / "busy.db"
    async with SQLiteEventStore(path, busy_timeout=0.2) as store:
        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        try:
            with pytest.raises(StoreBusyError, match="locked"):
                await store.append("busy-1", [TodoCreated(description="x")])
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()

        stored = await store.append("busy-1", [TodoCreated(description="x")])

    assert stored[0].aggregate_version == 1


async def test_opening_a_database_with_another_schema_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    async with SQLiteEventStore(path):
        pass
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        db.execute("UPDATE eventuality_schema SET version = 99")

    with pytest.raises(SchemaVersionError, match="99"):
        await SQLiteEventStore(path).open()


@pytest.mark.parametrize(("mode", "expected"), [("NORMAL", 1), ("FULL", 2)])
async def test_synchronous_option_and_wal_are_applied(
    tmp_path: Path, mode: str, expected: int
) -> None:
    store = SQLiteEventStore(tmp_path / "sync.db", synchronous=mode)  # type: ignore[arg-type]

    async with store:
        writer = store.backend._writer  # type: ignore[attr-defined]
        synchronous = await writer.execute_fetchall("PRAGMA synchronous")
        journal = await writer.execute_fetchall("PRAGMA journal_mode")

    assert next(iter(synchronous))[0] == expected
    assert next(iter(journal))[0] == "wal"


def test_unknown_synchronous_mode_is_refused_with_the_choices() -> None:
    with pytest.raises(ValueError, match="NORMAL"):
        SQLiteEventStore("x.db", synchronous="OFF")  # type: ignore[arg-type]


@pytest.mark.parametrize("path", ["file", ":memory:"])
async def test_cancelled_multi_stream_appends_are_all_or_nothing_and_the_writer_stays_usable(
    tmp_path: Path, path: str
) -> None:
    async with SQLiteEventStore(tmp_path / "c.db" if path == "file" else path) as store:
        for i in range(300):
            with anyio.move_on_after((i % 30) * 0.0001):
                await store.append_streams(
                    [
                        StreamAppend(f"a-{i}", [TodoCreated(description=str(i))]),
                        StreamAppend(f"b-{i}", [TodoRenamed(description=str(i))]),
                    ]
                )

        after = await store.append("after", [TodoCreated(description="ok")])
        outcomes = [
            (await store.stream_version(f"a-{i}"), await store.stream_version(f"b-{i}"))
            for i in range(300)
        ]

    assert after[0].aggregate_version == 1
    assert all(outcome in ((0, 0), (1, 1)) for outcome in outcomes), outcomes
    assert (1, 1) in outcomes


@pytest.mark.parametrize("path", ["file", ":memory:"])
async def test_concurrent_appends_share_transactions_and_a_conflict_fails_only_its_own(
    tmp_path: Path, path: str
) -> None:
    async with SQLiteEventStore(tmp_path / "g.db" if path == "file" else path) as store:
        await store.append("contended", [TodoCreated(description="first")])
        outcomes: dict[int, object] = {}

        async def append(i: int) -> None:
            stream, expected = ("contended", 0) if i % 10 == 0 else (f"free-{i}", 0)
            try:
                outcomes[i] = await store.append(
                    stream, [TodoCreated(description=str(i))], expected_version=expected
                )
            except ConcurrencyError as exc:
                outcomes[i] = exc

        async with anyio.create_task_group() as tg:
            for i in range(100):
                tg.start_soon(append, i)

        events = [event async for event in store.read_all()]

    failed = [i for i, outcome in outcomes.items() if isinstance(outcome, ConcurrencyError)]
    assert sorted(failed) == list(range(0, 100, 10))
    assert len(events) == 1 + 90
    assert [e.position for e in events] == list(range(1, 92))


async def test_breaking_out_of_read_all_does_not_leak_connections_or_descriptors(
    tmp_path: Path,
) -> None:
    async with SQLiteEventStore(tmp_path / "leak.db") as store:
        for i in range(30):
            await store.append(f"s-{i}", [TodoCreated(description=str(i))] * 1)
        async for _ in store.read_all(page_size=5):
            break
        fds_before = len(os.listdir("/proc/self/fd"))
        threads_before = threading.active_count()

        for _ in range(300):
            async for event in store.read_all(page_size=5):
                if event.position == 12:
                    break

        fds_after = len(os.listdir("/proc/self/fd"))
        threads_after = threading.active_count()

    assert fds_after <= fds_before
    assert threads_after <= threads_before


def _read_until(child: subprocess.Popen[str], wanted: str) -> list[str]:
    """Lines the child prints up to and including ``wanted``; fails if it exits first."""
    assert child.stdout is not None
    lines = []
    for line in child.stdout:
        lines.append(line.strip())
        if lines[-1] == wanted:
            return lines
    raise AssertionError(f"child exited before printing {wanted!r}: {child.communicate()[1]}")


async def _seen_table(path: Path) -> None:
    async with SQLiteEventStore(path) as store, store.transaction() as tx:
        await tx.execute("CREATE TABLE seen (position INTEGER PRIMARY KEY)")


async def _append_one(path: Path, i: int) -> None:
    async with SQLiteEventStore(path) as store:
        await store.append(f"todo-{i}", [TodoCreated(description=str(i))])


@pytest.mark.slow
async def test_a_second_process_waits_for_a_running_projection_and_takes_over_when_it_is_killed(
    tmp_path: Path,
) -> None:
    path = tmp_path / "workers.db"
    await _seen_table(path)
    for i in range(1, 31):
        await _append_one(path, i)
    first = _child("project", str(path), "counts", "0")
    _read_until(first, "handled 30")
    second = _child("project", str(path), "counts", "60")
    _read_until(second, "started")
    for i in range(31, 51):  # one at a time, so the second has every chance to step in
        await _append_one(path, i)
        _read_until(first, f"handled {i}")

    first.send_signal(signal.SIGKILL)
    first.communicate()
    for i in range(51, 61):
        await _append_one(path, i)
    out, err = second.communicate(timeout=120)

    assert second.returncode == 0, err
    taken_over = [int(line.split()[1]) for line in out.split("\n") if line.startswith("handled")]
    assert taken_over[0] >= 50  # the first had committed up to 49 when it printed "handled 50"
    assert taken_over == list(range(taken_over[0], 61))
    async with SQLiteEventStore(path) as store:
        seen = await store.query("SELECT position FROM seen ORDER BY position")
        assert await store.get_checkpoint("counts") == 60
    assert [row[0] for row in seen] == list(range(1, 61))


@pytest.mark.slow
async def test_a_projection_process_that_exits_normally_releases_its_name(tmp_path: Path) -> None:
    path = tmp_path / "release.db"
    await _seen_table(path)
    await _append_one(path, 1)
    child = _child("project", str(path), "counts", "1")
    _, err = child.communicate(timeout=120)
    assert child.returncode == 0, err
    await _append_one(path, 2)

    async def count(event: Event, tx: Transaction) -> None:
        await tx.execute("INSERT INTO seen (position) VALUES (?)", event.position)

    async with SQLiteEventStore(path) as store:
        with anyio.fail_after(60):  # a name still held would wait here for ever
            handled = await Projection(store, "counts", count).catch_up()

    assert handled == 1


async def test_a_second_store_on_the_file_waits_for_a_held_name_until_it_is_released(
    tmp_path: Path,
) -> None:
    path = tmp_path / "names.db"
    taken: list[str] = []
    async with SQLiteEventStore(path) as one, SQLiteEventStore(path) as two:
        release = anyio.Event()

        async def hold(store: SQLiteEventStore, who: str) -> None:
            async with store.hold_name("counts"):
                taken.append(who)
                await release.wait()

        async with anyio.create_task_group() as tg:
            tg.start_soon(hold, one, "one")
            await anyio.wait_all_tasks_blocked()
            tg.start_soon(hold, two, "two")
            await anyio.wait_all_tasks_blocked()
            assert taken == ["one"]
            release.set()

    assert taken == ["one", "two"]


async def test_appending_through_another_store_on_the_same_file_inside_a_transaction_is_refused(
    tmp_path: Path,
) -> None:
    from eventuality import TransactionError

    async with (
        SQLiteEventStore(tmp_path / "one.db") as first,
        SQLiteEventStore(tmp_path / "one.db") as second,
    ):
        with pytest.raises(TransactionError, match="append events"):
            async with first.transaction():
                await second.append("s", [TodoCreated(description="x")])

        assert await second.last_position() == 0


async def test_stores_opening_a_new_file_at_the_same_moment_all_open_it(tmp_path: Path) -> None:
    failed: list[StoreError] = []

    async def open_and_close(store: SQLiteEventStore) -> None:
        try:
            async with store:
                await store.last_position()
        except StoreError as exc:
            failed.append(exc)

    for i in range(60):  # switching a new file to WAL races; SQLite does not wait on it
        async with anyio.create_task_group() as group:
            for _ in range(3):
                group.start_soon(open_and_close, SQLiteEventStore(tmp_path / f"{i}.db"))

    assert failed == []
