"""The Todo domain as an HTTP service: FastAPI in front, eventuality behind.

    pip install -e ".[dev]"                      # FastAPI and uvicorn: the example's, not ours
    uvicorn examples.fastapi_app:app             # from the repository's root
    EVENTUALITY_STORE_URL="postgresql://user@host/db?schema=todo" uvicorn examples.fastapi_app:app

The store (any ``open_store`` URL, ``sqlite:///todo_api.db`` by default) is opened and the read
model's projection runs for as long as the app lives (its lifespan). POSTs dispatch commands and
answer once the projection has handled their events (``wait_for``: read your writes), so a GET
right after a POST sees it. Domain errors become HTTP statuses in one table (``STATUS``).
"""

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import FastAPI, Header, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from eventuality import (
    Aggregate,
    AggregateNotFound,
    Command,
    ConcurrencyError,
    Event,
    EventStore,
    Flow,
    IdempotencyKeyReused,
    Projection,
    Repository,
    Subscription,
    SubscriptionRunner,
    SubscriptionTimeout,
    Transaction,
    open_store,
)

STORE_URL = os.environ.get("EVENTUALITY_STORE_URL", "sqlite:///todo_api.db")
READ_MODEL = "todo-list"
LAG_LIMIT = 1000  # /health counts at most this many events behind

Description = Annotated[str, Field(min_length=1, max_length=200)]
IdempotencyKey = Annotated[str | None, Header(min_length=1, max_length=200)]


class TodoCreated(Event):
    __event_type__ = "todo.created"  # stable names, kept whatever the classes are called
    description: str


class TodoRenamed(Event):
    __event_type__ = "todo.renamed"
    description: str


class TodoCompleted(Event):
    __event_type__ = "todo.completed"


class Todo(Aggregate):
    description: str = ""
    completed: bool = False

    @classmethod
    def create(cls, id: str, description: str) -> "Todo":
        todo = cls(id=id)
        todo.record(TodoCreated(description=description))
        return todo

    def rename(self, description: str) -> None:
        if description != self.description:
            self.record(TodoRenamed(description=description))

    def complete(self) -> None:
        if not self.completed:
            self.record(TodoCompleted())

    def apply(self, event: Event) -> None:
        match event:
            case TodoCreated(description=description) | TodoRenamed(description=description):
                self.description = description
            case TodoCompleted():
                self.completed = True


class CreateTodo(Command):  # also the body of POST /todos: clients cannot set its envelope
    id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
    description: Description


class RenameTodo(Command):
    id: str
    description: Description


class CompleteTodo(Command):
    id: str


class Rename(BaseModel):
    description: Description


class TodoOut(BaseModel):
    id: str
    description: str
    completed: bool
    version: int


SELECT = "SELECT id, description, completed, version FROM todo_list"


def to_todo(row: tuple[Any, ...]) -> TodoOut:
    return TodoOut(**dict(zip(TodoOut.model_fields, row, strict=True)))


class SubscriptionHealth(BaseModel):
    name: str
    position: int
    checkpoint: int | None
    running: bool
    error: str | None
    lag_events: int  # events it has still to handle (LAG_LIMIT means at least that many)
    lag_seconds: float  # how long the oldest of them has waited


class Health(BaseModel):
    status: str
    subscriptions: list[SubscriptionHealth]


async def create_todo_list(tx: Transaction) -> None:
    await tx.execute(
        "CREATE TABLE IF NOT EXISTS todo_list (id TEXT PRIMARY KEY, description TEXT NOT NULL, "
        "completed BOOLEAN NOT NULL, version INTEGER NOT NULL)"
    )


async def project(event: Event, tx: Transaction) -> None:
    """Keep one row per todo; the SQL runs on SQLite and PostgreSQL alike."""
    row = {"id": event.aggregate_id, "version": event.aggregate_version}
    match event:
        case TodoCreated(description=description):
            await tx.execute(
                "INSERT INTO todo_list VALUES (:id, :description, FALSE, :version)",
                description=description, **row,
            )  # fmt: skip
        case TodoRenamed(description=description):
            await tx.execute(
                "UPDATE todo_list SET description = :description, version = :version "
                "WHERE id = :id",
                description=description, **row,
            )  # fmt: skip
        case TodoCompleted():
            await tx.execute(
                "UPDATE todo_list SET completed = TRUE, version = :version WHERE id = :id", **row
            )


# Errors of the domain, as HTTP statuses. Invalid input is FastAPI's own 422.
STATUS: dict[type[Exception], int] = {
    AggregateNotFound: 404,
    ConcurrencyError: 409,  # AggregateExists (an id taken) too; conflicts outlasted the retries
    IdempotencyKeyReused: 422,  # the key came with another request (IETF Idempotency-Key draft)
    SubscriptionTimeout: 503,  # committed, but the read model is behind or has failed
}


