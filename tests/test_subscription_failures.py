"""Subscriptions under failure: transient store errors, a lost hold, stored types with no class."""

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import anyio
import pytest

from eventuality import (
    Event,
    EventStore,
    Projection,
    StoreBusyError,
    StoreConnectionError,
    Subscription,
    SubscriptionLocked,
    Transaction,
    TransientStoreError,
    UnknownEventType,
    _progress,
)
from eventuality.stores.rows import AppendRequest, to_row
from tests.domain import Todo, TodoCreated


@pytest.fixture(autouse=True)
def _quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_progress, "RETRY_FIRST", 0.001)


async def _fill(store: EventStore, todos: int, start: int = 0) -> list[int]:
    positions: list[int] = []
    for i in range(start, start + todos):
        todo = Todo.create(id=str(i), description=f"t{i}")
        todo.rename(f"r{i}")
        stored = await store.append(todo.stream_id, todo.pending_events, expected_version=0)
        positions += [event.position or 0 for event in stored]
    return positions


async def _append_unknown(store: EventStore, stream_id: str = "Ghost-1") -> int:
    """Store an event whose type no class in this process has; return its position."""
    row = to_row(stream_id, TodoCreated(description="from a removed class"))
    request = AppendRequest(stream_id, None, (row._replace(event_type="GhostRemoved"),))
    (stored,) = await store.backend.append([request])
    return stored.position


def _fail(store: EventStore, method: str, error: Exception, times: int, after: int = 0) -> None:
    """Make the backend's ``method`` raise ``error`` on calls ``after + 1`` to ``after + times``."""
    backend = store.backend
    original = getattr(backend, method)
    calls = 0

    async def failing(*args: Any) -> Any:
        nonlocal calls
        calls += 1
        if after < calls <= after + times:
            raise error
        return await original(*args)

    setattr(backend, method, failing)


class Recorder:
    def __init__(self) -> None:
        self.positions: list[int] = []
        self.changed = anyio.Event()

    async def __call__(self, event: Event) -> None:
        self.positions.append(event.position or 0)
        self.changed.set()
        self.changed = anyio.Event()

    async def wait_for(self, count: int) -> None:
        with anyio.fail_after(10):
            while len(self.positions) < count:
                await self.changed.wait()


TRANSIENT = [
    StoreConnectionError("connection lost"),
    StoreBusyError("database is locked"),
    TransientStoreError("a third-party backend's passing failure"),
    SubscriptionLocked("lost the hold"),
]


@pytest.mark.parametrize("error", TRANSIENT, ids=lambda e: type(e).__name__)
async def test_run_resumes_after_a_transient_error_reading_the_log(
    store: EventStore, error: Exception, caplog: pytest.LogCaptureFixture
) -> None:
    stored = await _fill(store, 3)
    _fail(store, "read_log", error, times=2)
    recorder = Recorder()

    async with anyio.create_task_group() as tg:
        tg.start_soon(Subscription(store, "resilient", recorder, checkpoint_every=1).run)
        await recorder.wait_for(len(stored))
        tg.cancel_scope.cancel()

    assert recorder.positions == stored
    assert await store.get_checkpoint("resilient") == stored[-1]
    assert type(error).__name__ in caplog.text


async def test_run_resumes_from_the_checkpoint_after_a_failed_checkpoint_write(
    store: EventStore,
) -> None:
    stored = await _fill(store, 3)
    _fail(store, "set_checkpoint", StoreConnectionError("connection lost"), times=2, after=3)
    recorder = Recorder()

    async with anyio.create_task_group() as tg:
        tg.start_soon(Subscription(store, "resilient", recorder, checkpoint_every=1).run)
        await recorder.wait_for(len(stored) + 1)
        tg.cancel_scope.cancel()

    assert recorder.positions == stored[:3] + stored[2:]  # the unsaved one comes again
    assert await store.get_checkpoint("resilient") == stored[-1]


