"""Appends that move a checkpoint in the same atomic step, which reactions commit with (skipped
on a store without the reactions tier)."""

import pytest

from ...errors import CheckpointConflict, ConcurrencyError, DuplicateEventError
from ...stores.base import EventStore, StreamAppend
from ...stores.rows import CheckpointMove
from ._support import _created, _read_all, _recorded

__all__ = [
    "test_an_append_with_a_checkpoint_move_stores_both",
    "test_a_checkpoint_move_from_a_stale_position_stores_nothing",
    "test_a_checkpoint_move_expecting_one_when_unset_stores_nothing",
    "test_a_version_conflict_moves_no_checkpoint",
    "test_a_checkpoint_move_with_no_events_moves_only_the_checkpoint",
    "test_a_checkpointed_append_of_stored_events_is_refused_and_moves_nothing",
    "test_the_events_of_a_checkpointed_append_carry_the_metadata",
]


async def test_an_append_with_a_checkpoint_move_stores_both(reaction_store: EventStore) -> None:
    todo = _recorded("1", "second")

    stored = await reaction_store.append_streams(
        [StreamAppend(todo.stream_id, todo.pending_events, 0)],
        checkpoint=CheckpointMove("reaction", None, 7),
    )

    assert [event.aggregate_version for event in stored] == [1, 2]
    assert all(event.position for event in stored)
    assert await reaction_store.stream_version(todo.stream_id) == 2
    assert await reaction_store.get_checkpoint("reaction") == 7


@pytest.mark.parametrize("stale", [None, 3, 9])
async def test_a_checkpoint_move_from_a_stale_position_stores_nothing(
    reaction_store: EventStore, stale: int | None
) -> None:
    await reaction_store.set_checkpoint("reaction", 5, expected=None)
    todo = _recorded("1")

    with pytest.raises(CheckpointConflict) as raised:
        await reaction_store.append_streams(
            [StreamAppend(todo.stream_id, todo.pending_events, 0)],
            checkpoint=CheckpointMove("reaction", stale, 12),
        )

    assert (raised.value.expected, raised.value.actual) == (stale, 5)
    assert await _read_all(reaction_store) == []
    assert await reaction_store.get_checkpoint("reaction") == 5


async def test_a_checkpoint_move_expecting_one_when_unset_stores_nothing(
    reaction_store: EventStore,
) -> None:
    with pytest.raises(CheckpointConflict):
        await reaction_store.append_streams(
            [StreamAppend("s", _created("a"))], checkpoint=CheckpointMove("reaction", 4, 9)
        )

    assert await _read_all(reaction_store) == []
    assert await reaction_store.get_checkpoint("reaction") is None


async def test_a_version_conflict_moves_no_checkpoint(reaction_store: EventStore) -> None:
    await reaction_store.set_checkpoint("reaction", 1, expected=None)
    await reaction_store.append("s", _created("a"))

    with pytest.raises(ConcurrencyError):
        await reaction_store.append_streams(
            [StreamAppend("other", _created("b")), StreamAppend("s", _created("c"), 0)],
            checkpoint=CheckpointMove("reaction", 1, 2),
        )

    assert await reaction_store.get_checkpoint("reaction") == 1
    assert [e.payload["description"] for e in await _read_all(reaction_store)] == ["a"]


async def test_a_checkpoint_move_with_no_events_moves_only_the_checkpoint(
    reaction_store: EventStore,
) -> None:
    await reaction_store.append("s", _created("a"))

    stored = await reaction_store.append_streams([], checkpoint=CheckpointMove("reaction", None, 1))

    assert stored == []
    assert await reaction_store.get_checkpoint("reaction") == 1
    assert len(await _read_all(reaction_store)) == 1


async def test_a_checkpointed_append_of_stored_events_is_refused_and_moves_nothing(
    reaction_store: EventStore,
) -> None:
    events = _created("a", "b")
    await reaction_store.append("s", events, expected_version=0)

    with pytest.raises(DuplicateEventError):
        await reaction_store.append_streams(
            [StreamAppend("s", events, 0)], checkpoint=CheckpointMove("reaction", None, 2)
        )

    assert await reaction_store.get_checkpoint("reaction") is None
    assert len(await _read_all(reaction_store)) == 2


async def test_the_events_of_a_checkpointed_append_carry_the_metadata(
    reaction_store: EventStore,
) -> None:
    envelope = {"causation_id": "c-1", "correlation_id": "r-1"}

    await reaction_store.append_streams(
        [StreamAppend("s", _created("a"))],
        metadata=envelope,
        checkpoint=CheckpointMove("reaction", None, 3),
    )

    [event] = await _read_all(reaction_store)
    assert {k: event.metadata[k] for k in envelope} == envelope
