"""The errors eventuality raises on purpose, all under one root.

::

    EventualityError
    ├── ConcurrencyError        a stream was not at the expected version
    │   └── AggregateExists     an aggregate was created under an id already taken
    ├── AggregateNotFound       also LookupError: no events for that aggregate
    ├── UnknownCommand          also LookupError: no handler for the command's class
    ├── UnknownEventType        also LookupError: a stored type name with no Event class
    ├── EventSchemaError        a stored event cannot be read by its class as it is now
    ├── DuplicateEventError     an event id that is already stored (or twice in one append)
    ├── UncommittedEventsError  a handler returned events no unit of work tracks
    ├── IdempotencyKeyReused    an idempotency key already recorded for another command
    ├── InvalidCommandMessage   also ValueError: a broker message that is no valid command
    ├── CheckpointConflict      a subscription checkpoint moved under another instance
    ├── SubscriptionLocked      another process holds the subscription name
    ├── PartitionsChanged       also ValueError: a name stored with another partition count
    ├── SubscriptionTimeout     also TimeoutError: a read-your-writes wait ran out
    ├── UnknownSubscription     also LookupError: no subscription has that name
    ├── ProjectionVersionError  a projection version cannot do that (switch over, retire) now
    │   └── ProjectionRetired   a later version of the projection is live: this one stops
    ├── UnsupportedEventLoop    also RuntimeError: the store needs asyncio
    ├── UnsupportedOperation    also NotImplementedError: the store's backend lacks a tier
    ├── TransactionError        a write the store cannot take inside store.transaction()
    ├── StreamDeleted           the stream was deleted: it can be neither read nor written
    ├── StreamArchived          the stream's events are archived: read or restore them first
    ├── StreamNotFound          also LookupError: a lifecycle operation named an unknown stream
    ├── StreamTruncated         a load needs events that a truncation removed
    ├── StreamLifecycleError    also ValueError: a delete, truncate, archive or restore refused
    ├── BrokerError             a message broker refused or failed; the client's error in __cause__
    │   └── BrokerUnavailable   the broker is unreachable or the connection was lost: retry later
    └── StoreError              the storage layer failed; the driver's error is in __cause__
        ├── TransientStoreError     retrying may work
        │   ├── StoreBusyError      the database stayed locked past the busy timeout
        │   └── StoreConnectionError the connection to the database failed or was lost
        └── StoreUsageError         retrying never works: fix the call or the setup
            ├── StoreClosedError    the store is not open
            ├── SchemaVersionError  the database was written by an incompatible version
            └── InvalidStoreURL     also ValueError: a URL open_store cannot use

Each message says what was asked, what was found and what to do next; the values are kept as
attributes so callers never parse messages.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AggregateExists",
    "AggregateNotFound",
    "BrokerError",
    "BrokerUnavailable",
    "CheckpointConflict",
    "ConcurrencyError",
    "DuplicateEventError",
    "EventSchemaError",
    "EventualityError",
    "IdempotencyKeyReused",
    "InvalidCommandMessage",
    "InvalidStoreURL",
    "PartitionsChanged",
    "ProjectionRetired",
    "ProjectionVersionError",
    "SchemaVersionError",
    "StoreBusyError",
    "StoreClosedError",
    "StoreConnectionError",
    "StoreError",
    "StoreUsageError",
    "StreamArchived",
    "StreamDeleted",
    "StreamLifecycleError",
    "StreamNotFound",
    "StreamTruncated",
    "SubscriptionLocked",
    "SubscriptionTimeout",
    "TransactionError",
    "TransientStoreError",
    "UncommittedEventsError",
    "UnknownCommand",
    "UnknownEventType",
    "UnknownSubscription",
    "UnsupportedEventLoop",
    "UnsupportedOperation",
]


class EventualityError(Exception):
    """Root of every error eventuality raises on purpose."""


class _Described(EventualityError):
    """An error whose message is written where it is raised, with keyword attributes beside
    it; pickles with both."""

    def __reduce__(self) -> tuple[Any, ...]:
        return _rebuild_described, (type(self), str(self), dict(vars(self)))


def _rebuild_described(
    cls: type[_Described], message: str, attributes: dict[str, Any]
) -> _Described:
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    error.__dict__.update(attributes)
    return error


class ConcurrencyError(EventualityError):
    """A stream was not at the version the writer expected: someone else wrote first."""

    def __init__(self, stream_id: str, expected_version: int | None, actual_version: int) -> None:
        self.stream_id = stream_id
        self.expected_version = expected_version
        self.actual_version = actual_version
        if expected_version == 0:
            message = (
                f"stream {stream_id!r} was expected not to exist yet, but it already holds "
                f"{actual_version} event(s). Pick a new id, or load the existing aggregate and "
                "change that."
            )
        else:
            found = (
                "it does not exist" if actual_version == 0 else f"it is at version {actual_version}"
            )
            message = (
                f"stream {stream_id!r}: expected version {expected_version}, but {found}. Another "
                "writer changed it first: load the aggregate again and retry the decision "
                "(Flow.dispatch does, up to its retries)."
            )
        super().__init__(message)

    def __reduce__(self) -> tuple[type[ConcurrencyError], tuple[str, int | None, int]]:
        return type(self), (self.stream_id, self.expected_version, self.actual_version)


class AggregateExists(ConcurrencyError):
    """An aggregate was created (``Repository.add``) under an id whose stream already has events.

    A retry can never succeed, so ``Flow.dispatch`` does not retry it.
    """

    def __init__(self, stream_id: str, actual_version: int) -> None:
        super().__init__(stream_id, 0, actual_version)

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.stream_id, self.actual_version)


class AggregateNotFound(EventualityError, LookupError):
    """No events exist for the aggregate asked for."""

    def __init__(self, aggregate_type: str, aggregate_id: str, version: int | None = None) -> None:
        self.aggregate_type = aggregate_type
        self.aggregate_id = aggregate_id
        self.version = version
        stream = f"{aggregate_type}-{aggregate_id}"
        if version is None:
            message = (
                f"{aggregate_type} {aggregate_id!r} was not found: stream {stream!r} has no "
                "events. Create it first (Repository.add) or check the id."
            )
        else:
            message = (
                f"{aggregate_type} {aggregate_id!r} at version {version} was not found: stream "
                f"{stream!r} has fewer events. Ask for a version the stream has reached."
            )
        super().__init__(message)

    def __reduce__(self) -> tuple[type[AggregateNotFound], tuple[str, str, int | None]]:
        return type(self), (self.aggregate_type, self.aggregate_id, self.version)


class UnknownCommand(EventualityError, LookupError):
    """A command was dispatched whose class has no registered handler."""

    def __init__(self, command_type: type, known: list[str] | None = None) -> None:
        self.command_type = command_type
        self.known = list(known or [])
        listed = ", ".join(sorted(known)) if known else "none"
        super().__init__(
            f"no handler for command {command_type.__qualname__} (handlers registered for: "
            f"{listed}). Register one with Flow(handlers={{{command_type.__name__}: handler}}) "
            f"or @flow.handles({command_type.__name__})."
        )

    def __reduce__(self) -> tuple[type[UnknownCommand], tuple[type, list[str]]]:
        return type(self), (self.command_type, self.known)


class UnknownEventType(EventualityError, LookupError):
    """A stored event names a type that no Event subclass in this process registers."""

    def __init__(
        self, event_type: str, *, stream_id: str | None = None, position: int | None = None
    ) -> None:
        self.event_type = event_type
        self.stream_id = stream_id
        self.position = position
        super().__init__(
            f"stored event type {event_type!r}{_where(stream_id, position)} has no Event class "
            f"in this process. Import the module that defines it (a class named "
            f"{event_type!r}, or one with __event_type__ = {event_type!r}) before reading, "
            "filter it out with event_types=, or let a subscription skip it "
            "(on_unknown='skip')."
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return _rebuild_unknown_event_type, (self.event_type, self.stream_id, self.position)


def _rebuild_unknown_event_type(
    event_type: str, stream_id: str | None, position: int | None
) -> UnknownEventType:
    return UnknownEventType(event_type, stream_id=stream_id, position=position)


def _where(stream_id: str | None, position: int | None) -> str:
    parts = []
    if stream_id is not None:
        parts.append(f"stream {stream_id!r}")
    if position:
        parts.append(f"position {position}")
    return f" (at {', '.join(parts)})" if parts else ""


class EventSchemaError(EventualityError):
    """A stored event cannot be turned into its class as the class is defined now."""

    def __init__(
        self,
        event_type: str,
        detail: str,
        *,
        stream_id: str | None = None,
        position: int | None = None,
    ) -> None:
        self.event_type = event_type
        self.detail = detail
        self.stream_id = stream_id
        self.position = position
        super().__init__(
            f"stored {event_type!r} event{_where(stream_id, position)} cannot be read: {detail}. "
            "When a class changes shape, raise its __event_version__ and register an upcaster "
            "from the stored version (eventuality.register_upcaster)."
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return _rebuild_event_schema_error, (
            self.event_type,
            self.detail,
            self.stream_id,
            self.position,
        )


def _rebuild_event_schema_error(
    event_type: str, detail: str, stream_id: str | None, position: int | None
) -> EventSchemaError:
    return EventSchemaError(event_type, detail, stream_id=stream_id, position=position)


class DuplicateEventError(EventualityError):
    """An append carried an event id the store already holds, as a different event."""

    def __init__(self, stream_id: str, event_id: str, detail: str) -> None:
        self.stream_id = stream_id
        self.event_id = event_id
        self.detail = detail
        super().__init__(
            f"append to stream {stream_id!r} refused: event id {event_id} {detail}. Nothing was "
            "written. Each event is stored once: build a new event for new facts, or retry with "
            "exactly the events of the original append."
        )

    def __reduce__(self) -> tuple[type[DuplicateEventError], tuple[str, str, str]]:
        return type(self), (self.stream_id, self.event_id, self.detail)


class UncommittedEventsError(_Described):
    """A dispatch could not commit events its handler recorded or returned (they are not
    tracked, or on another store); nothing was written. ``stream_ids`` names the streams."""

    def __init__(self, message: str, *, stream_ids: tuple[str, ...] = ()) -> None:
        self.stream_ids = stream_ids
        super().__init__(message)


class IdempotencyKeyReused(_Described):
    """A dispatch carried an idempotency key that is recorded for a different command (another
    type, or the same type with another payload). Nothing was run or stored.

    ``key``; ``first_type``/``first_id``: the recorded command's type and id;
    ``command_type``/``command_id``: this dispatch's.
    """

    def __init__(
        self, key: str, first_type: str, first_id: str, command_type: str, command_id: str
    ) -> None:
        self.key = key
        self.first_type = first_type
        self.first_id = first_id
        self.command_type = command_type
        self.command_id = command_id
        how = "with a different payload" if first_type == command_type else "a different command"
        super().__init__(
            f"idempotency key {key!r} was first used by {first_type} (command id {first_id}); "
            f"this dispatch of {command_type} (command id {command_id}) is {how}, so it was "
            "refused: nothing was run or stored. A retry must send the same command with the "
            "same key; a new command needs a new key (or none: its command id is then the key)."
        )


class InvalidCommandMessage(_Described, ValueError):
    """A message from a broker that no retry can make into a command (no message id, no or an
    unknown command type, bad JSON, a validation error): a CommandConsumer dead-letters it with
    this message as the reason. ``message_id`` and ``command_type`` are the message's."""

    def __init__(
        self, reason: str, *, message_id: str | None = None, command_type: str | None = None
    ) -> None:
        self.message_id = message_id
        self.command_type = command_type
        super().__init__(reason)


