"""Errors: one root, the attributes callers read, messages that help, and pickling (API.md
section 10)."""

import pickle

import pytest

import eventuality
from eventuality import (
    AggregateNotFound,
    CheckpointConflict,
    Command,
    ConcurrencyError,
    DuplicateEventError,
    Event,
    EventSchemaError,
    EventualityError,
    Flow,
    InMemoryEventStore,
    InvalidStoreURL,
    Repository,
    SchemaVersionError,
    StoreBusyError,
    StoreClosedError,
    StoreConnectionError,
    StoreError,
    StoreUsageError,
    SubscriptionLocked,
    SubscriptionTimeout,
    TransactionError,
    TransientStoreError,
    UncommittedEventsError,
    UnknownCommand,
    UnknownEventType,
    errors,
    event_class,
)
from tests.domain import CreateTodo, MarkAsCompleted, RenameTodo, Todo, TodoCreated

ERROR_CLASSES = [getattr(errors, name) for name in errors.__all__]

ERRORS: list[EventualityError] = [
    errors.InvalidCommandMessage("unknown command type", message_id="m-1", command_type="X"),
    ConcurrencyError("Todo-t1", 3, 5),
    ConcurrencyError("Todo-t1", 0, 2),
    ConcurrencyError("Todo-t1", 4, 0),
    AggregateNotFound("Todo", "t1"),
    AggregateNotFound("Todo", "t1", 7),
    UnknownCommand(CreateTodo, ["RenameTodo", "MarkAsCompleted"]),
    UnknownEventType("todo.archived"),
    EventSchemaError("TodoCreated", "its payload does not fit the class"),
    DuplicateEventError("Todo-t1", "0b6c4f8e-0000-4000-8000-000000000000", "is already stored"),
    CheckpointConflict("projection", 3, 9),
    CheckpointConflict("projection", None, 9),
    SubscriptionTimeout("projection", 10, 4, timeout=1.5),
    SubscriptionTimeout("projection", 10, None, failed=True),
    UncommittedEventsError("the handler returned 1 event(s) no unit of work tracks"),
    UncommittedEventsError("stream 'Todo-t1' is on another store", stream_ids=("Todo-t1",)),
    SubscriptionLocked("subscription 'projection' is held by another process"),
    SubscriptionLocked("lost the hold of 'projection'", name="projection"),
    TransactionError("cannot append events", operation="append events"),
    StoreConnectionError("the connection was lost"),
    StoreError("could not append"),
    StoreBusyError("the database stayed locked"),
    StoreClosedError("the store is not open"),
    SchemaVersionError("schema version 99 is newer than this eventuality"),
    InvalidStoreURL("cannot open store URL 'ftp://x'"),
]


async def _change_nothing(command: Command) -> list[Event]:
    return []


def _error_id(error: EventualityError) -> str:
    return f"{type(error).__name__}-{ERRORS.index(error)}"


# the tree


@pytest.mark.parametrize("error_class", ERROR_CLASSES, ids=lambda c: c.__name__)
def test_every_error_class_derives_from_eventuality_error(error_class: type) -> None:
    root = EventualityError

    derives = issubclass(error_class, root)

    assert derives


def test_eventuality_error_is_an_exception() -> None:
    root = EventualityError

    derives = issubclass(root, Exception)

    assert derives
    assert not issubclass(root, LookupError)


def test_every_error_class_is_exported_from_the_package() -> None:
    exported = set(eventuality.__all__)

    missing = set(errors.__all__) - exported

    assert missing == set()


@pytest.mark.parametrize(
    ("error_class", "builtin"),
    [
        (AggregateNotFound, LookupError),
        (UnknownCommand, LookupError),
        (UnknownEventType, LookupError),
        (SubscriptionTimeout, TimeoutError),
        (InvalidStoreURL, ValueError),
    ],
    ids=lambda c: c.__name__,
)
def test_error_is_also_the_builtin_callers_catch(error_class: type, builtin: type) -> None:
    bases = error_class.__mro__

    is_builtin = builtin in bases

    assert is_builtin


