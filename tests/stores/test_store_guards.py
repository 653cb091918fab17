"""What callers give a store is checked like expected versions are, and a transaction guards
only its own store: run on every backend by the ``store`` fixture."""

import pytest

from eventuality import (
    Event,
    EventStore,
    InMemoryEventStore,
    Projection,
    Transaction,
    TransactionError,
)
from eventuality.messages import evolve


class GuardNote(Event):
    text: str


@pytest.mark.parametrize("version", [0, -1, 2**31])
async def test_a_caller_given_version_out_of_range_is_a_value_error_and_nothing_is_written(
    store: EventStore, version: int
) -> None:
    event = evolve(GuardNote(text="x"), {"aggregate_version": version})

    with pytest.raises(ValueError, match=f"aggregate_version={version}"):
        await store.append("notes-1", [event])

    assert await store.last_position() == 0


async def test_a_mix_of_carried_and_missing_versions_reports_them_as_given(
    store: EventStore,
) -> None:
    events = [evolve(GuardNote(text="x"), {"aggregate_version": v}) for v in (None, 1)]

    with pytest.raises(ValueError, match=r"\[None, 1\]"):
        await store.append("notes-1", events)

    assert await store.last_position() == 0


async def test_a_projection_handler_may_append_to_another_store(store: EventStore) -> None:
    audit = InMemoryEventStore()
    await store.append("notes-1", [GuardNote(text="x")])

    async def project(event: Event, tx: Transaction) -> None:
        await audit.append("audit-1", [GuardNote(text=f"saw {event.position}")])

    await Projection(store, "audited", project).catch_up()

    assert len(await audit.read_stream("audit-1")) == 1
    with pytest.raises(TransactionError):
        async with store.transaction():
            await store.append("notes-2", [GuardNote(text="y")])
