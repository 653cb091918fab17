"""What only the PostgreSQL store promises: a log no reader skips through, several processes,
live notification, one subscription instance per name, and connections that stay clean."""

import json
import select
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import anyio
import pytest

from eventuality import (
    ConcurrencyError,
    Event,
    EventStore,
    Flow,
    Repository,
    StoreClosedError,
    StoreConnectionError,
    StreamAppend,
    Subscription,
    open_store,
)
from eventuality.stores.base import AppendRequest, StoredEvent
from eventuality.stores.postgres import PostgresBackend, PostgresEventStore
from tests.conftest import POSTGRES_DSN, make_store, postgres_schema, requires_postgres
from tests.domain import CreateTodo, Todo, TodoCreated, TodoRenamed
from tests.stores._postgres_admin import admin, named_store

pytestmark = requires_postgres
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def pg(tmp_path: Path) -> AsyncIterator[PostgresEventStore]:
    store = make_store("postgres", tmp_path)
    assert isinstance(store, PostgresEventStore)
    async with store:
        yield store


class HeldAppend:
    """Wraps a backend so its next append stops after inserting, transaction still open."""

    def __init__(self, backend: PostgresBackend, *, roll_back: bool = False) -> None:
        self.inserted = anyio.Event()
        self.release = anyio.Event()
        original = backend._insert

        async def held(connection: Any, requests: Sequence[AppendRequest]) -> list[StoredEvent]:
            stored = await original(connection, requests)
            self.inserted.set()
            await self.release.wait()
            if roll_back:
                raise RuntimeError("writer A gives up")
            return stored

        backend._insert = held  # type: ignore[method-assign]


@pytest.mark.parametrize("outcome", ["commit", "rollback"])
async def test_a_reader_never_passes_an_append_still_in_flight(
    tmp_path: Path, outcome: str
) -> None:
    async with make_store("postgres", tmp_path) as writer_a, make_store("postgres", tmp_path) as b:
        held = HeldAppend(writer_a.backend, roll_back=outcome == "rollback")  # type: ignore[arg-type]
        seen: list[str] = []

        async def record(event: Event) -> None:
            seen.append(str(event.aggregate_id))

        subscription = Subscription(b, "follower", record)
        results: list[object] = []

        async def append_a() -> None:
            try:
                results.append(await writer_a.append("A", [_todo("A")]))
            except RuntimeError as exc:
                results.append(exc)

        async with anyio.create_task_group() as tg:
            tg.start_soon(append_a)
            await held.inserted.wait()
            await b.append("B", [_todo("B")])
            handled_while_a_open = await subscription.catch_up()
            held.release.set()
        handled_after = await subscription.catch_up()

        log = [str(event.aggregate_id) async for event in b.read_all()]

    assert handled_while_a_open == 0
    if outcome == "commit":
        assert seen == ["A", "B"] == log
        assert handled_after == 2
    else:
        assert seen == ["B"] == log
        assert isinstance(results[0], RuntimeError)


def _plain(description: str) -> TodoCreated:
    return TodoCreated(description=description)


def _todo(todo_id: str) -> TodoCreated:
    return Todo.create(id=todo_id, description=todo_id).pending_events[0]  # type: ignore[return-value]


@pytest.mark.slow
async def test_processes_appending_while_a_follower_reads_miss_and_repeat_nothing(
    pg: PostgresEventStore, tmp_path: Path
) -> None:
    followed: list[int] = []

    async def follow(event: Event) -> None:
        followed.append(event.position or 0)

    workers = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.stores._postgres_child",
                "append",
                POSTGRES_DSN,
                postgres_schema(tmp_path),
                str(worker),
                "30",
                "8",
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for worker in range(3)
    ]
    summaries = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(Subscription(pg, "follower", follow, checkpoint_every=50).run)
        for worker in workers:
            while worker.poll() is None:
                await anyio.sleep(0.05)
            out, err = worker.communicate()
            assert worker.returncode == 0, err
            summaries.append(json.loads(out))
        log = [event.position async for event in pg.read_all()]
        with anyio.fail_after(30):
            while len(followed) < len(log):
                await anyio.sleep(0.02)
        tg.cancel_scope.cancel()

    assert len(log) == sum(s["committed"] for s in summaries)
    assert followed == log
    assert log == sorted(set(log))


