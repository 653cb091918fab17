"""Fixtures shared by every test: ``store`` runs a test once per backend."""

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from eventuality import EventStore, InMemoryEventStore, SQLiteEventStore

STORE_KINDS = ["memory", "sqlite-file", "sqlite-memory"]


def make_store(kind: str, tmp_path: Path) -> EventStore:
    """A new, unopened store of ``kind`` whose data lives under ``tmp_path``."""
    if kind == "memory":
        return InMemoryEventStore()
    if kind == "sqlite-file":
        return SQLiteEventStore(tmp_path / "events.db")
    if kind == "sqlite-memory":
        return SQLiteEventStore(":memory:")
    raise ValueError(kind)


@pytest.fixture(params=STORE_KINDS)
def store_kind(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    return kind


@pytest.fixture
async def store(store_kind: str, tmp_path: Path) -> AsyncIterator[EventStore]:
    """An open, empty store: one test run per backend."""
    async with make_store(store_kind, tmp_path) as opened:
        yield opened