@pytest.mark.parametrize(
    "error_class",
    [StoreBusyError, StoreClosedError, SchemaVersionError, InvalidStoreURL],
    ids=lambda c: c.__name__,
)
def test_storage_errors_derive_from_store_error(error_class: type) -> None:
    root = StoreError

    derives = issubclass(error_class, root)

    assert derives


def test_concurrency_error_is_not_a_lookup_error() -> None:
    error = ConcurrencyError("Todo-t1", 1, 2)

    is_lookup = isinstance(error, LookupError)

    assert not is_lookup


# attributes and messages


def test_concurrency_error_keeps_stream_and_versions_as_attributes() -> None:
    error = ConcurrencyError("Todo-t1", 3, 5)

    values = (error.stream_id, error.expected_version, error.actual_version)

    assert values == ("Todo-t1", 3, 5)


async def test_concurrency_error_from_a_stale_append_says_what_was_expected_and_found() -> None:
    store = InMemoryEventStore()
    await store.append("Todo-t1", [TodoCreated(description="a"), TodoCreated(description="b")])

    with pytest.raises(ConcurrencyError) as caught:
        await store.append("Todo-t1", [TodoCreated(description="c")], expected_version=1)

    error = caught.value
    assert (error.stream_id, error.expected_version, error.actual_version) == ("Todo-t1", 1, 2)
    message = str(error)
    assert "'Todo-t1'" in message
    assert "expected version 1" in message
    assert "version 2" in message
    assert "load the aggregate again" in message


async def test_concurrency_error_for_an_existing_stream_says_it_exists_and_what_to_do() -> None:
    store = InMemoryEventStore()
    await Repository(Todo, store).add(id="t1", description="a")

    with pytest.raises(ConcurrencyError) as caught:
        await Repository(Todo, store).add(id="t1", description="b")

    message = str(caught.value)
    assert "'Todo-t1'" in message
    assert "not to exist" in message
    assert "1 event" in message
    assert "new id" in message


def test_concurrency_error_for_a_missing_stream_says_it_does_not_exist() -> None:
    error = ConcurrencyError("Todo-t1", 4, 0)

    message = str(error)

    assert "expected version 4" in message
    assert "does not exist" in message


async def test_aggregate_not_found_says_which_aggregate_and_what_to_do() -> None:
    todos = Repository(Todo, InMemoryEventStore())

    with pytest.raises(AggregateNotFound) as caught:
        await todos.load("t404")

    error = caught.value
    assert (error.aggregate_type, error.aggregate_id, error.version) == ("Todo", "t404", None)
    message = str(error)
    assert "Todo 't404'" in message
    assert "'Todo-t404'" in message
    assert "no events" in message
    assert "Repository.add" in message


async def test_aggregate_not_found_at_a_version_names_the_version() -> None:
    store = InMemoryEventStore()
    todos = Repository(Todo, store)
    await todos.add(id="t1", description="a")

    with pytest.raises(AggregateNotFound) as caught:
        await todos.load("t1", version=5)

    error = caught.value
    assert (error.aggregate_id, error.version) == ("t1", 5)
    assert "version 5" in str(error)
    assert "fewer events" in str(error)


async def test_unknown_command_names_the_command_the_handlers_and_how_to_register() -> None:
    flow = Flow(handlers={RenameTodo: _change_nothing, MarkAsCompleted: _change_nothing})

    with pytest.raises(UnknownCommand) as caught:
        await flow.dispatch(CreateTodo(id="t1", description="a"))

    error = caught.value
    assert error.command_type is CreateTodo
    message = str(error)
    assert "CreateTodo" in message
    assert "MarkAsCompleted, RenameTodo" in message
    assert "flow.handles(CreateTodo)" in message


def test_unknown_event_type_names_the_type_and_what_to_do() -> None:
    with pytest.raises(UnknownEventType) as caught:
        event_class("todo.archived")

    error = caught.value
    assert error.event_type == "todo.archived"
    assert "'todo.archived'" in str(error)
    assert "Import the module" in str(error)


