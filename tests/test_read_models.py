"""Read models: a projection's set-up step, and named SQL parameters that run on every store."""

from pathlib import Path

import anyio
import pytest

from eventuality import (
    Event,
    EventStore,
    Projection,
    SubscriptionRunner,
    SubscriptionTimeout,
    Transaction,
    wait_for_subscriptions,
)
from eventuality.stores._named_sql import translate
from tests.conftest import make_store, requires_postgres
from tests.domain import Todo, TodoCreated, TodoRenamed


async def _save(store: EventStore, todo_id: str, *descriptions: str) -> list[int]:
    todo = Todo.create(id=todo_id, description=descriptions[0])
    for description in descriptions[1:]:
        todo.rename(description)
    stored = await store.append(todo.stream_id, todo.pending_events, expected_version=0)
    return [event.position or 0 for event in stored]


async def create_todo_list(tx: Transaction) -> None:
    await tx.execute(
        "CREATE TABLE IF NOT EXISTS todo_list "
        "(id TEXT PRIMARY KEY, description TEXT NOT NULL, renames INTEGER NOT NULL)"
    )


async def project_todo_list(event: Event, tx: Transaction) -> None:
    """Written once with :name parameters; ``:description`` is used twice."""
    if isinstance(event, TodoCreated | TodoRenamed):
        await tx.execute(
            "INSERT INTO todo_list (id, description, renames) VALUES (:id, :description, 0) "
            "ON CONFLICT (id) DO UPDATE SET description = :description, "
            "renames = todo_list.renames + 1",
            id=event.aggregate_id,
            description=event.description,
        )


async def test_a_projection_with_named_parameters_runs_on_every_store(store: EventStore) -> None:
    await _save(store, "a", "first", "second")
    await _save(store, "b", "only")
    projection = Projection(store, "todo-list", project_todo_list, setup=create_todo_list)

    await projection.catch_up()

    rows = await store.query("SELECT id, description, renames FROM todo_list ORDER BY id")
    assert rows == [("a", "second", 1), ("b", "only", 0)]


async def test_a_query_takes_named_parameters_on_every_store(store: EventStore) -> None:
    await _save(store, "a", "first")
    await Projection(store, "todo-list", project_todo_list, setup=create_todo_list).catch_up()

    rows = await store.query("SELECT id FROM todo_list WHERE id = :id OR description = :id", id="a")

    assert rows == [("a",)]


async def test_executemany_takes_one_mapping_per_row_on_every_store(store: EventStore) -> None:
    async with store.transaction() as tx:
        await create_todo_list(tx)
        await tx.executemany(
            "INSERT INTO todo_list (id, description, renames) VALUES (:id, :d, :n)",
            [{"id": "x", "d": "ex", "n": 0}, {"id": "y", "d": "why", "n": 2}],
        )
        one = await tx.fetchone("SELECT renames FROM todo_list WHERE id = :id", id="y")
        every = await tx.fetchall("SELECT id FROM todo_list WHERE renames < :n", n=5)

    assert one == (2,)
    assert sorted(every) == [("x",), ("y",)]


async def test_mixing_positional_and_named_parameters_raises_value_error(
    store: EventStore,
) -> None:
    async with store.transaction() as tx:
        await create_todo_list(tx)

        with pytest.raises(ValueError, match="one kind"):
            await tx.execute("DELETE FROM todo_list WHERE id = :id", "x", id="x")
    with pytest.raises(ValueError, match="one kind"):
        await store.query("SELECT id FROM todo_list WHERE id = :id", "x", id="x")


async def test_a_named_parameter_without_a_value_raises_value_error_naming_it(
    store: EventStore,
) -> None:
    async with store.transaction() as tx:
        await create_todo_list(tx)

    with pytest.raises(ValueError, match=":idd"):
        await store.query("SELECT id FROM todo_list WHERE id = :idd", id="x")


