"""The store contract, part two: where stores used to differ, they now behave alike.

Each test runs on every backend (the ``store`` fixture) and knows none of them.
"""

from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import pytest

from eventuality import Event, EventSchemaError, EventStore, StoreError, UnknownEventType
from eventuality.messages import _registry
from eventuality.stores.base import MAX_STREAM_ID_BYTES
from tests.domain import TodoCreated


class AlikeNote(Event):
    text: str


async def _read_all(store: EventStore) -> list[Event]:
    return [event async for event in store.read_all()]


async def _read_model(store: EventStore) -> None:
    async with store.transaction() as tx:
        await tx.execute("CREATE TABLE alike_rows (id INTEGER PRIMARY KEY)")
        await tx.execute("INSERT INTO alike_rows (id) VALUES (1)")


@pytest.mark.parametrize(
    "statement",
    [
        "DELETE FROM alike_rows",
        "INSERT INTO alike_rows (id) VALUES (2)",
        "UPDATE alike_rows SET id = 3",
        "DROP TABLE alike_rows",
        "BEGIN",
        "COMMIT",
        "ROLLBACK",
        "SAVEPOINT s",
        "-- a comment first\nBEGIN",
        "ATTACH DATABASE 'other.db' AS other",
    ],
)
async def test_query_refuses_a_write_and_changes_nothing(store: EventStore, statement: str) -> None:
    await _read_model(store)

    with pytest.raises(StoreError, match="read-only"):
        await store.query(statement)

    assert await store.query("SELECT id FROM alike_rows") == [(1,)]


@pytest.mark.parametrize("refused", ["DELETE FROM alike_rows", "BEGIN"])
async def test_a_refused_query_leaves_later_transactions_working(
    store: EventStore, refused: str
) -> None:
    await _read_model(store)
    with pytest.raises(StoreError):
        await store.query(refused)

    async with store.transaction() as tx:
        await tx.execute("INSERT INTO alike_rows (id) VALUES (2)")

    assert await store.query("SELECT id FROM alike_rows ORDER BY id") == [(1,), (2,)]


async def test_query_cannot_commit_an_open_transaction_half_way(store: EventStore) -> None:
    await _read_model(store)

    refused: list[StoreError] = []

    async def write_then_fail() -> None:
        async with store.transaction() as tx:
            await tx.execute("INSERT INTO alike_rows (id) VALUES (2)")
            try:
                await store.query("COMMIT")
            except StoreError as exc:
                refused.append(exc)
            raise RuntimeError("handler fails")

    with pytest.raises(RuntimeError, match="handler fails"):
        await write_then_fail()

    assert "read-only" in str(refused[0])
    assert await store.query("SELECT id FROM alike_rows") == [(1,)]


async def test_query_still_reads_with_ctes_and_functions(store: EventStore) -> None:
    await _read_model(store)

    rows = await store.query(
        "WITH doubled AS (SELECT id * 2 AS twice FROM alike_rows) SELECT max(twice) FROM doubled"
    )

    assert rows == [(2,)]


