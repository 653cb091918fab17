"""The storage boundary: what a backend implements, in tiers, and how the front finds out.

::

    EventStore (front, base.py)     events in and out, validation, paging, capability checks
        │  rows (StoredEvent), never pydantic models
        ▼
    EventLog        required    open, close, append, read_stream, read_log,
                                stream_version, last_position
    WaitsAppended   optional    wait_appended        (default: poll last_position, 10-250 ms)
    NameLocks       optional    hold_name            (default: hold nothing)
    Checkpoints     optional    get_checkpoint, set_checkpoint     (Subscription needs it)
    Snapshots       optional    save_snapshot, load_snapshot       (Repository(snapshot_every=))
    Transactions    optional    transaction, query, paramstyle     (Projection needs it)
    StreamLifecycle optional    stream_state, delete_stream, truncate_stream, archive_stream,
                                restore_stream, read_archived
    SubjectKeys     optional    keys_for_subjects, keys_by_id,     (events with PersonalData)
                                append_with_keys, forget
    Commands        optional    append_command, get_command, prune_commands
                                (idempotent Flow.dispatch; without it a dispatch records nothing)
    Reactions       optional    append_checkpointed                (Reaction needs it)

A backend is a plain class; the front detects each optional tier by the methods it has (all of
a tier's methods, or none: half a tier is a ``TypeError``) and reports them as
:class:`Capabilities`. A call that needs a
tier the backend lacks raises :class:`~eventuality.UnsupportedOperation`. Facts that no method
shows are plain attributes the backend may set (read with ``getattr``, default ``False``):
``gap_free_positions``, ``cross_process_locks``, ``durable`` and ``asyncio_only``.

The front already checks, so no backend needs to: the store is open; stream ids are non-empty
``str`` of at most 1,024 bytes of UTF-8; expected versions are ``None`` or ints >= 0; events
carry consistent versions; no event id appears twice in one append; version and position
arguments are clamped to what fits a 64-bit integer; checkpoint names are non-empty ``str``
without NUL; and nothing writes inside the store's own ``transaction()``.

Run :mod:`eventuality.testing.contract` against a backend to check it keeps this contract.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from ._keys import KeyClaims as KeyClaims
from ._keys import KeyConflict as KeyConflict
from ._keys import SubjectKey as SubjectKey
from .commands import CommandRecord, RecordedCommand
from .lifecycle import Marker, StreamState
from .rows import AppendRequest, CheckpointMove, Snapshot, StoredEvent

__all__ = [
    "Backend",
    "BackendTransaction",
    "Capabilities",
    "Checkpoints",
    "Commands",
    "CompleteBackend",
    "EventLog",
    "KeyClaims",
    "KeyConflict",
    "NameLocks",
    "Reactions",
    "Snapshots",
    "StreamLifecycle",
    "SubjectKey",
    "SubjectKeys",
    "Transaction",
    "Transactions",
    "WaitsAppended",
    "capabilities_of",
]


class EventLog(Protocol):
    """The one required tier: streams and the global log. Every method is atomic on its own."""

    async def open(self) -> None:
        """Connect and create the schema if needed; called once before any other method."""
        ...

    async def close(self) -> None:
        """Release every connection; called once, after which nothing else is called."""
        ...

    async def append(self, requests: Sequence[AppendRequest]) -> list[StoredEvent]:
        """Store every request or none; return the rows as stored (with positions and
        versions), in request order. ``requests`` is never empty of rows.

        Inside one atomic step a backend calls :func:`~eventuality.stores.base.settle_versions`
        per request (it checks the expected version, raises
        :class:`~eventuality.ConcurrencyError` and numbers unversioned rows) and, when a request
        conflicts or one of its event ids is already stored,
        :func:`~eventuality.stores.base.match_retry` before failing: an exact repeat returns
        the stored rows, any other reuse of an event id raises
        :class:`~eventuality.DuplicateEventError`. Positions are above every position already
        readable and increase in request order.
        """
        ...

    async def read_stream(
        self, stream_id: str, from_version: int, to_version: int | None
    ) -> list[StoredEvent]:
        """Rows of one stream with ``from_version <= version <= to_version`` (``None``: to the
        end) in version order; ``[]`` for an unknown stream. ``to_version`` may be below 1."""
        ...

    async def read_log(
        self, after: int, limit: int, types: frozenset[str] | None
    ) -> list[StoredEvent]:
        """Up to ``limit`` (>= 1) rows with ``position > after`` in position order, only of
        the stored type names in ``types`` (``None``: all). Never returns a row while a lower
        position may still appear."""
        ...

    async def stream_version(self, stream_id: str) -> int:
        """The version of the stream's last row; 0 for an unknown stream."""
        ...

    async def last_position(self) -> int:
        """The highest position a reader may pass: nothing at or below it can still appear.
        0 when the log is empty."""
        ...


