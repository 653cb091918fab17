"""The event store front, over a backend of tiers (:mod:`~eventuality.stores.boundary`).

Backends see rows (:class:`~eventuality.stores.rows.StoredEvent`), never pydantic models. The front
validates input, turns events into rows and back, and pages through the log, once for every
backend, so a backend is a handful of async methods that store and fetch rows atomically. It
also fills in what an optional tier would give (``wait_appended``, ``hold_name``) and refuses,
naming the missing tier, what none can (checkpoints, snapshots, transactions).
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import datetime
from types import TracebackType
from typing import Any, Literal, Self, cast

import anyio
from pydantic import JsonValue

from .. import _telemetry
from ..errors import (
    ConcurrencyError,
    StoreClosedError,
    UnsupportedEventLoop,
    UnsupportedOperation,
)
from ..messages import Event, event_type_names, evolve
from ._lifecycle_front import LifecycleCalls
from ._log_reader import LogReader
from ._partition_hash import check_partition
from ._records_front import RecordCalls
from ._sealing import append_sealed, opened
from ._tiers_front import TierCalls, refuse_inside_transaction
from ._validation import (
    HIGHEST_POSITION,
    HIGHEST_VERSION,
    StreamAppend,
    checked_metadata,
    checked_move,
    checked_name,
    to_requests,
)
from ._validation import MAX_STREAM_ID_BYTES as MAX_STREAM_ID_BYTES
from .boundary import (
    Backend,
    BackendTransaction,
    Capabilities,
    Commands,
    NameLocks,
    Reactions,
    SubjectKeys,
    Transaction,
    WaitsAppended,
    capabilities_of,
)
from .commands import CommandRecord, RecordedCommand, checked_key, prune_in_batches
from .rows import (
    AppendRequest,
    CheckpointMove,
    Snapshot,
    StoredEvent,
    from_rows,
    match_retry,
    settle_versions,
)

__all__ = [
    "AppendRequest",
    "Backend",
    "BackendTransaction",
    "Capabilities",
    "CheckpointMove",
    "MAX_STREAM_ID_BYTES",
    "Transaction",
    "EventStore",
    "Snapshot",
    "StoredEvent",
    "StreamAppend",
    "match_retry",
    "redact_dsn",
    "settle_versions",
]

logger = logging.getLogger("eventuality")

_PAGE_SIZE = 1000


class EventStore(LifecycleCalls, RecordCalls, TierCalls):
    """The store every caller uses: events in, events out, over a row-level :class:`Backend`.

    Deleting, truncating and archiving streams: :class:`~._lifecycle_front.LifecycleCalls`;
    records (events without their classes): :class:`~._records_front.RecordCalls`.
    """

    def __init__(self, backend: Backend) -> None:
        self._capabilities = capabilities_of(backend)
        self._holds_names = callable(getattr(backend, "hold_name", None))
        self._backend = backend
        self._open = False
        self._appended: anyio.Event | None = None

    def __repr__(self) -> str:
        return f"EventStore({self._backend!r})"

    @property
    def capabilities(self) -> Capabilities:
        """What this store offers beyond the event log, and facts about it (gap-free
        positions, cross-process locks, durable data). Known before the store is opened."""
        return self._capabilities

    def require(self, capability: Tier, operation: str) -> None:
        """Refuse ``operation`` unless the store offers ``capability`` (``"checkpoints"``,
        ``"snapshots"``, ``"transactions"``, ``"stream_lifecycle"``, ``"personal_data"``,
        ``"commands"`` or ``"reactions"``), as components do when they are built.

        :raises UnsupportedOperation: the backend does not implement that tier.
        """
        if capability not in _TIERS:
            raise ValueError(f"capability must be one of {sorted(_TIERS)}, not {capability!r}")
        if not getattr(self._capabilities, capability):
            raise UnsupportedOperation(repr(self), capability, operation, _TIERS[capability])

    def _tier(self, capability: Tier, operation: str) -> Any:
        """The backend, once it is known to offer ``capability``."""
        self.require(capability, operation)
        return self._backend

    async def open(self) -> None:
        """Connect and create the schema if needed.

        :raises UnsupportedEventLoop: the backend's driver needs asyncio and this is trio.
        """
        if not self._open:
            if getattr(self._backend, "asyncio_only", False):
                require_asyncio(repr(self))
            await self._backend.open()
            self._open = True

    async def close(self) -> None:
        """Release every connection. Closing twice is harmless."""
        if self._open:
            self._open = False
            await self._backend.close()

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def backend(self) -> Backend:
        """The row-level backend, for what only it offers."""
        self._check_open()
        return self._backend

    def _check_open(self) -> None:
        if not self._open:
            raise StoreClosedError(
                f"{self!r} is not open. Use `async with store:` or `await store.open()` first."
            )

    async def append(
        self, stream_id: str, events: Sequence[Event], *, expected_version: int | None = None
    ) -> list[Event]:
        """Append ``events`` to one stream, all or none.

        :raises ConcurrencyError: the stream is not at ``expected_version``.
        :raises DuplicateEventError: an event id is stored already, as a different event.
        """
        return await self.append_streams([StreamAppend(stream_id, events, expected_version)])

    async def append_streams(
        self,
        appends: Iterable[StreamAppend],
        *,
        metadata: Mapping[str, JsonValue] | None = None,
        command: CommandRecord | None = None,
        checkpoint: CheckpointMove | None = None,
    ) -> list[Event]:
        """Append to several streams in one atomic commit, each with its own version check.

        ``metadata`` is merged into every event's own (its keys win), as ``Flow.dispatch`` does
        with causation and correlation ids. A stream given with no events still has its
        ``expected_version`` checked: a commit can require a stream it read but did not change.
        ``command`` is recorded under its key in the same transaction (even with no events).
        ``checkpoint`` is moved (compare-and-set) in the same transaction (even with no events):
        how a :class:`~eventuality.Reaction` commits its effects exactly once.

        :raises KeyTaken: ``command``'s key is recorded already; nothing was stored.
        :raises CheckpointConflict: the checkpoint is not at ``checkpoint.expected``; nothing
            was stored.
        :raises UnsupportedOperation: ``command`` on a store without the commands tier, or
            ``checkpoint`` on one without the reactions tier.
        """
        telemetry = _telemetry.hooks
        if telemetry is not None:
            options = {"command": command, "checkpoint": checkpoint}
            return await telemetry.append(
                self, self._append_streams, list(appends), metadata, options
            )
        return await self._append_streams(appends, metadata, command, checkpoint)

    async def _append_streams(
        self,
        appends: Iterable[StreamAppend],
        metadata: Mapping[str, JsonValue] | None = None,
        command: CommandRecord | None = None,
        checkpoint: CheckpointMove | None = None,
    ) -> list[Event]:
        self._check_open()
        refuse_inside_transaction(self._backend, "append events")
        extra = checked_metadata(metadata)
        requests, events = to_requests(appends, extra)
        personal = any(type(event).__personal_fields__ for event in events)
        if personal:
            self.require("personal_data", "append events with personal data")
        if checkpoint is not None:
            stored = await self._append_checkpointed(
                requests, events, checkpoint, command, personal
            )
        elif command is not None:
            commands: Commands = self._tier("commands", "record a command")
            checked_key(command.key)
            if personal:
                stored = await append_sealed(self._backend, requests, events, command)
            else:
                stored = await commands.append_command(requests, command)
        elif not events:
            for request in requests:
                if request.expected_version is not None:
                    actual = await self._backend.stream_version(request.stream_id)
                    if actual != request.expected_version:
                        raise ConcurrencyError(request.stream_id, request.expected_version, actual)
            return []
        elif personal:
            stored = await append_sealed(self._backend, requests, events)
        else:
            stored = await self._backend.append(requests)
        self._woken()
        if extra is None:
            return [
                evolve(event, {"position": row.position, "aggregate_version": row.version})
                for event, row in zip(events, stored, strict=True)
            ]
        merged = extra[0]
        return [
            evolve(
                event,
                {
                    "position": row.position,
                    "aggregate_version": row.version,
                    "metadata": {**event.metadata, **merged} if event.metadata else dict(merged),
                },
            )
            for event, row in zip(events, stored, strict=True)
        ]

    async def _append_checkpointed(
        self,
        requests: list[AppendRequest],
        events: list[Event],
        move: CheckpointMove,
        command: CommandRecord | None,
        personal: bool,
    ) -> list[StoredEvent]:
        """The rows and the checkpoint move, through the backend's reactions tier; events with
        personal data are sealed and their keys claimed in the same step (the backend has the
        personal-data tier too: ``append_streams`` required it)."""
        backend: Reactions = self._tier("reactions", "move a checkpoint with an append")
        checked = checked_move(move, command is not None)
        if personal:
            return await append_sealed(self._backend, requests, events, move=checked)
        return await backend.append_checkpointed(requests, checked)

    def _woken(self) -> None:
        """Wake this store's polling waiters (a backend without live_wait) after a write."""
        if self._appended is not None:
            self._appended.set()
            self._appended = None

    async def recorded_command(self, key: str) -> tuple[CommandRecord, list[Event]] | None:
        """The command recorded under idempotency ``key`` and the events its commit stored
        (as stored, with positions); ``None`` when the key is not recorded."""
        self._check_open()
        backend = self._tier("commands", "read a recorded command")
        found: RecordedCommand | None = await backend.get_command(checked_key(key))
        if found is None:
            return None
        return found.record, await self.rebuilt(found.rows)

    async def rebuilt(self, rows: list[StoredEvent]) -> list[Event]:
        """Rows of this store's backend as events (personal data opened, or masked)."""
        rows = await opened(self._backend, rows, self._capabilities.personal_data)
        return from_rows(rows)

    async def prune_commands(
        self, *, recorded_before: datetime | None = None, keep: int | None = None, batch: int = 500
    ) -> int:
        """Forget recorded commands older than ``recorded_before`` or beyond the ``keep``
        latest, ``batch`` at a time, each batch its own short transaction (writers go between
        them); return how many. A forgotten key dispatched again runs again."""
        self._check_open()
        backend = self._tier("commands", "prune recorded commands")
        refuse_inside_transaction(self._backend, "prune recorded commands")
        return await prune_in_batches(backend, recorded_before, keep, batch)

    async def read_stream(
        self, stream_id: str, *, from_version: int = 1, to_version: int | None = None
    ) -> list[Event]:
        """The events of one stream in version order, from ``from_version`` up to
        ``to_version`` (inclusive; ``None``: the end). ``[]`` when there are none.

        :raises StreamDeleted: the stream was deleted (a backend with the lifecycle tier).
        :raises StreamArchived: its events are archived (see :meth:`read_archived`).
        """
        return from_rows(await self._stream_rows(stream_id, from_version, to_version))

    async def _stream_rows(
        self, stream_id: str, from_version: int, to_version: int | None
    ) -> list[StoredEvent]:
        """The rows :meth:`read_stream` decodes, personal data opened. ``Repository`` replays
        them a few at a time (:func:`~.rows.events_of`) instead of holding every event."""
        self._check_open()
        last = None if to_version is None else min(to_version, HIGHEST_VERSION)
        if from_version > HIGHEST_VERSION or (last is not None and last < from_version):
            return []
        rows = await self._backend.read_stream(stream_id, from_version, last)
        return await opened(self._backend, rows, self._capabilities.personal_data)

    def read_all(
        self,
        *,
        from_position: int = 0,
        event_types: Iterable[type[Event] | str] | None = None,
        page_size: int = _PAGE_SIZE,
        partition: tuple[int, int] | None = None,
    ) -> AsyncIterator[Event]:
        """Every event after ``from_position`` in global order, fetched ``page_size`` at a time.

        :param partition: ``(i, n)``: only events of streams in partition ``i`` of ``n`` (see
            :func:`~eventuality.partition_of`); the other rows are read and passed over.
        """
        self._check_open()
        if page_size < 1:
            raise ValueError(f"page_size must be at least 1, not {page_size}")
        if partition is not None:
            check_partition(partition)
        types = None if event_types is None else event_type_names(event_types)
        if types is not None and Event in (t for t in event_types or () if isinstance(t, type)):
            types = None
        return LogReader(
            self._backend,
            min(from_position, HIGHEST_POSITION),
            types,
            page_size,
            self._capabilities.personal_data,
            partition,
        )

    async def stream_version(self, stream_id: str) -> int:
        """The stream's current version: 0 when it has no events.

        :raises StreamDeleted: the stream was deleted (0 would say it may be created).
        :raises StreamArchived: its events are archived.
        """
        self._check_open()
        return await self._backend.stream_version(stream_id)

    async def last_position(self) -> int:
        """The highest global position readable now: 0 when the store is empty."""
        self._check_open()
        return await self._backend.last_position()

    async def wait_appended(self, after: int, timeout: float) -> bool:
        """Wait until something may have been appended after ``after``; False on timeout.

        A backend without ``wait_appended`` is polled (10 ms backing off to 250 ms), and woken
        at once by appends through this store object.
        """
        self._check_open()
        if self._capabilities.live_wait:
            return await cast(WaitsAppended, self._backend).wait_appended(after, timeout)
        return await poll_appended(self.last_position, self._wake, after, timeout)

    async def _wake(self) -> anyio.Event:
        if self._appended is None:
            self._appended = anyio.Event()
        return self._appended

    def hold_name(self, name: str) -> AbstractAsyncContextManager[None]:
        """Hold subscription ``name`` against other processes while the block runs, waiting
        while another process holds it (PostgreSQL and SQLite files; a killed holder releases
        it). A backend without ``hold_name`` holds nothing: two processes may then both run a
        subscription of one name (see ``capabilities.cross_process_locks``)."""
        self._check_open()
        checked = checked_name(name)
        if self._holds_names:
            return cast(NameLocks, self._backend).hold_name(checked)
        return _hold_nothing()

    async def forget(self, subject: str | int | uuid.UUID) -> bool:
        """Erase ``subject``'s personal data: delete its key, and every snapshot of the streams
        its events were appended to, in one transaction (those streams get no snapshot again).
        From then on every read shows the fields of :class:`~eventuality.PersonalData` as their
        masks; the events stay, so versions and positions never move. Later events of the
        subject get a new key. True if the subject had a key.

        :raises UnsupportedOperation: the backend keeps no personal-data keys.
        """
        self._check_open()
        keeper: SubjectKeys = self._tier("personal_data", "forget a subject")
        if not isinstance(subject, str | int | uuid.UUID) or isinstance(subject, bool):
            raise TypeError(f"a subject is a str, int or UUID, not {type(subject).__name__}")
        refuse_inside_transaction(self._backend, "forget a subject")
        return await keeper.forget(str(subject))


