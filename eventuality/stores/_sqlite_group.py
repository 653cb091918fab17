"""The SQLite store's group commit, and its inline commit at ``synchronous="NORMAL"``.

**Group commit.** Appends that arrive while a write transaction is in flight queue up and share
the next transaction, each inside its own savepoint with its own expected-version check: a
conflict in one never fails the others, and many concurrent commits pay one fsync.

**Inline commit.** At ``NORMAL`` a WAL commit writes without an fsync: a one-event transaction
is a few tens of microseconds of SQLite, less than the round trip to the writer thread that
would carry it. So a small group (up to ``INLINE_EVENTS`` events) is committed on a connection
owned by the event loop's thread, which never waits for a lock: if another process holds the
database, ``BEGIN IMMEDIATE`` fails at once, nothing was done, and the group goes to the writer
thread, which waits for the lock as before. The inline connection never checkpoints the WAL (a
checkpoint fsyncs, which would block the loop): after every ``CHECKPOINT_EVERY`` inline commits
a checkpoint runs on the writer thread in the background, off the loop: first a passive one,
which copies the WAL into the database while commits go on, then a ``RESTART`` one for the few
frames committed meanwhile, so that the next commit starts the WAL over (a passive checkpoint
alone, racing the commits, would never catch up and the WAL would grow without end). While the
short ``RESTART`` runs, a commit finds the database busy and goes to the writer thread, which
takes it as soon as the checkpoint is done.
``FULL`` and ``EXTRA`` always commit on the writer thread: their fsync must not block the loop.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import anyio

from . import _sqlite_commands as sqlite_commands
from . import _sqlite_files as files
from . import _sqlite_ops as ops
from ._keys import KeyClaims
from ._scheduling import yield_now
from ._sqlite_errors import MAPPED
from .base import AppendRequest, StoredEvent
from .commands import CommandRecord
from .rows import CheckpointMove

T = TypeVar("T")

INLINE_EVENTS = 32
CHECKPOINT_EVERY = 100

logger = logging.getLogger("eventuality")


class _Waiter:
    """A caller's append queued for the next group commit."""

    __slots__ = ("done", "job", "promoted", "wake")

    def __init__(
        self,
        requests: Sequence[AppendRequest],
        record: CommandRecord | None,
        claims: KeyClaims | None,
        checkpoint: CheckpointMove | None = None,
    ) -> None:
        params = None if record is None else sqlite_commands.record_params(record)
        self.job = ops.AppendJob(requests, claims, params, checkpoint)
        self.wake = anyio.Event()
        self.done = False
        self.promoted = False


def connect_inline_writer(path: str) -> sqlite3.Connection | None:
    """The loop's own write connection: no busy wait, no checkpoints (see the module); None if
    the database is busy right now (another store switching a new file to WAL, say): the
    writer thread commits meanwhile, and the next append tries again."""
    db = sqlite3.connect(path, isolation_level=None, timeout=0)
    try:
        db.execute("PRAGMA synchronous = NORMAL")
        db.execute("PRAGMA wal_autocheckpoint = 0")
        db.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.OperationalError as exc:
        db.close()
        if _busy(exc):
            return None
        raise
    except BaseException:
        db.close()
        raise
    return db


def _busy(exc: sqlite3.OperationalError) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    text = str(exc)
    return "locked" in text or "busy" in text


