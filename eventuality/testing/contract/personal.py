"""Personal data: sealed on append, read back whole, masked for good once its subject is
forgotten (skipped on a store without the ``SubjectKeys`` tier)."""

from __future__ import annotations

from typing import Annotated

import anyio
import pytest

from ...errors import DuplicateEventError
from ...messages import Event
from ...personal import PersonalData
from ...stores.base import EventStore, Snapshot
from ._support import StoreFactory, _read_all, requires

__all__ = [
    "test_personal_data_reads_back_as_appended",
    "test_forget_masks_personal_fields_on_every_read",
    "test_forget_keeps_the_events_their_versions_and_positions",
    "test_forget_leaves_other_subjects_readable",
    "test_forget_of_a_subject_without_a_key_returns_false",
    "test_forget_deletes_the_snapshots_of_the_subjects_streams",
    "test_a_snapshot_saved_after_forget_is_not_stored",
    "test_a_forgotten_subject_can_get_new_personal_data_under_a_new_key",
    "test_concurrent_appends_for_one_new_subject_all_land_readable",
    "test_a_cancelled_append_with_personal_data_leaves_the_store_readable",
    "test_a_repeated_append_with_personal_data_returns_the_stored_events",
    "test_a_repeated_event_id_with_other_personal_data_raises_duplicate_event_error",
    "test_forget_through_one_store_is_seen_by_another_on_the_same_data",
]


class CustomerRegistered(Event):
    __event_type__ = "eventuality.contract.customer-registered"
    __personal_subject__ = "customer_id"

    customer_id: str
    email: Annotated[str, PersonalData]
    age: Annotated[int, PersonalData(mask=-1)]
    plan: str


class CustomerMoved(Event):
    __event_type__ = "eventuality.contract.customer-moved"
    __personal_subject__ = "aggregate_id"

    address: Annotated[str | None, PersonalData]


def _registered(customer: str, email: str = "ada@example.com", age: int = 36) -> Event:
    return CustomerRegistered(customer_id=customer, email=email, age=age, plan="gold")


def _fields(events: list[Event]) -> list[tuple[object, ...]]:
    return [
        (e.email, e.age, e.plan) if isinstance(e, CustomerRegistered) else (e.address,)  # type: ignore[attr-defined]
        for e in events
    ]


async def test_personal_data_reads_back_as_appended(personal_store: EventStore) -> None:
    moved = CustomerMoved(aggregate_id="c1", address="1 Main St")
    stored = await personal_store.append("customer-c1", [_registered("c1"), moved])

    from_stream = await personal_store.read_stream("customer-c1")
    from_log = await _read_all(personal_store)

    assert from_stream == stored
    assert from_log == stored
    assert _fields(from_stream) == [("ada@example.com", 36, "gold"), ("1 Main St",)]


async def test_forget_masks_personal_fields_on_every_read(personal_store: EventStore) -> None:
    moved = CustomerMoved(aggregate_id="c1", address="1 Main St")
    await personal_store.append("customer-c1", [_registered("c1"), moved])

    assert await personal_store.forget("c1") is True

    masked = [("[erased]", -1, "gold"), (None,)]
    assert _fields(await personal_store.read_stream("customer-c1")) == masked
    assert _fields(await _read_all(personal_store)) == masked
    assert _fields(await _read_all(personal_store, page_size=1)) == masked


async def test_forget_keeps_the_events_their_versions_and_positions(
    personal_store: EventStore,
) -> None:
    stored = await personal_store.append("customer-c1", [_registered("c1"), _registered("c1")])
    last = await personal_store.last_position()

    await personal_store.forget("c1")

    read = await personal_store.read_stream("customer-c1")
    assert [(e.event_id, e.aggregate_version, e.position) for e in read] == [
        (e.event_id, e.aggregate_version, e.position) for e in stored
    ]
    assert await personal_store.stream_version("customer-c1") == 2
    assert await personal_store.last_position() == last


async def test_forget_leaves_other_subjects_readable(personal_store: EventStore) -> None:
    await personal_store.append("customer-c1", [_registered("c1", "one@example.com")])
    await personal_store.append("customer-c2", [_registered("c2", "two@example.com")])

    await personal_store.forget("c1")

    assert _fields(await _read_all(personal_store)) == [
        ("[erased]", -1, "gold"),
        ("two@example.com", 36, "gold"),
    ]


async def test_forget_of_a_subject_without_a_key_returns_false(
    personal_store: EventStore,
) -> None:
    await personal_store.append("customer-c1", [_registered("c1")])

    assert await personal_store.forget("nobody") is False
    assert await personal_store.forget("c1") is True
    assert await personal_store.forget("c1") is False


