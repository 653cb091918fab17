"""Durable subscriptions, exactly-once projections, the runner and read-your-writes."""

import contextlib
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import anyio
import pytest

from eventuality import (
    CheckpointConflict,
    Event,
    EventStore,
    Flow,
    Projection,
    Repository,
    SQLiteEventStore,
    Subscription,
    SubscriptionRunner,
    SubscriptionTimeout,
    Transaction,
    TransactionError,
    UnknownSubscription,
    wait_for_subscriptions,
)
from tests.domain import CreateTodo, Todo, TodoCreated, TodoRenamed

ROOT = Path(__file__).resolve().parents[1]


async def _save(store: EventStore, todo_id: str, *descriptions: str) -> list[Event]:
    """Create todo ``todo_id`` with the first description, renamed to each of the others."""
    todo = Todo.create(id=todo_id, description=descriptions[0])
    for description in descriptions[1:]:
        todo.rename(description)
    return await store.append(todo.stream_id, todo.pending_events, expected_version=0)


def _positions(events: list[Event]) -> list[int]:
    return [event.position or 0 for event in events]


def _sql(store: EventStore | Transaction, text: str) -> str:
    """``text`` with ``?`` placeholders turned into the store's own."""
    if store.paramstyle == "qmark":
        return text
    parts = text.split("?")
    return parts[0] + "".join(f"${i}{part}" for i, part in enumerate(parts[1:], 1))


async def _fill(store: EventStore, todos: int) -> list[Event]:
    """Add ``todos`` todos of two events each, numbered on from those already stored."""
    first = len([event async for event in store.read_all()]) // 2
    stored: list[Event] = []
    for i in range(first, first + todos):
        stored += await _save(store, str(i), f"t{i}", f"r{i}")
    return stored


class Recorder:
    """A subscription handler that remembers positions and can fail on one of them."""

    def __init__(self, fail_at: int | None = None) -> None:
        self.positions: list[int] = []
        self.fail_at = fail_at

    async def __call__(self, event: Event) -> None:
        if event.position == self.fail_at:
            raise RuntimeError(f"cannot handle {event.position}")
        self.positions.append(event.position or 0)


async def test_catch_up_handles_every_event_in_order_and_stores_the_checkpoint(
    store: EventStore,
) -> None:
    stored = _positions(await _fill(store, 5))
    recorder = Recorder()

    handled = await Subscription(store, "all", recorder).catch_up()

    assert handled == 10
    assert recorder.positions == stored
    assert await store.get_checkpoint("all") == stored[-1]


async def test_a_new_instance_continues_from_the_stored_checkpoint(store: EventStore) -> None:
    await _fill(store, 2)
    await Subscription(store, "resume", Recorder()).catch_up()
    later = _positions(await _fill(store, 1))
    recorder = Recorder()

    handled = await Subscription(store, "resume", recorder).catch_up()

    assert handled == 2
    assert recorder.positions == later


async def test_a_failing_handler_stops_with_its_error_and_the_event_comes_again(
    store: EventStore,
) -> None:
    stored = _positions(await _fill(store, 5))
    failing = Recorder(fail_at=stored[6])

    with pytest.raises(RuntimeError, match=f"cannot handle {stored[6]}"):
        await Subscription(store, "retry", failing, checkpoint_every=100).catch_up()
    checkpoint = await store.get_checkpoint("retry")
    again = Recorder()
    await Subscription(store, "retry", again).catch_up()

    assert failing.positions == stored[:6]
    assert checkpoint == stored[5]
    assert again.positions == stored[6:]


async def test_a_type_filter_delivers_only_those_types_and_moves_past_the_others(
    store: EventStore,
) -> None:
    stored = _positions(await _fill(store, 3))
    by_class, by_name = Recorder(), Recorder()

    await Subscription(store, "renamed", by_class, event_types=[TodoRenamed]).catch_up()
    await Subscription(store, "created", by_name, event_types=["TodoCreated"]).catch_up()

    assert by_class.positions == stored[1::2]
    assert by_name.positions == stored[0::2]
    assert await store.get_checkpoint("created") == stored[-1]