async def subscription_health(store: EventStore, subscription: Subscription) -> SubscriptionHealth:
    """Where ``subscription`` is; when another process runs it (``uvicorn --workers``: one at a
    time holds the name), its lag is measured from the checkpoint that process stored."""
    stats = subscription.statistics()
    checkpoint = await store.get_checkpoint(stats.name)
    behind, oldest = 0, None
    events = store.read_all(
        from_position=max(stats.position, checkpoint or 0),
        event_types=subscription.event_types,
        page_size=LAG_LIMIT,
    )
    async for event in events:
        oldest, behind = oldest or event.occurred_at, behind + 1
        if behind == LAG_LIMIT:
            break
    waited = 0.0 if oldest is None else (datetime.now(UTC) - oldest).total_seconds()
    error = None if stats.error is None else f"{type(stats.error).__name__}: {stats.error}"
    return SubscriptionHealth(
        name=stats.name, position=stats.position, checkpoint=checkpoint,
        running=stats.running, error=error, lag_events=behind, lag_seconds=waited,
    )  # fmt: skip


def create_app(url: str = STORE_URL) -> FastAPI:
    """The service on the store that ``url`` names (opened by the app's lifespan)."""
    store = open_store(url)
    todos = Repository(Todo, store)
    flow = Flow(store=store)
    todo_list = Projection(
        store, READ_MODEL, project, setup=create_todo_list,
        event_types=[TodoCreated, TodoRenamed, TodoCompleted],
    )  # fmt: skip
    runner = SubscriptionRunner(todo_list)

    @flow.handles(CreateTodo)
    async def create_todo(command: CreateTodo) -> None:
        await todos.add(id=command.id, description=command.description)

    @flow.handles(RenameTodo)
    async def rename_todo(command: RenameTodo) -> None:
        (await todos.load(command.id)).rename(command.description)

    @flow.handles(CompleteTodo)
    async def complete_todo(command: CompleteTodo) -> None:
        (await todos.load(command.id)).complete()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with store, runner:  # the todo_list table exists from here on
            yield

    app = FastAPI(title="Todos", lifespan=lifespan)
    app.state.store, app.state.flow, app.state.todos, app.state.runner = store, flow, todos, runner

    async def on_error(request: Request, error: Exception) -> JSONResponse:
        status = next(code for kind, code in STATUS.items() if isinstance(error, kind))
        headers = {"Retry-After": "1"} if status == 503 else None
        return JSONResponse({"detail": str(error)}, status_code=status, headers=headers)

    for kind in STATUS:
        app.add_exception_handler(kind, on_error)

    async def dispatch(command: Command, idempotency_key: str | None) -> None:
        await flow.dispatch(command, idempotency_key=idempotency_key, wait_for=[READ_MODEL])

    @app.post("/todos", status_code=201)
    async def add(command: CreateTodo, idempotency_key: IdempotencyKey = None) -> TodoOut:
        await dispatch(command, idempotency_key)
        return await get_todo(command.id)

    @app.post("/todos/{todo_id}/rename")
    async def rename(todo_id: str, body: Rename, idempotency_key: IdempotencyKey = None) -> TodoOut:
        await dispatch(RenameTodo(id=todo_id, description=body.description), idempotency_key)
        return await get_todo(todo_id)

    @app.post("/todos/{todo_id}/complete")
    async def complete(todo_id: str, idempotency_key: IdempotencyKey = None) -> TodoOut:
        await dispatch(CompleteTodo(id=todo_id), idempotency_key)
        return await get_todo(todo_id)

    @app.get("/todos")
    async def list_todos() -> list[TodoOut]:
        return [to_todo(row) for row in await store.query(f"{SELECT} ORDER BY id")]

    @app.get("/todos/{todo_id}")
    async def get_todo(todo_id: str) -> TodoOut:
        rows = await store.query(f"{SELECT} WHERE id = :id", id=todo_id)
        if not rows:
            raise HTTPException(404, f"no todo {todo_id!r}")
        return to_todo(rows[0])

    @app.get("/health")
    async def health(response: Response) -> Health:
        report = [await subscription_health(store, s) for s in runner.subscriptions]
        failing = any(s.error is not None for s in report)
        response.status_code = 503 if failing else 200
        return Health(status="failing" if failing else "ok", subscriptions=report)

    return app


# Tracing hook: instrument it as any FastAPI app (opentelemetry-instrumentation-fastapi's
# FastAPIInstrumentor.instrument_app(app)); eventuality's own spans come from eventuality.otel.
app = create_app()
