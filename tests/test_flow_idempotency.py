"""Idempotent commands: Flow.dispatch records each command's key with its events, and a repeat
runs nothing, stores nothing, publishes nothing and returns the first dispatch's events."""

from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest

from eventuality import (
    Command,
    Event,
    EventBus,
    EventStore,
    IdempotencyKeyReused,
    KeepCommands,
    Repository,
    Subscription,
    SubscriptionRunner,
    UnsupportedOperation,
)
from eventuality.flow import Flow
from tests._readme import readme_block, run_python
from tests.domain import CreateTodo, MarkAsCompleted, RenameTodo, Todo
from tests.stores.log_only import LogOnlyStore

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Bench:
    """A flow on ``store`` with Todo handlers that count their runs, and a bus that keeps
    what it published."""

    store: EventStore
    flow: Flow
    runs: list[Command] = field(default_factory=list)
    published: list[Event] = field(default_factory=list)


def _bench(store: EventStore, **options: Any) -> Bench:
    todos = Repository(Todo, store)
    bench = Bench(store, Flow(store=store, **options))
    bench.flow.bus = EventBus(listeners={Event: [bench.published.append]})

    @bench.flow.handles(CreateTodo)
    async def create(command: CreateTodo) -> None:
        bench.runs.append(command)
        await todos.add(id=command.id, description=command.description)

    @bench.flow.handles(RenameTodo)
    async def rename(command: RenameTodo) -> list[Event]:
        bench.runs.append(command)
        await anyio.sleep(0)
        return (await todos.load(command.id)).rename(command.description)

    @bench.flow.handles(MarkAsCompleted)
    async def complete(command: MarkAsCompleted) -> list[Event]:
        bench.runs.append(command)
        return (await todos.load(command.id)).complete()

    return bench


@pytest.fixture
def bench(store: EventStore) -> Bench:
    return _bench(store)


async def _log(store: EventStore) -> list[Event]:
    return [event async for event in store.read_all()]


# --- a repeat ------------------------------------------------------------------------------


async def test_a_repeated_command_returns_the_first_events_and_runs_nothing(bench: Bench) -> None:
    command = CreateTodo(id="t1", description="once")
    first = await bench.flow.dispatch(command)

    again = await bench.flow.dispatch(command)

    assert again == first
    assert again[0].position is not None
    assert len(bench.runs) == 1
    assert await bench.store.read_stream("Todo-t1") == first
    assert bench.published == first


async def test_a_rebuilt_command_with_the_same_key_is_the_same_command(bench: Bench) -> None:
    first = await bench.flow.dispatch(CreateTodo(id="t1", description="once"), idempotency_key="r1")

    again = await bench.flow.dispatch(
        CreateTodo(id="t1", description="once", metadata={"try": 2}), idempotency_key="r1"
    )

    assert again == first
    assert len(bench.runs) == 1


async def test_without_a_key_each_new_command_runs(bench: Bench) -> None:
    await bench.flow.dispatch(CreateTodo(id="t1", description="a"))

    renamed = await bench.flow.dispatch(RenameTodo(id="t1", description="b"))
    renamed_again = await bench.flow.dispatch(RenameTodo(id="t1", description="c"))

    assert [e.payload for e in renamed + renamed_again] == [
        {"description": "b"},
        {"description": "c"},
    ]
    assert len(bench.runs) == 3


async def test_a_repeat_after_other_commits_returns_the_first_events_as_stored(
    bench: Bench,
) -> None:
    await bench.flow.dispatch(CreateTodo(id="t1", description="a"))
    rename = RenameTodo(id="t1", description="b")
    first = await bench.flow.dispatch(rename)
    await bench.flow.dispatch(RenameTodo(id="t1", description="c"))

    again = await bench.flow.dispatch(rename)

    assert again == first
    assert again[0].aggregate_version == 2
    assert (await Repository(Todo, bench.store).load("t1")).description == "c"


async def test_a_dispatch_that_changed_nothing_is_remembered(bench: Bench) -> None:
    await bench.flow.dispatch(CreateTodo(id="t1", description="a"))
    same_name = RenameTodo(id="t1", description="a")
    assert await bench.flow.dispatch(same_name) == []

    await bench.flow.dispatch(RenameTodo(id="t1", description="b"))
    again = await bench.flow.dispatch(same_name)

    assert again == []
    assert bench.runs.count(same_name) == 1
    assert (await bench.store.recorded_command(str(same_name.command_id))) is not None


async def test_a_repeat_publishes_nothing(bench: Bench) -> None:
    command = CreateTodo(id="t1", description="once")
    first = await bench.flow.dispatch(command)

    await bench.flow.dispatch(command)
    await bench.flow.dispatch(command, idempotency_key=str(command.command_id))

    assert bench.published == first