class CheckpointConflict(EventualityError):
    """A checkpoint was not where this writer last saw it: another instance moved it."""

    def __init__(self, name: str, expected: int | None, actual: int | None) -> None:
        self.name = name
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"checkpoint {name!r}: expected position {expected}, found {actual}. Another "
            "instance of this subscription is running: run one instance per name, or give "
            "each a name of its own."
        )

    def __reduce__(self) -> tuple[type[CheckpointConflict], tuple[str, int | None, int | None]]:
        return type(self), (self.name, self.expected, self.actual)


class SubscriptionLocked(_Described):
    """Another process holds (or took over) the subscription's name ``name``."""

    def __init__(self, message: str, *, name: str | None = None) -> None:
        self.name = name
        super().__init__(message)


class PartitionsChanged(EventualityError, ValueError):
    """A subscription's checkpoints are stored for ``stored`` partitions and an instance asked
    for ``asked`` (``None``: unpartitioned): which partition a stream falls in depends on the
    count, so the checkpoints cannot carry over."""

    def __init__(self, name: str, stored: int, asked: int | None) -> None:
        self.name = name
        self.stored = stored
        self.asked = asked
        wanted = "no partitions" if asked is None else f"partitions={asked}"
        super().__init__(
            f"subscription {name!r} keeps its checkpoints in {stored} partitions; this instance "
            f"asks for {wanted}. Nothing was handled. Run it with partitions={stored}, or under "
            "a new name (which starts from the beginning of the log: a projection rebuilds)."
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.name, self.stored, self.asked)