class SQLiteGroupCommit:
    """The append half of ``SQLiteBackend``: queue, lead, commit inline or on the writer."""

    _queue: list[_Waiter]
    _leading: bool
    _writer_lock: anyio.Lock
    _appended: anyio.Event
    _inline_writer: sqlite3.Connection | None
    _inline: sqlite3.Connection | None
    synchronous: str
    _since_checkpoint: int
    _checkpointing: asyncio.Task[None] | None
    path: str
    _absolute: str
    _identity: files.FileIdentity | None

    if TYPE_CHECKING:

        async def _write(self, what: str, function: Callable[..., T], *args: Any) -> T: ...

        async def _call(
            self, connection: Any, what: str, function: Callable[..., T], *args: Any
        ) -> T: ...

        def _writer_connection(self) -> Any: ...

        def _map(self, exc: BaseException, what: str) -> Exception: ...

    async def append(
        self,
        requests: Sequence[AppendRequest],
        record: CommandRecord | None = None,
        claims: KeyClaims | None = None,
        checkpoint: CheckpointMove | None = None,
    ) -> list[StoredEvent]:
        """Into the next group commit. ``record`` (``append_command``) is inserted first in
        the caller's savepoint, so a taken key refuses before any row (``_sqlite_commands``);
        ``checkpoint`` (``append_checkpointed``) is moved there too, before the rows;
        ``claims`` (``append_with_keys``) are checked after the rows, in the same savepoint."""
        waiter = _Waiter(requests, record, claims, checkpoint)
        self._queue.append(waiter)
        if self._leading:
            try:
                await waiter.wake.wait()
            except BaseException:
                if waiter in self._queue:
                    self._queue.remove(waiter)
                    if waiter.promoted:
                        self._hand_over()
                raise
            if not waiter.done:
                await self._lead(waiter)
        else:
            self._leading = True
            try:
                # The one scheduling point of an uncontended append (the writer lock is taken
                # without one): cancelled here, nothing was written.
                await yield_now()
            except BaseException:
                self._queue.remove(waiter)
                self._hand_over()
                raise
            await self._lead(waiter)
        job = waiter.job
        if job.error is not None:
            if isinstance(job.error, MAPPED):
                raise self._map(job.error, "append") from job.error
            raise job.error
        return job.result

    append_command = append  # the record rides along in the same call (see append)

    async def append_checkpointed(
        self, requests: Sequence[AppendRequest], move: CheckpointMove
    ) -> list[StoredEvent]:
        """The checkpoint moves in the caller's savepoint of the group commit (see append)."""
        return await self.append(requests, checkpoint=move)

    async def _lead(self, waiter: _Waiter) -> None:
        """Commit every queued append (``waiter``'s included) in one transaction."""
        try:
            async with self._writer_lock:
                with anyio.CancelScope(shield=True):
                    batch, self._queue = self._queue, []
                    jobs = [w.job for w in batch]
                    try:
                        if not self._commit_inline(jobs):
                            await self._write("append", ops.append_group, jobs)
                    except BaseException as exc:
                        for w in batch:
                            w.job.result, w.job.error = [], exc
                        if not isinstance(exc, Exception):
                            raise
                    finally:
                        for w in batch:
                            w.done = True
                            w.wake.set()
                        if any(w.job.result for w in batch):
                            self._notify()
        except BaseException:
            if waiter in self._queue:
                self._queue.remove(waiter)
            raise
        finally:
            self._hand_over()

    def _commit_inline(self, jobs: list[ops.AppendJob]) -> bool:
        """Commit ``jobs`` on the loop's connection if that is cheap and needs no waiting;
        False (nothing done) sends them to the writer thread."""
        db = self._inline_writer
        if db is None:
            if self._inline is None or self.synchronous != "NORMAL":  # closed, :memory:, FULL
                return False
            db = self._inline_writer = connect_inline_writer(self.path)
            if db is None:
                return False
        events = 0
        for job in jobs:
            for request in job.requests:
                events += len(request.rows)
        if events > INLINE_EVENTS:
            return False
        if self._identity is not None:
            files.check_same_file(self._absolute, self._identity, "append")
        try:
            ops.append_group(db, jobs)
        except sqlite3.OperationalError as exc:
            if not _busy(exc) or db.in_transaction:
                raise
            for job in jobs:  # rolled back: the writer thread starts them afresh
                job.result, job.error = [], None
            return False
        self._since_checkpoint += 1
        if self._since_checkpoint >= CHECKPOINT_EVERY and self._checkpointing is None:
            self._since_checkpoint = 0
            self._checkpointing = asyncio.get_running_loop().create_task(self._checkpoint())
        return True

    async def _checkpoint(self) -> None:
        """A WAL checkpoint on the writer thread (see the module); failures are logged:
        the next one, or the writer's own auto-checkpoint, tries again."""
        try:
            await self._call(self._writer_connection(), "checkpoint the WAL", _checkpoint_wal)
        except Exception as exc:
            logger.warning("could not checkpoint SQLite database %r: %s", self.path, exc)
        finally:
            self._checkpointing = None

    async def _stop_checkpoints(self) -> None:
        """Wait for a background checkpoint before the connections close."""
        task = self._checkpointing
        if task is not None:
            with anyio.CancelScope(shield=True):
                await asyncio.wait([task])

    def _hand_over(self) -> None:
        """Make the first queued caller the next leader, or stand down."""
        if self._queue:
            successor = self._queue[0]
            successor.promoted = True
            successor.wake.set()
        else:
            self._leading = False

    def _notify(self) -> None:
        self._appended.set()
        self._appended = anyio.Event()


def _checkpoint_wal(db: sqlite3.Connection) -> None:
    db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
    db.execute("PRAGMA wal_checkpoint(RESTART)").fetchall()
