"""eventuality.testing.ProjectionScenario: given events, the read model after catch-up."""

from functools import partial
from pathlib import Path

import anyio
import pytest

from eventuality import Event, EventStore, Projection, SQLiteEventStore, Subscription, Transaction
from eventuality.testing import ProjectionScenario
from tests.domain import TodoCompleted, TodoCreated, TodoRenamed

BACKENDS = ["asyncio", "trio"]
TODO_LIST = "SELECT id, description, done FROM todo_list ORDER BY id"


async def create_todo_list(tx: Transaction) -> None:
    await tx.execute(
        "CREATE TABLE IF NOT EXISTS todo_list (id TEXT PRIMARY KEY, description TEXT, done INT)"
    )


async def project(event: Event, tx: Transaction) -> None:
    match event:
        case TodoCreated(description=description):
            await tx.execute(
                "INSERT INTO todo_list (id, description, done) VALUES (:id, :description, 0)",
                id=event.aggregate_id,
                description=description,
            )
        case TodoCompleted():
            await tx.execute("UPDATE todo_list SET done = 1 WHERE id = :id", id=event.aggregate_id)
        case TodoRenamed():
            raise RuntimeError("renames are not projected yet")


def make_todo_list(store: EventStore) -> Projection:
    return Projection(store, "todo-list", project, setup=create_todo_list)


TWO_TODOS = (
    ProjectionScenario(make_todo_list)
    .given("Todo-t1", TodoCreated(description="x"), TodoCompleted())
    .given("Todo-t2", TodoCreated(description="y"))
)


@pytest.mark.parametrize("backend", BACKENDS)
def test_then_rows_passes_when_the_read_model_holds_the_rows(backend: str) -> None:
    expected = [("t1", "x", 1), ("t2", "y", 0)]

    anyio.run(TWO_TODOS.then_rows, TODO_LIST, expected, backend=backend)


def test_then_rows_fails_with_a_diff_of_expected_and_actual_rows() -> None:
    expected = [("t1", "x", 0), ("t2", "y", 0)]

    with pytest.raises(AssertionError) as failure:
        anyio.run(TWO_TODOS.then_rows, TODO_LIST, expected)

    assert str(failure.value) == (
        "rows differ from the expected (- expected, + actual):\n"
        "- ('t1', 'x', 0)\n"
        "+ ('t1', 'x', 1)\n"
        "  ('t2', 'y', 0)"
    )


def test_then_rows_takes_named_parameters_for_the_query() -> None:
    query = "SELECT description FROM todo_list WHERE id = :id"

    anyio.run(partial(TWO_TODOS.then_rows, query, [("y",)], id="t2"))


def test_given_events_belong_to_the_id_given_for_them() -> None:
    scenario = ProjectionScenario(make_todo_list).given(
        "todos", TodoCreated(description="x"), aggregate_id="t9"
    )

    anyio.run(scenario.then_rows, TODO_LIST, [("t9", "x", 0)])


@pytest.mark.parametrize("backend", BACKENDS)
def test_then_runs_a_check_of_a_read_model_kept_by_a_subscription(backend: str) -> None:
    seen: dict[str, str] = {}

    def remember(event: Event) -> None:
        if isinstance(event, TodoCreated) and event.aggregate_id:
            seen[event.aggregate_id] = event.description

    scenario = ProjectionScenario(lambda store: Subscription(store, "seen", remember)).given(
        "Todo-t1", TodoCreated(description="x")
    )

    anyio.run(scenario.then, lambda store: seen == {"t1": "x"}, backend=backend)


def test_then_fails_when_the_check_returns_false() -> None:
    with pytest.raises(AssertionError, match="the read model check returned False"):
        anyio.run(TWO_TODOS.then, lambda store: False)


def test_then_raises_passes_when_catch_up_stops_with_the_error() -> None:
    scenario = TWO_TODOS.given("Todo-t1", TodoRenamed(description="z"))

    anyio.run(partial(scenario.then_raises, RuntimeError, match="not projected"))


def test_then_rows_fails_naming_the_error_that_stopped_catch_up() -> None:
    scenario = TWO_TODOS.given("Todo-t1", TodoRenamed(description="z"))

    with pytest.raises(AssertionError, match="catch-up stopped with RuntimeError: renames"):
        anyio.run(scenario.then_rows, TODO_LIST, [])


def test_a_store_factory_runs_the_projection_on_that_store(tmp_path: Path) -> None:
    scenario = ProjectionScenario(
        make_todo_list, store=lambda: SQLiteEventStore(tmp_path / "p.db")
    ).given("Todo-t1", TodoCreated(description="x"))

    anyio.run(scenario.then_rows, TODO_LIST, [("t1", "x", 0)])

    assert (tmp_path / "p.db").exists()
