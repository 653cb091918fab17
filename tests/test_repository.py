"""Repository: add, load (at a version, from snapshots) and save with optimistic concurrency, run
against every store (API.md section 5)."""

import json
from typing import Any, ClassVar

import pytest

from eventuality import (
    Aggregate,
    AggregateExists,
    AggregateNotFound,
    ConcurrencyError,
    Event,
    EventStore,
    EventualityError,
    Repository,
)
from eventuality.aggregate import state_fingerprint
from eventuality.stores.base import Snapshot
from tests.domain import Todo, TodoCompleted, TodoCreated, TodoRenamed


class RepoSilent(Aggregate):
    """Its create records nothing."""

    @classmethod
    def create(cls, id: str) -> "RepoSilent":
        return cls(id=id)

    def apply(self, event: Event) -> None:
        pass


class RepoNoCreate(Aggregate):
    def apply(self, event: Event) -> None:
        pass


class RepoRenamedTodo(Todo):
    aggregate_type: ClassVar[str] = "todo.v2"


def _snapshot(
    version: int, state: dict[str, Any], *, schema_version: int = 1, stream_id: str = "Todo-t1"
) -> Snapshot:
    """A snapshot of a Todo as the repository writes them: the state with the class's
    fingerprint."""
    envelope = {"fingerprint": state_fingerprint(Todo), "state": state}
    return Snapshot(
        stream_id=stream_id,
        version=version,
        aggregate_type="Todo",
        schema_version=schema_version,
        state=json.dumps(envelope, separators=(",", ":")),
    )


async def _todo_with_versions(repo: Repository[Todo], versions: int, todo_id: str = "t1") -> Todo:
    """A saved Todo at ``versions``: created as "v1", then renamed "v2", "v3", ... one save each."""
    todo = await repo.add(id=todo_id, description="v1")
    for n in range(2, versions + 1):
        todo.rename(f"v{n}")
        await repo.save(todo)
    return todo