class SubscriptionTimeout(EventualityError, TimeoutError):
    """A subscription had not handled the events a caller waits for in time, or it failed.

    When it failed, ``error`` is what stopped it (also the ``__cause__``): a handler's error,
    or another, such as a :class:`CheckpointConflict` from a second instance.
    """

    def __init__(
        self,
        name: str,
        position: int,
        reached: int | None,
        *,
        failed: bool = False,
        timeout: float | None = None,
        error: BaseException | None = None,
    ) -> None:
        self.name = name
        self.position = position
        self.reached = reached
        self.failed = failed or error is not None
        self.timeout = timeout
        self.error = error
        where = "has handled nothing yet" if not reached else f"is at position {reached}"
        if self.failed:
            cause = "" if error is None else f" ({type(error).__name__}: {error})"
            why = f"subscription {name!r} stopped on an error{cause} and {where}"
            todo = "Remove what the error names (a failing handler: fix it), then restart it"
        else:
            why = f"subscription {name!r} {where} after {timeout:g} s"
            todo = "Check that it is running (SubscriptionRunner) or wait longer"
        super().__init__(
            f"waited for position {position} (the events are committed): {why}. {todo}."
        )
        if error is not None:
            self.__cause__ = error

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            _rebuild_subscription_timeout,
            (self.name, self.position, self.reached, self.failed, self.timeout, self.error),
        )


