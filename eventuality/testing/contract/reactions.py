"""Reactions on the store: each input event's effects committed once, with the checkpoint
(skipped on a store without the reactions tier)."""

import random
from collections.abc import Awaitable, Callable

import anyio
import pytest

from ...errors import CheckpointConflict
from ...flow import Flow
from ...messages import Command, Event
from ...reactions import Reaction
from ...repository import Repository
from ...stores.base import EventStore, StreamAppend
from ._support import Todo, TodoCompleted, TodoCreated, TodoRenamed, _read_all, _recorded

__all__ = [
    "test_a_reaction_commits_each_input_events_effects_once",
    "test_a_restarted_reaction_repeats_no_effects",
    "test_reaction_events_carry_causation_and_correlation_along_a_chain",
    "test_a_failing_handler_stops_the_reaction_at_that_event_and_it_resumes_there",
    "test_a_conflict_runs_the_handler_again_on_fresh_loads",
    "test_a_checkpoint_moved_behind_the_reactions_back_stops_it_and_stores_nothing",
    "test_a_reaction_cancelled_at_any_moment_leaves_effects_and_checkpoint_together",
]


class ContractFollowUp(Command):
    todo_id: str


class ContractAssign(Command):
    todo_id: str


def _follow_ups(
    store: EventStore, name: str = "follow-ups"
) -> tuple[Reaction, Callable[[Event], Awaitable[None]]]:
    """A reaction that answers each created todo (not a follow-up) with a follow-up todo."""
    todos = Repository(Todo, store)
    flow = Flow(store=store)

    @flow.handles(ContractFollowUp)
    async def follow_up(command: ContractFollowUp) -> None:
        await todos.add(id=f"{command.todo_id}!", description="follow-up")

    async def react(event: Event) -> None:
        if isinstance(event, TodoCreated) and not (event.aggregate_id or "").endswith("!"):
            await flow.dispatch(ContractFollowUp(todo_id=event.aggregate_id or ""))

    return Reaction(store, name, react, flow=flow, event_types=[TodoCreated]), react


async def _inputs(store: EventStore, count: int) -> list[Event]:
    stored = []
    for i in range(count):
        todo = _recorded(f"in{i}")
        stored += await store.append(todo.stream_id, todo.pending_events, expected_version=0)
    return stored


async def _follow_up_versions(store: EventStore, count: int) -> list[int]:
    return [await store.stream_version(f"Todo-in{i}!") for i in range(count)]


async def test_a_reaction_commits_each_input_events_effects_once(
    reaction_store: EventStore,
) -> None:
    inputs = await _inputs(reaction_store, 5)
    reaction, _ = _follow_ups(reaction_store)

    await reaction.catch_up()

    assert await _follow_up_versions(reaction_store, 5) == [1] * 5
    assert (await reaction_store.get_checkpoint("follow-ups") or 0) >= (inputs[-1].position or 1)


async def test_a_restarted_reaction_repeats_no_effects(reaction_store: EventStore) -> None:
    await _inputs(reaction_store, 3)
    first, _ = _follow_ups(reaction_store)
    await first.catch_up()
    await _inputs_after(reaction_store)

    second, _ = _follow_ups(reaction_store)
    await second.catch_up()

    assert await _follow_up_versions(reaction_store, 3) == [1, 1, 1]
    assert await reaction_store.stream_version("Todo-late!") == 1
    assert len(await _read_all(reaction_store)) == 8


async def _inputs_after(store: EventStore) -> None:
    todo = _recorded("late")
    await store.append(todo.stream_id, todo.pending_events, expected_version=0)


async def test_reaction_events_carry_causation_and_correlation_along_a_chain(
    reaction_store: EventStore,
) -> None:
    todos = Repository(Todo, reaction_store)
    flow = Flow(store=reaction_store)

    @flow.handles(ContractAssign)
    async def assign(command: ContractAssign) -> None:
        (await todos.load(command.todo_id)).complete()

    async def complete_follow_ups(event: Event) -> None:
        if isinstance(event, TodoCreated) and (event.aggregate_id or "").endswith("!"):
            await flow.dispatch(ContractAssign(todo_id=event.aggregate_id or ""))

    first, _ = _follow_ups(reaction_store)
    second = Reaction(reaction_store, "completions", complete_follow_ups, flow=flow)
    todo = _recorded("a")
    [origin] = await reaction_store.append_streams(
        [_append(todo)], metadata={"correlation_id": "order-42"}
    )

    await first.catch_up()
    await second.catch_up()

    created, completed = await reaction_store.read_stream("Todo-a!")
    assert isinstance(completed, TodoCompleted)
    assert created.metadata["causation_id"] == str(origin.event_id)
    assert completed.metadata["causation_id"] == str(created.event_id)
    assert created.metadata["correlation_id"] == completed.metadata["correlation_id"] == "order-42"


