"""Recorded commands: a key stored with its commit's events, once (skipped on a store without
the commands tier)."""

from datetime import UTC, datetime, timedelta

import anyio
import pytest

from ...errors import ConcurrencyError
from ...stores.base import EventStore, StreamAppend
from ...stores.commands import CommandRecord, KeyTaken
from ._support import StoreFactory, _created, _read_all, requires

__all__ = [
    "test_a_command_is_recorded_with_the_events_of_its_commit",
    "test_a_recorded_command_returns_its_events_as_stored",
    "test_an_unknown_key_has_no_record",
    "test_a_recorded_key_refuses_another_commit_which_stores_nothing",
    "test_a_command_that_committed_no_events_is_recorded",
    "test_a_commit_that_conflicts_records_no_key",
    "test_concurrent_commits_of_one_key_store_exactly_one",
    "test_command_keys_are_stored_verbatim",
    "test_bad_keys_are_refused_and_nothing_is_written",
    "test_prune_by_age_forgets_only_older_records",
    "test_prune_by_count_keeps_the_latest",
    "test_prune_deletes_in_batches_until_done",
    "test_a_forgotten_key_can_be_recorded_again",
    "test_a_recorded_command_outlives_the_store_object",
]

_NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _record(key: str, digest: str = "d1", *, at: datetime = _NOW) -> CommandRecord:
    return CommandRecord(key, "CreateTodo", f"id-{key}", digest, at)


async def test_a_command_is_recorded_with_the_events_of_its_commit(
    command_store: EventStore,
) -> None:
    stored = await command_store.append_streams(
        [StreamAppend("a", _created("a1", "a2"))], command=_record("k1")
    )

    found = await command_store.recorded_command("k1")

    assert found is not None
    record, _ = found
    assert (record.key, record.command_type, record.command_id, record.digest) == (
        "k1",
        "CreateTodo",
        "id-k1",
        "d1",
    )
    assert (record.first_position, record.last_position) == (
        stored[0].position,
        stored[-1].position,
    )
    assert record.recorded_at == _NOW


async def test_a_recorded_command_returns_its_events_as_stored(command_store: EventStore) -> None:
    await command_store.append("other", _created("x"))
    stored = await command_store.append_streams(
        [StreamAppend("a", _created("a1")), StreamAppend("b", _created("b1", "b2"))],
        metadata={"causation_id": "c"},
        command=_record("k1"),
    )
    await command_store.append("other", _created("y"))

    found = await command_store.recorded_command("k1")

    assert found is not None
    assert found[1] == stored


async def test_an_unknown_key_has_no_record(command_store: EventStore) -> None:
    await command_store.append_streams([StreamAppend("a", _created("a1"))], command=_record("k1"))

    assert await command_store.recorded_command("k2") is None


async def test_a_recorded_key_refuses_another_commit_which_stores_nothing(
    command_store: EventStore,
) -> None:
    first = await command_store.append_streams(
        [StreamAppend("a", _created("a1"))], command=_record("k1")
    )

    with pytest.raises(KeyTaken) as raised:
        await command_store.append_streams(
            [StreamAppend("b", _created("b1"))], command=_record("k1", "d2")
        )

    assert raised.value.key == "k1"
    assert await _read_all(command_store) == first
    found = await command_store.recorded_command("k1")
    assert found is not None
    assert found[0].digest == "d1"


async def test_a_command_that_committed_no_events_is_recorded(command_store: EventStore) -> None:
    stored = await command_store.append_streams([], command=_record("k1"))

    found = await command_store.recorded_command("k1")

    assert stored == []
    assert found is not None
    assert found[1] == []
    assert (found[0].first_position, found[0].last_position) == (0, 0)
    with pytest.raises(KeyTaken):
        await command_store.append_streams([], command=_record("k1"))


async def test_a_commit_that_conflicts_records_no_key(command_store: EventStore) -> None:
    await command_store.append("a", _created("a1"))

    with pytest.raises(ConcurrencyError):
        await command_store.append_streams(
            [StreamAppend("a", _created("a2"), expected_version=0)], command=_record("k1")
        )

    assert await command_store.recorded_command("k1") is None