def _recording_read_stream(store: EventStore, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Make ``store.read_stream`` note the ``from_version`` of every call; return the notes."""
    calls: list[int] = []
    read_stream = store.read_stream

    async def recording(stream_id: str, *, from_version: int = 1, **options: Any) -> list[Event]:
        calls.append(from_version)
        return await read_stream(stream_id, from_version=from_version, **options)

    monkeypatch.setattr(store, "read_stream", recording)
    return calls


# add


async def test_add_returns_the_aggregate_create_built(store: EventStore) -> None:
    todos = Repository(Todo, store)

    todo = await todos.add(id="t1", description="first")

    assert isinstance(todo, Todo)
    assert (todo.id, todo.description, todo.version) == ("t1", "first", 1)


async def test_add_saves_the_events_create_recorded(store: EventStore) -> None:
    todos = Repository(Todo, store)

    await todos.add(id="t1", description="first")

    stored = await store.read_stream("Todo-t1")
    assert [(type(e), e.aggregate_id, e.aggregate_version) for e in stored] == [
        (TodoCreated, "t1", 1)
    ]


async def test_add_clears_the_pending_events(store: EventStore) -> None:
    todos = Repository(Todo, store)

    todo = await todos.add(id="t1", description="first")

    assert todo.pending_events == ()


async def test_add_with_an_existing_id_raises_concurrency_error_and_writes_nothing(
    store: EventStore,
) -> None:
    todos = Repository(Todo, store)
    await todos.add(id="t1", description="first")

    with pytest.raises(ConcurrencyError) as caught:
        await todos.add(id="t1", description="second")

    assert (caught.value.stream_id, caught.value.expected_version) == ("Todo-t1", 0)
    assert caught.value.actual_version == 1
    assert [e.payload["description"] for e in await store.read_stream("Todo-t1")] == ["first"]


async def test_add_with_an_existing_id_raises_aggregate_exists(store: EventStore) -> None:
    todos = Repository(Todo, store)
    await todos.add(id="t1", description="first")

    with pytest.raises(AggregateExists) as caught:
        await todos.add(id="t1", description="second")

    assert (caught.value.stream_id, caught.value.actual_version) == ("Todo-t1", 1)


async def test_add_when_create_records_nothing_raises_value_error_and_writes_nothing(
    store: EventStore,
) -> None:
    silent = Repository(RepoSilent, store)

    with pytest.raises(ValueError, match="create"):
        await silent.add(id="s1")

    assert await store.last_position() == 0


async def test_add_without_a_create_classmethod_raises_type_error(store: EventStore) -> None:
    repo = Repository(RepoNoCreate, store)

    with pytest.raises(TypeError, match="create"):
        await repo.add(id="n1")

    assert await store.last_position() == 0


async def test_add_writes_to_the_stream_of_an_overridden_aggregate_type(
    store: EventStore,
) -> None:
    todos = Repository(RepoRenamedTodo, store)

    await todos.add(id="t1", description="first")

    assert await store.stream_version("todo.v2-t1") == 1
    assert await store.stream_version("Todo-t1") == 0


# load


async def test_load_rebuilds_the_state_from_the_events(store: EventStore) -> None:
    todos = Repository(Todo, store)
    todo = await todos.add(id="t1", description="first")
    todo.rename("second")
    todo.complete()
    await todos.save(todo)

    loaded = await todos.load("t1")

    assert (loaded.description, loaded.completed, loaded.version) == ("second", True, 3)


async def test_load_returns_an_instance_with_no_pending_events(store: EventStore) -> None:
    todos = Repository(Todo, store)
    await todos.add(id="t1", description="first")

    loaded = await todos.load("t1")

    assert type(loaded) is Todo
    assert loaded.id == "t1"
    assert loaded.pending_events == ()


async def test_load_of_events_appended_directly_rebuilds_the_aggregate(store: EventStore) -> None:
    todos = Repository(Todo, store)
    await store.append("Todo-t1", [TodoCreated(description="a"), TodoCompleted()])

    loaded = await todos.load("t1")

    assert (loaded.description, loaded.completed, loaded.version) == ("a", True, 2)


async def test_load_at_a_version_gives_the_state_as_of_that_version(store: EventStore) -> None:
    todos = Repository(Todo, store)
    await _todo_with_versions(todos, 4)

    loaded = await todos.load("t1", version=2)

    assert (loaded.description, loaded.version) == ("v2", 2)


async def test_load_at_the_last_version_gives_the_latest_state(store: EventStore) -> None:
    todos = Repository(Todo, store)
    await _todo_with_versions(todos, 3)

    loaded = await todos.load("t1", version=3)

    assert (loaded.description, loaded.version) == ("v3", 3)


async def test_load_of_an_unknown_id_raises_aggregate_not_found(store: EventStore) -> None:
    todos = Repository(Todo, store)

    with pytest.raises(AggregateNotFound) as caught:
        await todos.load("missing")

    assert (caught.value.aggregate_type, caught.value.aggregate_id) == ("Todo", "missing")
    assert "missing" in str(caught.value)


async def test_aggregate_not_found_from_load_is_a_lookup_error(store: EventStore) -> None:
    todos = Repository(Todo, store)

    with pytest.raises(LookupError) as caught:
        await todos.load("missing")

    assert isinstance(caught.value, AggregateNotFound)
    assert isinstance(caught.value, EventualityError)


async def test_load_of_an_id_known_to_another_aggregate_type_raises_aggregate_not_found(
    store: EventStore,
) -> None:
    await Repository(RepoRenamedTodo, store).add(id="t1", description="first")

    with pytest.raises(AggregateNotFound):
        await Repository(Todo, store).load("t1")


async def test_load_at_a_version_beyond_the_stream_raises_aggregate_not_found(
    store: EventStore,
) -> None:
    todos = Repository(Todo, store)
    await _todo_with_versions(todos, 2)

    with pytest.raises(AggregateNotFound) as caught:
        await todos.load("t1", version=3)

    assert (caught.value.aggregate_id, caught.value.version) == ("t1", 3)
    assert "3" in str(caught.value)


async def test_load_at_a_version_below_one_raises_value_error(store: EventStore) -> None:
    todos = Repository(Todo, store)
    await todos.add(id="t1", description="first")

    with pytest.raises(ValueError, match="version"):
        await todos.load("t1", version=0)


# save


async def test_save_appends_the_pending_events(store: EventStore) -> None:
    todos = Repository(Todo, store)
    todo = await todos.add(id="t1", description="first")
    todo.rename("second")
    todo.complete()

    await todos.save(todo)

    stored = await store.read_stream("Todo-t1")
    assert [type(e) for e in stored] == [TodoCreated, TodoRenamed, TodoCompleted]
    assert [e.aggregate_version for e in stored] == [1, 2, 3]


async def test_save_returns_the_events_as_stored_with_positions(store: EventStore) -> None:
    todos = Repository(Todo, store)
    todo = await todos.add(id="t1", description="first")
    recorded = [*todo.rename("second"), *todo.complete()]

    saved = await todos.save(todo)

    assert saved == await store.read_stream("Todo-t1", from_version=2)
    assert [e.event_id for e in saved] == [e.event_id for e in recorded]
    assert all(e.position is not None and e.position > 0 for e in saved)


async def test_save_clears_the_pending_events(store: EventStore) -> None:
    todos = Repository(Todo, store)
    todo = await todos.add(id="t1", description="first")
    todo.rename("second")

    await todos.save(todo)

    assert todo.pending_events == ()
    assert todo.version == 2


async def test_save_of_a_loaded_aggregate_continues_its_stream(store: EventStore) -> None:
    todos = Repository(Todo, store)
    await _todo_with_versions(todos, 2)
    todo = await todos.load("t1")
    todo.rename("v3")

    saved = await todos.save(todo)

    assert [e.aggregate_version for e in saved] == [3]
    assert (await todos.load("t1")).description == "v3"


async def test_save_twice_in_a_row_writes_the_events_once(store: EventStore) -> None:
    todos = Repository(Todo, store)
    todo = await todos.add(id="t1", description="first")
    todo.rename("second")
    await todos.save(todo)

    again = await todos.save(todo)

    assert again == []
    assert await store.stream_version("Todo-t1") == 2


async def test_save_with_nothing_pending_returns_an_empty_list_and_writes_nothing(
    store: EventStore,
) -> None:
    todos = Repository(Todo, store)
    await todos.add(id="t1", description="first")
    todo = await todos.load("t1")
    before = await store.last_position()

    saved = await todos.save(todo)

    assert saved == []
    assert await store.last_position() == before


async def test_save_of_a_stale_aggregate_raises_concurrency_error(store: EventStore) -> None:
    todos = Repository(Todo, store)
    await todos.add(id="t1", description="first")
    mine, theirs = await todos.load("t1"), await todos.load("t1")
    theirs.rename("theirs")
    await todos.save(theirs)
    mine.rename("mine")

    with pytest.raises(ConcurrencyError) as caught:
        await todos.save(mine)

    assert caught.value.stream_id == "Todo-t1"
    assert (caught.value.expected_version, caught.value.actual_version) == (1, 2)


async def test_save_of_a_stale_aggregate_writes_nothing(store: EventStore) -> None:
    todos = Repository(Todo, store)
    await todos.add(id="t1", description="first")
    mine, theirs = await todos.load("t1"), await todos.load("t1")
    theirs.rename("theirs")
    await todos.save(theirs)
    mine.rename("mine")
    mine.complete()
    before = await store.last_position()

    with pytest.raises(ConcurrencyError):
        await todos.save(mine)

    loaded = await todos.load("t1")
    assert (loaded.description, loaded.completed, loaded.version) == ("theirs", False, 2)
    assert await store.last_position() == before


async def test_save_of_an_aggregate_of_another_class_raises_type_error(store: EventStore) -> None:
    todos = Repository(Todo, store)
    silent: Any = RepoSilent(id="s1")

    with pytest.raises(TypeError, match="RepoSilent"):
        await todos.save(silent)


def test_repository_of_something_not_an_aggregate_class_raises_type_error() -> None:
    not_an_aggregate: Any = TodoCreated

    with pytest.raises(TypeError, match="Aggregate"):
        Repository(not_an_aggregate, store=None)  # type: ignore[arg-type]


# snapshots


def test_snapshot_every_below_one_raises_value_error() -> None:
    with pytest.raises(ValueError, match="snapshot_every"):
        Repository(Todo, store=None, snapshot_every=0)  # type: ignore[arg-type]


async def test_no_snapshot_is_written_before_snapshot_every_is_reached(store: EventStore) -> None:
    todos = Repository(Todo, store, snapshot_every=3)

    await _todo_with_versions(todos, 2)

    assert await store.load_snapshot("Todo-t1") is None


async def test_snapshot_is_written_when_the_version_reaches_snapshot_every(
    store: EventStore,
) -> None:
    todos = Repository(Todo, store, snapshot_every=3)

    await _todo_with_versions(todos, 3)

    snapshot = await store.load_snapshot("Todo-t1")
    assert snapshot is not None
    assert (snapshot.stream_id, snapshot.version, snapshot.aggregate_type) == ("Todo-t1", 3, "Todo")
    assert json.loads(snapshot.state)["state"]["description"] == "v3"


async def test_snapshot_is_written_when_one_save_jumps_past_a_mark(store: EventStore) -> None:
    todos = Repository(Todo, store, snapshot_every=3)
    todo = await _todo_with_versions(todos, 2)
    todo.rename("v3")
    todo.rename("v4")

    await todos.save(todo)

    snapshot = await store.load_snapshot("Todo-t1")
    assert snapshot is not None
    assert snapshot.version == 4
    assert json.loads(snapshot.state)["state"]["description"] == "v4"


async def test_snapshot_is_written_by_add_when_it_reaches_snapshot_every(
    store: EventStore,
) -> None:
    todos = Repository(Todo, store, snapshot_every=1)

    await todos.add(id="t1", description="first")

    snapshot = await store.load_snapshot("Todo-t1")
    assert snapshot is not None
    assert snapshot.version == 1


async def test_snapshot_is_written_at_every_mark(store: EventStore) -> None:
    todos = Repository(Todo, store, snapshot_every=2)

    await _todo_with_versions(todos, 5)

    versions = [
        snapshot.version
        for n in range(1, 6)
        if (snapshot := await store.load_snapshot("Todo-t1", max_version=n)) is not None
    ]
    assert sorted(set(versions)) == [2, 4]


async def test_load_from_a_snapshot_equals_a_full_replay(store: EventStore) -> None:
    with_snapshots = Repository(Todo, store, snapshot_every=2)
    await _todo_with_versions(with_snapshots, 5)

    loaded = await with_snapshots.load("t1")

    replayed = await Repository(Todo, store).load("t1")
    assert loaded.model_dump() == replayed.model_dump()
    assert (loaded.description, loaded.version) == ("v5", 5)


async def test_load_reads_only_the_events_after_the_latest_snapshot(
    store: EventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    todos = Repository(Todo, store, snapshot_every=3)
    await _todo_with_versions(todos, 4)
    from_versions = _recording_read_stream(store, monkeypatch)

    loaded = await todos.load("t1")

    assert from_versions == [4]
    assert (loaded.description, loaded.version) == ("v4", 4)


async def test_load_starts_from_the_snapshot_state(store: EventStore) -> None:
    todos = Repository(Todo, store, snapshot_every=10)
    await _todo_with_versions(todos, 3)
    state = {"id": "t1", "version": 2, "description": "from the snapshot", "completed": True}
    await store.save_snapshot(_snapshot(2, state))

    loaded = await todos.load("t1")

    assert (loaded.description, loaded.completed, loaded.version) == ("v3", True, 3)


async def test_load_at_the_snapshot_version_gives_the_snapshot_state(store: EventStore) -> None:
    todos = Repository(Todo, store, snapshot_every=10)
    await _todo_with_versions(todos, 3)
    state = {"id": "t1", "version": 2, "description": "from the snapshot", "completed": False}
    await store.save_snapshot(_snapshot(2, state))

    loaded = await todos.load("t1", version=2)

    assert (loaded.description, loaded.version) == ("from the snapshot", 2)


async def test_load_at_a_version_below_the_snapshot_replays_the_events(
    store: EventStore,
) -> None:
    todos = Repository(Todo, store, snapshot_every=3)
    await _todo_with_versions(todos, 4)

    loaded = await todos.load("t1", version=2)

    assert (loaded.description, loaded.version) == ("v2", 2)


async def test_load_at_a_version_beyond_the_stream_with_a_snapshot_raises_aggregate_not_found(
    store: EventStore,
) -> None:
    todos = Repository(Todo, store, snapshot_every=2)
    await _todo_with_versions(todos, 2)

    with pytest.raises(AggregateNotFound):
        await todos.load("t1", version=3)


async def test_snapshot_that_no_longer_fits_the_class_is_ignored(store: EventStore) -> None:
    todos = Repository(Todo, store, snapshot_every=10)
    await _todo_with_versions(todos, 3)
    state = {"id": "t1", "version": 2, "description": ["no", "longer", "a", "str"]}
    await store.save_snapshot(_snapshot(2, state))

    loaded = await todos.load("t1")

    assert (loaded.description, loaded.version) == ("v3", 3)


async def test_snapshot_of_another_schema_version_is_ignored(store: EventStore) -> None:
    todos = Repository(Todo, store, snapshot_every=10)
    await _todo_with_versions(todos, 3)
    state = {"id": "t1", "version": 2, "description": "old shape", "completed": True}
    await store.save_snapshot(_snapshot(2, state, schema_version=99))

    loaded = await todos.load("t1")

    assert (loaded.description, loaded.completed, loaded.version) == ("v3", False, 3)


async def test_ignored_snapshot_falls_back_to_reading_from_the_first_event(
    store: EventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    todos = Repository(Todo, store, snapshot_every=10)
    await _todo_with_versions(todos, 3)
    await store.save_snapshot(_snapshot(2, {"id": "t1", "version": 2, "completed": "maybe"}))
    from_versions = _recording_read_stream(store, monkeypatch)

    await todos.load("t1")

    assert from_versions == [1]


async def test_a_save_that_failed_on_a_lost_connection_can_be_retried() -> None:
    from collections.abc import Sequence

    from eventuality import EventStore, StoreConnectionError
    from eventuality.stores.base import AppendRequest, StoredEvent
    from eventuality.stores.memory import MemoryBackend

    class DropsFirstAppend(MemoryBackend):
        dropped = False

        async def append(self, requests: Sequence[AppendRequest]) -> list[StoredEvent]:
            if not self.dropped:
                self.dropped = True
                raise StoreConnectionError("the connection was lost")
            return await super().append(requests)

    store = EventStore(DropsFirstAppend())
    await store.open()
    todos = Repository(Todo, store)
    todo = Todo.create(id="t1", description="x")
    with pytest.raises(StoreConnectionError):
        await todos.save(todo)

    stored = await todos.save(todo)

    assert [type(e) for e in stored] == [TodoCreated]
    assert (await todos.load("t1")).description == "x"
