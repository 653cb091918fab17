"""Reactions where exactly-once is easiest to lose: cancellation after the commit, a command
that fails half-way inside the handler, a commit that landed while its reply was lost. On the
memory store, on asyncio and trio."""

from collections.abc import Awaitable, Callable
from contextlib import suppress

import anyio
import pytest

from eventuality import (
    Command,
    Event,
    EventBus,
    Flow,
    InMemoryEventStore,
    Reaction,
    Repository,
)
from eventuality.stores.base import StreamAppend
from eventuality.stores.rows import CheckpointMove
from tests.domain import RenameTodo, Todo, TodoCreated, TodoRenamed

Scenario = Callable[[InMemoryEventStore], Awaitable[None]]


def on_both_loops(scenario: Scenario) -> Callable[[str], None]:
    """Run ``scenario`` on an open memory store, once on asyncio and once on trio."""

    def test(backend: str) -> None:
        async def main() -> None:
            async with InMemoryEventStore() as store:
                await scenario(store)

        anyio.run(main, backend=backend)

    test.__name__, test.__doc__ = scenario.__name__, scenario.__doc__
    return pytest.mark.parametrize("backend", ["asyncio", "trio"])(test)


class Refuse(Exception):
    pass


class RenameThenRefuse(Command):
    id: str


async def _tally_and_input(store: InMemoryEventStore) -> Event:
    """A 'tally' todo, then an input todo 'in' (the event reactions answer)."""
    await Repository(Todo, store).add(id="tally", description="0")
    await Repository(Todo, store).add(id="in", description="input")
    [created] = await store.read_stream("Todo-in")
    return created


def _renames(store: InMemoryEventStore, flow: Flow) -> Reaction:
    """Renames the tally once per input: a second run for one input would show as a 4th
    version."""
    todos = Repository(Todo, store)

    async def react(event: Event) -> None:
        if event.aggregate_id == "in":
            (await todos.load("tally")).rename(f"after {event.event_id}")

    return Reaction(store, "tally", react, flow=flow, event_types=[TodoCreated])


@on_both_loops
async def test_a_reaction_cancelled_while_publishing_keeps_its_checkpoint_and_repeats_nothing(
    memory: InMemoryEventStore,
) -> None:
    created = await _tally_and_input(memory)
    listening = anyio.Event()

    async def slow_listener(event: Event) -> None:
        listening.set()
        await anyio.sleep_forever()

    flow = Flow(store=memory, bus=EventBus(listeners={TodoRenamed: [slow_listener]}))
    reaction = _renames(memory, flow)
    async with anyio.create_task_group() as tg:
        tg.start_soon(reaction.catch_up)
        await listening.wait()
        tg.cancel_scope.cancel()

    assert await memory.get_checkpoint("tally") == created.position
    await _renames(memory, Flow(store=memory)).catch_up()
    assert await memory.stream_version("Todo-tally") == 2


@on_both_loops
async def test_a_failed_command_inside_a_reaction_commits_none_of_its_events(
    memory: InMemoryEventStore,
) -> None:
    await _tally_and_input(memory)
    todos = Repository(Todo, memory)
    flow = Flow(store=memory)

    @flow.handles(RenameThenRefuse)
    async def half_way(command: RenameThenRefuse) -> None:
        (await todos.load(command.id)).rename("half-way")
        raise Refuse("out of stock")

    @flow.handles(RenameTodo)
    async def rename(command: RenameTodo) -> None:
        (await todos.load(command.id)).rename(command.description)

    async def react(event: Event) -> None:
        if event.aggregate_id != "in":
            return
        await flow.dispatch(RenameTodo(id="tally", description="before"))
        with suppress(Refuse):  # a process manager answers a refusal: here, by nothing more
            await flow.dispatch(RenameThenRefuse(id="tally"))

    await Reaction(memory, "r", react, flow=flow, event_types=[TodoCreated]).catch_up()

    tally = await todos.load("tally")
    assert (tally.version, tally.description) == (2, "before")


@on_both_loops
async def test_a_failed_command_leaves_an_aggregate_it_loaded_first_fresh_for_the_next(
    memory: InMemoryEventStore,
) -> None:
    await _tally_and_input(memory)
    todos = Repository(Todo, memory)
    flow = Flow(store=memory)

    @flow.handles(RenameThenRefuse)
    async def half_way(command: RenameThenRefuse) -> None:
        (await todos.load(command.id)).rename("half-way")
        raise Refuse("out of stock")

    @flow.handles(RenameTodo)
    async def rename(command: RenameTodo) -> None:
        (await todos.load(command.id)).rename(command.description)

    async def react(event: Event) -> None:
        if event.aggregate_id != "in":
            return
        try:
            await flow.dispatch(RenameThenRefuse(id="tally"))
        except Refuse:
            await flow.dispatch(RenameTodo(id="tally", description="refused"))

    await Reaction(memory, "r", react, flow=flow, event_types=[TodoCreated]).catch_up()

    [_, renamed] = await memory.read_stream("Todo-tally")
    assert isinstance(renamed, TodoRenamed)
    assert renamed.description == "refused"


@on_both_loops
async def test_a_commit_that_landed_unheard_is_recognised_and_not_repeated(
    memory: InMemoryEventStore,
) -> None:
    created = await _tally_and_input(memory)
    todos = Repository(Todo, memory)
    landed = False

    async def react(event: Event) -> None:
        nonlocal landed
        if event.aggregate_id != "in":
            return
        if not landed:  # this input's commit, as an earlier attempt whose reply was lost
            landed = True
            await memory.append_streams(
                [StreamAppend("Todo-tally", [TodoRenamed(description="landed")], 1)],
                checkpoint=CheckpointMove("tally", 0, created.position or 0),
            )
        (await todos.load("tally")).rename("again")

    reaction = Reaction(memory, "tally", react, flow=Flow(store=memory))
    await reaction.catch_up()

    assert [e.payload.get("description") for e in await memory.read_stream("Todo-tally")] == [
        "0",
        "landed",
    ]
    assert await memory.get_checkpoint("tally") == created.position
    await reaction.catch_up()
    assert await memory.stream_version("Todo-tally") == 2
