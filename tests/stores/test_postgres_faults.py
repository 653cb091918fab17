"""The PostgreSQL store under faults: lost connections, cancellations, contention, a bad URL, a
write through query(), a caller's mistake in SQL. Each store here runs under an application
name of its own, so killing "its" backends touches nothing else on the server."""

import asyncio
import gc
import random
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import anyio
import asyncpg
import pytest

from eventuality import (
    ConcurrencyError,
    Event,
    Flow,
    InvalidStoreURL,
    Repository,
    StoreConnectionError,
    StoreError,
    StreamAppend,
    Subscription,
    SubscriptionLocked,
    open_store,
)
from eventuality.stores.base import Snapshot
from eventuality.stores.postgres import PostgresBackend, PostgresEventStore
from tests.conftest import POSTGRES_DSN, postgres_schema, requires_postgres
from tests.domain import CreateTodo, Todo, TodoCreated, TodoRenamed
from tests.stores._postgres_admin import admin, named_store, with_params

pytestmark = requires_postgres


@pytest.fixture
async def named(tmp_path: Path) -> AsyncIterator[tuple[PostgresEventStore, str]]:
    store, name = named_store(tmp_path)
    async with store:
        yield store, name


async def _kill(application_name: str, query_like: str = "%") -> int:
    killed = await admin(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE application_name = $1 AND query LIKE $2 AND pid <> pg_backend_pid()",
        application_name,
        query_like,
    )
    return len(killed)


# -- 1. a caller's mistake is not a lost connection ------------------------------------------


async def test_a_wrong_argument_count_in_a_transaction_is_a_statement_error_on_a_kept_connection(
    tmp_path: Path,
) -> None:
    store, _ = named_store(tmp_path, max_size=1)
    async with store:
        async with store.transaction() as tx:
            await tx.execute("CREATE TABLE notes (id TEXT, text TEXT)")
            before = await tx.fetchone("SELECT pg_backend_pid()")

        with pytest.raises(StoreError) as caught:
            async with store.transaction() as tx:
                await tx.execute("INSERT INTO notes VALUES ($1, $2)", "only-one-argument")

        async with store.transaction() as tx:
            after = await tx.fetchone("SELECT pg_backend_pid()")

    assert not isinstance(caught.value, StoreConnectionError)
    assert "expects 2 arguments" in str(caught.value)
    assert "INSERT INTO notes VALUES ($1, $2)" in str(caught.value)
    assert "connection" not in str(caught.value)
    assert isinstance(caught.value.__cause__, asyncpg.InterfaceError)
    assert before == after


async def test_a_wrong_argument_count_in_a_query_is_a_statement_error_on_a_kept_connection(
    tmp_path: Path,
) -> None:
    store, _ = named_store(tmp_path, max_size=1)
    async with store:
        before = await store.query("SELECT pg_backend_pid()")

        with pytest.raises(StoreError) as caught:
            await store.query("SELECT $1::int + $2::int", 1)

        after = await store.query("SELECT pg_backend_pid()")

    assert not isinstance(caught.value, StoreConnectionError)
    assert "expects 2 arguments" in str(caught.value)
    assert "SELECT $1::int + $2::int" in str(caught.value)
    assert "connection" not in str(caught.value)
    assert before == after


async def test_a_projection_with_a_wrong_argument_count_stops_on_a_store_error(
    named: tuple[PostgresEventStore, str],
) -> None:
    from eventuality import Projection

    store, _ = named
    await store.append("t-1", [TodoCreated(description="x")])

    async def project(event: Event, tx: Any) -> None:
        await tx.execute("INSERT INTO todo_rm VALUES ($1, $2)", "one")

    async def setup(tx: Any) -> None:
        await tx.execute("CREATE TABLE IF NOT EXISTS todo_rm (id TEXT, text TEXT)")

    projection = Projection(store, "rm", project, setup=setup)

    with pytest.raises(StoreError, match="expects 2 arguments") as caught:
        await projection.catch_up()

    assert not isinstance(caught.value, StoreConnectionError)
    assert "connection" not in str(caught.value)
    assert await store.query("SELECT count(*) FROM todo_rm") == [(0,)]


# -- 2. every lost connection is a StoreConnectionError, and the next call reconnects --------


