"""The event log, live: waiting for appends, and concurrent writers."""

import anyio
import anyio.lowlevel
import pytest

from ...errors import (
    ConcurrencyError,
)
from ...messages import Event
from ...stores.base import EventStore
from ._support import (
    StoreFactory,
    _created,
    _positions,
    _read_all,
    _versions,
    requires,
)

__all__ = [
    "test_wait_appended_returns_true_without_waiting_when_events_are_after",
    "test_wait_appended_returns_false_when_nothing_is_appended_in_time",
    "test_wait_appended_on_an_empty_store_returns_false_when_nothing_is_appended",
    "test_wait_appended_wakes_when_another_task_appends",
    "test_concurrent_appends_expecting_one_version_have_exactly_one_winner",
    "test_concurrent_appends_retrying_on_conflict_fill_versions_without_gaps",
    "test_concurrent_appends_to_different_streams_all_succeed",
    "test_positions_are_gap_free_even_when_appends_conflict",
]

# wait_appended


async def test_wait_appended_returns_true_without_waiting_when_events_are_after(
    contract_store: EventStore,
) -> None:
    stored = await contract_store.append("a", _created("a1", "a2"))

    appended = await contract_store.wait_appended(_positions(stored)[0], timeout=0)

    assert appended is True


async def test_wait_appended_returns_false_when_nothing_is_appended_in_time(
    contract_store: EventStore,
) -> None:
    await contract_store.append("a", _created("a1"))
    last = await contract_store.last_position()

    appended = await contract_store.wait_appended(last, timeout=0.05)

    assert appended is False


async def test_wait_appended_on_an_empty_store_returns_false_when_nothing_is_appended(
    contract_store: EventStore,
) -> None:
    empty = contract_store

    appended = await empty.wait_appended(0, timeout=0.05)

    assert appended is False


async def test_wait_appended_wakes_when_another_task_appends(contract_store: EventStore) -> None:
    await contract_store.append("a", _created("a1"))
    last = await contract_store.last_position()
    results: list[bool] = []

    async def append_soon() -> None:
        await anyio.sleep(0.05)
        await contract_store.append("b", _created("b1"))

    # The wait's own timeout is far beyond the deadline: only a wake-up can end it in time.
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(append_soon)
            results.append(await contract_store.wait_appended(last, timeout=3600))

    assert results == [True]
    assert await contract_store.last_position() > last


# concurrency


async def test_concurrent_appends_expecting_one_version_have_exactly_one_winner(
    contract_store: EventStore,
) -> None:
    tasks = 20
    ready = 0
    all_read = anyio.Event()
    winners: list[list[Event]] = []
    losers: list[ConcurrencyError] = []

    async def write(i: int) -> None:
        nonlocal ready
        version = await contract_store.stream_version("race")
        ready += 1
        if ready == tasks:
            all_read.set()
        await all_read.wait()
        try:
            winners.append(
                await contract_store.append("race", _created(str(i)), expected_version=version)
            )
        except ConcurrencyError as error:
            losers.append(error)

    async with anyio.create_task_group() as tg:
        for i in range(tasks):
            tg.start_soon(write, i)

    assert len(winners) == 1
    assert len(losers) == tasks - 1
    assert {(e.stream_id, e.expected_version, e.actual_version) for e in losers} == {("race", 0, 1)}
    assert await contract_store.read_stream("race") == winners[0]


async def test_concurrent_appends_retrying_on_conflict_fill_versions_without_gaps(
    contract_store: EventStore,
) -> None:
    tasks = 20
    winners: list[Event] = []

    async def write(i: int) -> None:
        for _ in range(tasks):
            version = await contract_store.stream_version("race")
            await anyio.lowlevel.checkpoint()
            try:
                stored = await contract_store.append(
                    "race", _created(str(i)), expected_version=version
                )
            except ConcurrencyError:
                continue
            winners.extend(stored)
            return
        raise AssertionError(f"writer {i} lost more races than there are other writers")

    async with anyio.create_task_group() as tg:
        for i in range(tasks):
            tg.start_soon(write, i)

    stream = await contract_store.read_stream("race")
    assert _versions(stream) == list(range(1, tasks + 1))
    assert sorted(event.aggregate_version or 0 for event in winners) == list(range(1, tasks + 1))
    assert len(set(_positions(stream))) == tasks
    assert sorted(stream, key=lambda e: e.position or 0) == stream


async def test_concurrent_appends_to_different_streams_all_succeed(
    contract_store: EventStore,
) -> None:
    tasks = 20
    stored: dict[str, list[Event]] = {}

    async def write(i: int) -> None:
        await anyio.lowlevel.checkpoint()
        stored[f"s{i}"] = await contract_store.append(
            f"s{i}", _created("1", "2", "3"), expected_version=0
        )

    async with anyio.create_task_group() as tg:
        for i in range(tasks):
            tg.start_soon(write, i)

    positions = [p for events in stored.values() for p in _positions(events)]
    assert len(stored) == tasks
    assert len(set(positions)) == tasks * 3
    assert {s: await contract_store.read_stream(s) for s in stored} == stored
    assert len(await _read_all(contract_store)) == tasks * 3


async def test_positions_are_gap_free_even_when_appends_conflict(
    contract_store_factory: StoreFactory,
) -> None:
    # Not every backend promises this (PostgreSQL derives positions from transaction ids): it
    # runs on the stores that declare gap_free_positions.
    contract_store = contract_store_factory()
    requires(contract_store, "gap_free_positions")

    async def write(i: int) -> None:
        await anyio.lowlevel.checkpoint()
        with pytest.raises(ConcurrencyError):
            await contract_store.append("taken", _created(str(i)), expected_version=0)
        await contract_store.append(f"s{i}", _created("1", "2"), expected_version=0)

    async with contract_store:
        await contract_store.append("taken", _created("first"))
        async with anyio.create_task_group() as tg:
            for i in range(10):
                tg.start_soon(write, i)
        await contract_store.append("last", _created("last"))
        positions = _positions(await _read_all(contract_store))

    assert positions == list(range(1, 23))