async def test_run_receives_events_appended_later_by_other_tasks_in_order_exactly_once(
    store: EventStore,
) -> None:
    recorder = Recorder()
    subscription = Subscription(store, "live", recorder)
    appended: list[int] = []

    async def append_from(task: int) -> None:
        for i in range(10):
            stored = await store.append(f"Todo-{task}-{i}", [TodoCreated(description="x")])
            appended.extend(_positions(stored))
            await anyio.sleep(0)

    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            tg.start_soon(subscription.run)
            async with anyio.create_task_group() as writers:
                for task in range(5):
                    writers.start_soon(append_from, task)
            while len(recorder.positions) < 50:
                await anyio.sleep(0.01)
            tg.cancel_scope.cancel()

    assert recorder.positions == sorted(appended)
    assert await store.get_checkpoint("live") == max(appended)


async def test_an_idle_run_makes_only_a_few_store_reads_per_second(store: EventStore) -> None:
    await _fill(store, 1)
    backend = store.backend
    calls = Counter[str]()
    for method in ("read_log", "last_position", "get_checkpoint", "read_stream"):
        original = getattr(backend, method)

        def counted(*args: object, _original: object = original, _name: str = method) -> object:
            calls[_name] += 1
            return _original(*args)  # type: ignore[operator]

        setattr(backend, method, counted)
    subscription = Subscription(store, "idle", Recorder())

    async with anyio.create_task_group() as tg:
        tg.start_soon(subscription.run)
        await anyio.sleep(0.2)  # let it catch up
        before, started = sum(calls.values()), anyio.current_time()
        await anyio.sleep(1.5)
        reads, elapsed = sum(calls.values()) - before, anyio.current_time() - started
        tg.cancel_scope.cancel()

    assert reads <= 5 * elapsed + 2, calls


async def test_two_instances_with_one_name_in_a_process_never_handle_an_event_twice(
    store: EventStore,
) -> None:
    stored = _positions(await _fill(store, 10))
    seen = Counter[int]()

    async def handler(event: Event) -> None:
        seen[event.position or 0] += 1
        await anyio.sleep(0)

    first = Subscription(store, "twin", handler, checkpoint_every=1)
    second = Subscription(store, "twin", handler, checkpoint_every=1)
    async with anyio.create_task_group() as tg:
        tg.start_soon(first.catch_up)
        tg.start_soon(second.catch_up)
    stored += _positions(await _fill(store, 2))
    await second.catch_up()

    assert set(seen) == set(stored)
    assert all(count == 1 for count in seen.values())


async def test_a_checkpoint_moved_by_someone_else_stops_the_subscription(
    store: EventStore,
) -> None:
    stored = _positions(await _fill(store, 3))

    async def meddle(event: Event) -> None:
        if event.position == stored[1]:
            await store.set_checkpoint("cas", stored[4], expected=stored[0])

    with pytest.raises(CheckpointConflict):
        await Subscription(store, "cas", meddle, checkpoint_every=1).catch_up()

    assert await store.get_checkpoint("cas") == stored[4]


async def _create_read_model(store: EventStore) -> None:
    async with store.transaction() as tx:
        await tx.execute(
            "CREATE TABLE IF NOT EXISTS todo_list (id TEXT PRIMARY KEY, description TEXT)"
        )


async def _project(event: Event, tx: Transaction) -> None:
    if isinstance(event, TodoRenamed) and event.description == "boom":
        await tx.execute("INSERT INTO todo_list VALUES ('half-written', 'must vanish')")
        raise ValueError("projection failed")
    await tx.execute(
        _sql(
            tx,
            "INSERT INTO todo_list (id, description) VALUES (?, ?) "
            "ON CONFLICT (id) DO UPDATE SET description = excluded.description",
        ),
        event.aggregate_id,
        getattr(event, "description", None),
    )


async def test_a_projection_commits_its_read_model_with_its_checkpoint(store: EventStore) -> None:
    await _create_read_model(store)
    stored = _positions(await _fill(store, 3))

    handled = await Projection(store, "list", _project).catch_up()

    assert handled == 6
    rows = await store.query("SELECT id, description FROM todo_list ORDER BY id")
    assert rows == [("0", "r0"), ("1", "r1"), ("2", "r2")]
    assert await store.get_checkpoint("list") == stored[-1]