async def test_a_killed_connection_inside_a_transaction_is_a_store_connection_error(
    named: tuple[PostgresEventStore, str],
) -> None:
    store, name = named

    async def killed_midway() -> None:
        async with store.transaction() as tx:
            await tx.execute("CREATE TABLE IF NOT EXISTS t (id INT)")
            await _kill(name)
            await tx.execute("INSERT INTO t VALUES (1)")

    with pytest.raises(StoreConnectionError, match="was lost") as caught:
        await killed_midway()

    assert "The next call reconnects" in str(caught.value)
    assert await store.query("SELECT to_regclass('t') IS NULL") == [(True,)]


async def test_a_subscriptions_killed_backends_give_store_connection_errors_then_reconnect(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store, name = named_store(tmp_path)
    seen: list[int] = []
    outcomes: dict[str, int] = {}

    async def handle(event: Event) -> None:
        seen.append(event.position or 0)

    calls: dict[str, Callable[[], Awaitable[object]]] = {
        "append": lambda: store.append("s", [TodoCreated(description="x")]),
        "read_stream": lambda: store.read_stream("s"),
        "stream_version": lambda: store.stream_version("s"),
        "last_position": store.last_position,
        "read_all": lambda: _first(store),
        "query": lambda: store.query("SELECT 1"),
        "get_checkpoint": lambda: store.get_checkpoint("killed"),
        "set_checkpoint": lambda: _bump_checkpoint(store),
        "save_snapshot": lambda: store.save_snapshot(Snapshot("s", 1, "Todo", 1, "{}")),
        "transaction": lambda: _in_transaction(store),
        "wait_appended": lambda: store.wait_appended(2**62, 0.01),
    }

    kills_done = anyio.Event()

    async def call_everything() -> None:
        while not kills_done.is_set():
            for what, call in calls.items():
                try:
                    await call()
                    outcomes["worked"] = outcomes.get("worked", 0) + 1
                except StoreConnectionError:
                    outcomes[what] = outcomes.get(what, 0) + 1
                await anyio.sleep(0.002)

    async with store, anyio.create_task_group() as tg:
        tg.start_soon(Subscription(store, "killed", handle, checkpoint_every=3).run)
        await anyio.sleep(0.3)
        async with anyio.create_task_group() as calling:
            calling.start_soon(call_everything)
            killed = 0
            for _ in range(12):
                killed += await _kill(name)
                await anyio.sleep(0.06)
            kills_done.set()

        # After the kills: every call works, or fails once with StoreConnectionError and then
        # works (the next call reconnects).
        for call in calls.values():
            try:
                await call()
            except StoreConnectionError:
                await call()
        appended = await store.append("after", [TodoCreated(description="after")])
        with anyio.fail_after(30):
            while not seen or seen[-1] < (appended[0].position or 0):
                await anyio.sleep(0.02)
        tg.cancel_scope.cancel()

    log = [e.position async for e in _reopened(tmp_path)]
    assert killed >= 12
    assert sum(v for k, v in outcomes.items() if k != "worked") > 0  # the kills were felt
    assert outcomes["worked"] > 0
    assert sorted(set(seen)) == log
    retried = [r.getMessage() for r in caplog.records if "resuming from its checkpoint" in r.msg]
    assert all("StoreConnectionError" in m or "SubscriptionLocked" in m for m in retried)


async def _first(store: PostgresEventStore) -> None:
    async for _ in store.read_all(page_size=5):
        break


async def _bump_checkpoint(store: PostgresEventStore) -> None:
    current = await store.get_checkpoint("bumped")
    await store.set_checkpoint("bumped", (current or 0) + 1, expected=current)


async def _in_transaction(store: PostgresEventStore) -> None:
    async with store.transaction() as tx:
        await tx.fetchone("SELECT 1")


async def _reopened(tmp_path: Path) -> AsyncIterator[Event]:
    async with PostgresEventStore(POSTGRES_DSN, schema=postgres_schema(tmp_path)) as store:
        async for event in store.read_all():
            yield event


async def test_losing_the_holder_connection_ends_the_hold_with_subscription_locked(
    named: tuple[PostgresEventStore, str],
) -> None:
    store, name = named

    async def hold_while_killed() -> None:
        async with store.hold_name("held"):
            await _kill(name, "%pg_try_advisory_lock%")
            await anyio.sleep(5)

    with anyio.fail_after(4), pytest.raises(SubscriptionLocked, match="lost the connection"):
        await hold_while_killed()


class _Listener:
    """Stands in for the listener's connection: add_listener fails, or hangs until cancelled."""

    def __init__(self, failure: BaseException | None) -> None:
        self.failure = failure
        self.terminated = False

    async def add_listener(self, *_: object) -> None:
        if self.failure is not None:
            raise self.failure
        await anyio.sleep_forever()

    def terminate(self) -> None:
        self.terminated = True


@pytest.mark.parametrize(
    "failure",
    [
        asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
        asyncpg.InterfaceError("connection is closed"),
        ConnectionResetError("reset by peer"),
        None,  # hangs: the wait is cancelled while the listener starts
    ],
)
async def test_a_listener_lost_or_cancelled_as_it_starts_leaves_waits_polling(
    named: tuple[PostgresEventStore, str], failure: BaseException | None
) -> None:
    store, _ = named
    backend: PostgresBackend = store.backend  # type: ignore[assignment]
    stand_in = _Listener(failure)

    async def connect() -> Any:
        return stand_in

    backend.db.connect = connect  # type: ignore[method-assign]
    await store.append("s", [TodoCreated(description="x")])

    with anyio.move_on_after(0.3):
        woke = await store.wait_appended(0, 5)

    assert stand_in.terminated
    assert not backend.listening
    if failure is not None:
        assert woke  # polling saw the append
    assert await store.wait_appended(2**62, 0.05) is False


# -- 3. appends to one stream queue instead of failing ---------------------------------------


async def test_unchecked_appends_from_16_writers_to_one_stream_all_land_without_gaps(
    named: tuple[PostgresEventStore, str],
) -> None:
    store, _ = named

    async def writer(w: int) -> None:
        for i in range(40):
            await store.append("hot", [TodoCreated(description=f"{w}/{i}")])

    async with anyio.create_task_group() as tg:
        for w in range(16):
            tg.start_soon(writer, w)

    events = await store.read_stream("hot")
    assert len(events) == 640
    assert [e.aggregate_version for e in events] == list(range(1, 641))
    assert len({e.description for e in events}) == 640  # type: ignore[attr-defined]


async def test_unchecked_appends_to_two_streams_in_opposite_orders_all_land(
    named: tuple[PostgresEventStore, str],
) -> None:
    store, _ = named

    async def writer(w: int) -> None:
        first, second = ("a", "b") if w % 2 else ("b", "a")
        for i in range(20):
            await store.append_streams(
                [
                    StreamAppend(first, [TodoCreated(description=f"{w}/{i}")]),
                    StreamAppend(second, [TodoRenamed(description=f"{w}/{i}")]),
                ]
            )

    async with anyio.create_task_group() as tg:
        for w in range(8):
            tg.start_soon(writer, w)

    assert await store.stream_version("a") == await store.stream_version("b") == 160


async def test_concurrent_checked_appends_at_one_version_have_exactly_one_winner(
    named: tuple[PostgresEventStore, str],
) -> None:
    store, _ = named
    winners: list[int] = []

    for version in range(10):
        outcomes: list[str] = []

        async def checked(w: int, version: int = version, outcomes: list[str] = outcomes) -> None:
            try:
                await store.append(
                    "contested", [TodoCreated(description=f"{w}")], expected_version=version
                )
                outcomes.append("won")
            except ConcurrencyError as exc:
                outcomes.append(f"lost at {exc.actual_version}")

        async with anyio.create_task_group() as tg:
            for w in range(8):
                tg.start_soon(checked, w)
        winners.append(outcomes.count("won"))
        assert sorted(outcomes) == [f"lost at {version + 1}"] * 7 + ["won"]

    assert winners == [1] * 10
    assert await store.stream_version("contested") == 10


# -- 4. cancellation is silent ---------------------------------------------------------------


async def test_cancelling_appends_dispatches_transactions_and_queries_reports_nothing(
    named: tuple[PostgresEventStore, str],
) -> None:
    store, name = named
    loop = asyncio.get_running_loop()
    reports: list[str] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _, context: reports.append(context["message"]))
    flow = Flow(store=store)
    todos = Repository(Todo, store)

    @flow.handles(CreateTodo)
    async def create(command: CreateTodo) -> None:
        await todos.add(id=command.id, description=command.description)

    async with store.transaction() as tx:
        await tx.execute("CREATE TABLE rm (id TEXT)")

    async def in_transaction(i: int) -> None:
        async with store.transaction() as tx:
            await tx.execute("INSERT INTO rm VALUES ($1)", f"r{i}")
            await tx.fetchone("SELECT count(*) FROM rm")

    operations: list[Callable[[int], Awaitable[object]]] = [
        lambda i: flow.dispatch(CreateTodo(id=f"c{i}", description="x")),
        lambda i: store.append("hot", [TodoCreated(description=f"{i}")]),
        lambda i: store.append_streams(
            [
                StreamAppend(f"a-{i}", [TodoCreated(description="x")]),
                StreamAppend(f"b-{i}", [TodoRenamed(description="x")]),
            ]
        ),
        in_transaction,
        lambda i: store.query("SELECT count(*) FROM rm"),
    ]
    rng = random.Random(7)
    cancelled = 0
    try:
        for i in range(400):
            with anyio.move_on_after(rng.uniform(0, 0.004)) as scope:
                await operations[i % len(operations)](i)
            cancelled += scope.cancelled_caught
        await anyio.sleep(0.3)
        gc.collect()
        await anyio.sleep(0.05)
    finally:
        loop.set_exception_handler(previous)

    idle = await admin(
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE application_name = $1 AND state LIKE 'idle in transaction%'",
        name,
    )
    pairs = {(await store.stream_version(f"a-{i}"), await store.stream_version(f"b-{i}"))
             for i in range(2, 400, 5)}  # fmt: skip
    assert cancelled > 0  # cancellations did land (how many depends on the machine)
    assert reports == []
    assert idle[0][0] == 0
    assert pairs <= {(0, 0), (1, 1)}
    assert (await store.append("after", [TodoCreated(description="ok")]))[0].aggregate_version == 1
    assert await store.query("SELECT 1") == [(1,)]