async def test_a_failed_dispatch_is_not_remembered(store: EventStore) -> None:
    bench = _bench(store)
    calls = 0

    class Flaky(Command):
        id: str

    todos = Repository(Todo, store)

    @bench.flow.handles(Flaky)
    async def flaky(command: Flaky) -> None:
        nonlocal calls
        calls += 1
        await todos.add(id=command.id, description="x")
        if calls == 1:
            raise RuntimeError("first try fails")

    command = Flaky(id="t1")
    with pytest.raises(RuntimeError):
        await bench.flow.dispatch(command)

    stored = await bench.flow.dispatch(command)

    assert [e.aggregate_id for e in stored] == ["t1"]
    assert calls == 2


# --- the same key, another command -----------------------------------------------------------


async def test_the_same_key_with_another_command_type_is_refused(bench: Bench) -> None:
    create = CreateTodo(id="t1", description="a")
    await bench.flow.dispatch(create, idempotency_key="k")

    with pytest.raises(IdempotencyKeyReused) as raised:
        await bench.flow.dispatch(MarkAsCompleted(id="t1"), idempotency_key="k")

    error = raised.value
    assert (error.key, error.first_type, error.command_type) == (
        "k",
        "CreateTodo",
        "MarkAsCompleted",
    )
    assert error.first_id == str(create.command_id)
    assert "CreateTodo" in str(error)
    assert "MarkAsCompleted" in str(error)
    assert len(bench.runs) == 1
    assert len(await _log(bench.store)) == 1


async def test_the_same_key_with_another_payload_is_refused(bench: Bench) -> None:
    await bench.flow.dispatch(CreateTodo(id="t1", description="a"), idempotency_key="k")

    with pytest.raises(IdempotencyKeyReused, match="different payload"):
        await bench.flow.dispatch(CreateTodo(id="t2", description="a"), idempotency_key="k")

    assert len(bench.runs) == 1
    assert await bench.store.stream_version("Todo-t2") == 0


async def test_reusing_a_command_id_as_a_key_for_another_command_is_refused(
    bench: Bench,
) -> None:
    create = CreateTodo(id="t1", description="a")
    await bench.flow.dispatch(create)

    with pytest.raises(IdempotencyKeyReused):
        await bench.flow.dispatch(
            RenameTodo(id="t1", description="b"), idempotency_key=str(create.command_id)
        )


# --- bad keys ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "error"),
    [
        ("", ValueError),
        ("nul\x00", ValueError),
        ("k" * 1025, ValueError),
        ("lone \ud800", ValueError),
        (42, TypeError),
        (b"bytes", TypeError),
    ],
    ids=["empty", "nul", "too-long", "lone-surrogate", "int", "bytes"],
)
async def test_a_bad_key_is_refused_before_anything_runs(
    bench: Bench, key: Any, error: type[Exception]
) -> None:
    with pytest.raises(error, match="idempotency key"):
        await bench.flow.dispatch(CreateTodo(id="t1", description="a"), idempotency_key=key)

    assert bench.runs == []
    assert await _log(bench.store) == []


# --- concurrent duplicates --------------------------------------------------------------


async def test_concurrent_duplicates_in_one_process_commit_once(bench: Bench) -> None:
    returned: list[list[Event]] = []

    async def dispatch() -> None:
        returned.append(
            await bench.flow.dispatch(CreateTodo(id="t1", description="once"), idempotency_key="k")
        )

    async with anyio.create_task_group() as tg:
        for _ in range(20):
            tg.start_soon(dispatch)

    assert len(returned) == 20
    assert all(events == returned[0] for events in returned)
    assert len(bench.runs) == 1
    assert await _log(bench.store) == returned[0]
    assert bench.published == returned[0]


async def test_concurrent_duplicates_from_two_flows_commit_once(store: EventStore) -> None:
    benches = [_bench(store) for _ in range(4)]
    returned: list[list[Event]] = []

    async def dispatch(bench: Bench) -> None:
        command = RenameTodo(id="t1", description="b")
        returned.append(await bench.flow.dispatch(command, idempotency_key="k"))

    await benches[0].flow.dispatch(CreateTodo(id="t1", description="a"))
    async with anyio.create_task_group() as tg:
        for n in range(20):
            tg.start_soon(dispatch, benches[n % 4])

    assert all(events == returned[0] for events in returned)
    assert [e.aggregate_version for e in returned[0]] == [2]
    assert await Repository(Todo, store).load("t1") is not None
    assert await store.stream_version("Todo-t1") == 2


# --- wait_for, stores without the tier, no idempotency -------------------------------------


