"""The README's example and examples/ run as users run them, in fresh processes."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(args: list[str], cwd: Path) -> str:
    done = subprocess.run(
        [sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_readme_todo_example_runs_as_written_in_an_empty_folder_and_again(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- todo-example -->\n```python\n(.*?)```", readme, re.DOTALL)
    assert block is not None, "README.md lost its Todo example"
    (tmp_path / "todo_example.py").write_text(block.group(1))

    first = _run(["todo_example.py"], tmp_path)
    second = _run(["todo_example.py"], tmp_path)

    assert first.splitlines() == ["TodoCreated todo1", "TodoCompleted todo1", "['TodoCompleted']"]
    assert second.splitlines() == [
        "todo1 exists already: todo.db keeps what earlier runs stored",
        "[]",
    ]
    assert (tmp_path / "todo.db").exists()


def test_todo_example_second_run_sees_what_the_first_stored(tmp_path: Path) -> None:
    script = str(ROOT / "examples" / "todo.py")

    first = _run([script, "todo.db"], tmp_path)
    second = _run([script, "todo.db"], tmp_path)

    assert "(0 events already stored)" in first
    assert "(2 events already stored)" in second
    assert "todo1: 'Create todo number 1' completed=True version=2" in second
    assert "todo2: 'Create todo number 2' completed=True version=2" in second


def test_todo_projection_example_keeps_and_rebuilds_its_read_model(tmp_path: Path) -> None:
    script = str(ROOT / "examples" / "todo_projection.py")

    first = _run([script, "p.db", "--todos", "300"], tmp_path)
    second = _run([script, "p.db", "--rebuild"], tmp_path)

    assert "read model: 200 open, 101 completed" in first
    assert "live1: 'written by run 1' (done)" in first
    assert "rebuilt from position 0: 402 events" in second
    assert "read model: 200 open, 102 completed" in second


_FASTAPI_CLIENT = """
from fastapi.testclient import TestClient
from app import app

with TestClient(app) as client:
    print(client.get("/todos").json())
    print(client.post("/todos", json={"id": "t1", "description": "write docs"}).json())
    print(client.get("/todos").json())
    spoofed = {"id": "t2", "description": "x", "metadata": {"correlation_id": "spoofed"}}
    print(client.post("/todos", json=spoofed).status_code)
"""


def test_readme_fastapi_example_serves_its_read_model_from_the_first_request(
    tmp_path: Path,
) -> None:
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- fastapi-example -->\n```python\n(.*?)```", readme, re.DOTALL)
    assert block is not None, "README.md lost its FastAPI example"
    (tmp_path / "app.py").write_text(block.group(1))
    (tmp_path / "client.py").write_text(_FASTAPI_CLIENT)

    out = _run(["client.py"], tmp_path)

    assert out.splitlines() == [
        "[]",
        "{'id': 't1'}",
        "[{'id': 't1', 'description': 'write docs'}]",
        "422",
    ]


def test_readme_testing_example_passes_under_pytest_in_an_empty_folder(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- testing-example -->\n```python\n(.*?)```", readme, re.DOTALL)
    assert block is not None, "README.md lost its testing example"
    (tmp_path / "test_todo.py").write_text(block.group(1))

    out = _run(["-m", "pytest", "-q", "-p", "no:cacheprovider", "test_todo.py"], tmp_path)

    assert "4 passed" in out


def test_readme_backend_example_runs_as_written(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- backend-example -->\n```python\n(.*?)```", readme, re.DOTALL)
    assert block is not None, "README.md lost its backend example"
    (tmp_path / "list_backend.py").write_text(block.group(1))

    out = _run(["list_backend.py"], tmp_path)

    assert out.splitlines() == ["[{'text': 'hello'}]", "False True"]


def test_readme_streams_example_deletes_truncates_and_archives_in_an_empty_folder(
    tmp_path: Path,
) -> None:
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- streams-example -->\n```python\n(.*?)```", readme, re.DOTALL)
    assert block is not None, "README.md lost its streams example"
    (tmp_path / "streams_example.py").write_text(block.group(1))

    out = _run(["streams_example.py"], tmp_path)

    assert out.splitlines() == [
        "4 v5",
        "archived: [{'text': 'old'}]",
        "old",
        "deleted at version 5",
        "eventuality.Tombstone {'stream_id': 'Note-n1', 'last_version': 5}",
    ]
    assert (tmp_path / "notes.db").exists()


def test_readme_erasure_example_masks_a_forgotten_customer_in_an_empty_folder(
    tmp_path: Path,
) -> None:
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- erasure-example -->\n```python\n(.*?)```", readme, re.DOTALL)
    assert block is not None, "README.md lost its erasure example"
    (tmp_path / "erasure_example.py").write_text(block.group(1))

    output = _run(["erasure_example.py"], tmp_path)

    assert output.splitlines() == [
        "ada@example.org 36 gold",
        "[erased] 0 gold 1",
        "['[erased]', 'bob@example.org']",
    ]
    assert b"ada@example.org" not in (tmp_path / "customers.db").read_bytes()