@pytest.mark.parametrize("character", ["a", "é", "€", "😀"])
async def test_a_stream_id_of_the_longest_allowed_size_is_stored(
    store: EventStore, character: str
) -> None:
    width = len(character.encode())
    stream_id = character * (MAX_STREAM_ID_BYTES // width)

    await store.append(stream_id, [AlikeNote(text="x")])

    assert [e.payload for e in await store.read_stream(stream_id)] == [{"text": "x"}]


@pytest.mark.parametrize("character", ["a", "é"])
async def test_a_stream_id_over_the_limit_is_refused_and_nothing_is_written(
    store: EventStore, character: str
) -> None:
    width = len(character.encode())
    stream_id = character * (MAX_STREAM_ID_BYTES // width + 1)

    with pytest.raises(ValueError, match=f"at most {MAX_STREAM_ID_BYTES} bytes"):
        await store.append(stream_id, [AlikeNote(text="x")])

    assert await store.last_position() == 0


async def test_dispatch_metadata_with_nan_is_refused_before_anything_is_written(
    store: EventStore,
) -> None:
    from eventuality import StreamAppend

    with pytest.raises(ValueError, match="JSON numbers only"):
        await store.append_streams(
            [StreamAppend("notes-1", [AlikeNote(text="x")])], metadata={"score": float("nan")}
        )

    assert await store.last_position() == 0


async def test_set_checkpoint_beyond_any_position_is_a_clear_error(store: EventStore) -> None:
    with pytest.raises(ValueError, match="beyond any position"):
        await store.set_checkpoint("far", 2**63, expected=None)

    assert await store.get_checkpoint("far") is None


def _operations(store: EventStore) -> dict[str, Callable[[], Awaitable[Any]]]:
    return {
        "append": lambda: store.append("notes-1", [AlikeNote(text="x")]),
        "read_stream": lambda: store.read_stream("notes-1"),
        "stream_version": lambda: store.stream_version("notes-1"),
        "last_position": store.last_position,
        "get_checkpoint": lambda: store.get_checkpoint("c"),
        "set_checkpoint": lambda: store.set_checkpoint("c", 1, expected=None),
    }


OPERATIONS = [
    "append",
    "read_stream",
    "stream_version",
    "last_position",
    "get_checkpoint",
    "set_checkpoint",
]


@pytest.mark.parametrize("operation", OPERATIONS)
async def test_every_operation_is_a_cancellation_point(store: EventStore, operation: str) -> None:
    call = _operations(store)[operation]

    with anyio.CancelScope() as scope:
        scope.cancel()
        await call()
        pytest.fail(f"{operation} completed inside a cancelled scope")

    assert scope.cancelled_caught
    assert await store.last_position() == 0
    assert await store.get_checkpoint("c") is None


async def test_other_tasks_run_while_a_loop_of_appends_runs(store: EventStore) -> None:
    turns = 0

    async def other() -> None:
        nonlocal turns
        while True:
            turns += 1
            await anyio.sleep(0)

    async with anyio.create_task_group() as group:
        group.start_soon(other)
        for i in range(20):
            await store.append(f"notes-{i}", [AlikeNote(text="x")])
        group.cancel_scope.cancel()

    assert turns > 0


async def test_concurrent_checked_appends_interleave_and_exactly_one_wins(
    store: EventStore,
) -> None:
    from eventuality import ConcurrencyError

    await store.append("notes-1", [AlikeNote(text="first")])
    outcomes: list[str] = []
    read = 0
    all_read = anyio.Event()

    async def writer(n: int) -> None:
        nonlocal read
        version = await store.stream_version("notes-1")
        read += 1
        if read == 10:
            all_read.set()
        await all_read.wait()
        try:
            await store.append("notes-1", [AlikeNote(text=str(n))], expected_version=version)
            outcomes.append("won")
        except ConcurrencyError:
            outcomes.append("lost")

    async with anyio.create_task_group() as group:
        for n in range(10):
            group.start_soon(writer, n)

    assert sorted(outcomes) == ["lost"] * 9 + ["won"]
    assert await store.stream_version("notes-1") == 2


async def test_an_unknown_stored_type_names_its_stream_and_position_and_reading_goes_on(
    store: EventStore,
) -> None:
    class AlikeGone(Event):
        __event_type__ = "alike.gone"

    await store.append("gone-1", [AlikeGone()])
    await store.append("todo-1", [TodoCreated(description="after")])
    _registry.pop("alike.gone")
    reader = store.read_all()

    with pytest.raises(UnknownEventType) as caught:
        await reader.__anext__()
    following = await reader.__anext__()

    assert caught.value.stream_id == "gone-1"
    assert caught.value.position is not None
    assert "gone-1" in str(caught.value)
    assert isinstance(following, TodoCreated)


async def test_a_payload_that_no_longer_fits_its_class_names_stream_and_position(
    store: EventStore,
) -> None:
    class AlikeShape(Event):
        __event_type__ = "alike.shape"
        text: str

    await store.append("shape-1", [AlikeShape(text="x")])
    _registry.pop("alike.shape")

    class AlikeShapeNow(Event):
        __event_type__ = "alike.shape"
        number: int

    try:
        with pytest.raises(EventSchemaError) as caught:
            await store.read_stream("shape-1")
    finally:
        _registry.pop("alike.shape")

    assert caught.value.stream_id == "shape-1"
    assert caught.value.position == await store.last_position()
    assert "shape-1" in str(caught.value)


async def test_a_mistake_in_query_sql_is_a_store_error_and_the_store_goes_on(
    store: EventStore,
) -> None:
    await _read_model(store)
    placeholder = "?" if store.paramstyle == "qmark" else "$1"

    with pytest.raises(StoreError):
        await store.query(f"SELECT id FROM alike_rows WHERE id = {placeholder}")

    assert await store.query("SELECT id FROM alike_rows") == [(1,)]


async def test_a_mistake_in_transaction_sql_is_a_store_error_and_nothing_commits(
    store: EventStore,
) -> None:
    await _read_model(store)
    placeholder = "?" if store.paramstyle == "qmark" else "$1"

    async def insert_with_a_missing_argument() -> None:
        async with store.transaction() as tx:
            await tx.execute("INSERT INTO alike_rows (id) VALUES (2)")
            await tx.execute(f"INSERT INTO alike_rows (id) VALUES ({placeholder})")

    with pytest.raises(StoreError):
        await insert_with_a_missing_argument()

    assert await store.query("SELECT id FROM alike_rows") == [(1,)]
