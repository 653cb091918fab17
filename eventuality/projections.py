"""Projections: read models written in the store's own database, in the same transaction as
the checkpoint, so each event changes the read model exactly once; versions rebuild one beside
the live one (``_versions.py``)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from contextlib import aclosing
from typing import Any

from . import _telemetry
from ._progress import progress_of
from ._versions import Switch, Versions
from .errors import CheckpointConflict, ProjectionRetired, UnknownEventType
from .messages import Event
from .stores.base import EventStore, Transaction
from .subscriptions import OnUnknown, Subscription

__all__ = ["Projection", "ProjectionHandler", "SetUp"]

logger = logging.getLogger("eventuality")

ProjectionHandler = Callable[[Any, Transaction], Awaitable[None]]
SetUp = Callable[[Transaction], Awaitable[None]]


class Projection(Subscription):
    """A subscription whose handler writes a read model in the store's own database, in the
    same transaction as the checkpoint: each event changes the read model exactly once.

    ``handler(event, tx)`` writes through ``tx`` (:class:`~eventuality.stores.base.Transaction`)
    and nothing else: a crash or cancellation at any moment rolls back the read model and the
    checkpoint together, and the events come again. Events are committed ``batch_size`` at a
    time; while a batch is open, appends in this process wait (SQLite has one writer).
    A failing handler undoes only its own event; the ones before it in the batch commit.

    :param setup: ``async setup(tx)`` creates what the read model needs (``CREATE TABLE IF NOT
        EXISTS ...``) in a transaction of its own, before the first pass in this process and
        when :class:`SubscriptionRunner` starts. It runs at every start, so make it idempotent.
    :param version: rebuild without downtime (:mod:`~eventuality._versions`): version ``n``
        keeps its checkpoint as ``name@vn`` (1: ``name``) and writes ``table(t)`` for each of
        ``tables``, the names readers query, which answer with the live version's tables.
    :param switch: ``"auto"``: take over from the live version once caught up with the log's
        end; ``"manual"``: only at :meth:`switch_over`.
    """

    def __init__(
        self,
        store: EventStore,
        name: str,
        handler: ProjectionHandler,
        *,
        event_types: Iterable[type[Event] | str] | None = None,
        batch_size: int = 100,
        setup: SetUp | None = None,
        on_unknown: OnUnknown = "stop",
        partitions: int | None = None,
        version: int | None = None,
        tables: Iterable[str] = (),
        switch: Switch = "auto",
    ) -> None:
        if version is not None and partitions is not None:
            raise ValueError(
                f"Projection {name!r} takes version= or partitions=, not both yet: a version "
                "switches over when its one checkpoint reaches the log's end. Rebuild the new "
                "version unpartitioned, or run partitions under a new name."
            )
        self.versions = None if version is None else Versions(store, name, version, tables, switch)
        if self.versions is not None:
            name = self.versions.checkpoint_name
        elif tables:
            raise ValueError(f"tables={tables!r} needs a version= (see Projection's version)")
        super().__init__(
            store,
            name,
            _never,
            event_types=event_types,
            on_unknown=on_unknown,
            partitions=partitions,
        )
        self.project = handler
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, not {batch_size}")
        if setup is not None and not callable(setup):
            raise TypeError(f"setup must be an async function of a transaction, not {setup!r}")
        self.batch_size = batch_size
        self.setup = setup
        self._set_up_done = False

    def _check_store(self, store: EventStore, name: str) -> None:
        """A projection writes its read model and checkpoint in one store transaction.

        :raises UnsupportedOperation: the store has no transactions (or no checkpoints).
        """
        store.require(
            "transactions",
            f"run Projection {name!r}, which writes its read model and checkpoint in one "
            "transaction (for a store without one, use a Subscription and keep the read model "
            "elsewhere)",
        )
        super()._check_store(store, name)

    async def set_up(self) -> None:
        """Run ``setup`` in a transaction of its own, once per instance: the read model's
        tables exist when this returns. ``catch_up()``, ``run()`` and the runner call it."""
        if (self.setup is None and self.versions is None) or self._set_up_done:
            return
        async with self.store.transaction() as tx:
            if self.versions is not None:
                await self.versions.set_up(tx, self.setup)
            elif self.setup is not None:
                await self.setup(tx)
        self._set_up_done = True

    def table(self, name: str) -> str:
        """This version's table for ``name`` (one of ``tables``): ``todo_list_v2`` in version 2."""
        return self._versioned("name its tables").table(name)

    async def switch_over(self) -> bool:
        """Make this version the one readers see, in one transaction; False if it was already.

        :raises ProjectionVersionError: it has not caught up with the log's end.
        :raises ProjectionRetired: a later version is live.
        """
        await self.set_up()
        return await self._versioned("switch over").switch_over()

    async def retire(self) -> None:
        """Drop this version's tables once a later version is live (readers of it fail then)."""
        await self._versioned("retire").retire()

    def _versioned(self, what: str) -> Versions:
        if self.versions is None:
            raise TypeError(f"projection {self.name!r} has no version= to {what} with")
        return self.versions

    async def run(self) -> None:
        """As :meth:`Subscription.run`; a version retired by a later one returns, logged."""
        try:
            await super().run()
        except ProjectionRetired as exc:
            logger.info("projection %r stopped: %s", self.name, exc)

    async def _pass(self) -> int:
        handled = await super()._pass()
        if self.versions is not None:
            await self.versions.after_pass()
        return handled

    async def _handle_until_end(self) -> int:
        handled = 0
        batch: list[Event | int] = []
        try:
            async with aclosing(self._events()) as events:
                async for event in events:
                    batch.append(event)
                    if len(batch) >= self.batch_size:
                        handled += await self._commit(batch)
                        batch = []
        except UnknownEventType:
            if batch:  # the checkpoint stops just before the event it cannot read
                await self._commit(batch)
            raise
        if batch:
            handled += await self._commit(batch)
        return handled

    async def _advance(self, position: int) -> None:
        await self._commit([], advance_to=position)

    async def _commit(self, batch: list[Event | int], advance_to: int = 0) -> int:
        """Handle ``batch`` (events, and positions of skipped ones) and move the checkpoint in
        one transaction; raise the first failure after committing the events before it."""
        failure: Exception | None = None
        handled = 0
        position = self._position
        async with self.store.transaction() as tx:
            stored = await tx.get_checkpoint(self.name)
            if stored != self._checkpoint:
                raise CheckpointConflict(self.name, self._checkpoint, stored)
            if self.versions is not None:
                await self.versions.check(tx)
            for event in batch:
                if isinstance(event, int):
                    position = max(position, event)
                    continue
                try:
                    with _telemetry.handling(self, event):
                        async with tx.savepoint():
                            await self.project(event, tx)
                except Exception as exc:
                    failure = exc
                    break
                position = event.position or position
                handled += 1
            if failure is None:
                position = max(position, advance_to)
            moved = position != (stored or 0)
            if moved:
                await tx.set_checkpoint(self.name, position, stored)
            if self.versions is not None:
                await self.versions.after_batch(tx, position)
        if moved:
            self._checkpoint = position
        self._position = position
        self._handled += handled
        progress_of(self.store).report(self.name, position)
        if failure is not None:
            self._handler_error = failure
            raise failure
        return handled

    async def _save(self) -> None:
        """Checkpoints move inside :meth:`_commit`'s transactions only."""


def _never(event: Event) -> None:
    raise AssertionError("a Projection calls its handler with a transaction")
