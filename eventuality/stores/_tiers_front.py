"""The store front's optional tiers that keep state beside the log: checkpoints, snapshots,
and the SQL tier (a write transaction and read-only queries on the store's own database).

A mixin of :class:`~eventuality.stores.base.EventStore`, kept apart so the front stays small. It
also knows which task is inside ``store.transaction()``, so writes that could not be part of
that transaction are refused instead of waiting on it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from ..errors import TransactionError
from ._named_sql import NamedTransaction, bind
from ._validation import HIGHEST_POSITION, checked_name, refuse_transaction_control
from .boundary import Checkpoints, Snapshots, Transactions
from .rows import Snapshot

if TYPE_CHECKING:
    from .boundary import Backend

__all__ = ["TierCalls", "inside_transaction", "refuse_inside_transaction"]


class TierCalls:
    """Checkpoints, snapshots, ``transaction``, ``paramstyle`` and ``query``."""

    if TYPE_CHECKING:
        _backend: Backend

        def _check_open(self) -> None: ...
        def _tier(self, capability: Any, operation: str) -> Any: ...

    async def get_checkpoint(self, name: str) -> int | None:
        """The position stored under ``name``, ``None`` if there is none.

        :raises UnsupportedOperation: the backend keeps no checkpoints.
        """
        self._check_open()
        checkpoints: Checkpoints = self._tier("checkpoints", "read a checkpoint")
        return await checkpoints.get_checkpoint(checked_name(name))

    async def set_checkpoint(self, name: str, position: int, *, expected: int | None) -> None:
        """Move checkpoint ``name`` from ``expected`` to ``position``, atomically.

        :raises CheckpointConflict: the checkpoint is not at ``expected``.
        :raises UnsupportedOperation: the backend keeps no checkpoints.
        """
        self._check_open()
        checkpoints: Checkpoints = self._tier("checkpoints", "set a checkpoint")
        if not isinstance(position, int) or isinstance(position, bool) or position < 0:
            raise ValueError(f"checkpoint position must be an int >= 0, not {position!r}")
        if position > HIGHEST_POSITION:
            raise ValueError(
                f"checkpoint position {position} is beyond any position a store assigns "
                f"(at most {HIGHEST_POSITION}); nothing was written. Store a position read "
                "from an event."
            )
        refuse_inside_transaction(self._backend, "set a checkpoint")
        await checkpoints.set_checkpoint(checked_name(name), position, expected)

    async def save_snapshot(self, snapshot: Snapshot) -> None:
        """Store ``snapshot``, replacing one of the same stream and version.

        :raises UnsupportedOperation: the backend keeps no snapshots.
        """
        self._check_open()
        snapshots: Snapshots = self._tier("snapshots", "save a snapshot")
        refuse_inside_transaction(self._backend, "save a snapshot")
        await snapshots.save_snapshot(snapshot)

    async def load_snapshot(
        self, stream_id: str, *, max_version: int | None = None
    ) -> Snapshot | None:
        """The latest snapshot of ``stream_id`` at or below ``max_version``.

        :raises UnsupportedOperation: the backend keeps no snapshots.
        """
        self._check_open()
        snapshots: Snapshots = self._tier("snapshots", "load a snapshot")
        return await snapshots.load_snapshot(stream_id, max_version)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[NamedTransaction]:
        """A write transaction on the store's own database (see :class:`Projection`).

        Statements take ``:name`` placeholders with keyword arguments on every store
        (``tx.execute("... VALUES (:a)", a=1)``), or the backend's own with positional ones.
        Events cannot be appended inside it (nor checkpoints and snapshots set outside it): on
        SQLite the one writer is busy with this very transaction.

        :raises UnsupportedOperation: the backend has no transactions (no SQL database).
        """
        self._check_open()
        transactions: Transactions = self._tier("transactions", "open a transaction")
        refuse_inside_transaction(self._backend, "open a transaction")
        async with transactions.transaction() as transaction:
            token = _inside_transaction.set(_inside_transaction.get() | {_scope(self._backend)})
            try:
                yield NamedTransaction(transaction)
            finally:
                _inside_transaction.reset(token)

    @property
    def paramstyle(self) -> str:
        """The placeholders :meth:`query` and transactions take: ``"qmark"`` (``?``, SQLite and
        the memory store's read models) or ``"dollar"`` (``$1``, PostgreSQL).

        :raises UnsupportedOperation: the backend has no transactions (no SQL database).
        """
        transactions: Transactions = self._tier("transactions", "take SQL")
        return transactions.paramstyle

    async def query(self, sql: str, *params: Any, **named: Any) -> list[tuple[Any, ...]]:
        """Run a read-only query on the store's own database, for example on a read model a
        :class:`~eventuality.Projection` keeps there: ``:name`` placeholders with keyword
        arguments on every store, or the backend's own with positional ones.

        :raises ValueError: both kinds of parameters, or a ``:name`` without a value.
        :raises StoreError: the statement would write, or begin or end a transaction.
        :raises UnsupportedOperation: the backend has no transactions (no SQL database).
        """
        self._check_open()
        transactions: Transactions = self._tier("transactions", "run a query")
        refuse_transaction_control(sql)
        text, values = bind(sql, transactions.paramstyle, params, named)
        return await transactions.query(text, values)


_inside_transaction: ContextVar[frozenset[object]] = ContextVar(
    "eventuality_inside_transaction", default=frozenset()
)


def _scope(backend: object) -> object:
    """What one transaction holds: the backend's database where several store objects can
    share one and a write through another would wait for it (a SQLite file: its
    ``transaction_scope``), else the backend itself."""
    return getattr(backend, "transaction_scope", None) or id(backend)


def inside_transaction(backend: object) -> bool:
    """Whether the running task (or the task that started it) is inside ``store.transaction()``
    of ``backend``'s database."""
    return _scope(backend) in _inside_transaction.get()


def refuse_inside_transaction(backend: object, what: str) -> None:
    if _scope(backend) in _inside_transaction.get():
        raise TransactionError(
            f"cannot {what} on this store inside its own store.transaction() (a Projection's "
            "handler writes only its read model, through tx): the write would not be part of "
            "that transaction, so it could not be undone with it (and on SQLite it would wait "
            "for the one writer, which the transaction holds). Writing to another store is "
            "fine. To record events in reaction to events, use a Subscription, or dispatch a "
            "command from an EventBus listener.",
            operation=what,
        )