def _rebuild_subscription_timeout(
    name: str,
    position: int,
    reached: int | None,
    failed: bool,
    timeout: float | None,
    error: BaseException | None = None,
) -> SubscriptionTimeout:
    return SubscriptionTimeout(name, position, reached, failed=failed, timeout=timeout, error=error)


class UnknownSubscription(EventualityError, LookupError):
    """A read-your-writes wait named a subscription that neither runs in this process nor has
    ever stored a checkpoint (a misspelt name, most often)."""

    def __init__(self, name: str, known: list[str] | None = None) -> None:
        self.name = name
        self.known = sorted(known or [])
        listed = ", ".join(repr(k) for k in self.known) if self.known else "none"
        super().__init__(
            f"no subscription named {name!r} runs in this process or has stored a checkpoint "
            f"(known here: {listed}). Check the name given to wait_for, and that the "
            "subscription has been started at least once."
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.name, self.known)


class ProjectionVersionError(_Described):
    """Version ``version`` of projection ``name`` cannot do what was asked while version
    ``live`` is live (``None``: none is)."""

    def __init__(self, message: str, *, name: str, version: int, live: int | None) -> None:
        self.name = name
        self.version = version
        self.live = live
        super().__init__(message)


class ProjectionRetired(ProjectionVersionError):
    """A later version of the projection is live: this version writes nothing more."""

    def __init__(self, name: str, version: int, live: int) -> None:
        super().__init__(
            f"version {version} of projection {name!r} is retired: version {live} is live "
            f"(it switched over). Stop running version {version}; once no reader needs its "
            "tables, drop them with its retire().",
            name=name,
            version=version,
            live=live,
        )


class UnsupportedEventLoop(EventualityError, RuntimeError):
    """A store whose driver needs asyncio was used under another event loop (trio)."""


class TransactionError(_Described):
    """A write the store cannot take inside its own ``store.transaction()`` (a Projection's
    handler). ``operation`` says which (for example ``"append events"``)."""

    def __init__(self, message: str, *, operation: str | None = None) -> None:
        self.operation = operation
        super().__init__(message)


class StreamDeleted(_Described):
    """The stream was deleted (``store.delete_stream``): loads and appends of it are refused
    for good, since a deleted stream id is never reused. ``version`` is the version it had."""

    def __init__(self, stream_id: str, version: int, operation: str) -> None:
        self.stream_id = stream_id
        self.version = version
        self.operation = operation
        super().__init__(
            f"cannot {operation}: stream {stream_id!r} was deleted (at version {version}); "
            "its events and snapshots are gone and its id is never reused. Use a new id; the "
            "global log keeps a Tombstone event recording the deletion."
        )


