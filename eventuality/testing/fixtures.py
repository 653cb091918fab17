"""pytest fixtures for testing code built on eventuality: ``event_store``, once per store.

Off until enabled, with ``pytest_plugins = ["eventuality.testing.fixtures"]`` in the top-level
conftest.py or ``eventuality_fixtures = true`` in the ini. Then a test that takes
``event_store`` gets an open, empty store, closed after it, and runs once on each of:

- ``memory``: :class:`~eventuality.InMemoryEventStore`;
- ``sqlite``: a :class:`~eventuality.SQLiteEventStore` file in the test's ``tmp_path``;
- ``postgres``: when ``EVENTUALITY_TEST_POSTGRES_DSN`` or the ini's ``eventuality_postgres_dsn``
  names a server; each test gets a schema of its own, dropped afterwards.

The ini's ``eventuality_stores`` picks the kinds; one test picks its own with
``@pytest.mark.parametrize("event_store_kind", ["memory"], indirect=True)``. The fixture is
async: take it from ``@pytest.mark.anyio`` tests (asyncio and trio; on trio only the memory
store runs, the others are skipped) or under pytest-asyncio's auto mode (asyncio).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ..stores.base import EventStore
from ..stores.memory import InMemoryEventStore
from ..stores.sqlite import SQLiteEventStore

__all__ = ["event_store", "event_store_kind", "postgres_dsn", "store_kinds"]

DSN_VARIABLE = "EVENTUALITY_TEST_POSTGRES_DSN"
KINDS = ("memory", "sqlite", "postgres")


def postgres_dsn(config: pytest.Config) -> str:
    """The PostgreSQL server for ``event_store``: the environment variable, else the ini."""
    try:
        configured = str(config.getini("eventuality_postgres_dsn"))
    except ValueError:  # the entry point is disabled (-p no:eventuality): no ini option
        configured = ""
    return os.environ.get(DSN_VARIABLE) or configured


def store_kinds(config: pytest.Config) -> list[str]:
    """The store kinds each ``event_store`` test runs on."""
    try:
        chosen = list(config.getini("eventuality_stores"))
    except ValueError:
        chosen = []
    dsn = postgres_dsn(config)
    if not chosen:
        return ["memory", "sqlite", "postgres"] if dsn else ["memory", "sqlite"]
    unknown = [kind for kind in chosen if kind not in KINDS]
    if unknown:
        raise pytest.UsageError(f"eventuality_stores: unknown {unknown}; choose from {KINDS}")
    if "postgres" in chosen and not dsn:
        raise pytest.UsageError(
            f"eventuality_stores names postgres, but no server is configured: set {DSN_VARIABLE} "
            "or eventuality_postgres_dsn"
        )
    return chosen


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "event_store_kind" not in metafunc.fixturenames:
        return
    for marker in metafunc.definition.iter_markers("parametrize"):
        names = marker.args[0] if marker.args else marker.kwargs.get("argnames", "")
        if isinstance(names, str):
            names = [name.strip() for name in names.split(",")]
        if "event_store_kind" in names:
            return  # the test chose its own kinds
    kinds = store_kinds(metafunc.config)
    metafunc.parametrize("event_store_kind", kinds, indirect=True, ids=kinds)


@pytest.fixture
def event_store_kind(request: pytest.FixtureRequest) -> str:
    """Which store ``event_store`` is in this run: ``memory``, ``sqlite`` or ``postgres``."""
    kind = str(request.param)
    if kind not in KINDS:
        raise ValueError(f"event_store_kind must be one of {KINDS}, not {kind!r}")
    if kind != "memory" and "anyio_backend" in request.fixturenames:
        backend = request.getfixturevalue("anyio_backend")
        name = backend if isinstance(backend, str) else backend[0]
        if name != "asyncio":
            pytest.skip(f"the {kind} store needs asyncio (its driver does), not {name}")
    return kind


@pytest.fixture
async def event_store(
    event_store_kind: str, tmp_path: Path, pytestconfig: pytest.Config
) -> AsyncIterator[EventStore]:
    """An open, empty store, closed after the test: one run per store kind."""
    schema = f"eventuality_test_{uuid.uuid4().hex[:16]}"
    dsn = postgres_dsn(pytestconfig)
    store: EventStore
    if event_store_kind == "memory":
        store = InMemoryEventStore()
    elif event_store_kind == "sqlite":
        store = SQLiteEventStore(tmp_path / "events.db")
    else:
        from ..stores.postgres import PostgresEventStore

        store = PostgresEventStore(dsn, schema=schema)
    try:
        async with store:
            yield store
    finally:
        if event_store_kind == "postgres":
            await _drop_schema(dsn, schema)


async def _drop_schema(dsn: str, schema: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await connection.close()