async def test_notify_wakes_run_and_polling_takes_over_when_the_listener_drops(
    pg: PostgresEventStore, tmp_path: Path
) -> None:
    seen: list[str] = []

    async def record(event: Event) -> None:
        seen.append(str(event.aggregate_id))

    async with make_store("postgres", tmp_path) as other, anyio.create_task_group() as tg:
        tg.start_soon(Subscription(pg, "live", record).run)
        await other.append("one", [_todo("one")])
        with anyio.fail_after(10):
            while seen != ["one"]:
                await anyio.sleep(0.01)
        backend: PostgresBackend = pg.backend  # type: ignore[assignment]
        assert backend.listening
        listener_pid = backend._listener.get_server_pid()  # type: ignore[union-attr]

        await admin("SELECT pg_terminate_backend($1)", listener_pid)
        await other.append("two", [_todo("two")])
        with anyio.fail_after(10):
            while seen != ["one", "two"]:
                await anyio.sleep(0.01)
        with anyio.fail_after(10):
            while not backend.listening:
                await anyio.sleep(0.05)
        new_pid = backend._listener.get_server_pid()  # type: ignore[union-attr]
        await other.append("three", [_todo("three")])
        with anyio.fail_after(10):
            while seen != ["one", "two", "three"]:
                await anyio.sleep(0.01)
        tg.cancel_scope.cancel()

    assert new_pid != listener_pid


def _follower(tmp_path: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable, "-m", "tests.stores._postgres_child", "follow",
            POSTGRES_DSN, postgres_schema(tmp_path), "one-at-a-time",
        ],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _lines(process: subprocess.Popen[str], wait: float) -> list[str]:
    """The lines ``process`` printed within ``wait`` seconds (without blocking longer)."""
    assert process.stdout is not None
    lines: list[str] = []
    ready, _, _ = select.select([process.stdout], [], [], wait)
    while ready:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line.strip())
        ready, _, _ = select.select([process.stdout], [], [], 0.2)
    return lines


@pytest.mark.slow
async def test_one_instance_per_subscription_name_and_takeover_when_it_is_killed(
    pg: PostgresEventStore, tmp_path: Path
) -> None:
    first = _follower(tmp_path)
    assert _lines(first, 10)[:1] == ["started"]
    second = _follower(tmp_path)
    try:
        assert _lines(second, 10)[:1] == ["started"]
        stored = [e.position for e in await pg.append("s-1", [_plain("x"), _plain("y")])]

        by_first = _lines(first, 5)
        by_second_while_first_lives = _lines(second, 1)
        first.send_signal(signal.SIGKILL)
        first.communicate()
        stored += [e.position for e in await pg.append("s-1", [_plain("z")])]
        by_second = _lines(second, 10)
    finally:
        for process in (first, second):
            process.kill()
            process.communicate()

    assert by_first == [f"handled {p}" for p in stored[:2]]
    assert by_second_while_first_lives == []
    assert by_second == [f"handled {stored[2]}"]


async def test_cancelled_appends_and_dispatches_leave_no_connection_idle_in_transaction(
    tmp_path: Path,
) -> None:
    pg, name = named_store(tmp_path)
    async with pg:
        flow = Flow(store=pg)
        todos = Repository(Todo, pg)

        @flow.handles(CreateTodo)
        async def create(command: CreateTodo) -> None:
            await todos.add(id=command.id, description=command.description)

        for i in range(200):
            with anyio.move_on_after((i % 40) * 0.0002):
                if i % 2:
                    await flow.dispatch(CreateTodo(id=f"c{i}", description="x"))
                else:
                    await pg.append_streams(
                        [
                            StreamAppend(f"a-{i}", [TodoCreated(description="x")]),
                            StreamAppend(f"b-{i}", [TodoRenamed(description="x")]),
                        ]
                    )

        idle = await admin(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE application_name = $1 AND state LIKE 'idle in transaction%'",
            name,
        )
        pairs = [
            (await pg.stream_version(f"a-{i}"), await pg.stream_version(f"b-{i}"))
            for i in range(0, 200, 2)
        ]
        after = await pg.append("after", [TodoCreated(description="ok")])

    assert idle[0][0] == 0
    assert all(pair in ((0, 0), (1, 1)) for pair in pairs)
    assert after[0].aggregate_version == 1


async def test_terminated_connections_end_appends_whole_or_with_a_connection_error(
    tmp_path: Path,
) -> None:
    pg, name = named_store(tmp_path)
    outcomes: list[str] = []

    async def append_batches() -> None:
        for i in range(150):
            events = [TodoCreated(description=f"{i}/{n}") for n in range(5)]
            try:
                await pg.append(f"batch-{i}", events)
                outcomes.append("stored")
            except StoreConnectionError as exc:
                told = ("may or may not have been committed", "could not connect")
                outcomes.append("lost" if any(t in str(exc) for t in told) else str(exc))
            await anyio.sleep(0)

    async def terminate() -> None:
        for _ in range(30):
            await admin(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = $1 AND pid <> pg_backend_pid()",
                name,
            )
            await anyio.sleep(0.005)

    async with pg:
        async with anyio.create_task_group() as tg:
            tg.start_soon(append_batches)
            tg.start_soon(terminate)

        versions = [await pg.stream_version(f"batch-{i}") for i in range(150)]
        after = await pg.append("after", [TodoCreated(description="ok")])

    assert len(outcomes) == 150
    assert set(outcomes) == {"stored", "lost"}
    assert all(version in (0, 5) for version in versions)
    assert outcomes.count("stored") <= versions.count(5)
    assert after[0].aggregate_version == 1