async def test_a_value_for_a_name_the_sql_does_not_use_raises_value_error_naming_it(
    store: EventStore,
) -> None:
    async with store.transaction() as tx:
        await create_todo_list(tx)

    with pytest.raises(ValueError, match=":descripton"):
        await store.query("SELECT id FROM todo_list WHERE id = :id", id="x", descripton="y")


@requires_postgres
async def test_a_cast_after_a_named_parameter_works_on_postgres(tmp_path: Path) -> None:
    async with make_store("postgres", tmp_path) as store:
        rows = await store.query("SELECT :n::text || :n::text, ':n'", n="4")

    assert rows == [("44", ":n")]


def test_translation_leaves_quoted_text_comments_and_casts_alone() -> None:
    sql = "SELECT ':a', \"b:c\", x::int, :a -- :d\n/* :e */ FROM t WHERE f = :f"

    qmark, qmark_names = translate(sql, "qmark")
    dollar, dollar_names = translate(sql, "dollar")

    assert qmark == "SELECT ':a', \"b:c\", x::int, ? -- :d\n/* :e */ FROM t WHERE f = ?"
    assert dollar == "SELECT ':a', \"b:c\", x::int, $1 -- :d\n/* :e */ FROM t WHERE f = $2"
    assert qmark_names == dollar_names == ("a", "f")


def test_a_name_used_twice_is_one_number_on_dollar_and_two_marks_on_qmark() -> None:
    sql = "SELECT :a, :b, :a"

    assert translate(sql, "qmark") == ("SELECT ?, ?, ?", ("a", "b", "a"))
    assert translate(sql, "dollar") == ("SELECT $1, $2, $1", ("a", "b"))


async def test_positional_parameters_pass_through_unchanged(store: EventStore) -> None:
    placeholder = "?" if store.paramstyle == "qmark" else "$1"

    rows = await store.query(f"SELECT 'a:b' || {placeholder}", "c")

    assert rows == [("a:bc",)]


async def test_setup_runs_before_the_first_pass_of_catch_up(store: EventStore) -> None:
    projection = Projection(store, "todo-list", project_todo_list, setup=create_todo_list)

    await projection.catch_up()

    assert await store.query("SELECT count(*) FROM todo_list") == [(0,)]


async def test_the_runner_runs_setup_before_its_block_starts(store: EventStore) -> None:
    projection = Projection(store, "todo-list", project_todo_list, setup=create_todo_list)

    async with SubscriptionRunner(projection):
        rows = await store.query("SELECT count(*) FROM todo_list")

    assert rows == [(0,)]


async def test_setup_runs_once_per_instance_and_again_for_a_new_one(store: EventStore) -> None:
    calls: list[str] = []

    async def setup(tx: Transaction) -> None:
        calls.append("setup")
        await create_todo_list(tx)

    first = Projection(store, "todo-list", project_todo_list, setup=setup)
    async with SubscriptionRunner(first):
        pass
    await first.catch_up()
    await Projection(store, "todo-list", project_todo_list, setup=setup).catch_up()

    assert calls == ["setup", "setup"]


async def test_a_failing_setup_fails_the_runner_and_starts_nothing(store: EventStore) -> None:
    await _save(store, "a", "first")

    async def broken(tx: Transaction) -> None:
        raise RuntimeError("cannot create the read model")

    projection = Projection(store, "todo-list", project_todo_list, setup=broken)
    with anyio.fail_after(10), pytest.raises(RuntimeError, match="read model"):
        async with SubscriptionRunner(projection):
            pass

    assert await store.get_checkpoint("todo-list") is None


async def test_a_wait_on_a_projection_whose_setup_failed_names_that_error(
    store: EventStore,
) -> None:
    positions = await _save(store, "a", "first")

    async def broken(tx: Transaction) -> None:
        raise RuntimeError("cannot create the read model")

    with pytest.raises(RuntimeError):
        await Projection(store, "todo-list", project_todo_list, setup=broken).catch_up()
    with anyio.fail_after(5), pytest.raises(SubscriptionTimeout) as caught:
        await wait_for_subscriptions(store, ["todo-list"], positions[-1], timeout=60)

    assert isinstance(caught.value.error, RuntimeError)