async def test_a_failing_projection_handler_undoes_only_its_own_event(store: EventStore) -> None:
    await _create_read_model(store)
    await _fill(store, 2)
    created, _ = _positions(await _save(store, "9", "x", "boom"))
    await _save(store, "10", "after")

    with pytest.raises(ValueError, match="projection failed"):
        await Projection(store, "list", _project).catch_up()

    rows = dict(await store.query("SELECT id, description FROM todo_list"))
    assert rows == {"0": "r0", "1": "r1", "9": "x"}
    assert await store.get_checkpoint("list") == created


async def test_a_cancelled_projection_batch_leaves_neither_read_model_nor_checkpoint(
    store: EventStore,
) -> None:
    await _create_read_model(store)
    stored = _positions(await _fill(store, 4))
    gate = anyio.Event()

    async def stall(event: Event, tx: Transaction) -> None:
        await _project(event, tx)
        if event.position == stored[2]:
            gate.set()
            await anyio.sleep_forever()

    async with anyio.create_task_group() as tg:
        tg.start_soon(Projection(store, "list", stall, batch_size=10).catch_up)
        await gate.wait()
        tg.cancel_scope.cancel()

    assert await store.query("SELECT count(*) FROM todo_list") == [(0,)]
    assert await store.get_checkpoint("list") == 0
    assert await Projection(store, "list", _project).catch_up() == 8


def _checkpoint(path: Path, name: str) -> int:
    with contextlib.closing(sqlite3.connect(path, timeout=10)) as db:
        try:
            found = db.execute(
                "SELECT position FROM eventuality_checkpoints WHERE name = ?", (name,)
            ).fetchone()
        except sqlite3.OperationalError:  # the child has not created the schema yet
            return 0
    return 0 if found is None else int(found[0])


