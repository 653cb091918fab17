"""examples/fastapi_app.py end to end: HTTP requests through the ASGI app with its lifespan
running (store opened, projection running), on every kind of store ``open_store`` opens."""

import os
import queue
import shlex
import signal
import subprocess
import sys
import threading
import tomllib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from fastapi import FastAPI

from eventuality import (
    EventStore,
    Repository,
    SubscriptionTimeout,
    wait_for_subscriptions,
)
from examples.fastapi_app import READ_MODEL, Todo, TodoCreated, create_app
from tests.conftest import POSTGRES_DSN, postgres_schema, requires_postgres

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(params=["memory", "sqlite-file", pytest.param("postgres", marks=requires_postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An ``open_store`` URL of each kind, its data under ``tmp_path``."""
    if request.param == "memory":
        return "memory://"
    if request.param == "sqlite-file":
        return f"sqlite:///{tmp_path / 'todo_api.db'}"
    separator = "&" if "?" in POSTGRES_DSN else "?"
    return f"{POSTGRES_DSN}{separator}schema={postgres_schema(tmp_path)}"


@asynccontextmanager
async def serving(url: str) -> AsyncIterator[tuple[httpx.AsyncClient, FastAPI]]:
    """The app on ``url`` with its lifespan running, and a client that calls it over ASGI."""
    app = create_app(url)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://todos") as client:
            yield client, app


def gate_loads(todos: Repository[Todo], parties: int) -> None:
    """Make the first ``parties`` loads of ``todos`` wait for each other: every one of those
    dispatches has read the same version before any of them commits."""
    load, arrived, everyone = todos.load, 0, anyio.Event()

    async def gated(todo_id: str, **kwargs: Any) -> Todo:
        nonlocal arrived
        todo = await load(todo_id, **kwargs)
        if arrived < parties:
            arrived += 1
            if arrived == parties:
                everyone.set()
            await everyone.wait()
        return todo

    todos.load = gated  # type: ignore[method-assign]


async def at_once(*requests: Callable[[], Awaitable[httpx.Response]]) -> list[int]:
    """Send the requests concurrently; their statuses, sorted."""
    statuses: list[int] = []

    async def send(request: Callable[[], Awaitable[httpx.Response]]) -> None:
        statuses.append((await request()).status_code)

    async with anyio.create_task_group() as tg:
        for request in requests:
            tg.start_soon(send, request)
    return sorted(statuses)


async def test_a_created_todo_is_answered_201_and_readable_at_once(store_url: str) -> None:
    async with serving(store_url) as (client, _):
        created = await client.post("/todos", json={"id": "t1", "description": "write docs"})
        one = await client.get("/todos/t1")
        listed = await client.get("/todos")

    todo = {"id": "t1", "description": "write docs", "completed": False, "version": 1}
    assert (created.status_code, created.json()) == (201, todo)
    assert (one.status_code, one.json()) == (200, todo)
    assert listed.json() == [todo]


async def test_rename_and_complete_change_the_todo_as_read_afterwards(store_url: str) -> None:
    async with serving(store_url) as (client, _):
        await client.post("/todos", json={"id": "t1", "description": "write docs"})
        renamed = await client.post("/todos/t1/rename", json={"description": "write the docs"})
        completed = await client.post("/todos/t1/complete")
        again = await client.post("/todos/t1/complete")
        read = await client.get("/todos/t1")

    assert (renamed.status_code, renamed.json()["description"]) == (200, "write the docs")
    assert (completed.status_code, completed.json()["completed"]) == (200, True)
    assert again.status_code == 200  # completed already: nothing changes
    todo = {"id": "t1", "description": "write the docs", "completed": True, "version": 3}
    assert read.json() == completed.json() == again.json() == todo


async def test_an_unknown_todo_is_404_whether_read_or_changed(store_url: str) -> None:
    async with serving(store_url) as (client, _):
        read = await client.get("/todos/nope")
        completed = await client.post("/todos/nope/complete")
        renamed = await client.post("/todos/nope/rename", json={"description": "x"})

    assert [read.status_code, completed.status_code, renamed.status_code] == [404, 404, 404]
    assert "'nope'" in completed.json()["detail"]


@pytest.mark.parametrize(
    "body",
    [
        {"id": "t1"},
        {"id": "t1", "description": ""},
        {"id": "t 1", "description": "a space in the id"},
        {"id": "t1", "description": "x", "metadata": {"correlation_id": "spoofed"}},
    ],
    ids=["no-description", "empty-description", "bad-id", "envelope"],
)
async def test_invalid_input_is_422_and_stores_nothing(
    store_url: str, body: dict[str, Any]
) -> None:
    async with serving(store_url) as (client, app):
        created = await client.post("/todos", json=body)
        stored = await app.state.store.last_position()

    assert created.status_code == 422
    assert stored == 0


async def test_renaming_to_an_empty_description_is_422(store_url: str) -> None:
    async with serving(store_url) as (client, app):
        await client.post("/todos", json={"id": "t1", "description": "x"})
        renamed = await client.post("/todos/t1/rename", json={"description": ""})
        version = await app.state.store.stream_version("Todo-t1")

    assert (renamed.status_code, version) == (422, 1)


async def test_creating_a_taken_id_is_409_and_keeps_the_first(store_url: str) -> None:
    async with serving(store_url) as (client, _):
        await client.post("/todos", json={"id": "t1", "description": "first"})
        again = await client.post("/todos", json={"id": "t1", "description": "second"})
        read = await client.get("/todos/t1")

    assert again.status_code == 409
    assert "Todo-t1" in again.json()["detail"]
    assert read.json()["description"] == "first"


async def test_concurrent_renames_without_retries_are_409_for_the_loser(store_url: str) -> None:
    async with serving(store_url) as (client, app):
        await client.post("/todos", json={"id": "t1", "description": "x"})
        app.state.flow.retries = 0
        gate_loads(app.state.todos, parties=2)

        statuses = await at_once(
            lambda: client.post("/todos/t1/rename", json={"description": "a"}),
            lambda: client.post("/todos/t1/rename", json={"description": "b"}),
        )
        read = await client.get("/todos/t1")

    assert statuses == [200, 409]
    assert read.json()["version"] == 2
    assert read.json()["description"] in ("a", "b")


async def test_concurrent_renames_with_retries_both_succeed(store_url: str) -> None:
    async with serving(store_url) as (client, app):
        await client.post("/todos", json={"id": "t1", "description": "x"})
        gate_loads(app.state.todos, parties=2)  # both first attempts conflict; one retries

        statuses = await at_once(
            lambda: client.post("/todos/t1/rename", json={"description": "a"}),
            lambda: client.post("/todos/t1/rename", json={"description": "b"}),
        )
        read = await client.get("/todos/t1")

    assert statuses == [200, 200]
    assert read.json()["version"] == 3


async def test_a_repeated_post_with_one_idempotency_key_creates_once(store_url: str) -> None:
    key = {"Idempotency-Key": "request-1"}
    async with serving(store_url) as (client, app):
        first = await client.post("/todos", json={"id": "t1", "description": "x"}, headers=key)
        repeat = await client.post("/todos", json={"id": "t1", "description": "x"}, headers=key)
        other = await client.post("/todos", json={"id": "t2", "description": "y"}, headers=key)
        elsewhere = await client.post("/todos/t1/complete", headers=key)
        stored = [event async for event in app.state.store.read_all()]
        listed = await client.get("/todos")

    assert (first.status_code, repeat.status_code) == (201, 201)
    assert repeat.json() == first.json()
    assert (other.status_code, elsewhere.status_code) == (422, 422)  # another request: refused
    assert "request-1" in other.json()["detail"]
    assert [event.aggregate_id for event in stored] == ["t1"]
    assert [todo["id"] for todo in listed.json()] == ["t1"]


async def test_health_reports_each_subscription_caught_up(store_url: str) -> None:
    async with serving(store_url) as (client, app):
        await client.post("/todos", json={"id": "t1", "description": "x"})
        await client.post("/todos/t1/complete")
        health = await client.get("/health")
        last = await app.state.store.last_position()

    assert health.status_code == 200
    assert health.json() == {
        "status": "ok",
        "subscriptions": [
            {
                "name": READ_MODEL,
                "position": last,
                "checkpoint": last,
                "running": True,
                "error": None,
                "lag_events": 0,
                "lag_seconds": 0.0,
            }
        ],
    }


@pytest.mark.parametrize(
    "store_url",
    ["sqlite-file", pytest.param("postgres", marks=requires_postgres)],
    indirect=True,
)
async def test_a_second_instance_reads_its_writes_and_lag_through_the_checkpoint(
    store_url: str,
) -> None:
    async with serving(store_url) as (first, _):
        await first.post("/todos", json={"id": "t0", "description": "x"})  # its projection runs
        async with serving(store_url) as (second, app):
            created = await second.post("/todos", json={"id": "t1", "description": "x"})
            read = await first.get("/todos/t1")
            health = await second.get("/health")
            last = await app.state.store.last_position()

    assert created.status_code == 201  # it waited for the projection the first instance runs
    assert read.json() == created.json()
    [projection] = health.json()["subscriptions"]
    assert (projection["running"], projection["position"]) == (False, 0)
    assert (projection["checkpoint"], projection["lag_events"]) == (last, 0)


async def test_a_failed_projection_turns_health_and_posts_503(store_url: str) -> None:
    async with serving(store_url) as (client, app):
        store: EventStore = app.state.store
        await client.post("/todos", json={"id": "t1", "description": "x"})
        # A second TodoCreated for t1, appended past the aggregate: its row exists already.
        [bad] = await store.append("Todo-t1", [TodoCreated(description="y", aggregate_id="t1")])
        with pytest.raises(SubscriptionTimeout):
            await wait_for_subscriptions(store, [READ_MODEL], bad.position or 0)

        health = await client.get("/health")
        created = await client.post("/todos", json={"id": "t2", "description": "z"})
        later = await client.get("/health")
        committed = await store.stream_version("Todo-t2")

    assert health.status_code == 503
    [projection] = health.json()["subscriptions"]
    assert health.json()["status"] == "failing"
    assert (projection["running"], projection["lag_events"]) == (False, 1)
    assert projection["error"] is not None
    assert projection["lag_seconds"] >= 0
    assert (created.status_code, created.headers["Retry-After"]) == (503, "1")
    assert committed == 1  # the command was committed; only the read model is behind
    assert later.json()["subscriptions"][0]["lag_events"] == 2


def _readme_command(marker: str) -> str:
    """The first command line after ``<!-- marker -->`` in README.md."""
    lines = (ROOT / "README.md").read_text().splitlines()
    start = lines.index(f"<!-- {marker} -->")
    return next(line for line in lines[start + 1 :] if line and not line.startswith("```"))


@contextmanager
def serving_with(command: list[str], env: dict[str, str]) -> Iterator[str]:
    """Run the uvicorn ``command`` on a free port from the repository's root until the block
    ends (then stop it as a user would, and check it shut down cleanly); yield its URL."""
    server = subprocess.Popen(
        [*command, "--host", "127.0.0.1", "--port", "0"],
        cwd=ROOT,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    output: queue.Queue[str | None] = queue.Queue()
    stderr = server.stderr
    assert stderr is not None

    def pump() -> None:
        for line in stderr:
            output.put(line)
        output.put(None)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    seen: list[str] = []
    try:
        while not seen or "Uvicorn running on" not in seen[-1]:
            line = output.get(timeout=60)
            assert line is not None, f"uvicorn stopped: {''.join(seen)}"
            seen.append(line)
        yield seen[-1].split("Uvicorn running on ")[1].split()[0]
    finally:
        server.send_signal(signal.SIGINT)  # Ctrl-C: the lifespan's exit runs
        returncode = server.wait(timeout=60)
        reader.join(timeout=60)
        stderr.close()
    while (line := output.get_nowait()) is not None:
        seen.append(line)
    assert returncode == 0
    assert "Application shutdown complete." in "".join(seen)


def test_the_readme_uvicorn_command_serves_the_app(tmp_path: Path) -> None:
    command = shlex.split(_readme_command("fastapi-command"))
    env = {**os.environ, "EVENTUALITY_STORE_URL": f"sqlite:///{tmp_path / 'todo_api.db'}"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"

    with serving_with(command, env) as url, httpx.Client(base_url=url) as client:
        created = client.post("/todos", json={"id": "t1", "description": "x"})
        read = client.get("/todos/t1")
        health = client.get("/health")

    assert command[:2] == ["uvicorn", "examples.fastapi_app:app"]
    assert created.status_code == 201
    assert read.json()["description"] == "x"
    assert health.json()["status"] == "ok"
    assert (tmp_path / "todo_api.db").exists()


def test_the_library_depends_on_none_of_the_example_s_packages() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    imported = subprocess.run(
        [sys.executable, "-c", "import sys, eventuality; print(sorted(sys.modules))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout

    for name in ("fastapi", "uvicorn", "httpx", "starlette"):
        assert not any(d.startswith(name) for d in project["dependencies"])
        assert f"'{name}'" not in imported
    assert any(d.startswith("uvicorn") for d in project["optional-dependencies"]["dev"])