Backend = EventLog
"""What every backend implements; the optional tiers below add to it."""


class WaitsAppended(Protocol):
    """Live notification. Without it the front polls ``last_position`` (10 ms backing off to
    250 ms), and is woken at once by appends through the same store object."""

    async def wait_appended(self, after: int, timeout: float) -> bool:
        """Wait until a position above ``after`` may be readable (True), or ``timeout``
        seconds pass (False). Return at once when one is readable already."""
        ...


class NameLocks(Protocol):
    """Subscription names held against other processes. Without it the front holds nothing:
    instances in one process take turns, but two processes may both run a subscription of one
    name and its handler see an event twice (the checkpoint's compare-and-set only stops one
    of them moving it backwards)."""

    def hold_name(self, name: str) -> AbstractAsyncContextManager[None]:
        """Hold ``name`` while the block runs, waiting while another holds it; a holder that
        dies releases it (PostgreSQL: a session advisory lock; SQLite: a lock file per name).
        A backend that holds nothing here leaves ``cross_process_locks`` false."""
        ...


class Checkpoints(Protocol):
    """Named positions in the log, for subscriptions."""

    async def get_checkpoint(self, name: str) -> int | None:
        """The position stored under ``name``; ``None`` when there is none."""
        ...

    async def set_checkpoint(self, name: str, position: int, expected: int | None) -> None:
        """Compare-and-set: raise :class:`~eventuality.CheckpointConflict` unless the stored
        value is ``expected`` (``None``: no checkpoint yet). ``position`` is an int >= 0."""
        ...


class Snapshots(Protocol):
    """Aggregate snapshots, an optimisation for long streams."""

    async def save_snapshot(self, snapshot: Snapshot) -> None:
        """Store ``snapshot``, replacing one of the same stream and version."""
        ...

    async def load_snapshot(self, stream_id: str, max_version: int | None) -> Snapshot | None:
        """The snapshot of ``stream_id`` with the highest version at or below ``max_version``
        (``None``: any); ``None`` when there is none."""
        ...


class Transaction(Protocol):
    """A write transaction on the store's own database, handed to a projection's handler.

    Parameters are named, ``:name`` with keyword arguments (``executemany``: one mapping per
    row), and work on every store; or positional, in the backend's own style (SQLite: ``?``;
    PostgreSQL: ``$1``; ``paramstyle`` says which: ``"qmark"`` or ``"dollar"``). One statement
    takes one kind. Whatever it writes commits together with the projection's checkpoint, or
    not at all.
    """

    paramstyle: str

    async def execute(self, sql: str, *params: Any, **named: Any) -> None: ...
    async def executemany(
        self, sql: str, rows: Iterable[Sequence[Any] | Mapping[str, Any]]
    ) -> None: ...
    async def fetchall(self, sql: str, *params: Any, **named: Any) -> list[tuple[Any, ...]]: ...
    async def fetchone(self, sql: str, *params: Any, **named: Any) -> tuple[Any, ...] | None: ...


