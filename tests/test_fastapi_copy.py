"""Outgrowing SQLite with the FastAPI example, as the README says, in real processes: serve it on
a SQLite file, stop it, ``eventuality copy`` the store to PostgreSQL rebuilding the projection,
serve it on PostgreSQL: the same todos, and new ones work."""

import os
import shlex
import subprocess
import sys
from pathlib import Path

import httpx

from tests.cli.conftest import postgres_url
from tests.cli.test_readme import shell_block
from tests.conftest import requires_postgres
from tests.test_fastapi_app import serving_with

README_SQLITE = "sqlite:///todo_api.db"
README_POSTGRES = "postgresql://postgres@127.0.0.1:5432/test?schema=todo_api"


def serve(url: str) -> tuple[list[str], dict[str, str]]:
    env = {**os.environ, "EVENTUALITY_STORE_URL": url}
    return [sys.executable, "-m", "uvicorn", "examples.fastapi_app:app"], env


def readme_copy(sqlite: str, postgres: str) -> list[str]:
    """The README's copy command, with the test's own SQLite file and PostgreSQL schema."""
    [line] = [line for line in shell_block("fastapi-outgrow") if line.startswith("eventuality")]
    swap = {README_SQLITE: sqlite, README_POSTGRES: postgres}
    words = [swap.get(word, word) for word in shlex.split(line)]
    assert words[:2] == ["eventuality", "copy"]
    return [sys.executable, "-m", "eventuality.cli", *words[1:]]


@requires_postgres
def test_the_example_moves_from_sqlite_to_postgres_with_its_read_model(tmp_path: Path) -> None:
    sqlite, postgres = f"sqlite:///{tmp_path / 'todo_api.db'}", postgres_url(tmp_path)
    with serving_with(*serve(sqlite)) as url, httpx.Client(base_url=url) as client:
        for n in range(3):
            client.post("/todos", json={"id": f"t{n}", "description": f"todo {n}"})
        client.post("/todos/t1/complete")
        client.post("/todos/t2/rename", json={"description": "renamed"})
        before = client.get("/todos").json()

    copied = subprocess.run(
        readme_copy(sqlite, postgres), cwd=tmp_path, capture_output=True, text=True, timeout=120
    )

    assert copied.returncode == 0, copied.stderr
    assert "verify: OK" in copied.stdout
    assert "left behind (rebuilt from the first event): todo-list" in copied.stdout
    with serving_with(*serve(postgres)) as url, httpx.Client(base_url=url) as client:
        created = client.post("/todos", json={"id": "t3", "description": "on postgres"})
        listed = client.get("/todos").json()
        health = client.get("/health").json()

    assert len(before) == 3
    assert [t["completed"] for t in before] == [False, True, False]
    assert before[2]["description"] == "renamed"
    assert created.status_code == 201, created.text
    # The POST waited for the projection to handle its event, so it had rebuilt the rest first.
    assert listed == [*before, created.json()]
    assert health["status"] == "ok"


def test_the_readme_copy_rebuilds_the_example_s_projection() -> None:
    command = readme_copy("sqlite:///a.db", "postgresql://b")

    assert command[command.index("--rebuild") + 1] == "todo-list"
