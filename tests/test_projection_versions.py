"""Rebuilding a projection without downtime: version 2 builds beside version 1, then switches."""

import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

from eventuality import (
    Event,
    EventStore,
    InMemoryEventStore,
    Projection,
    ProjectionRetired,
    ProjectionVersionError,
    SQLiteEventStore,
    SubscriptionRunner,
    SubscriptionTimeout,
    Transaction,
    wait_for_subscriptions,
)
from tests._readme import readme_block, run_python
from tests.conftest import make_store
from tests.domain import Todo, TodoCreated, TodoRenamed

Rows = list[tuple[Any, ...]]


async def _save(store: EventStore, todo_id: str, *descriptions: str) -> int:
    """Create a todo (renamed to each later description); the last position."""
    todo = Todo.create(id=todo_id, description=descriptions[0])
    for description in descriptions[1:]:
        todo.rename(description)
    stored = await store.append(todo.stream_id, todo.pending_events, expected_version=0)
    return stored[-1].position or 0


def version_1(store: EventStore, **options: Any) -> Projection:
    """The todo list as it was first written: plain table names, checkpoint ``todos``."""

    async def setup(tx: Transaction) -> None:
        await tx.execute(
            "CREATE TABLE IF NOT EXISTS todo_list (id TEXT PRIMARY KEY, description TEXT NOT NULL)"
        )

    async def project(event: Event, tx: Transaction) -> None:
        if isinstance(event, TodoCreated | TodoRenamed):
            await tx.execute(
                "INSERT INTO todo_list (id, description) VALUES (:id, :d) "
                "ON CONFLICT (id) DO UPDATE SET description = :d",
                id=event.aggregate_id,
                d=event.description,
            )

    return Projection(
        store, "todos", project, version=1, tables=["todo_list"], setup=setup, **options
    )


def version_2(store: EventStore, *, fail_at: int | None = None, **options: Any) -> Projection:
    """The new todo list: descriptions in capitals and a rename count, in ``todo_list_v2``."""

    async def setup(tx: Transaction) -> None:
        await tx.execute(
            f"CREATE TABLE IF NOT EXISTS {table} "
            "(id TEXT PRIMARY KEY, description TEXT NOT NULL, renames INTEGER NOT NULL)"
        )

    async def project(event: Event, tx: Transaction) -> None:
        if fail_at is not None and event.position == fail_at:
            raise RuntimeError("the deployment was stopped here")
        if isinstance(event, TodoCreated | TodoRenamed):
            await tx.execute(
                f"INSERT INTO {table} (id, description, renames) VALUES (:id, :d, 0) "
                f"ON CONFLICT (id) DO UPDATE SET description = :d, renames = {table}.renames + 1",
                id=event.aggregate_id,
                d=event.description.upper(),
            )

    projection = Projection(
        store, "todos", project, version=2, tables=["todo_list"], setup=setup, **options
    )
    table = projection.table("todo_list")
    return projection


V1_ROWS = [("a", "second"), ("b", "only")]
V2_ROWS = [("a", "SECOND"), ("b", "ONLY")]
LIVE = "SELECT id, description FROM todo_list ORDER BY id"


async def _two_todos(store: EventStore) -> int:
    await _save(store, "a", "first", "second")
    return await _save(store, "b", "only")


async def test_version_1_keeps_the_plain_checkpoint_and_table_names(store: EventStore) -> None:
    last = await _two_todos(store)
    projection = version_1(store)

    await projection.catch_up()

    assert projection.name == "todos"
    assert projection.table("todo_list") == "todo_list"
    assert await store.get_checkpoint("todos") == last
    assert await store.query(LIVE) == V1_ROWS
    assert projection.versions is not None
    assert await projection.versions.live_version() == 1


async def test_version_1_serves_readers_until_version_2_switches_over(store: EventStore) -> None:
    last = await _two_todos(store)
    await version_1(store).catch_up()
    new = version_2(store, switch="manual")

    await new.catch_up()

    assert new.name == "todos@v2"
    assert await store.get_checkpoint("todos@v2") == last
    assert await store.query(LIVE) == V1_ROWS
    assert await store.query("SELECT id, renames FROM todo_list_v2 ORDER BY id") == [
        ("a", 1),
        ("b", 0),
    ]

    assert await new.switch_over() is True

    assert await store.query(LIVE) == V2_ROWS
    assert await store.query("SELECT id, description FROM todo_list_v1 ORDER BY id") == V1_ROWS
    assert await new.switch_over() is False
    await _save(store, "c", "later")
    await new.catch_up()
    assert await store.query(LIVE) == [*V2_ROWS, ("c", "LATER")]


