"""Reactions that commit personal data: sealed events, their subjects' keys and the checkpoint
move in one atomic step (skipped on a store without both the reactions and personal-data
tiers)."""

from __future__ import annotations

import random
from typing import Annotated

import anyio
import pytest

from ...aggregate import Aggregate
from ...errors import CheckpointConflict
from ...flow import Flow
from ...messages import Event
from ...personal import PersonalData
from ...reactions import Reaction
from ...repository import Repository
from ...stores.base import EventStore, StreamAppend
from ...stores.rows import CheckpointMove
from ._support import TodoCreated, _read_all, _recorded, requires

__all__ = [
    "test_a_checkpointed_append_seals_personal_data_and_moves_the_checkpoint",
    "test_a_stale_checkpoint_stores_no_personal_events_and_no_key",
    "test_a_reaction_commits_personal_data_once_with_its_checkpoint",
    "test_a_reaction_with_personal_data_cancelled_at_any_moment_stays_consistent",
]


class GuestInvited(Event):
    __event_type__ = "eventuality.contract.guest-invited"
    __personal_subject__ = "aggregate_id"

    email: Annotated[str, PersonalData]
    todo_id: str


class Guest(Aggregate):
    aggregate_type = "ContractGuest"

    invited_for: str | None = None

    @classmethod
    def create(cls, id: str, todo_id: str) -> Guest:
        guest = cls(id=id)
        guest.record(_invitation(id, todo_id))
        return guest

    def apply(self, event: Event) -> None:
        if isinstance(event, GuestInvited):
            self.invited_for = event.todo_id


def _invitation(guest: str, todo_id: str = "t") -> GuestInvited:
    return GuestInvited(aggregate_id=guest, email=f"{guest}@example.com", todo_id=todo_id)


async def test_a_checkpointed_append_seals_personal_data_and_moves_the_checkpoint(
    reaction_store: EventStore,
) -> None:
    requires(reaction_store, "personal_data")

    [stored] = await reaction_store.append_streams(
        [StreamAppend("ContractGuest-g1", [_invitation("g1")], 0)],
        checkpoint=CheckpointMove("invitations", None, 4),
    )

    assert await reaction_store.get_checkpoint("invitations") == 4
    [read] = await reaction_store.read_stream("ContractGuest-g1")
    assert read == stored
    assert read.email == "g1@example.com"  # type: ignore[attr-defined]
    assert await reaction_store.forget("g1") is True
    [masked] = await reaction_store.read_stream("ContractGuest-g1")
    assert masked.email != "g1@example.com"  # type: ignore[attr-defined]


async def test_a_stale_checkpoint_stores_no_personal_events_and_no_key(
    reaction_store: EventStore,
) -> None:
    requires(reaction_store, "personal_data")
    await reaction_store.set_checkpoint("invitations", 2, expected=None)

    with pytest.raises(CheckpointConflict):
        await reaction_store.append_streams(
            [StreamAppend("ContractGuest-g1", [_invitation("g1")], 0)],
            checkpoint=CheckpointMove("invitations", 1, 4),
        )

    assert await _read_all(reaction_store) == []
    assert await reaction_store.get_checkpoint("invitations") == 2
    assert await reaction_store.forget("g1") is False  # no key was stored for the subject


def _inviter(store: EventStore) -> Reaction:
    """Invites a guest per created todo, from a reaction: personal data in its effects."""
    guests = Repository(Guest, store)

    async def invite(event: Event) -> None:
        await guests.add(id=f"guest-{event.aggregate_id}", todo_id=event.aggregate_id or "")

    return Reaction(store, "invitations", invite, flow=Flow(store=store), event_types=[TodoCreated])


async def _todos(store: EventStore, count: int) -> list[Event]:
    created = []
    for i in range(count):
        todo = _recorded(f"p{i}")
        created += await store.append(todo.stream_id, todo.pending_events, expected_version=0)
    return created


async def test_a_reaction_commits_personal_data_once_with_its_checkpoint(
    reaction_store: EventStore,
) -> None:
    requires(reaction_store, "personal_data")
    [created] = await _todos(reaction_store, 1)

    await _inviter(reaction_store).catch_up()
    await _inviter(reaction_store).catch_up()

    [invited] = await reaction_store.read_stream("ContractGuest-guest-p0")
    assert invited.email == "guest-p0@example.com"  # type: ignore[attr-defined]
    assert invited.metadata["causation_id"] == str(created.event_id)
    assert (await reaction_store.get_checkpoint("invitations") or 0) >= (created.position or 1)


async def test_a_reaction_with_personal_data_cancelled_at_any_moment_stays_consistent(
    reaction_store: EventStore,
) -> None:
    requires(reaction_store, "personal_data")
    created = await _todos(reaction_store, 8)
    rng = random.Random(8)
    reaction = _inviter(reaction_store)
    cancelled = 0

    for attempt in range(300):
        with anyio.move_on_after(rng.uniform(0, 0.0002 * (attempt + 1))) as scope:
            await reaction.catch_up()
        cancelled += scope.cancelled_caught
        checkpoint = await reaction_store.get_checkpoint("invitations") or 0
        versions = [
            await reaction_store.stream_version(f"ContractGuest-guest-p{i}") for i in range(8)
        ]
        assert versions == [int((e.position or 0) <= checkpoint) for e in created], checkpoint
        if not scope.cancelled_caught and checkpoint >= (created[-1].position or 0):
            break

    invitations = [e for e in await _read_all(reaction_store) if isinstance(e, GuestInvited)]
    assert [e.email for e in invitations] == [f"guest-p{i}@example.com" for i in range(8)]
    assert cancelled > 0