async def test_cancelling_calls_while_their_connections_are_made_reports_nothing(
    tmp_path: Path,
) -> None:
    loop = asyncio.get_running_loop()
    reports: list[str] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _, context: reports.append(context["message"]))
    rng = random.Random(11)
    cancelled = 0
    try:
        for _ in range(40):
            store, _name = named_store(tmp_path)
            async with store:  # the query pool has no connection yet: the query makes one
                with anyio.move_on_after(rng.uniform(0, 0.004)) as scope:
                    await store.query("SELECT 1")
                with anyio.move_on_after(rng.uniform(0, 0.004)):
                    await store.wait_appended(0, 1)  # connects the listener
                cancelled += scope.cancelled_caught
                assert await store.query("SELECT 1") == [(1,)]
        await anyio.sleep(0.1)
        gc.collect()
        await anyio.sleep(0.05)
    finally:
        loop.set_exception_handler(previous)

    assert cancelled >= 5
    assert reports == []


# -- 5. the URL and connecting ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("postgresql://eve:s3cr3t-pw@127.0.0.1:1/test", "Connect call failed"),
        (urlunsplit(urlsplit(POSTGRES_DSN)._replace(path="/no_such_db_here")), "does not exist"),
        ("postgresql://no_such_role:s3cr3t-pw@127.0.0.1:5432/test", "no_such_role"),
    ],
    ids=["wrong-port", "wrong-database", "wrong-user"],
)
async def test_a_failed_connect_says_so_and_never_shows_the_password(url: str, reason: str) -> None:
    store = PostgresEventStore(url)

    with pytest.raises(StoreConnectionError) as caught:
        await store.open()

    message = str(caught.value)
    assert message.startswith("could not connect to PostgreSQL at ")
    assert reason in message
    assert "server is running" in message
    assert "append" not in message
    assert "s3cr3t-pw" not in message


