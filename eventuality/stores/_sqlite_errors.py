"""How the SQLite store turns what goes wrong on a connection's thread into its own errors.

Everything here maps to :class:`~eventuality.StoreError` (or :class:`~eventuality.StoreBusyError`)
with a message naming the database file, what was asked and what to do; the original exception
stays the ``__cause__``.
"""

from __future__ import annotations

import sqlite3

from ..errors import StoreBusyError, StoreError, StoreUsageError
from . import _sqlite_ops as ops

__all__ = ["MAPPED", "map_error"]

# What an operation on a connection's thread can raise that the store maps.
MAPPED = (sqlite3.Error, UnicodeDecodeError, ops.DamagedRow, ops.WriteRefused)
_DAMAGED = (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)


def map_error(exc: BaseException, what: str, *, path: str, busy_timeout: float) -> StoreError:
    """The store's error for ``exc``, raised while trying to ``what`` on database ``path``."""
    if isinstance(exc, ops.WriteRefused):
        return StoreUsageError(
            f"store.query() is read-only and refused {exc.sql!r} on SQLite database {path!r}: "
            "it would write (or open a transaction). Nothing was written. Write read models "
            "through a Projection (its handler's transaction) or store.transaction()."
        )
    if isinstance(exc, ops.DamagedRow):
        return StoreError(
            f"could not {what}: the event at position {exc.position} (stream "
            f"{exc.stream_id!r}, version {exc.version}) in SQLite database {path!r} has a "
            f"damaged occurred_at, {exc.value!r}, which is not an ISO 8601 time. Repair that "
            "row's occurred_at (UPDATE eventuality_events SET occurred_at = ... WHERE position = "
            f"{exc.position}) or restore the database from a backup."
        )
    if isinstance(exc, UnicodeDecodeError):
        return StoreError(
            f"could not {what}: SQLite database {path!r} is damaged or not an eventuality "
            f"database (SQLite's error message is not valid UTF-8: {exc}). Check the path, or "
            "restore the file from a backup."
        )
    text = str(exc)
    if isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text):
        return StoreBusyError(
            f"could not {what}: SQLite database {path!r} stayed locked by another connection "
            f"for {busy_timeout:g} s ({text}). Another process holds a long write transaction: "
            "retry later, or open the store with a larger busy_timeout."
        )
    if isinstance(exc, sqlite3.Error) and getattr(exc, "sqlite_errorcode", 0) & 0xFF in _DAMAGED:
        return StoreError(
            f"could not {what} in SQLite database {path!r}: {text}. The file is damaged or not "
            "an SQLite database: check the path, or restore the file from a backup."
        )
    return StoreError(f"could not {what} in SQLite database {path!r}: {text}")
