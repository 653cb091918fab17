"""What the contract's tests share: the store fixtures, a small domain, and helpers."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Any, TypeAlias

import anyio
import pytest

from ...aggregate import Aggregate
from ...messages import Event
from ...stores.base import EventStore, Snapshot

__all__ = [
    "StoreFactory",
    "checkpoint_store",
    "command_store",
    "contract_store",
    "lifecycle_store",
    "personal_store",
    "reaction_store",
    "requires",
    "snapshot_store",
    "sql_store",
]

StoreFactory: TypeAlias = Callable[[], EventStore]
"""Makes a new, unopened store. For a store whose ``capabilities.durable`` is true, every call
in one test makes a store on the same data (the same file, database or bucket)."""

_WHY = {
    "checkpoints": "keeps no checkpoints (get_checkpoint, set_checkpoint)",
    "snapshots": "keeps no snapshots (save_snapshot, load_snapshot)",
    "transactions": "has no SQL transactions (transaction, query, paramstyle)",
    "cross_process_locks": "holds no subscription names across processes",
    "gap_free_positions": "does not promise gap-free positions",
    "durable": "keeps no data beyond the store object (a new store starts empty)",
    "stream_lifecycle": "cannot delete, truncate or archive streams (delete_stream, ...)",
    "personal_data": "keeps no personal-data keys (keys_for_subjects, keys_by_id, "
    "append_with_keys, forget)",
    "commands": "records no commands (append_command, get_command, prune_commands)",
    "reactions": "cannot move a checkpoint with an append (append_checkpointed)",
}


def requires(store: EventStore, capability: str) -> None:
    """Skip the running test, saying why, unless ``store`` declares ``capability``."""
    if not getattr(store.capabilities, capability):
        pytest.skip(f"{store!r} {_WHY[capability]}")


async def _opened(factory: StoreFactory, capability: str | None) -> AsyncIterator[EventStore]:
    store = factory()
    if not isinstance(store, EventStore):
        raise TypeError(f"contract_store_factory returned {store!r}, not an EventStore")
    if capability is not None:
        requires(store, capability)
    async with store:
        yield store


@pytest.fixture
async def contract_store(contract_store_factory: StoreFactory) -> AsyncIterator[EventStore]:
    """An open, empty store from the factory, closed after the test."""
    async for store in _opened(contract_store_factory, None):
        yield store


@pytest.fixture
async def checkpoint_store(contract_store_factory: StoreFactory) -> AsyncIterator[EventStore]:
    """``contract_store``, for tests of checkpoints: skipped on a store without them."""
    async for store in _opened(contract_store_factory, "checkpoints"):
        yield store


@pytest.fixture
async def command_store(contract_store_factory: StoreFactory) -> AsyncIterator[EventStore]:
    """``contract_store``, for tests of recorded commands: skipped on a store without them."""
    async for store in _opened(contract_store_factory, "commands"):
        yield store


@pytest.fixture
async def reaction_store(contract_store_factory: StoreFactory) -> AsyncIterator[EventStore]:
    """``contract_store``, for tests of appends that move a checkpoint, and of reactions:
    skipped on a store without the reactions tier."""
    async for store in _opened(contract_store_factory, "reactions"):
        yield store


@pytest.fixture
async def snapshot_store(contract_store_factory: StoreFactory) -> AsyncIterator[EventStore]:
    """``contract_store``, for tests of snapshots: skipped on a store without them."""
    async for store in _opened(contract_store_factory, "snapshots"):
        yield store


@pytest.fixture
async def lifecycle_store(contract_store_factory: StoreFactory) -> AsyncIterator[EventStore]:
    """``contract_store``, for tests of deleting, truncating and archiving streams: skipped
    on a store without the ``stream_lifecycle`` tier."""
    async for store in _opened(contract_store_factory, "stream_lifecycle"):
        yield store


@pytest.fixture
async def personal_store(contract_store_factory: StoreFactory) -> AsyncIterator[EventStore]:
    """``contract_store``, for tests of personal data: skipped on a store without keys."""
    async for store in _opened(contract_store_factory, "personal_data"):
        yield store


@pytest.fixture
async def sql_store(contract_store_factory: StoreFactory) -> AsyncIterator[EventStore]:
    """``contract_store``, for tests of transactions and queries: skipped without them."""
    async for store in _opened(contract_store_factory, "transactions"):
        yield store


# The domain. Stored type names are global to a process, so they are namespaced here: a user's
# own TodoCreated never collides with the contract's.


class TodoCreated(Event):
    __event_type__ = "eventuality.contract.todo-created"

    description: str


class TodoRenamed(Event):
    __event_type__ = "eventuality.contract.todo-renamed"

    description: str


class TodoCompleted(Event):
    __event_type__ = "eventuality.contract.todo-completed"


class Todo(Aggregate):
    description: str | None = None
    completed: bool = False

    @classmethod
    def create(cls, id: str, description: str) -> Todo:
        todo = cls(id=id)
        todo.record(TodoCreated(description=description))
        return todo

    def rename(self, description: str) -> None:
        self.record(TodoRenamed(description=description))

    def complete(self) -> None:
        self.record(TodoCompleted())

    def apply(self, event: Event) -> None:
        match event:
            case TodoCreated(description=description) | TodoRenamed(description=description):
                self.description = description
            case TodoCompleted():
                self.completed = True


class ContractNote(Event):
    text: str


class ContractParent(Event):
    note: str


class ContractChild(ContractParent):
    extra: int = 0


class ContractCustomName(Event):
    __event_type__ = "contract.custom-name"

    value: int


class ContractPayload(Event):
    text: str
    number: int
    ratio: float
    flag: bool
    missing: str | None
    items: list[str]
    nested: dict[str, list[int]]
    when: datetime
    ref: uuid.UUID


async def _refused_when_cancelled(operation: str, call: Callable[[], Any]) -> None:
    """Run ``call()`` in a scope cancelled before it starts: it must not complete."""
    with anyio.CancelScope() as scope:
        scope.cancel()
        await call()
        pytest.fail(f"{operation} completed inside a cancelled scope")
    assert scope.cancelled_caught


async def _read_all(store: EventStore, **options: Any) -> list[Event]:
    return [event async for event in store.read_all(**options)]


def _created(*descriptions: str) -> list[Event]:
    return [TodoCreated(description=description) for description in descriptions]


def _versions(events: list[Event]) -> list[int | None]:
    return [event.aggregate_version for event in events]


def _positions(events: list[Event]) -> list[int]:
    positions = [event.position for event in events]
    assert all(position is not None for position in positions), positions
    return [position for position in positions if position is not None]


def _recorded(todo_id: str, *renames: str) -> Todo:
    """A new Todo with its created event and one renamed event per name, all pending."""
    todo = Todo.create(id=todo_id, description="first")
    for name in renames:
        todo.rename(name)
    return todo


def _snapshot(stream_id: str, version: int) -> Snapshot:
    return Snapshot(stream_id, version, "Todo", 1, f'{{"id": "1", "version": {version}}}')
