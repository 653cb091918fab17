"""Fixtures shared by every test: ``store`` runs a test once per backend.

PostgreSQL joins when ``EVENTUALITY_TEST_POSTGRES_DSN`` names a server; each test then works in a
schema of its own, dropped afterwards. Without it, the PostgreSQL runs are skipped, saying why.
"""

import hashlib
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import anyio
import pytest

from eventuality import EventStore, InMemoryEventStore, SQLiteEventStore

POSTGRES_DSN = os.environ.get("EVENTUALITY_TEST_POSTGRES_DSN", "")
NO_POSTGRES = "EVENTUALITY_TEST_POSTGRES_DSN is not set: PostgreSQL store tests need a server"
requires_postgres = pytest.mark.skipif(not POSTGRES_DSN, reason=NO_POSTGRES)

_RUN = uuid.uuid4().hex[:8]
STORE_KINDS = [
    "memory",
    "sqlite-file",
    "sqlite-memory",
    pytest.param("postgres", marks=requires_postgres),
]


def postgres_schema(tmp_path: Path) -> str:
    """The schema a test's PostgreSQL stores share: one per test, like its tmp_path."""
    digest = hashlib.sha1(str(tmp_path).encode()).hexdigest()[:12]
    return f"evtest_{_RUN}_{digest}"


def make_store(kind: str, tmp_path: Path) -> EventStore:
    """A new, unopened store of ``kind`` whose data lives under ``tmp_path``: two stores made
    with one ``tmp_path`` share their data (except ``sqlite-memory`` and ``memory``)."""
    if kind == "memory":
        return InMemoryEventStore()
    if kind == "sqlite-file":
        return SQLiteEventStore(tmp_path / "events.db")
    if kind == "sqlite-memory":
        return SQLiteEventStore(":memory:")
    if kind == "postgres":
        from eventuality.stores.postgres import PostgresEventStore

        return PostgresEventStore(POSTGRES_DSN, schema=postgres_schema(tmp_path))
    raise ValueError(kind)


@pytest.fixture(params=STORE_KINDS)
def store_kind(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    return kind


@pytest.fixture
def contract_store_factory(store_kind: str, tmp_path: Path) -> Callable[[], EventStore]:
    """New stores of one kind for the shipped contract suite: stores of a durable kind made in
    one test share their data."""
    return lambda: make_store(store_kind, tmp_path)


@pytest.fixture
async def store(store_kind: str, tmp_path: Path) -> AsyncIterator[EventStore]:
    """An open, empty store: one test run per backend."""
    async with make_store(store_kind, tmp_path) as opened:
        yield opened


@pytest.fixture(scope="session", autouse=True)
def _drop_test_schemas() -> Iterator[None]:
    """Drop the PostgreSQL schemas this run created."""
    yield
    if not POSTGRES_DSN:
        return

    async def drop() -> None:
        import asyncpg

        connection = await asyncpg.connect(POSTGRES_DSN)
        try:
            names = await connection.fetch(
                "SELECT nspname FROM pg_namespace WHERE nspname LIKE $1", f"evtest_{_RUN}_%"
            )
            for (name,) in names:
                await connection.execute(f'DROP SCHEMA "{name}" CASCADE')
        finally:
            await connection.close()

    anyio.run(drop)