POLL_START, POLL_MAX = 0.01, 0.25

Tier = Literal[
    "checkpoints",
    "snapshots",
    "transactions",
    "stream_lifecycle",
    "personal_data",
    "commands",
    "reactions",
]
_TIERS = {
    "commands": "append_command, get_command and prune_commands",
    "reactions": "append_checkpointed",
    "checkpoints": "get_checkpoint and set_checkpoint",
    "snapshots": "save_snapshot and load_snapshot",
    "transactions": "transaction, query and paramstyle",
    "stream_lifecycle": (
        "stream_state, delete_stream, truncate_stream, archive_stream, restore_stream and "
        "read_archived"
    ),
    "personal_data": "keys_for_subjects, keys_by_id, append_with_keys and forget",
}


@asynccontextmanager
async def _hold_nothing() -> AsyncIterator[None]:
    yield


async def poll_appended(
    last_position: Callable[[], Awaitable[int]],
    wake: Callable[[], Awaitable[anyio.Event]],
    after: int,
    timeout: float,
) -> bool:
    """``wait_appended`` for a backend: wait on the event ``wake()`` hands out (set when this
    process appends, or when a notification arrives), and poll ``last_position`` meanwhile with a
    backoff from 10 to 250 ms, for writers that cannot wake us. ``wake()`` is asked before each
    read, so an append that lands during the read is not missed."""
    deadline = anyio.current_time() + timeout
    interval = POLL_START
    while True:
        appended = await wake()
        if await last_position() > after:
            return True
        remaining = deadline - anyio.current_time()
        if remaining <= 0:
            return False
        with anyio.move_on_after(min(interval, remaining)):
            await appended.wait()
        interval = min(interval * 2, POLL_MAX)


def require_asyncio(store: str) -> None:
    """Refuse, with a clear error, a store whose driver runs only on asyncio (aiosqlite,
    asyncpg) when the running event loop is another one (trio)."""
    import asyncio

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        raise UnsupportedEventLoop(
            f"{store} runs on asyncio only (its driver is asyncio-based), and this code runs "
            "under another event loop (trio?). Run it with asyncio (anyio.run(main) or "
            "anyio.run(main, backend='asyncio')), or use InMemoryEventStore, which runs on both."
        ) from None


# Everything between the user's ":" and the last "@" is the password, even if it holds "/", "?"
# or "#" that a URL parser would take for the path: hiding too much beats showing a password.
_USERINFO = re.compile(r"^(?P<head>[^:/?#]*://[^:@/?#]*):.*@(?P<tail>[^@]*)$", re.DOTALL)
_PASSWORD_PARAMETER = re.compile(r"(?i)(\bpassword=)[^&\s#]*")


def redact_dsn(dsn: str) -> str:
    """``dsn`` with any password replaced by ``***``, fit for reprs, logs and error messages."""
    text = _USERINFO.sub(r"\g<head>:***@\g<tail>", dsn)
    return _PASSWORD_PARAMETER.sub(r"\1***", text)
