"""Idempotent commands across store objects: after a restart, from four processes at once, and on
a store made by 0.1.0 (schema 1), which the upgrade gives its commands table."""

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

from eventuality import SQLiteEventStore
from tests.conftest import POSTGRES_DSN, make_store, postgres_schema, requires_postgres
from tests.domain import CreateTodo, RenameTodo
from tests.stores.test_schema_upgrade import FIXTURES, postgres_copy
from tests.test_flow_idempotency import _bench

ROOT = Path(__file__).resolve().parents[1]


async def test_a_repeat_after_a_restart_runs_nothing(store_kind: str, tmp_path: Path) -> None:
    if store_kind in ("memory", "sqlite-memory"):
        pytest.skip("the store keeps nothing beyond its object")
    command = CreateTodo(id="t1", description="once")
    async with make_store(store_kind, tmp_path) as first_store:
        first = await _bench(first_store).flow.dispatch(command, idempotency_key="k")

    async with make_store(store_kind, tmp_path) as second_store:
        bench = _bench(second_store)
        again = await bench.flow.dispatch(
            CreateTodo(id="t1", description="once"), idempotency_key="k"
        )

        assert again == first
        assert bench.runs == []
        assert await second_store.read_stream("Todo-t1") == first


def _children_dispatch(url: str, go: Path, processes: int = 4, tasks: int = 5) -> list[Any]:
    children = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests._idempotency_child",
                "dispatch",
                url,
                "k",
                str(tasks),
                str(go),
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(processes)
    ]
    try:
        for child in children:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "ready", child.stderr and child.stderr.read()
        go.touch()
        summaries = []
        for child in children:
            out, err = child.communicate(timeout=120)
            assert child.returncode == 0, err
            summaries.append(json.loads(out.strip().splitlines()[-1]))
        return summaries
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()


@pytest.mark.parametrize("kind", ["sqlite-file", pytest.param("postgres", marks=requires_postgres)])
async def test_duplicates_from_four_processes_commit_once(kind: str, tmp_path: Path) -> None:
    if kind == "postgres":
        url = f"{POSTGRES_DSN}?schema={postgres_schema(tmp_path)}"
    else:
        url = f"sqlite:///{tmp_path / 'events.db'}"
    async with make_store(kind, tmp_path):  # the schema exists before the children race
        pass

    summaries = await anyio.to_thread.run_sync(_children_dispatch, url, tmp_path / "go")

    returned = [events for summary in summaries for events in summary["returned"]]
    assert len(returned) == 20
    assert all(events == returned[0] for events in returned)
    assert len(returned[0]) == 1
    async with make_store(kind, tmp_path) as store:
        stream = await store.read_stream("Todo-t1")
        assert [str(e.event_id) for e in stream] == returned[0]
        assert await store.recorded_command("k") is not None


async def test_a_schema_1_sqlite_store_records_commands_once_upgraded(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    shutil.copyfile(FIXTURES / "store.db", path)

    async with SQLiteEventStore(path) as store:
        bench = _bench(store)
        await bench.flow.dispatch(CreateTodo(id="fresh", description="a"))
        rename = RenameTodo(id="fresh", description="b")
        first = await bench.flow.dispatch(rename, idempotency_key="k")
        again = await bench.flow.dispatch(rename, idempotency_key="k")

    assert again == first
    assert bench.runs.count(rename) == 1


@requires_postgres
async def test_a_schema_1_postgres_store_records_commands_once_upgraded(tmp_path: Path) -> None:
    schema = await postgres_copy(tmp_path)
    from eventuality.stores.postgres import PostgresEventStore

    async with PostgresEventStore(POSTGRES_DSN, schema=schema) as store:
        bench = _bench(store)
        await bench.flow.dispatch(CreateTodo(id="fresh", description="a"))
        rename = RenameTodo(id="fresh", description="b")
        first = await bench.flow.dispatch(rename, idempotency_key="k")
        again = await bench.flow.dispatch(rename, idempotency_key="k")

    assert again == first
    assert bench.runs.count(rename) == 1
