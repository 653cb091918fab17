"""Snapshots: the latest at or below a version (skipped on a store without them)."""

import pytest

from ...stores.base import EventStore, Snapshot
from ._support import (
    _snapshot,
)

__all__ = [
    "test_load_snapshot_is_none_when_the_stream_has_none",
    "test_load_snapshot_returns_the_latest",
    "test_load_snapshot_returns_the_latest_at_or_below_max_version",
    "test_save_snapshot_at_a_saved_version_replaces_it",
    "test_snapshot_stream_ids_are_stored_verbatim",
]


async def test_load_snapshot_is_none_when_the_stream_has_none(snapshot_store: EventStore) -> None:
    await snapshot_store.save_snapshot(_snapshot("Todo-other", 3))

    loaded = await snapshot_store.load_snapshot("Todo-1")

    assert loaded is None


async def test_load_snapshot_returns_the_latest(snapshot_store: EventStore) -> None:
    for version in (5, 2, 9):
        await snapshot_store.save_snapshot(_snapshot("Todo-1", version))

    loaded = await snapshot_store.load_snapshot("Todo-1")

    assert loaded == _snapshot("Todo-1", 9)


@pytest.mark.parametrize(
    ("max_version", "found"), [(9, 9), (8, 5), (5, 5), (2, 2), (1, None), (0, None)]
)
async def test_load_snapshot_returns_the_latest_at_or_below_max_version(
    snapshot_store: EventStore, max_version: int, found: int | None
) -> None:
    for version in (2, 5, 9):
        await snapshot_store.save_snapshot(_snapshot("Todo-1", version))

    loaded = await snapshot_store.load_snapshot("Todo-1", max_version=max_version)

    assert loaded == (None if found is None else _snapshot("Todo-1", found))


async def test_save_snapshot_at_a_saved_version_replaces_it(snapshot_store: EventStore) -> None:
    await snapshot_store.save_snapshot(_snapshot("Todo-1", 4))
    newer = Snapshot("Todo-1", 4, "Todo", 2, '{"id": "1", "shape": "new"}')

    await snapshot_store.save_snapshot(newer)

    assert await snapshot_store.load_snapshot("Todo-1") == newer


async def test_snapshot_stream_ids_are_stored_verbatim(snapshot_store: EventStore) -> None:
    stream_ids = ["Todo-'; DROP TABLE x; --", "Todo-nul\x00", "Todo-nul", "Todo-🎉 "]

    for version, stream_id in enumerate(stream_ids, 1):
        await snapshot_store.save_snapshot(_snapshot(stream_id, version))

    for version, stream_id in enumerate(stream_ids, 1):
        assert await snapshot_store.load_snapshot(stream_id) == _snapshot(stream_id, version)
