"""The store a scenario runs on, and the events it starts with."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TypeAlias, TypeVar

from ..messages import Event, evolve
from ..stores.base import EventStore
from ..stores.memory import InMemoryEventStore

__all__ = ["Given", "StoreChoice", "given_events", "resolve", "scenario_store"]

T = TypeVar("T")

StoreChoice: TypeAlias = EventStore | Callable[[], EventStore] | None
"""``None``: a new in-memory store per run; a callable: a new (unopened) store per run, opened
and closed by the scenario; a store: used as it is, opened if needed and left open."""

Given: TypeAlias = tuple[tuple[str, tuple[Event, ...], str | None], ...]
"""Streams and their events, in the order the scenario appends them."""


@asynccontextmanager
async def scenario_store(choice: StoreChoice) -> AsyncIterator[EventStore]:
    """The store of one run; a store the scenario made is closed when the run ends."""
    if isinstance(choice, EventStore):
        await choice.open()
        yield choice
        return
    store = InMemoryEventStore() if choice is None else choice()
    if not isinstance(store, EventStore):
        raise TypeError(f"the store factory returned {store!r}, not an EventStore")
    async with store:
        yield store


def given_events(
    given: Given, stream_id: str, events: tuple[Event, ...], aggregate_id: str | None
) -> Given:
    """``given`` with one more stream's events, checked now rather than when the run starts."""
    if not isinstance(stream_id, str):
        raise TypeError(f"given() takes a stream id first, not {stream_id!r}")
    for event in events:
        if not isinstance(event, Event):
            raise TypeError(f"given() takes Event instances after the stream id, not {event!r}")
    return (*given, (stream_id, events, aggregate_id))


async def append_given(store: EventStore, given: Given) -> None:
    """Append the given events, each stamped with its aggregate id: the one given, else the part
    of the stream id after the first ``-`` (streams are named ``f"{aggregate_type}-{id}"``)."""
    for stream_id, events, aggregate_id in given:
        owner = aggregate_id if aggregate_id is not None else stream_id.partition("-")[2]
        stamped = [
            e if e.aggregate_id is not None else evolve(e, {"aggregate_id": owner or stream_id})
            for e in events
        ]
        await store.append(stream_id, stamped)


async def resolve(factory: Callable[[EventStore], T | Awaitable[T]], store: EventStore) -> T:
    """Call a user's factory, sync or async, with the run's store."""
    made = factory(store)
    if inspect.isawaitable(made):
        return await made
    return made
