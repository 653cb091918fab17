"""A Todo domain tested with eventuality.testing, one behaviour a test.

    python -m pytest examples/test_todo_domain.py

Aggregate tests are plain and synchronous. Flow and projection tests are async and take
``event_store``, a fresh store per test, once on each store kind (memory and SQLite, and
PostgreSQL when ``EVENTUALITY_TEST_POSTGRES_DSN`` names a server). This repository runs them with
pytest-asyncio in auto mode; with anyio's pytest plugin instead, mark them ``@pytest.mark.anyio``
(one runner per project: two would run the fixture and the test on different event loops).
"""

from eventuality import (
    Aggregate,
    Command,
    Event,
    EventStore,
    Flow,
    Projection,
    Repository,
    Transaction,
)
from eventuality.testing import FlowScenario, ProjectionScenario, given

pytest_plugins = ["eventuality.testing.fixtures"]  # adds the event_store fixture


class TodoCreated(Event):
    description: str


class TodoRenamed(Event):
    description: str


class TodoCompleted(Event):
    pass


class Todo(Aggregate):
    description: str | None = None
    completed: bool = False

    @classmethod
    def create(cls, id: str, description: str) -> "Todo":
        todo = cls(id=id)
        todo.record(TodoCreated(description=description))
        return todo

    def rename(self, description: str) -> None:
        if self.completed:
            raise ValueError(f"todo {self.id} is completed: it keeps its description")
        self.record(TodoRenamed(description=description))

    def complete(self) -> None:
        if not self.completed:
            self.record(TodoCompleted())

    def apply(self, event: Event) -> None:
        match event:
            case TodoCreated(description=d) | TodoRenamed(description=d):
                self.description = d
            case TodoCompleted():
                self.completed = True


class MarkAsCompleted(Command):
    id: str


def make_flow(store: EventStore) -> Flow:
    todos = Repository(Todo, store)
    flow = Flow(store=store)

    @flow.handles(MarkAsCompleted)
    async def mark_as_completed(command: MarkAsCompleted) -> None:
        (await todos.load(command.id)).complete()

    return flow


async def create_open_todos(tx: Transaction) -> None:
    await tx.execute(
        "CREATE TABLE IF NOT EXISTS open_todos (id TEXT PRIMARY KEY, description TEXT)"
    )


async def project(event: Event, tx: Transaction) -> None:
    if isinstance(event, TodoCreated):
        await tx.execute(
            "INSERT INTO open_todos VALUES (:id, :description)",
            id=event.aggregate_id,
            description=event.description,
        )
    elif isinstance(event, TodoCompleted):
        await tx.execute("DELETE FROM open_todos WHERE id = :id", id=event.aggregate_id)


def make_open_todos(store: EventStore) -> Projection:
    return Projection(store, "open-todos", project, setup=create_open_todos)


# Aggregates: given past events, when an action, then the events it recorded.


def test_creating_a_todo_records_todo_created() -> None:
    given(Todo).when(lambda _: Todo.create(id="t1", description="x")).then(
        TodoCreated(description="x")
    )


def test_completing_a_todo_records_todo_completed() -> None:
    given(Todo, TodoCreated(description="x")).when(lambda t: t.complete()).then(TodoCompleted())


def test_completing_a_completed_todo_records_nothing() -> None:
    given(Todo, TodoCreated(description="x"), TodoCompleted()).when(lambda t: t.complete()).then()


def test_a_completed_todo_cannot_be_renamed() -> None:
    given(Todo, TodoCreated(description="x"), TodoCompleted()).when(
        lambda t: t.rename("y")
    ).then_raises(ValueError, match="keeps its description")


def test_renaming_changes_the_description() -> None:
    given(Todo, TodoCreated(description="x")).when(lambda t: t.rename("y")).then_state(
        lambda t: t.description == "y"
    )


# Flows: given events in streams, when a command, then what it committed.


async def test_mark_as_completed_commits_todo_completed(event_store: EventStore) -> None:
    await (
        FlowScenario(make_flow, store=event_store)
        .given("Todo-t1", TodoCreated(description="x"))
        .when(MarkAsCompleted(id="t1"))
        .then(TodoCompleted())
    )


# Projections: given events, then the read model's rows after catch-up.


async def test_open_todos_lists_the_todos_not_completed(event_store: EventStore) -> None:
    await (
        ProjectionScenario(make_open_todos, store=event_store)
        .given("Todo-t1", TodoCreated(description="x"), TodoCompleted())
        .given("Todo-t2", TodoCreated(description="y"))
        .then_rows("SELECT id, description FROM open_todos ORDER BY id", [("t2", "y")])
    )
