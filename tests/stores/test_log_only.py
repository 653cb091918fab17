"""The tiers stand alone: a backend with only the event log passes the log part of the shipped
contract (the rest is skipped, saying why), and what it lacks fails clearly."""

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from eventuality import (
    Capabilities,
    EventStore,
    Projection,
    Repository,
    Subscription,
    Transaction,
    UnsupportedOperation,
)
from eventuality.stores.base import Snapshot
from eventuality.stores.boundary import capabilities_of
from eventuality.testing.contract import *  # noqa: F403
from tests.domain import Todo
from tests.stores.log_only import LogOnlyBackend, LogOnlyStore


@pytest.fixture
def contract_store_factory() -> Callable[[], EventStore]:
    return LogOnlyStore


@pytest.fixture
async def log_only() -> AsyncIterator[EventStore]:
    async with LogOnlyStore() as store:
        yield store


async def _project(event: object, tx: Transaction) -> None: ...


async def _handle(event: object) -> None: ...


def test_the_store_declares_only_the_log_and_gap_free_positions() -> None:
    store = LogOnlyStore()

    capabilities = store.capabilities

    assert capabilities == Capabilities(
        checkpoints=False,
        snapshots=False,
        transactions=False,
        live_wait=False,
        cross_process_locks=False,
        gap_free_positions=True,
        durable=False,
    )


async def test_a_transaction_is_refused_naming_the_store_and_the_tier(log_only: EventStore) -> None:
    with pytest.raises(UnsupportedOperation) as caught:
        async with log_only.transaction():
            pytest.fail("a store without transactions opened one")

    assert caught.value.capability == "transactions"
    assert "LogOnlyStore() cannot open a transaction" in str(caught.value)
    assert isinstance(caught.value, NotImplementedError)


async def test_a_query_is_refused(log_only: EventStore) -> None:
    with pytest.raises(UnsupportedOperation, match="cannot run a query"):
        await log_only.query("SELECT 1")


def test_paramstyle_is_refused() -> None:
    store = LogOnlyStore()

    with pytest.raises(UnsupportedOperation, match="transaction, query and paramstyle"):
        _ = store.paramstyle


async def test_checkpoints_are_refused_and_nothing_is_written(log_only: EventStore) -> None:
    with pytest.raises(UnsupportedOperation, match="get_checkpoint and set_checkpoint"):
        await log_only.set_checkpoint("c", 1, expected=None)

    with pytest.raises(UnsupportedOperation, match="cannot read a checkpoint"):
        await log_only.get_checkpoint("c")


async def test_snapshots_are_refused(log_only: EventStore) -> None:
    with pytest.raises(UnsupportedOperation, match="cannot save a snapshot"):
        await log_only.save_snapshot(Snapshot("Todo-1", 1, "Todo", 1, "{}"))

    with pytest.raises(UnsupportedOperation, match="cannot load a snapshot"):
        await log_only.load_snapshot("Todo-1")


@pytest.mark.parametrize(
    ("operation", "call"),
    [
        ("delete a stream", lambda store: store.delete_stream("Todo-1")),
        ("truncate a stream", lambda store: store.truncate_stream("Todo-1", 1)),
        ("archive a stream", lambda store: store.archive_stream("Todo-1")),
        ("restore a stream", lambda store: store.restore_stream("Todo-1")),
        ("read archived events", lambda store: store.read_archived("Todo-1")),
    ],
)
async def test_stream_lifecycle_calls_are_refused_and_nothing_changes(
    log_only: EventStore, operation: str, call: Callable[[EventStore], Awaitable[object]]
) -> None:
    await Repository(Todo, log_only).add(id="1", description="first")

    with pytest.raises(UnsupportedOperation) as caught:
        await call(log_only)

    assert caught.value.capability == "stream_lifecycle"
    assert f"LogOnlyStore() cannot {operation}" in str(caught.value)
    assert "delete_stream" in str(caught.value)
    assert len(await log_only.read_stream("Todo-1")) == 1


async def test_reads_of_unknown_streams_need_no_lifecycle_tier(log_only: EventStore) -> None:
    assert await log_only.read_stream("Todo-none") == []
    assert await log_only.stream_version("Todo-none") == 0


def test_half_the_lifecycle_tier_is_refused_naming_what_is_missing() -> None:
    class HalfLifecycle(LogOnlyBackend):
        async def read_archived(self, stream_id: str) -> list[object]:
            return []

    with pytest.raises(TypeError, match="delete_stream"):
        capabilities_of(HalfLifecycle())


def test_a_projection_is_refused_when_built_saying_why() -> None:
    store = LogOnlyStore()

    with pytest.raises(UnsupportedOperation) as caught:
        Projection(store, "counts", _project)

    assert caught.value.capability == "transactions"
    assert "Projection 'counts'" in str(caught.value)


def test_a_subscription_is_refused_when_built_saying_why() -> None:
    store = LogOnlyStore()

    with pytest.raises(UnsupportedOperation) as caught:
        Subscription(store, "mailer", _handle)

    assert caught.value.capability == "checkpoints"
    assert "Subscription 'mailer'" in str(caught.value)


async def test_a_repository_without_snapshots_loads_and_saves(log_only: EventStore) -> None:
    todos = Repository(Todo, log_only)
    await todos.add(id="1", description="first")

    loaded = await todos.load("1")

    assert (loaded.description, loaded.version) == ("first", 1)


async def test_a_repository_with_snapshot_every_is_refused_when_built(
    log_only: EventStore,
) -> None:
    with pytest.raises(UnsupportedOperation, match="snapshot_every"):
        Repository(Todo, log_only, snapshot_every=2)


def test_an_object_without_the_log_methods_is_not_a_backend() -> None:
    class Partial:
        async def open(self) -> None: ...

    with pytest.raises(TypeError, match="lacks close, append, read_stream"):
        capabilities_of(Partial())  # type: ignore[arg-type]


def test_cross_process_locks_declared_without_hold_name_are_refused() -> None:
    class Boasting(LogOnlyBackend):
        cross_process_locks = True

    with pytest.raises(TypeError, match="no hold_name"):
        EventStore(Boasting())
