"""The README's example and examples/ run as users run them, in fresh processes."""

from pathlib import Path

from tests._readme import readme_block, run_python

ROOT = Path(__file__).resolve().parents[1]


def test_readme_todo_example_runs_as_written_in_an_empty_folder_and_again(tmp_path: Path) -> None:
    block = readme_block("todo-example")
    (tmp_path / "todo_example.py").write_text(block)

    first = run_python(tmp_path, "todo_example.py")
    second = run_python(tmp_path, "todo_example.py")

    assert first.splitlines() == ["TodoCreated todo1", "TodoCompleted todo1", "['TodoCompleted']"]
    assert second.splitlines() == [
        "todo1 exists already: todo.db keeps what earlier runs stored",
        "[]",
    ]
    assert (tmp_path / "todo.db").exists()


def test_todo_example_second_run_sees_what_the_first_stored(tmp_path: Path) -> None:
    script = str(ROOT / "examples" / "todo.py")

    first = run_python(tmp_path, script, "todo.db")
    second = run_python(tmp_path, script, "todo.db")

    assert "(0 events already stored)" in first
    assert "(2 events already stored)" in second
    assert "todo1: 'Create todo number 1' completed=True version=2" in second
    assert "todo2: 'Create todo number 2' completed=True version=2" in second


def test_todo_projection_example_keeps_and_rebuilds_its_read_model(tmp_path: Path) -> None:
    script = str(ROOT / "examples" / "todo_projection.py")

    first = run_python(tmp_path, script, "p.db", "--todos", "300")
    second = run_python(tmp_path, script, "p.db", "--rebuild")

    assert "read model: 200 open, 101 completed" in first
    assert "live1: 'written by run 1' (done)" in first
    assert "rebuilt from position 0: 402 events" in second
    assert "read model: 200 open, 102 completed" in second


def test_order_stock_example_answers_every_order_once_across_runs(tmp_path: Path) -> None:
    script = str(ROOT / "examples" / "order_stock.py")

    first = run_python(tmp_path, script, "orders.db").splitlines()
    second = run_python(tmp_path, script, "orders.db").splitlines()

    assert [line.split(" [")[0] for line in first] == [
        "o1-0: OrderConfirmed",
        "o1-1: OrderConfirmed",
        "o1-2: OrderCancelled (wanted 3, 1 in stock)",
        "apples in stock: 1",
    ]
    assert len({line.split(" [")[1] for line in first[:3]}) == 3  # one correlation per order
    assert [line.split(":")[1].split(" (")[0] for line in second[:3]] == [" OrderCancelled"] * 3
    assert second[-1] == "apples in stock: 1"


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
    block = readme_block("fastapi-example")
    (tmp_path / "app.py").write_text(block)
    (tmp_path / "client.py").write_text(_FASTAPI_CLIENT)

    out = run_python(tmp_path, "client.py")

    assert out.splitlines() == [
        "[]",
        "{'id': 't1'}",
        "[{'id': 't1', 'description': 'write docs'}]",
        "422",
    ]


def test_readme_testing_example_passes_under_pytest_in_an_empty_folder(tmp_path: Path) -> None:
    block = readme_block("testing-example")
    (tmp_path / "test_todo.py").write_text(block)

    out = run_python(tmp_path, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_todo.py")

    assert "4 passed" in out


def test_readme_backend_example_runs_as_written(tmp_path: Path) -> None:
    block = readme_block("backend-example")
    (tmp_path / "list_backend.py").write_text(block)

    out = run_python(tmp_path, "list_backend.py")

    assert out.splitlines() == ["[{'text': 'hello'}]", "False True"]


def test_readme_streams_example_deletes_truncates_and_archives_in_an_empty_folder(
    tmp_path: Path,
) -> None:
    block = readme_block("streams-example")
    (tmp_path / "streams_example.py").write_text(block)

    out = run_python(tmp_path, "streams_example.py")

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
    block = readme_block("erasure-example")
    (tmp_path / "erasure_example.py").write_text(block)

    output = run_python(tmp_path, "erasure_example.py")

    assert output.splitlines() == [
        "ada@example.org 36 gold",
        "[erased] 0 gold 1",
        "['[erased]', 'bob@example.org']",
    ]
    assert b"ada@example.org" not in (tmp_path / "customers.db").read_bytes()