async def test_concurrent_commits_of_one_key_store_exactly_one(command_store: EventStore) -> None:
    outcomes: list[str] = []

    async def commit(n: int) -> None:
        try:
            await command_store.append_streams(
                [StreamAppend(f"s{n}", _created(f"e{n}"))], command=_record("k1", f"d{n}")
            )
        except KeyTaken:
            outcomes.append("refused")
        else:
            outcomes.append(f"d{n}")

    async with anyio.create_task_group() as tg:
        for n in range(20):
            tg.start_soon(commit, n)

    winners = [outcome for outcome in outcomes if outcome != "refused"]
    assert len(winners) == 1
    assert outcomes.count("refused") == 19
    found = await command_store.recorded_command("k1")
    assert found is not None
    assert found[0].digest == winners[0]
    assert len(await _read_all(command_store)) == 1


async def test_command_keys_are_stored_verbatim(command_store: EventStore) -> None:
    keys = ["k-'; DROP TABLE x; --", "k-🎉 ", "K-🎉 ", "k" * 1024]

    for n, key in enumerate(keys):
        await command_store.append_streams([], command=_record(key, f"d{n}"))

    for n, key in enumerate(keys):
        found = await command_store.recorded_command(key)
        assert found is not None
        assert found[0].digest == f"d{n}"


@pytest.mark.parametrize(
    "key",
    ["", "nul\x00", "lone \ud800", "k" * 1025, "é" * 513],
    ids=["empty", "nul", "lone-surrogate", "1025-bytes", "1026-bytes"],
)
async def test_bad_keys_are_refused_and_nothing_is_written(
    command_store: EventStore, key: str
) -> None:
    with pytest.raises(ValueError, match=r"(?i)nothing was"):
        await command_store.append_streams(
            [StreamAppend("a", _created("a1"))], command=_record(key)
        )

    assert await _read_all(command_store) == []


async def test_prune_by_age_forgets_only_older_records(command_store: EventStore) -> None:
    for n in range(4):
        await command_store.append_streams([], command=_record(f"k{n}", at=_NOW + timedelta(n)))

    deleted = await command_store.prune_commands(recorded_before=_NOW + timedelta(2))

    assert deleted == 2
    kept = [key for key in ("k0", "k1", "k2", "k3") if await command_store.recorded_command(key)]
    assert kept == ["k2", "k3"]


async def test_prune_by_count_keeps_the_latest(command_store: EventStore) -> None:
    for n in range(5):
        await command_store.append_streams([], command=_record(f"k{n}", at=_NOW + timedelta(n)))

    deleted = await command_store.prune_commands(keep=2)

    assert deleted == 3
    kept = [
        key for key in ("k0", "k1", "k2", "k3", "k4") if await command_store.recorded_command(key)
    ]
    assert kept == ["k3", "k4"]


async def test_prune_deletes_in_batches_until_done(command_store: EventStore) -> None:
    for n in range(7):
        await command_store.append_streams([], command=_record(f"k{n}", at=_NOW + timedelta(n)))

    deleted = await command_store.prune_commands(keep=1, batch=2)

    assert deleted == 6
    assert await command_store.recorded_command("k6") is not None
    assert await command_store.recorded_command("k5") is None


async def test_a_forgotten_key_can_be_recorded_again(command_store: EventStore) -> None:
    await command_store.append_streams([StreamAppend("a", _created("a1"))], command=_record("k1"))
    await command_store.prune_commands(recorded_before=_NOW + timedelta(1))

    again = await command_store.append_streams(
        [StreamAppend("a", _created("a2"))], command=_record("k1", "d2")
    )

    found = await command_store.recorded_command("k1")
    assert found is not None
    assert found[1] == again


async def test_a_recorded_command_outlives_the_store_object(
    contract_store_factory: StoreFactory,
) -> None:
    first = contract_store_factory()
    requires(first, "durable")
    requires(first, "commands")
    async with first:
        stored = await first.append_streams(
            [StreamAppend("a", _created("a1"))], command=_record("k1")
        )

    async with contract_store_factory() as second:
        found = await second.recorded_command("k1")
        with pytest.raises(KeyTaken):
            await second.append_streams([], command=_record("k1"))

    assert found is not None
    assert found[1] == stored