async def test_switching_over_before_catching_up_is_refused(store: EventStore) -> None:
    await _two_todos(store)
    await version_1(store).catch_up()
    new = version_2(store, switch="manual")
    await new.catch_up()
    last = await _save(store, "c", "later")

    with pytest.raises(ProjectionVersionError, match=rf"up to position \d+, which ends at {last}"):
        await new.switch_over()

    assert await store.query(LIVE) == [*V1_ROWS]
    assert new.versions is not None
    assert await new.versions.live_version() == 1


async def test_version_2_switches_over_by_itself_when_it_catches_up(store: EventStore) -> None:
    await _two_todos(store)
    await version_1(store).catch_up()

    await version_2(store).catch_up()

    assert await store.query(LIVE) == V2_ROWS


async def test_the_first_version_set_up_serves_at_once(store: EventStore) -> None:
    await _two_todos(store)

    await version_2(store, switch="manual").catch_up()

    assert await store.query(LIVE) == V2_ROWS


async def test_the_old_version_stops_once_a_later_one_is_live(store: EventStore) -> None:
    await _two_todos(store)
    old = version_1(store)
    await old.catch_up()
    await version_2(store).catch_up()
    at = await store.get_checkpoint("todos")
    await _save(store, "c", "later")

    with pytest.raises(ProjectionRetired, match="version 1 of projection 'todos' is retired"):
        await old.catch_up()
    await old.run()  # returns: a retired version does not keep running

    assert await store.get_checkpoint("todos") == at
    restarted = version_1(store, switch="manual")
    await restarted.set_up()  # a runner still starts; version 1's setup does not run
    with pytest.raises(ProjectionRetired):
        await restarted.catch_up()


async def test_a_retired_version_with_nothing_to_handle_stops_too(store: EventStore) -> None:
    await _two_todos(store)
    await version_1(store).catch_up()
    await version_2(store).catch_up()

    for switch in ("auto", "manual"):
        with pytest.raises(ProjectionRetired):
            await version_1(store, switch=switch).catch_up()


async def test_a_retired_version_drops_its_tables(store: EventStore) -> None:
    await _two_todos(store)
    old, new = version_1(store), version_2(store, switch="manual")
    await old.catch_up()
    await new.catch_up()
    with pytest.raises(ProjectionVersionError, match="cannot be retired: version 1 is live"):
        await old.retire()
    await new.switch_over()

    await old.retire()

    with pytest.raises(ProjectionVersionError, match="cannot be retired: version 2 is live"):
        await new.retire()
    async with store.transaction() as tx:
        await tx.execute("CREATE TABLE todo_list_v1 (recreated INTEGER)")  # the name is free
    assert await store.query(LIVE) == V2_ROWS


async def test_readers_during_the_switch_see_one_whole_model(store: EventStore) -> None:
    for n in range(30):
        await _save(store, f"t{n:02}", f"todo {n}")
    await version_1(store).catch_up()
    new = version_2(store, switch="manual")
    await new.catch_up()
    old_rows = await store.query(LIVE)
    new_rows = await store.query("SELECT id, description FROM todo_list_v2 ORDER BY id")
    assert len(old_rows) == 30
    assert old_rows != new_rows
    seen: list[Rows] = []
    reading, switched = anyio.Event(), anyio.Event()

    async def read() -> None:
        after_switch = 0
        while after_switch < 5:
            if switched.is_set():
                after_switch += 1
            rows = await store.query(LIVE)
            seen.append(rows)
            if len(seen) == 5:
                reading.set()
            if after_switch:
                assert rows == new_rows

    async with anyio.create_task_group() as group:
        for _ in range(3):
            group.start_soon(read)
        await reading.wait()
        await new.switch_over()
        switched.set()

    assert all(rows in (old_rows, new_rows) for rows in seen)
    assert old_rows in seen
    assert new_rows in seen


async def test_a_restarted_version_2_resumes_from_its_own_checkpoint(store: EventStore) -> None:
    first = await _save(store, "a", "first", "second")
    failing = await _save(store, "b", "only")
    last = await _save(store, "c", "later")
    await version_1(store).catch_up()

    with pytest.raises(RuntimeError, match="stopped here"):
        await version_2(store, fail_at=failing).catch_up()

    assert await store.get_checkpoint("todos@v2") == first
    assert await store.get_checkpoint("todos") == last
    restarted = version_2(store, switch="manual")
    assert await restarted.catch_up() == 2
    assert await store.query("SELECT id FROM todo_list_v2 ORDER BY id") == [("a",), ("b",), ("c",)]
    assert await store.query(LIVE) == [*V1_ROWS, ("c", "later")]