@pytest.mark.slow
def test_a_projection_killed_at_random_moments_ends_equal_to_one_clean_pass(
    tmp_path: Path,
) -> None:
    path = tmp_path / "projection.db"

    async def fill() -> None:
        async with SQLiteEventStore(path) as store:
            for i in range(400):
                todo = Todo.create(id=str(i), description=str(i))
                for n in range(i % 7):
                    todo.rename(f"{i}.{n}")
                todo.complete()
                await store.append(todo.stream_id, todo.pending_events, expected_version=0)

    anyio.run(fill)
    rng = random.Random(7)
    kills = 0
    for _ in range(15):
        child = subprocess.Popen(
            [sys.executable, "-m", "tests._projection_child", str(path), "25"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        start = _checkpoint(path, "todo-counts")
        target = start + rng.randint(1, 200)
        while child.poll() is None:
            if _checkpoint(path, "todo-counts") >= target:
                time.sleep(rng.uniform(0, 0.005))
                child.send_signal(signal.SIGKILL)
                kills += 1
                break
            time.sleep(0.001)
        _, err = child.communicate()
        assert child.returncode in (0, -signal.SIGKILL), err

    final = subprocess.run(
        [sys.executable, "-m", "tests._projection_child", str(path), "25"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert final.returncode == 0, final.stderr
    assert kills > 0
    with contextlib.closing(sqlite3.connect(path)) as db:
        counts = dict(db.execute("SELECT id, n FROM todo_counts").fetchall())
        seen = db.execute("SELECT count(*), min(position), max(position) FROM todo_seen").fetchone()
        total = db.execute("SELECT count(*) FROM eventuality_events").fetchone()[0]
        checkpoint = db.execute(
            "SELECT position FROM eventuality_checkpoints WHERE name = 'todo-counts'"
        ).fetchone()[0]
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert counts == {str(i): 2 + i % 7 for i in range(400)}
    assert seen == (total, 1, total)
    assert checkpoint == total


async def test_dispatch_waits_for_named_subscriptions_to_handle_its_events(
    store: EventStore,
) -> None:
    read_model: dict[str, str] = {}

    async def slow_projection(event: Event) -> None:
        await anyio.sleep(0.05)
        if isinstance(event, TodoCreated):
            read_model[event.aggregate_id or ""] = event.description

    todos = Repository(Todo, store)
    flow = Flow(store=store)

    @flow.handles(CreateTodo)
    async def create(command: CreateTodo) -> None:
        await todos.add(id=command.id, description=command.description)

    async with SubscriptionRunner(Subscription(store, "read-model", slow_projection)):
        for i in range(3):
            await flow.dispatch(CreateTodo(id=f"t{i}", description=str(i)), wait_for=["read-model"])

            assert read_model.get(f"t{i}") == str(i)


async def test_waiting_for_a_failed_subscription_raises_at_once(store: EventStore) -> None:
    async def broken(event: Event) -> None:
        raise RuntimeError("broken read model")

    flow = Flow(store=store)
    todos = Repository(Todo, store)

    @flow.handles(CreateTodo)
    async def create(command: CreateTodo) -> None:
        await todos.add(id=command.id, description=command.description)

    async with SubscriptionRunner(Subscription(store, "broken", broken)) as runner:
        with anyio.fail_after(5), pytest.raises(SubscriptionTimeout, match="stopped on an error"):
            await flow.dispatch(
                CreateTodo(id="x", description="x"), wait_for=["broken"], wait_timeout=60
            )

    assert isinstance(runner.statistics()[0].error, RuntimeError)
    assert await store.stream_version("Todo-x") == 1


async def test_a_wait_on_a_failed_subscription_carries_the_error_that_stopped_it(
    store: EventStore,
) -> None:
    stored = _positions(await _fill(store, 2))

    async def meddle(event: Event) -> None:  # a second instance moves the checkpoint
        if event.position == stored[0]:
            await store.set_checkpoint("meddled", stored[-1], expected=0)

    async with SubscriptionRunner(Subscription(store, "meddled", meddle, checkpoint_every=1)):
        with anyio.fail_after(5), pytest.raises(SubscriptionTimeout) as caught:
            await wait_for_subscriptions(store, ["meddled"], stored[-1] + 1, timeout=60)

    assert isinstance(caught.value.error, CheckpointConflict)
    assert caught.value.__cause__ is caught.value.error
    assert "CheckpointConflict" in str(caught.value)
    assert str(caught.value.error) in str(caught.value)


async def test_waiting_for_a_subscription_nobody_runs_times_out_with_a_clear_error(
    store: EventStore,
) -> None:
    flow = Flow(store=store)
    todos = Repository(Todo, store)

    @flow.handles(CreateTodo)
    async def create(command: CreateTodo) -> None:
        await todos.add(id=command.id, description=command.description)

    Subscription(store, "idle", Recorder())  # made here, never run

    with pytest.raises(SubscriptionTimeout, match="'idle'") as caught:
        await flow.dispatch(
            CreateTodo(id="y", description="y"), wait_for=["idle"], wait_timeout=0.1
        )

    assert caught.value.position == await store.last_position()
    assert isinstance(caught.value, TimeoutError)


async def test_waiting_for_a_misspelt_subscription_raises_unknown_subscription_at_once(
    store: EventStore,
) -> None:
    flow = Flow(store=store)
    todos = Repository(Todo, store)

    @flow.handles(CreateTodo)
    async def create(command: CreateTodo) -> None:
        await todos.add(id=command.id, description=command.description)

    async with SubscriptionRunner(Subscription(store, "read-model", Recorder())):
        with anyio.fail_after(5), pytest.raises(UnknownSubscription) as caught:
            await flow.dispatch(
                CreateTodo(id="y", description="y"), wait_for=["read_model"], wait_timeout=60
            )

    assert caught.value.name == "read_model"
    assert caught.value.known == ["read-model"]
    assert await store.stream_version("Todo-y") == 1


async def test_a_subscription_stores_its_checkpoint_when_it_starts_on_an_empty_log(
    store: EventStore,
) -> None:
    await Subscription(store, "fresh", Recorder()).catch_up()

    checkpoint = await store.get_checkpoint("fresh")

    assert checkpoint == 0


async def test_a_checkpoint_written_by_another_process_satisfies_a_wait(store: EventStore) -> None:
    flow = Flow(store=store)
    todos = Repository(Todo, store)

    @flow.handles(CreateTodo)
    async def create(command: CreateTodo) -> None:
        await todos.add(id=command.id, description=command.description)

    await store.set_checkpoint("remote", 0, expected=None)  # as a remote subscription does

    async def elsewhere() -> None:
        while (position := await store.last_position()) == 0:
            await anyio.sleep(0.01)
        await store.set_checkpoint("remote", position, expected=0)

    async with anyio.create_task_group() as tg:
        tg.start_soon(elsewhere)
        events = await flow.dispatch(
            CreateTodo(id="z", description="z"), wait_for=["remote"], wait_timeout=10
        )

    assert await store.get_checkpoint("remote") == events[0].position


async def test_runner_keeps_others_going_when_one_fails_and_saves_checkpoints_on_exit(
    store: EventStore,
) -> None:
    stored = _positions(await _fill(store, 3))
    good = Recorder()
    bad = Recorder(fail_at=stored[1])

    async with SubscriptionRunner(
        Subscription(store, "good", good), Subscription(store, "bad", bad)
    ) as runner:
        with anyio.fail_after(10):
            while len(good.positions) < 6:
                await anyio.sleep(0.01)
        stored += _positions(await _fill(store, 1))
        with anyio.fail_after(10):
            while len(good.positions) < 8:
                await anyio.sleep(0.01)
        statistics = {s.name: s for s in runner.statistics()}

    assert good.positions == stored
    assert bad.positions == stored[:1]
    assert statistics["good"].running
    assert not statistics["bad"].running
    assert await store.get_checkpoint("good") == stored[-1]
    assert await store.get_checkpoint("bad") == stored[0]


async def test_cancelling_a_subscription_never_turns_into_a_checkpoint_conflict(
    store: EventStore,
) -> None:
    await _fill(store, 30)
    outcomes: list[str] = []

    async def handler(event: Event) -> None:
        await anyio.sleep(0)

    for i in range(40):
        try:
            with anyio.move_on_after(0.0005 * (i % 10)):
                await Subscription(store, "sweep", handler, checkpoint_every=1).catch_up()
            outcomes.append("ok")
        except CheckpointConflict:
            outcomes.append("conflict")

    assert "conflict" not in outcomes
    assert await Subscription(store, "sweep", handler).catch_up() >= 0


async def test_appending_inside_a_projection_handler_is_refused_clearly(store: EventStore) -> None:
    await _create_read_model(store)
    await _fill(store, 1)
    todos = Repository(Todo, store)

    async def appends(event: Event, tx: Transaction) -> None:
        await todos.add(id=f"echo-{event.position}", description="no")

    async def appends_from_a_child_task(event: Event, tx: Transaction) -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(store.append, "echo", [TodoCreated(description="no")])

    with anyio.fail_after(10), pytest.raises(TransactionError, match="Subscription"):
        await Projection(store, "echo", appends).catch_up()
    with anyio.fail_after(10), pytest.raises(BaseExceptionGroup) as caught:
        await Projection(store, "echo-child", appends_from_a_child_task).catch_up()

    assert caught.group_contains(TransactionError)
    assert await store.stream_version("echo") == 0
    assert await store.get_checkpoint("echo") == 0


async def test_a_query_never_sees_what_an_open_transaction_has_not_committed(
    store: EventStore,
) -> None:
    await _create_read_model(store)
    written, rolled_back = anyio.Event(), anyio.Event()
    seen: list[list[tuple[object, ...]]] = []

    async def write_then_fail() -> None:
        try:
            async with store.transaction() as tx:
                await tx.execute(
                    _sql(tx, "INSERT INTO todo_list (id, description) VALUES (?, ?)"), "x", "y"
                )
                written.set()
                await anyio.sleep(0.05)
                raise LookupError("undo")
        except LookupError:
            rolled_back.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(write_then_fail)
        await written.wait()
        seen.append(await store.query("SELECT id FROM todo_list"))
        await rolled_back.wait()

    assert seen == [[]]