async def test_connect_timeout_is_the_time_allowed_to_connect(tmp_path: Path) -> None:
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()  # accepts connections, never answers
    port = silent.getsockname()[1]
    try:
        store = PostgresEventStore(f"postgresql://postgres@127.0.0.1:{port}/x?connect_timeout=2")
        started = anyio.current_time()
        with pytest.raises(StoreConnectionError, match="could not connect"):
            await store.open()
        waited = anyio.current_time() - started
    finally:
        silent.close()

    assert 1.5 < waited < 10


async def test_connect_timeout_and_application_name_in_the_url_are_honoured(
    tmp_path: Path,
) -> None:
    name = f"evtest_{uuid.uuid4().hex[:10]}"
    store = open_store(
        with_params(connect_timeout=5, application_name=name, schema=postgres_schema(tmp_path))
    )

    async with store:
        await store.append("s", [TodoCreated(description="x")])
        sessions = await admin(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", name
        )

    assert sessions[0][0] >= 1


@pytest.mark.parametrize(
    "parameter", ["keepalives=1", "hostaddr=127.0.0.1", "gssencmode=disable", "tcp_user_timeout=5"]
)
def test_libpq_options_asyncpg_cannot_honour_are_refused_at_construction(parameter: str) -> None:
    key = parameter.split("=")[0]

    with pytest.raises(ValueError, match=f"'{key}' is a libpq option"):
        PostgresEventStore(f"postgresql://u@localhost/db?{parameter}")
    with pytest.raises(InvalidStoreURL, match=key):
        open_store(f"postgresql://u@localhost/db?{parameter}")