def test_event_schema_error_names_the_type_the_detail_and_the_upcaster() -> None:
    error = EventSchemaError("TodoCreated", "it was stored at version 1")

    message = str(error)

    assert (error.event_type, error.detail) == ("TodoCreated", "it was stored at version 1")
    assert "'TodoCreated'" in message
    assert "it was stored at version 1" in message
    assert "register_upcaster" in message


async def test_duplicate_event_error_names_the_stream_and_event_and_says_nothing_was_written() -> (
    None
):
    store = InMemoryEventStore()
    event = TodoCreated(description="a")
    await store.append("Todo-t1", [event])

    with pytest.raises(DuplicateEventError) as caught:
        await store.append("Todo-t2", [event])

    error = caught.value
    assert (error.stream_id, error.event_id) == ("Todo-t2", str(event.event_id))
    assert str(event.event_id) in str(error)
    assert "Nothing was written" in str(error)


def test_checkpoint_conflict_keeps_name_and_positions() -> None:
    error = CheckpointConflict("projection", 3, 9)

    message = str(error)

    assert (error.name, error.expected, error.actual) == ("projection", 3, 9)
    assert "'projection'" in message
    assert "expected position 3, found 9" in message


def test_subscription_timeout_keeps_name_and_positions() -> None:
    error = SubscriptionTimeout("projection", 10, 4, timeout=1.5)

    message = str(error)

    assert (error.name, error.position, error.reached, error.timeout) == ("projection", 10, 4, 1.5)
    assert "position 10" in message
    assert "position 4" in message
    assert "1.5 s" in message


# pickling


@pytest.mark.parametrize("error", ERRORS, ids=_error_id)
def test_error_survives_a_pickle_round_trip_with_its_attributes(error: EventualityError) -> None:
    data = pickle.dumps(error)

    copy = pickle.loads(data)

    assert type(copy) is type(error)
    assert vars(copy) == vars(error)


@pytest.mark.parametrize("error", ERRORS, ids=_error_id)
def test_error_survives_a_pickle_round_trip_with_its_message(error: EventualityError) -> None:
    data = pickle.dumps(error)

    copy = pickle.loads(data)

    assert str(copy) == str(error)


# a retry policy can tell a failure that may pass from one that never will


@pytest.mark.parametrize("error_class", [StoreBusyError, StoreConnectionError])
def test_failures_that_may_pass_are_transient_store_errors(error_class: type) -> None:
    assert issubclass(error_class, TransientStoreError)
    assert not issubclass(error_class, StoreUsageError)


@pytest.mark.parametrize("error_class", [StoreClosedError, SchemaVersionError, InvalidStoreURL])
def test_failures_of_use_are_store_usage_errors_and_never_transient(error_class: type) -> None:
    assert issubclass(error_class, StoreUsageError)
    assert not issubclass(error_class, TransientStoreError)


async def test_a_bad_url_is_a_usage_error_a_retry_policy_does_not_retry() -> None:
    with pytest.raises(StoreUsageError):
        eventuality.open_store("ftp://nowhere")


async def test_a_closed_store_is_a_usage_error() -> None:
    store = InMemoryEventStore()
    await store.close()

    with pytest.raises(StoreUsageError):
        await store.last_position()


async def test_transaction_error_names_the_refused_operation() -> None:
    store = InMemoryEventStore()

    with pytest.raises(TransactionError) as caught:
        async with store.transaction():
            await store.append("s", [TodoCreated(description="x")])

    assert caught.value.operation == "append events"


async def test_uncommitted_events_error_names_the_stream() -> None:
    flow = Flow(store=InMemoryEventStore())

    @flow.handles(CreateTodo)
    async def create(cmd: CreateTodo) -> Todo:
        return Todo.create(id=cmd.id, description=cmd.description)

    with pytest.raises(UncommittedEventsError) as caught:
        await flow.dispatch(CreateTodo(id="t9", description="x"))

    assert caught.value.stream_ids == ("Todo-t9",)