def _append(todo: Todo) -> StreamAppend:
    return StreamAppend(todo.stream_id, todo.pending_events, 0)


async def test_a_failing_handler_stops_the_reaction_at_that_event_and_it_resumes_there(
    reaction_store: EventStore,
) -> None:
    inputs = await _inputs(reaction_store, 4)
    broken = {"Todo-in2"}
    reaction, follow = _follow_ups(reaction_store)

    async def fragile(event: Event) -> None:
        if f"Todo-{event.aggregate_id}" in broken:
            raise RuntimeError("the warehouse is closed")
        await follow(event)

    reaction.react = fragile

    with pytest.raises(RuntimeError, match="warehouse"):
        await reaction.catch_up()

    assert await _follow_up_versions(reaction_store, 4) == [1, 1, 0, 0]
    assert await reaction_store.get_checkpoint("follow-ups") == inputs[1].position
    broken.clear()
    await reaction.catch_up()
    assert await _follow_up_versions(reaction_store, 4) == [1, 1, 1, 1]


async def test_a_conflict_runs_the_handler_again_on_fresh_loads(
    reaction_store: EventStore,
) -> None:
    await Repository(Todo, reaction_store).add(id="tally", description="0")
    todos = Repository(Todo, reaction_store)
    runs = 0

    async def rename_tally(event: Event) -> None:
        nonlocal runs
        if event.aggregate_id == "tally":
            return
        runs += 1
        tally = await todos.load("tally")
        if runs == 1:  # another writer moves the stream between the load and the commit
            await reaction_store.append(
                "Todo-tally", [TodoRenamed(description="by another writer")]
            )
        tally.rename(f"after {event.aggregate_id}")

    reaction = Reaction(
        reaction_store,
        "tally",
        rename_tally,
        flow=Flow(store=reaction_store),
        event_types=[TodoCreated],
    )
    await _inputs(reaction_store, 1)

    await reaction.catch_up()

    tally = await todos.load("tally")
    assert runs == 2
    assert tally.version == 3
    assert tally.description == "after in0"


async def test_a_checkpoint_moved_behind_the_reactions_back_stops_it_and_stores_nothing(
    reaction_store: EventStore,
) -> None:
    await _inputs(reaction_store, 2)
    reaction, follow = _follow_ups(reaction_store)

    async def meddle(event: Event) -> None:
        if event.aggregate_id == "in1":
            moved = await reaction_store.get_checkpoint("follow-ups")
            await reaction_store.set_checkpoint("follow-ups", 0, expected=moved)
        await follow(event)

    reaction.react = meddle

    with pytest.raises(CheckpointConflict):
        await reaction.catch_up()

    assert await _follow_up_versions(reaction_store, 2) == [1, 0]
    assert await reaction_store.get_checkpoint("follow-ups") == 0


async def test_a_reaction_cancelled_at_any_moment_leaves_effects_and_checkpoint_together(
    reaction_store: EventStore,
) -> None:
    inputs = await _inputs(reaction_store, 12)
    rng = random.Random(12)
    reaction, _ = _follow_ups(reaction_store)
    last = inputs[-1].position
    cancelled = 0

    for attempt in range(400):
        with anyio.move_on_after(rng.uniform(0, 0.0002 * (attempt + 1))) as scope:
            await reaction.catch_up()
        cancelled += scope.cancelled_caught
        checkpoint = await reaction_store.get_checkpoint("follow-ups") or 0
        versions = await _follow_up_versions(reaction_store, 12)
        expected = [int((event.position or 0) <= checkpoint) for event in inputs]
        assert versions == expected, (checkpoint, versions)
        if not scope.cancelled_caught and checkpoint >= (last or 0):
            break

    assert await _follow_up_versions(reaction_store, 12) == [1] * 12
    assert cancelled > 0