def _snapshot(stream_id: str, version: int, state: str) -> Snapshot:
    return Snapshot(stream_id, version, "Customer", 1, state)


async def test_forget_deletes_the_snapshots_of_the_subjects_streams(
    personal_store: EventStore,
) -> None:
    requires(personal_store, "snapshots")
    await personal_store.append("customer-c1", [_registered("c1")])
    await personal_store.append("customer-c2", [_registered("c2")])
    await personal_store.save_snapshot(_snapshot("customer-c1", 1, '{"email": "ada@"}'))
    await personal_store.save_snapshot(_snapshot("customer-c2", 1, '{"email": "bob@"}'))

    await personal_store.forget("c1")

    assert await personal_store.load_snapshot("customer-c1") is None
    assert await personal_store.load_snapshot("customer-c2") is not None


async def test_a_snapshot_saved_after_forget_is_not_stored(personal_store: EventStore) -> None:
    requires(personal_store, "snapshots")
    await personal_store.append("customer-c1", [_registered("c1")])
    await personal_store.forget("c1")
    await personal_store.append("customer-c1", [_registered("c1", "new@example.com")])  # new key

    # A state loaded before the forget, saved after it: it must not bring the data back.
    await personal_store.save_snapshot(_snapshot("customer-c1", 2, '{"email": "ada@"}'))

    assert await personal_store.load_snapshot("customer-c1") is None


async def test_a_forgotten_subject_can_get_new_personal_data_under_a_new_key(
    personal_store: EventStore,
) -> None:
    await personal_store.append("customer-c1", [_registered("c1", "old@example.com")])
    await personal_store.forget("c1")

    await personal_store.append("customer-c1", [_registered("c1", "new@example.com")])

    assert _fields(await personal_store.read_stream("customer-c1")) == [
        ("[erased]", -1, "gold"),
        ("new@example.com", 36, "gold"),
    ]


async def test_concurrent_appends_for_one_new_subject_all_land_readable(
    personal_store: EventStore,
) -> None:
    # Each task makes a key for the new subject; one key wins, the others seal again with it.
    async def append(n: int) -> None:
        await personal_store.append(f"order-{n}", [_registered("c1", f"{n}@example.com")])

    async with anyio.create_task_group() as group:
        for n in range(8):
            group.start_soon(append, n)

    emails = sorted(e.email for e in await _read_all(personal_store))  # type: ignore[attr-defined]
    assert emails == sorted(f"{n}@example.com" for n in range(8))
    await personal_store.forget("c1")
    assert {e.email for e in await _read_all(personal_store)} == {"[erased]"}  # type: ignore[attr-defined]


async def test_a_cancelled_append_with_personal_data_leaves_the_store_readable(
    personal_store: EventStore,
) -> None:
    await personal_store.append("customer-c0", [_registered("c0")])
    for attempt in range(20):  # cut short at every step of the append, from before its start
        with anyio.move_on_after(0.0005 * attempt):
            await personal_store.append(f"customer-x{attempt}", [_registered(f"x{attempt}")])

    events = await _read_all(personal_store)
    assert all(e.email == "ada@example.com" for e in events)  # type: ignore[attr-defined]
    await personal_store.append("customer-x0", [_registered("x0", "later@example.com")])
    assert (await personal_store.read_stream("customer-x0"))[-1].email == "later@example.com"  # type: ignore[attr-defined]


async def test_a_repeated_append_with_personal_data_returns_the_stored_events(
    personal_store: EventStore,
) -> None:
    events = [_registered("c1")]
    first = await personal_store.append("customer-c1", events, expected_version=0)

    again = await personal_store.append("customer-c1", events, expected_version=0)

    assert again == first
    assert await _read_all(personal_store) == first


async def test_a_repeated_event_id_with_other_personal_data_raises_duplicate_event_error(
    personal_store: EventStore,
) -> None:
    first = await personal_store.append("customer-c1", [_registered("c1", "a@example.com")])
    other = first[0].model_copy(update={"email": "b@example.com", "position": None})

    with pytest.raises(DuplicateEventError):
        await personal_store.append("customer-c1", [other], expected_version=0)

    assert await _read_all(personal_store) == first


async def test_forget_through_one_store_is_seen_by_another_on_the_same_data(
    personal_store: EventStore, contract_store_factory: StoreFactory
) -> None:
    requires(personal_store, "durable")
    await personal_store.append("customer-c1", [_registered("c1")])
    async with contract_store_factory() as other:
        assert _fields(await other.read_stream("customer-c1")) == [("ada@example.com", 36, "gold")]

        await personal_store.forget("c1")

        assert _fields(await other.read_stream("customer-c1")) == [("[erased]", -1, "gold")]