async def test_run_takes_the_hold_again_after_losing_it(
    store: EventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    stored = await _fill(store, 2)
    backend = store.backend
    original: Callable[[str], AbstractAsyncContextManager[None]] = backend.hold_name
    holds: list[anyio.CancelScope] = []

    @asynccontextmanager
    async def losable_hold(name: str) -> AsyncIterator[None]:
        async with original(name):
            with anyio.CancelScope() as scope:
                holds.append(scope)
                yield
            if scope.cancelled_caught:
                raise SubscriptionLocked(f"lost the hold on {name!r}")

    monkeypatch.setattr(backend, "hold_name", losable_hold)
    recorder = Recorder()

    async with anyio.create_task_group() as tg:
        tg.start_soon(Subscription(store, "held", recorder, checkpoint_every=1).run)
        await recorder.wait_for(len(stored))
        holds[0].cancel()
        stored += await _fill(store, 1, start=2)
        await recorder.wait_for(len(stored))
        tg.cancel_scope.cancel()

    assert len(holds) == 2
    assert recorder.positions == stored


async def test_catch_up_raises_a_transient_error(store: EventStore) -> None:
    await _fill(store, 1)
    _fail(store, "read_log", StoreConnectionError("connection lost"), times=1)

    with pytest.raises(StoreConnectionError):
        await Subscription(store, "once", Recorder()).catch_up()

    assert await store.get_checkpoint("once") == 0


async def test_run_still_stops_on_a_handler_error(store: EventStore) -> None:
    await _fill(store, 1)

    async def broken(event: Event) -> None:
        raise StoreConnectionError("raised by the handler itself")

    with anyio.fail_after(10), pytest.raises(StoreConnectionError, match="handler itself"):
        await Subscription(store, "broken", broken).run()


async def test_an_unknown_event_type_stops_a_subscription_by_default(store: EventStore) -> None:
    before = await _fill(store, 1)
    unknown = await _append_unknown(store)
    await _fill(store, 1, start=1)
    recorder = Recorder()

    with pytest.raises(UnknownEventType) as caught:
        await Subscription(store, "strict", recorder).catch_up()

    assert caught.value.event_type == "GhostRemoved"
    assert (caught.value.stream_id, caught.value.position) == ("Ghost-1", unknown)
    assert f"position {unknown}" in str(caught.value)
    assert recorder.positions == before
    assert await store.get_checkpoint("strict") == before[-1]


async def test_on_unknown_skip_moves_past_an_unknown_event_and_goes_on(
    store: EventStore, caplog: pytest.LogCaptureFixture
) -> None:
    stored = await _fill(store, 1)
    unknown = await _append_unknown(store)
    stored += await _fill(store, 1, start=1)
    recorder = Recorder()

    with caplog.at_level(logging.WARNING, logger="eventuality"):
        handled = await Subscription(store, "lenient", recorder, on_unknown="skip").catch_up()

    assert handled == len(stored)
    assert recorder.positions == stored
    assert await store.get_checkpoint("lenient") == stored[-1]
    assert "GhostRemoved" in caplog.text
    assert "'Ghost-1'" in caplog.text
    assert f"position {unknown}" in caplog.text


async def test_a_skipping_projection_moves_its_checkpoint_past_an_unknown_last_event(
    store: EventStore,
) -> None:
    stored = await _fill(store, 2)
    unknown = await _append_unknown(store)
    seen: list[int] = []

    async def project(event: Event, tx: Transaction) -> None:
        seen.append(event.position or 0)

    await store.wait_appended(unknown - 1, 10)  # PostgreSQL: readable once older writes end
    handled = await Projection(store, "lenient", project, on_unknown="skip").catch_up()

    assert handled == len(stored)
    assert seen == stored
    assert await store.get_checkpoint("lenient") == unknown


async def test_a_strict_projection_commits_the_events_before_an_unknown_one(
    store: EventStore,
) -> None:
    before = await _fill(store, 2)
    await _append_unknown(store)
    await _fill(store, 1, start=2)

    async def project(event: Event, tx: Transaction) -> None:
        pass

    with pytest.raises(UnknownEventType):
        await Projection(store, "strict", project).catch_up()

    assert await store.get_checkpoint("strict") == before[-1]


async def test_on_unknown_refuses_a_value_it_does_not_know(store: EventStore) -> None:
    with pytest.raises(ValueError, match="on_unknown"):
        Subscription(store, "typo", Recorder(), on_unknown="ignore")  # type: ignore[arg-type]
