"""Opening and closing (a closed store refuses every call; durable data outlives the store
object), and the checks every append makes whatever the backend."""

from collections.abc import Awaitable, Callable

import anyio
import anyio.lowlevel
import pytest

from ...errors import (
    ConcurrencyError,
    StoreClosedError,
)
from ...stores.base import EventStore, StreamAppend
from ._support import (
    StoreFactory,
    TodoCreated,
    _created,
    _read_all,
    _snapshot,
    _versions,
    requires,
)

__all__ = [
    "test_every_call_on_a_closed_store_raises_store_closed_error",
    "test_closing_a_store_twice_is_harmless",
    "test_async_with_yields_the_store_opened",
    "test_leaving_async_with_closes_the_store",
    "test_leaving_async_with_on_an_error_closes_the_store",
    "test_open_and_close_without_async_with",
    "test_an_empty_append_still_checks_its_expected_version",
    "test_a_stream_id_that_is_not_valid_unicode_is_refused_and_writes_nothing",
    "test_positions_and_versions_beyond_any_stored_read_nothing",
    "test_a_second_store_on_durable_data_reads_what_the_first_appended",
]

# lifecycle

CALLS: dict[str, Callable[[EventStore], Awaitable[object]]] = {
    "append": lambda s: s.append("a", _created("a1")),
    "append_streams": lambda s: s.append_streams([StreamAppend("a", _created("a1"))]),
    "read_stream": lambda s: s.read_stream("a"),
    "read_all": lambda s: _read_all(s),
    "stream_version": lambda s: s.stream_version("a"),
    "last_position": lambda s: s.last_position(),
    "wait_appended": lambda s: s.wait_appended(0, timeout=0),
    "get_checkpoint": lambda s: s.get_checkpoint("c"),
    "set_checkpoint": lambda s: s.set_checkpoint("c", 1, expected=None),
    "save_snapshot": lambda s: s.save_snapshot(_snapshot("a", 1)),
    "load_snapshot": lambda s: s.load_snapshot("a"),
}


@pytest.mark.parametrize("call", list(CALLS.values()), ids=list(CALLS))
async def test_every_call_on_a_closed_store_raises_store_closed_error(
    contract_store: EventStore, call: Callable[[EventStore], Awaitable[object]]
) -> None:
    await contract_store.append("a", _created("a1"))

    await contract_store.close()

    with pytest.raises(StoreClosedError):
        await call(contract_store)


async def test_closing_a_store_twice_is_harmless(contract_store: EventStore) -> None:
    await contract_store.close()

    await contract_store.close()

    with pytest.raises(StoreClosedError):
        await contract_store.last_position()


async def test_async_with_yields_the_store_opened(contract_store_factory: StoreFactory) -> None:
    store = contract_store_factory()

    async with store as opened:
        stored = await opened.append("a", _created("a1"))
        assert await opened.read_stream("a") == stored

    assert opened is store


async def test_leaving_async_with_closes_the_store(contract_store_factory: StoreFactory) -> None:
    async with contract_store_factory() as store:
        await store.append("a", _created("a1"))

    closed = store

    with pytest.raises(StoreClosedError):
        await closed.read_stream("a")


async def test_leaving_async_with_on_an_error_closes_the_store(
    contract_store_factory: StoreFactory,
) -> None:
    store = contract_store_factory()

    async def fail_inside() -> None:
        async with store:
            await store.append("a", _created("a1"))
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await fail_inside()

    with pytest.raises(StoreClosedError):
        await store.last_position()


async def test_open_and_close_without_async_with(contract_store_factory: StoreFactory) -> None:
    store = contract_store_factory()

    await store.open()
    stored = await store.append("a", _created("a1"))
    await store.close()

    assert _versions(stored) == [1]
    with pytest.raises(StoreClosedError):
        await store.last_position()


async def test_an_empty_append_still_checks_its_expected_version(
    contract_store: EventStore,
) -> None:
    await contract_store.append("a", [TodoCreated(description="x")])

    with pytest.raises(ConcurrencyError) as caught:
        await contract_store.append("a", [], expected_version=0)
    unchanged = await contract_store.append("a", [], expected_version=1)

    assert (caught.value.expected_version, caught.value.actual_version) == (0, 1)
    assert unchanged == []


async def test_a_stream_id_that_is_not_valid_unicode_is_refused_and_writes_nothing(
    contract_store: EventStore,
) -> None:
    async def append_good(i: int) -> None:
        await contract_store.append(f"good-{i}", [TodoCreated(description=str(i))])

    async with anyio.create_task_group() as tg:
        for i in range(5):
            tg.start_soon(append_good, i)
        with pytest.raises(ValueError, match="not valid Unicode"):
            await contract_store.append("bad-\ud800", [TodoCreated(description="x")])

    stored = [str(getattr(e, "description", "")) async for e in contract_store.read_all()]
    assert sorted(stored) == ["0", "1", "2", "3", "4"]


async def test_positions_and_versions_beyond_any_stored_read_nothing(
    contract_store: EventStore,
) -> None:
    await contract_store.append("a", [TodoCreated(description="x")])

    assert await contract_store.read_stream("a", from_version=2**63) == []
    assert [e async for e in contract_store.read_all(from_position=2**63)] == []


async def test_a_second_store_on_durable_data_reads_what_the_first_appended(
    contract_store_factory: StoreFactory,
) -> None:
    first = contract_store_factory()
    requires(first, "durable")
    async with first:
        stored = await first.append("a", _created("a1", "a2"))

    async with contract_store_factory() as second:
        read = await second.read_stream("a")
        log = await _read_all(second)

    assert read == stored
    assert log == stored