async def test_a_repeat_waits_for_subscriptions_to_reach_the_first_events(
    store: EventStore,
) -> None:
    bench = _bench(store)
    seen: list[Event] = []

    async def slow(event: Event) -> None:
        await anyio.sleep(0.02)
        seen.append(event)

    command = CreateTodo(id="t1", description="once")
    first = await bench.flow.dispatch(command)

    async with SubscriptionRunner(Subscription(store, "slow", slow)):
        again = await bench.flow.dispatch(command, wait_for=["slow"])

        assert seen == first
    assert again == first


async def test_a_store_without_the_commands_tier_dispatches_without_keys() -> None:
    store = LogOnlyStore()
    async with store:
        bench = _bench(store)
        command = CreateTodo(id="t1", description="a")
        await bench.flow.dispatch(command)

        with pytest.raises(UnsupportedOperation, match="idempotency_key"):
            await bench.flow.dispatch(RenameTodo(id="t1", description="b"), idempotency_key="k")

        assert not store.capabilities.commands
        assert len(bench.runs) == 1


async def test_a_flow_with_idempotency_none_records_nothing(store: EventStore) -> None:
    bench = _bench(store, idempotency=None)
    command = CreateTodo(id="t1", description="a")
    await bench.flow.dispatch(command)

    with pytest.raises(ValueError, match="idempotency=None"):
        await bench.flow.dispatch(command, idempotency_key="k")

    assert await store.recorded_command(str(command.command_id)) is None


async def test_a_flow_without_a_store_checks_the_key_at_the_commit(store: EventStore) -> None:
    todos = Repository(Todo, store)
    flow = Flow()
    runs = 0

    @flow.handles(RenameTodo)
    async def rename(command: RenameTodo) -> list[Event]:
        nonlocal runs
        runs += 1
        return (await todos.load(command.id)).rename(command.description)

    await todos.add(id="t1", description="a")
    first = await flow.dispatch(RenameTodo(id="t1", description="b"), idempotency_key="k")

    again = await flow.dispatch(RenameTodo(id="t1", description="b"), idempotency_key="k")

    assert again == first
    assert await store.stream_version("Todo-t1") == 2


# --- expiry --------------------------------------------------------------------------------


async def test_a_key_pruned_by_count_runs_again(store: EventStore) -> None:
    bench = _bench(store, idempotency=KeepCommands(max_age=None, max_count=1))
    await bench.flow.dispatch(CreateTodo(id="t1", description="a"))
    rename = RenameTodo(id="t1", description="b")
    await bench.flow.dispatch(rename)
    await bench.flow.dispatch(RenameTodo(id="t1", description="c"))

    pruned = await bench.flow.prune_commands()
    again = await bench.flow.dispatch(rename)

    assert pruned == 2
    assert [e.payload for e in again] == [{"description": "b"}]
    assert bench.runs.count(rename) == 2


async def test_a_key_younger_than_max_age_is_kept(store: EventStore) -> None:
    bench = _bench(store, idempotency=KeepCommands(max_age=timedelta(hours=1)))
    command = CreateTodo(id="t1", description="a")
    first = await bench.flow.dispatch(command)

    pruned = await bench.flow.prune_commands()

    assert pruned == 0
    assert await bench.flow.dispatch(command) == first


async def test_a_key_older_than_max_age_is_pruned(store: EventStore) -> None:
    bench = _bench(store, idempotency=KeepCommands(max_age=timedelta(microseconds=1)))
    command = CreateTodo(id="t1", description="a")
    await bench.flow.dispatch(command)
    await anyio.sleep(0.01)

    pruned = await bench.flow.prune_commands()

    assert pruned == 1
    assert await store.recorded_command(str(command.command_id)) is None


@pytest.mark.parametrize(
    "options",
    [{"max_age": timedelta(0)}, {"max_count": 0}, {"batch": 0}, {"max_age": 7}],
    ids=["zero-age", "zero-count", "zero-batch", "int-age"],
)
def test_a_bad_policy_is_refused(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=next(iter(options))):
        KeepCommands(**options)


# --- the README ----------------------------------------------------------------------------


def test_readme_idempotency_example_runs_in_an_empty_folder_and_again(tmp_path: Path) -> None:
    (tmp_path / "deposit.py").write_text(readme_block("idempotency-example"))

    first = run_python(tmp_path, "deposit.py")
    second = run_python(tmp_path, "deposit.py")

    expected = [
        "balance 50, handler runs 1",
        "retry: same events True",
        "refused: req-1",
        "pruned 0",
    ]
    assert first.splitlines() == expected
    assert second.splitlines() == [expected[0].replace("runs 1", "runs 0"), *expected[1:]]