async def test_stream_ids_and_payloads_with_nul_and_any_unicode_round_trip(
    pg: PostgresEventStore,
) -> None:
    stream = "nul\x00 стрим 🚀 '; DROP TABLE eventuality_events; --"
    event = TodoCreated(description='a\x00b \u2028 \U0001f600 \\u0000 "quoted"')

    stored = await pg.append(stream, [event])

    assert await pg.read_stream(stream) == stored
    assert await pg.read_stream("nul") == []
    assert [e async for e in pg.read_all()] == stored


async def test_the_password_never_shows_in_a_repr_or_an_error() -> None:
    store = PostgresEventStore("postgresql://eve:s3cr3t-pw@127.0.0.1:1/test")
    via_url = open_store("postgresql://eve:s3cr3t-pw@127.0.0.1:1/test?password=s3cr3t-pw")

    with pytest.raises(StoreConnectionError) as caught:
        await store.open()

    assert "s3cr3t-pw" not in repr(store)
    assert "s3cr3t-pw" not in repr(via_url)
    assert "s3cr3t-pw" not in str(caught.value)
    assert "eve:***@127.0.0.1:1" in str(caught.value)


async def test_one_append_may_not_exceed_the_positions_a_transaction_has(
    pg: PostgresEventStore,
) -> None:
    backend: PostgresBackend = pg.backend  # type: ignore[assignment]
    too_many = [AppendRequest("huge", None, (_row(),) * (2**20 + 1))]

    with pytest.raises(ValueError, match="at most 1,048,576 events"):
        await backend.append(too_many)

    assert await pg.last_position() == 0


def _row() -> StoredEvent:
    from eventuality.stores.rows import to_row

    return to_row("huge", TodoCreated(description="x"))


def test_schema_names_are_plain_identifiers() -> None:
    with pytest.raises(ValueError, match="plain identifier"):
        PostgresEventStore("postgresql://localhost/test", schema='x"; DROP SCHEMA public; --')


async def test_open_store_passes_schema_and_pool_options(tmp_path: Path) -> None:
    store: EventStore = open_store(f"{POSTGRES_DSN}?schema={postgres_schema(tmp_path)}&max_size=3")

    async with store:
        stored = await store.append("via-url", [TodoCreated(description="x")])

    assert isinstance(store, PostgresEventStore)
    assert store.schema == postgres_schema(tmp_path)
    assert stored[0].aggregate_version == 1


async def test_commits_touching_streams_in_opposite_orders_never_deadlock(
    pg: PostgresEventStore,
) -> None:
    outcomes: list[str] = []

    async def commit(first: str, second: str) -> None:
        try:
            await pg.append_streams(
                [
                    StreamAppend(first, [TodoCreated(description=first)], expected_version=0),
                    StreamAppend(second, [TodoCreated(description=second)], expected_version=0),
                ]
            )
            outcomes.append("stored")
        except ConcurrencyError:
            outcomes.append("conflict")

    for round_ in range(40):
        a, b = f"a-{round_}", f"b-{round_}"
        async with anyio.create_task_group() as tg:
            tg.start_soon(commit, a, b)
            tg.start_soon(commit, b, a)

    assert len(outcomes) == 80
    assert outcomes.count("stored") == 40


async def test_closing_the_store_under_a_running_subscription_leaves_no_listener(
    tmp_path: Path,
) -> None:
    store = make_store("postgres", tmp_path)
    await store.open()
    failures: list[BaseException] = []

    async def follow() -> None:
        try:
            await Subscription(store, "closing", _ignore).run()
        except StoreClosedError as exc:
            failures.append(exc)

    async with anyio.create_task_group() as tg:
        tg.start_soon(follow)
        await anyio.sleep(0.3)
        await store.close()
        with anyio.fail_after(10):
            while not failures:
                await anyio.sleep(0.05)

    listeners = await admin(
        "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'LISTEN%' AND query LIKE $1",
        f"%{postgres_schema(tmp_path)}%",
    )
    assert listeners[0][0] == 0
    assert isinstance(failures[0], StoreClosedError)


async def _ignore(event: Event) -> None:
    pass


async def test_an_error_of_the_users_own_inside_a_transaction_passes_through_unchanged(
    pg: PostgresEventStore,
) -> None:
    async def fail_in_user_code() -> None:
        async with pg.transaction() as tx:
            await tx.execute("CREATE TABLE IF NOT EXISTS kept (id TEXT)")
            raise TimeoutError("mine")

    with pytest.raises(TimeoutError, match="mine"):
        await fail_in_user_code()

    async with pg.transaction() as tx:
        await tx.execute("SET application_name = 'changed by user SQL'")
    names = await admin(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'changed by user SQL'"
    )

    assert await pg.query("SELECT to_regclass('kept') IS NULL") == [(True,)]
    assert names[0][0] == 0