async def test_wait_for_names_a_version_and_both_run_in_one_runner(store: EventStore) -> None:
    await _two_todos(store)
    old, new = version_1(store), version_2(store)

    async with SubscriptionRunner(old, new):
        last = await _save(store, "c", "later")
        await wait_for_subscriptions(store, ["todos@v2"], last)
        assert await store.query(LIVE) == [*V2_ROWS, ("c", "LATER")]

        after = await _save(store, "d", "after the switch")
        await wait_for_subscriptions(store, ["todos@v2"], after)
        with pytest.raises(SubscriptionTimeout) as raised:
            await wait_for_subscriptions(store, ["todos"], after)

    assert isinstance(raised.value.error, ProjectionRetired)
    assert ("d",) not in await store.query("SELECT id FROM todo_list_v1")  # v1 wrote no more


@pytest.mark.parametrize("kind", ["sqlite-file", pytest.param("postgres")])
async def test_versions_in_two_processes_share_the_record(kind: str, tmp_path: Path) -> None:
    """Two store objects on one database stand for two processes."""
    if kind == "postgres":
        from tests.conftest import POSTGRES_DSN

        if not POSTGRES_DSN:
            pytest.skip("EVENTUALITY_TEST_POSTGRES_DSN is not set")
    async with make_store(kind, tmp_path) as here, make_store(kind, tmp_path) as there:
        await _two_todos(here)
        old = version_1(here)
        await old.catch_up()

        await version_2(there).catch_up()
        await _save(here, "c", "later")

        assert await here.query(LIVE) == V2_ROWS
        with pytest.raises(ProjectionRetired):
            await old.catch_up()


async def test_a_version_running_in_another_process_stops_at_the_switch(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    async with SQLiteEventStore(path) as store:
        last = await _two_todos(store)
        async with await anyio.open_process(
            [sys.executable, "-m", "tests._versions_child", str(path)]
        ) as child:
            assert child.stdout is not None
            output = b""
            try:
                with anyio.fail_after(60):  # guards against a hang, not a timing check
                    while b"running" not in output:
                        output += await child.stdout.receive()
                at = await store.get_checkpoint("todos")
                assert at == last

                await version_2(store).catch_up()
                await _save(store, "c", "later")

                with anyio.fail_after(60):
                    output += b"".join([chunk async for chunk in child.stdout])
                    assert await child.wait() == 0
            finally:
                if child.returncode is None:
                    child.kill()
        assert output.decode().split() == ["running", "stopped"]
        assert await store.get_checkpoint("todos") == at
        assert await store.query(LIVE) == V2_ROWS


def test_a_versioned_projection_names_its_tables() -> None:
    from eventuality import InMemoryEventStore

    store = InMemoryEventStore()

    async def project(event: Event, tx: Transaction) -> None: ...

    with pytest.raises(ValueError, match="needs tables"):
        Projection(store, "todos", project, version=2)
    with pytest.raises(ValueError, match="plain identifier"):
        Projection(store, "todos", project, version=2, tables=["todo list; DROP TABLE x"])
    with pytest.raises(ValueError, match="needs a version"):
        Projection(store, "todos", project, tables=["todo_list"])
    with pytest.raises(ValueError, match="from 1 up"):
        Projection(store, "todos", project, version=0, tables=["t"])
    projection = Projection(store, "todos", project, version=3, tables=["t"])
    with pytest.raises(ValueError, match="not one of the tables"):
        projection.table("u")
    assert projection.table("t") == "t_v3"


def test_readme_rebuild_example_runs(tmp_path: Path) -> None:
    (tmp_path / "rebuild_example.py").write_text(readme_block("rebuild-example"))

    before, after = run_python(tmp_path, "rebuild_example.py").splitlines()

    assert before == "[('1', 'buy milk')]"
    assert after == "[('1', 'buy milk', 2)]"


def test_a_version_with_partitions_is_refused_with_what_to_do_instead() -> None:
    async def project(event: Event, tx: Transaction) -> None:
        pass

    with pytest.raises(ValueError, match="version= or partitions=, not both"):
        Projection(InMemoryEventStore(), "todos", project, version=2, tables=["t"], partitions=4)