class StreamArchived(_Described):
    """The stream's events were archived (``store.archive_stream``): they are out of the
    live log until restored. ``version`` is the version the stream had."""

    def __init__(self, stream_id: str, version: int, operation: str) -> None:
        self.stream_id = stream_id
        self.version = version
        self.operation = operation
        super().__init__(
            f"cannot {operation}: stream {stream_id!r} is archived (at version {version}). "
            f"Read its events with `await store.read_archived({stream_id!r})`, or move them "
            f"back with `await store.restore_stream({stream_id!r})` and try again."
        )


class StreamNotFound(_Described, LookupError):
    """A delete, truncate, archive or restore named a stream that has no events."""

    def __init__(self, stream_id: str, operation: str) -> None:
        self.stream_id = stream_id
        self.operation = operation
        super().__init__(
            f"cannot {operation}: stream {stream_id!r} has no events (it was never written, "
            "or the id is misspelt). Nothing was changed. Check the id: a Repository's "
            "streams are named '<AggregateType>-<id>'."
        )


class StreamTruncated(_Described):
    """A load needs events that ``store.truncate_stream`` removed, and no snapshot covers
    them. ``first_version`` is the oldest version still stored."""

    def __init__(self, stream_id: str, needed_version: int, first_version: int) -> None:
        self.stream_id = stream_id
        self.needed_version = needed_version
        self.first_version = first_version
        super().__init__(
            f"cannot rebuild stream {stream_id!r} from version {needed_version}: it was "
            f"truncated, and its oldest stored event is version {first_version}, with no "
            f"snapshot at version {first_version - 1} or later to start from. Load it with a "
            "Repository(..., snapshot_every=...) whose snapshot survived the truncation, or "
            "load a version the stored events cover."
        )


class StreamLifecycleError(_Described, ValueError):
    """A delete, truncate, archive or restore that does not fit the stream as it is (before
    out of range, no snapshot to load from, not archived); nothing was changed."""

    def __init__(self, message: str, *, stream_id: str, operation: str) -> None:
        self.stream_id = stream_id
        self.operation = operation
        super().__init__(message)


class BrokerError(EventualityError):
    """A message broker (NATS JetStream, RabbitMQ) refused a message or failed; the client's own
    exception is the ``__cause__``. Retrying the same call never works: fix the setup (a subject
    no stream takes, a missing exchange) and restart. A :class:`~eventuality.Relay` stops on it."""


class BrokerUnavailable(BrokerError):
    """The broker could not be reached, the connection was lost, or it did not confirm in time.
    The messages may or may not have been stored: publish them again (the same message ids)
    later. A running :class:`~eventuality.Relay` waits and does that itself."""


class StoreError(EventualityError):
    """The storage layer failed; the driver's own exception is the ``__cause__``.

    Two kinds below it tell a retry policy what to do: :class:`TransientStoreError` (retrying
    may work) and :class:`StoreUsageError` (retrying never works: fix the call or the setup).
    A plain ``StoreError`` is neither known to pass nor known to persist.
    """


class TransientStoreError(StoreError):
    """A failure that may pass: retrying the same call later may work."""


class StoreUsageError(StoreError):
    """A failure of how the store is used or set up: retrying the same call never works."""


class StoreBusyError(TransientStoreError):
    """The database stayed locked by another connection for longer than the busy timeout."""


class StoreConnectionError(TransientStoreError):
    """The connection to the database failed or was lost. The next call reconnects, so
    retrying may work; an append interrupted this way may or may not have been committed
    (retrying the same events is safe: a stored append is returned, not written twice)."""


class StoreClosedError(StoreUsageError):
    """The store was used before ``open()`` (or ``async with``), or after ``close()``."""


class SchemaVersionError(StoreUsageError):
    """The database holds a schema this version of eventuality cannot use."""


class InvalidStoreURL(StoreUsageError, ValueError):
    """``open_store`` was given a URL it cannot open."""


class UnsupportedOperation(EventualityError, NotImplementedError):
    """A call needs a capability the store's backend does not offer (checkpoints, snapshots,
    transactions): see ``store.capabilities``."""

    def __init__(self, store: str, capability: str, operation: str, methods: str) -> None:
        self.store = store
        self.capability = capability
        self.operation = operation
        self.methods = methods
        super().__init__(
            f"{store} cannot {operation}: its backend does not offer {capability} "
            f"({methods}). Use a store that does (InMemoryEventStore, SQLiteEventStore, "
            f"PostgresEventStore), or implement {methods} on the backend."
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.store, self.capability, self.operation, self.methods)