@pytest.mark.parametrize(
    ("query", "match"),
    [
        ("connect_timeout=soon", "whole number of seconds"),
        ("search_path=x", "schema="),
        ("client_encoding=LATIN1", "UTF8"),
    ],
)
def test_url_parameters_the_store_cannot_take_are_refused_at_construction(
    query: str, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        PostgresEventStore(f"postgresql://u@localhost/db?{query}")


def test_connect_timeout_follows_libpq() -> None:
    def timeout(value: str) -> float | None:
        store = PostgresEventStore(f"postgresql://u@h/db?connect_timeout={value}")
        return store._backend.db.options.timeout  # type: ignore[attr-defined, no-any-return]

    assert [timeout(v) for v in ("10", "1", "0", "-3", "")] == [10.0, 2.0, None, None, None]


# -- 6. query() is read-only -----------------------------------------------------------------


async def test_a_write_through_query_is_refused_and_nothing_is_written(
    named: tuple[PostgresEventStore, str],
) -> None:
    store, _ = named
    async with store.transaction() as tx:
        await tx.execute("CREATE TABLE rm (id TEXT)")
        await tx.execute("INSERT INTO rm VALUES ('x')")

    refused = []
    for sql in ("DELETE FROM rm", "CREATE TABLE other (id INT)", "INSERT INTO rm VALUES ('y')"):
        with pytest.raises(StoreError, match=r"query\(\) is read-only") as caught:
            await store.query(sql)
        refused.append(str(caught.value))
    # A session setting changed by one query does not outlive it.
    await store.query("SELECT set_config('default_transaction_read_only', 'off', false)")
    with pytest.raises(StoreError, match="read-only"):
        await store.query("DELETE FROM rm")

    assert await store.query("SELECT id FROM rm") == [("x",)]
    assert await store.query("SELECT to_regclass('other') IS NULL") == [(True,)]
    assert all("store.transaction()" in message for message in refused)
    assert not any(isinstance(e, StoreConnectionError) for e in refused)


# -- 7. the longest stream id the front allows -----------------------------------------------


async def test_a_stream_id_of_1024_utf8_bytes_with_multibyte_characters_round_trips(
    named: tuple[PostgresEventStore, str],
) -> None:
    store, _ = named
    stream = "🚀ж" * 170 + "abcd"
    assert len(stream.encode()) == 1024

    stored = await store.append(stream, [TodoCreated(description="long")])
    await store.save_snapshot(Snapshot(stream, 1, "Todo", 1, "{}"))

    assert await store.read_stream(stream) == stored
    assert await store.stream_version(stream) == 1
    assert [e async for e in store.read_all()] == stored
    assert (await store.load_snapshot(stream)) == Snapshot(stream, 1, "Todo", 1, "{}")