class BackendTransaction(Protocol):
    """A backend's transaction: positional parameters in its own style, plus what the
    framework itself does inside a projection's transaction. The front wraps it to take named
    parameters (:class:`Transaction`)."""

    paramstyle: str

    async def execute(self, sql: str, *params: Any) -> None: ...
    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None: ...
    async def fetchall(self, sql: str, *params: Any) -> list[tuple[Any, ...]]: ...
    async def fetchone(self, sql: str, *params: Any) -> tuple[Any, ...] | None: ...
    async def get_checkpoint(self, name: str) -> int | None: ...
    async def set_checkpoint(self, name: str, position: int, expected: int | None) -> None:
        """Compare-and-set inside the transaction: it commits with the read model."""
        ...

    def savepoint(self) -> AbstractAsyncContextManager[None]:
        """Undo only what the block wrote if it raises; the transaction goes on."""
        ...


class Transactions(Protocol):
    """Read-model transactions in the store's own database (exactly-once projections)."""

    paramstyle: str
    """``"qmark"`` (``?``) or ``"dollar"`` (``$1``): the placeholders the SQL takes."""

    def transaction(self) -> AbstractAsyncContextManager[BackendTransaction]:
        """Begin a write transaction; commit when the block ends, roll back if it raises."""
        ...

    async def query(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        """Run a read-only query on the store's database, outside any transaction (the front
        has refused transaction control; the backend refuses writes with
        :class:`~eventuality.StoreError`)."""
        ...


class StreamLifecycle(Protocol):
    """Deleting, truncating, archiving and restoring streams (:mod:`.lifecycle`).

    Each method is one atomic transaction that also holds off appends to the stream, and
    applies the rules of :mod:`~eventuality.stores.lifecycle` to what it finds there. A backend
    with this tier also raises :func:`~eventuality.stores.lifecycle.refuse_gone`'s errors for a
    deleted or archived stream from ``append``, ``stream_version`` and ``read_stream`` (where
    it finds no rows), looking the state up in the work those already do (same statement,
    same thread call), never in a round trip of its own.
    """

    async def stream_state(self, stream_id: str) -> StreamState | None:
        """Whether the stream was deleted or archived (and at which version); ``None`` if
        neither."""
        ...

    async def delete_stream(
        self, stream_id: str, expected_version: int | None, marker: Marker
    ) -> StoredEvent:
        """Remove the stream's rows (live or archived) and snapshots, record it as deleted,
        and append ``marker(version, aggregate_id)``'s row to
        :data:`~eventuality.stores.lifecycle.LIFECYCLE_STREAM`; return that row as stored."""
        ...

    async def truncate_stream(self, stream_id: str, before: int, require_snapshot: bool) -> int:
        """Remove the stream's rows below version ``before`` and its snapshots below version
        ``before - 1``; return how many rows went."""
        ...

    async def archive_stream(
        self, stream_id: str, expected_version: int | None, marker: Marker
    ) -> StoredEvent:
        """Move the stream's rows, unchanged, from the live log to the archive, record it as
        archived, and append the marker's row; return that row as stored."""
        ...

    async def restore_stream(self, stream_id: str, marker: Marker) -> StoredEvent:
        """Move an archived stream's rows back, at their versions and positions, forget its
        archived state, and append the marker's row; return that row as stored."""
        ...

    async def read_archived(self, stream_id: str) -> list[StoredEvent]:
        """The archived rows of the stream in version order; ``[]`` when none."""
        ...


class SubjectKeys(Protocol):
    """Keys of personal-data subjects, in the store's own database (crypto-shredding).

    Without it the front refuses events with :class:`~eventuality.PersonalData` fields. Keys
    are written in the same transaction as the events they seal, and deleting one erases every
    value sealed with it.
    """

    async def keys_for_subjects(self, subjects: Sequence[str]) -> dict[str, SubjectKey]:
        """The current key of each of ``subjects`` that has one, by subject (one query)."""
        ...

    async def keys_by_id(self, key_ids: Sequence[str]) -> dict[str, SubjectKey]:
        """The keys among ``key_ids`` that still exist, by key id (one query)."""
        ...

    async def append_with_keys(
        self,
        requests: Sequence[AppendRequest],
        claims: KeyClaims,
        record: CommandRecord | None = None,
        move: CheckpointMove | None = None,
    ) -> list[StoredEvent]:
        """``append``, plus in the same transaction: insert each key of ``claims.new`` unless
        its subject has a key already, check each other key is still its subject's, and
        record ``claims.links`` (subject, stream id). A claim that fails rolls everything
        back and raises :class:`KeyConflict`. ``record`` is passed only to a backend that also
        has the ``commands`` tier: store it as ``append_command`` does, in the same step.
        ``move`` is passed only to a backend that also has the ``reactions`` tier: move the
        checkpoint as ``append_checkpointed`` does, in the same step (a reaction committing
        personal data)."""
        ...

    async def forget(self, subject: str) -> bool:
        """Delete ``subject``'s key and every snapshot of the streams it was appended to, in
        one transaction; True if there was a key. From then on ``save_snapshot`` of those
        streams stores nothing (a state loaded before the forget must not come back, even once
        the subject has a new key)."""
        ...


class Commands(Protocol):
    """Dispatched commands remembered under idempotency keys, written with their events."""

    async def append_command(
        self, requests: Sequence[AppendRequest], record: CommandRecord
    ) -> list[StoredEvent]:
        """``append(requests)`` and store ``record`` (with the positions the rows were given:
        :func:`~eventuality.stores.commands.with_positions`) in the same atomic step.
        ``requests`` may hold no rows at all: the record alone is stored then.

        :raises KeyTaken: ``record.key`` is recorded already (checked before the versions);
            nothing is stored. Of concurrent commits with one key, exactly one stores.
        """
        ...

    async def get_command(self, key: str) -> RecordedCommand | None:
        """The record stored under ``key`` with the rows of its positions; ``None`` if none."""
        ...

    async def prune_commands(
        self, recorded_before: datetime | None, keep: int | None, limit: int
    ) -> int:
        """Delete up to ``limit`` records, oldest first, that were recorded before
        ``recorded_before`` or are not among the ``keep`` latest (``None``: no such rule), in
        one short transaction; return how many were deleted."""
        ...


class Reactions(Protocol):
    """Appends that move a checkpoint in the same atomic step: a reaction's effects and its
    position in the log are committed together, or neither is."""

    async def append_checkpointed(
        self, requests: Sequence[AppendRequest], move: CheckpointMove
    ) -> list[StoredEvent]:
        """``append(requests)`` and, in the same atomic step, compare-and-set checkpoint
        ``move.name`` from ``move.expected`` to ``move.position`` (checked before the versions).
        ``requests`` may hold no rows: the checkpoint alone moves then. An exact repeat of
        stored rows is not a success here (the checkpoint it carried moved already).

        :raises CheckpointConflict: the checkpoint is not at ``move.expected``; nothing is
            stored.
        """
        ...


class CompleteBackend(
    EventLog,
    WaitsAppended,
    NameLocks,
    Checkpoints,
    Snapshots,
    Transactions,
    StreamLifecycle,
    SubjectKeys,
    Commands,
    Reactions,
    Protocol,
):
    """Every tier: what the memory, SQLite and PostgreSQL backends implement."""


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a store offers beyond the event log, and the facts its contract suite asks about.

    :param checkpoints: ``get_checkpoint``/``set_checkpoint`` (a :class:`Subscription` needs them).
    :param snapshots: ``save_snapshot``/``load_snapshot`` (``Repository(snapshot_every=)``).
    :param transactions: ``transaction()``, ``query()`` and ``paramstyle`` (a :class:`Projection`).
    :param live_wait: the backend waits for appends itself; else the front polls.
    :param cross_process_locks: ``hold_name`` holds a name against other processes.
    :param gap_free_positions: positions run 1, 2, 3... with no gaps, even after conflicts
        (memory, SQLite; not PostgreSQL, whose positions follow transaction ids).
    :param commands: ``append_command``/``get_command``/``prune_commands``: idempotent
        ``Flow.dispatch`` (without them a dispatch records no key).
    :param reactions: ``append_checkpointed``: events and a checkpoint move in one atomic
        step (a :class:`~eventuality.Reaction` needs it).
    :param durable: the data outlives the store object: another store opened on the same
        location sees it (SQLite files, PostgreSQL; not memory or SQLite ``:memory:``).
    :param stream_lifecycle: ``delete_stream``, ``truncate_stream``, ``archive_stream``,
        ``restore_stream`` and ``read_archived`` (last, with a default: added in schema 2).
    :param personal_data: keys of personal-data subjects and ``forget`` (events with
        :class:`~eventuality.PersonalData` fields need it).
    """

    checkpoints: bool
    snapshots: bool
    transactions: bool
    live_wait: bool
    cross_process_locks: bool
    gap_free_positions: bool
    durable: bool
    stream_lifecycle: bool = False
    personal_data: bool = False
    commands: bool = False
    reactions: bool = False


_LOG = ("open", "close", "append", "read_stream", "read_log", "stream_version", "last_position")
_OPTIONAL_TIERS = {
    "live_wait": ("wait_appended",),
    "locks": ("hold_name",),
    "checkpoints": ("get_checkpoint", "set_checkpoint"),
    "snapshots": ("save_snapshot", "load_snapshot"),
    "transactions": ("transaction", "query"),
    "stream_lifecycle": (
        "stream_state",
        "delete_stream",
        "truncate_stream",
        "archive_stream",
        "restore_stream",
        "read_archived",
    ),
    "personal_data": ("keys_for_subjects", "keys_by_id", "append_with_keys", "forget"),
    "commands": ("append_command", "get_command", "prune_commands"),
    "reactions": ("append_checkpointed",),
}


def capabilities_of(backend: EventLog) -> Capabilities:
    """Detect the tiers ``backend`` implements and read the facts it declares.

    A tier counts when all of its methods are there (looked up on the object, so a wrapper
    that delegates through ``__getattr__`` counts as what it wraps, on every Python).

    :raises TypeError: ``backend`` lacks a required method, implements only part of a tier,
        or declares cross-process locks without ``hold_name``.
    """
    missing = [name for name in _LOG if not callable(getattr(backend, name, None))]
    if missing:
        raise TypeError(
            f"{backend!r} is not an event store backend: it lacks {', '.join(missing)}. "
            "Implement the EventLog methods (see eventuality.stores.boundary)."
        )
    has: dict[str, bool] = {}
    for tier, names in _OPTIONAL_TIERS.items():
        present = [name for name in names if callable(getattr(backend, name, None))]
        if present and len(present) < len(names):
            absent = [name for name in names if name not in present]
            raise TypeError(
                f"{backend!r} implements part of the {tier} tier ({', '.join(present)}) but "
                f"not {', '.join(absent)}: implement the whole tier or none of it"
            )
        has[tier] = bool(present)
    if has["transactions"] and getattr(backend, "paramstyle", None) not in ("qmark", "dollar"):
        raise TypeError(
            f"{backend!r} implements transactions but its paramstyle is "
            f"{getattr(backend, 'paramstyle', None)!r}, not 'qmark' or 'dollar'"
        )
    cross_process = bool(getattr(backend, "cross_process_locks", False))
    if cross_process and not has["locks"]:
        raise TypeError(
            f"{backend!r} declares cross_process_locks but has no hold_name(name) method; "
            "implement it or drop the declaration"
        )
    return Capabilities(
        checkpoints=has["checkpoints"],
        snapshots=has["snapshots"],
        transactions=has["transactions"],
        stream_lifecycle=has["stream_lifecycle"],
        live_wait=has["live_wait"],
        cross_process_locks=cross_process,
        gap_free_positions=bool(getattr(backend, "gap_free_positions", False)),
        durable=bool(getattr(backend, "durable", False)),
        personal_data=has["personal_data"],
        commands=has["commands"],
        reactions=has["reactions"],
    )
