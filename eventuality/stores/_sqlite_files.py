"""What the SQLite store keeps about its files on disk: which database file it opened, and the
lock files that hold subscription names across processes.

**Identity.** At open the store records the database file's device and inode. Every write
(append, checkpoint, snapshot, ``store.transaction()``) first checks, on the writer thread, that
the path still names that file: one ``stat`` per commit. A file deleted, moved or replaced
while open would otherwise keep taking writes into an unlinked inode, lost at close; such a
write is refused with :class:`~eventuality.StoreError` and writes nothing.

**Subscription locks.** ``hold_name(name)`` takes ``flock(LOCK_EX | LOCK_NB)`` on
``<database>-locks/<sha256(name)[:32]>.lock`` (the first 32 hex digits of the SHA-256 of the
name's UTF-8), retrying with backoff while another process holds it. The OS releases the lock
when its holder exits or is killed, so a waiting instance takes over from the checkpoint. Lock
files are left in place: deleting one while another process waits on it would let two processes
hold the name. Without ``fcntl`` (Windows) nothing is held, and the checkpoint's compare-and-set
is the only guard, as before.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio

from ..errors import StoreError
from .base import POLL_START

__all__ = [
    "FileIdentity",
    "check_same_file",
    "empty_wal_if_moved",
    "identify",
    "identify_opened",
    "lock_path",
    "subscription_lock",
]

FileIdentity = tuple[int, int]
LOCK_POLL = 0.2


def identify(path: str) -> FileIdentity:
    """The (device, inode) pair naming the file at ``path`` now."""
    found = os.stat(path)
    return found.st_dev, found.st_ino


def identify_opened(path: str) -> tuple[str, FileIdentity]:
    """The absolute path and identity of the file the store just opened at ``path``: absolute,
    as SQLite resolved it against the working directory then, which may change later."""
    absolute = os.path.abspath(path)
    try:
        return absolute, identify(absolute)
    except OSError as exc:
        raise StoreError(
            f"SQLite database file {path!r} was opened but cannot be found any more ({exc}): "
            "something moved or deleted it. Open the store again on the file you mean."
        ) from exc


def check_same_file(path: str, identity: FileIdentity, what: str) -> None:
    """Raise :class:`StoreError` unless ``path`` still names the file recorded as ``identity``."""
    try:
        now: FileIdentity | None = identify(path)
    except OSError:
        now = None
    if now == identity:
        return
    found = "nothing" if now is None else "another file"
    raise StoreError(
        f"refused to {what}: the SQLite database file {path!r} was moved, replaced or deleted "
        f"while the store was open (the path now names {found}). Nothing was written. Close the "
        "store and open it on the database file you mean; writes made through the old file "
        "after it left that path are not in the new one."
    )


def empty_wal_if_moved(db: sqlite3.Connection, path: str, identity: FileIdentity) -> None:
    """At close, if ``path`` no longer names our file: move our WAL into our (unlinked) file and
    truncate it. SQLite leaves the WAL of a moved file in place, where the next store opening
    the file now at ``path`` would replay it over that file's pages."""
    try:
        if identify(path) == identity:
            return
    except OSError:
        pass
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def lock_path(database: str, name: str) -> str:
    """The lock file that holds subscription ``name`` for ``database``."""
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return os.path.join(f"{database}-locks", f"{digest}.lock")


if sys.platform == "win32":

    @asynccontextmanager
    async def subscription_lock(database: str, name: str) -> AsyncIterator[None]:
        """No ``flock`` here: hold nothing (the checkpoint's compare-and-set still guards)."""
        yield

else:
    import fcntl

    @asynccontextmanager
    async def subscription_lock(database: str, name: str) -> AsyncIterator[None]:
        """Hold ``name`` against other processes until the block ends, waiting while one does."""
        path = lock_path(database, name)
        fd = _open_lock_file(database, name, path)
        try:
            interval = POLL_START
            while not _try_lock(fd, database, name, path):
                await anyio.sleep(interval)
                interval = min(interval * 2, LOCK_POLL)
            yield
        finally:
            os.close(fd)  # releases the lock

    def _open_lock_file(database: str, name: str, path: str) -> int:
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        except OSError as exc:
            raise _lock_error(database, name, path, exc) from exc

    def _try_lock(fd: int, database: str, name: str, path: str) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        except OSError as exc:
            raise _lock_error(database, name, path, exc) from exc
        return True

    def _lock_error(database: str, name: str, path: str, exc: OSError) -> StoreError:
        return StoreError(
            f"cannot hold subscription {name!r} on SQLite database {database!r}: its lock file "
            f"{path!r} failed ({exc}). Give this process write access to the database's "
            "directory, on a file system with flock (not every network file system has it)."
        )
