"""Partitioned subscriptions: several processes share one named subscription, stream by stream.

``Subscription(..., partitions=N)`` splits the log by :func:`partition_of` (CRC-32 of the stream
id, modulo N). Partition ``i`` is a copy of the subscription with its own checkpoint,
``"{name}#{i}/{N}"``, that reads only the events of its streams, in log order: the events of one
stream are handled in order, by one owner at a time. ``"{name}#partitions"`` stores N, so that
an instance asking for another count is refused (:class:`~eventuality.PartitionsChanged`) and
read-your-writes waits in other processes know the checkpoints to wait on.

**Ownership.** A backend with ``lease_names(name)`` (PostgreSQL) shares the partitions between
processes: each process joins the subscription's group, and every :data:`REBALANCE_INTERVAL`
seconds counts the live members M and aims at ``ceil(N / M)`` partitions: it gives away its
extras (their handlers stop, checkpoints saved) and takes free ones. Other stores hold the whole
name in one process (``hold_name``) and run all N partitions there.
"""

from __future__ import annotations

import copy
import random
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, Protocol

import anyio
from anyio.abc import TaskGroup

from ._progress import TRANSIENT_ERRORS, SubscriptionStatistics, back_off, progress_of
from .errors import CheckpointConflict, PartitionsChanged
from .stores.base import EventStore

if TYPE_CHECKING:
    from .subscriptions import Subscription

__all__ = [
    "REBALANCE_INTERVAL",
    "Partitions",
    "layout_name",
    "partition_name",
    "refuse_partitioned",
]


#: Seconds between two looks at the live members and the free partitions.
REBALANCE_INTERVAL = 1.0


def partition_name(name: str, index: int, partitions: int) -> str:
    """The checkpoint name of partition ``index`` of ``partitions`` of subscription ``name``."""
    return f"{name}#{index}/{partitions}"


def layout_name(name: str) -> str:
    """The checkpoint that stores how many partitions subscription ``name`` has."""
    return f"{name}#partitions"


async def stored_partitions(store: EventStore, name: str) -> int | None:
    return await store.get_checkpoint(layout_name(name))


async def refuse_partitioned(store: EventStore, name: str) -> None:
    """An unpartitioned instance of a partitioned name would start from a stale checkpoint.

    :raises PartitionsChanged: ``name`` has stored partitions.
    """
    stored = await stored_partitions(store, name)
    if stored is not None:
        raise PartitionsChanged(name, stored, None)


class Leases(Protocol):
    """Non-blocking holds of names, and a count of a group's live members (one session)."""

    async def join(self, group: str) -> None: ...
    async def members(self, group: str) -> int: ...
    async def try_hold(self, name: str) -> bool: ...
    async def release(self, name: str) -> None: ...
    async def held(self, names: Sequence[str]) -> set[str]: ...


class _OneProcess:
    """Leases where the whole name is held by this process: every partition is free to it."""

    def __init__(self) -> None:
        self._held: set[str] = set()

    async def join(self, group: str) -> None:
        pass

    async def members(self, group: str) -> int:
        return 1

    async def try_hold(self, name: str) -> bool:
        self._held.add(name)
        return True

    async def release(self, name: str) -> None:
        self._held.discard(name)

    async def held(self, names: Sequence[str]) -> set[str]:
        return self._held.intersection(names)


class _Owned:
    def __init__(self) -> None:
        self.scope = anyio.CancelScope()
        self.done = anyio.Event()


class Partitions:
    """The partitions of one :class:`Subscription` in this process, and their ownership."""

    def __init__(self, subscription: Subscription, count: int) -> None:
        self.subscription = subscription
        self.count = count
        self.names = [partition_name(subscription.name, i, count) for i in range(count)]
        self._workers: dict[int, Subscription] = {}
        self._owned: dict[int, _Owned] = {}
        self._failure: Exception | None = None

    def worker(self, index: int) -> Subscription:
        """Partition ``index``: a copy of the subscription under the partition's name."""
        found = self._workers.get(index)
        if found is None:
            found = copy.copy(self.subscription)
            found.name = self.names[index]
            found._partition = (index, self.count)
            found._partitions = None
            found._checkpoint, found._position, found._handled = None, 0, 0
            found._running, found._error, found._handler_error = False, None, None
            self._workers[index] = found
        return found

    def statistics(self) -> SubscriptionStatistics:
        """Over the partitions this process runs now (if none, those it ran): the lowest
        position and checkpoint, and the events handled."""
        parts = [self._workers[i].statistics() for i in sorted(self._workers)]
        running = [p for p in parts if p.running] or parts
        checkpoints = [p.checkpoint for p in running if p.checkpoint is not None]
        subscription = self.subscription
        return SubscriptionStatistics(
            name=subscription.name,
            position=min((p.position for p in running), default=0),
            checkpoint=min(checkpoints) if running and len(checkpoints) == len(running) else None,
            handled=sum(p.handled for p in parts),
            running=subscription._running,
            error=subscription._error,
            partitions=tuple(parts),
        )

    async def prepare(self) -> None:
        """Set up, check the stored partition count (storing it the first time), and give
        each partition without a checkpoint the unpartitioned one, if any: the events before
        it were handled.

        :raises PartitionsChanged: the name is stored with another count.
        """
        store, name = self.subscription.store, self.subscription.name
        await self.subscription.set_up()
        stored = await stored_partitions(store, name)
        if stored is None:
            stored = await _create(store, layout_name(name), self.count)
        if stored != self.count:
            raise PartitionsChanged(name, stored, self.count)
        start = await store.get_checkpoint(name) or 0
        for partition in self.names:
            if await store.get_checkpoint(partition) is None:
                await _create(store, partition, start)

    async def catch_up(self) -> int:
        """Catch every partition up in turn, holding each against other processes."""
        store = self.subscription.store
        handled = 0
        async with self._reporting(retrying=False):
            await self.prepare()
            if not _shared(store):
                async with _one_process(self.subscription):
                    for index in range(self.count):
                        handled += await self.worker(index).catch_up()
            else:
                for index in range(self.count):
                    async with store.hold_name(self.names[index]):
                        handled += await self.worker(index).catch_up()
        return handled

    async def run(self) -> None:
        """Own a fair share of the partitions and follow them, until cancelled; a lost lease
        session is retried like a transient store error."""
        attempt = 0
        while True:
            try:
                async with self._reporting(retrying=True):
                    await self.prepare()
                    async with self._session() as leases:
                        attempt = 0
                        await self._own(leases)
            except TRANSIENT_ERRORS as exc:
                if exc is self._failure:  # a partition's handler raised it
                    raise
                attempt += 1
                await back_off(self.subscription.name, exc, attempt, "rejoining")

    @asynccontextmanager
    async def _reporting(self, *, retrying: bool) -> AsyncIterator[None]:
        subscription = self.subscription
        state = progress_of(subscription.store)
        subscription._running, subscription._error = True, None
        state.start(subscription.name)
        try:
            yield
        except Exception as exc:
            subscription._error = exc
            if not (retrying and isinstance(exc, TRANSIENT_ERRORS) and exc is not self._failure):
                state.fail(subscription.name, exc)
            raise
        finally:
            subscription._running = False

    def _session(self) -> AbstractAsyncContextManager[Leases]:
        store, name = self.subscription.store, self.subscription.name
        if not _shared(store):
            return _one_process(self.subscription)
        return store.backend.lease_names(name)  # type: ignore[attr-defined,no-any-return]

    async def _own(self, leases: Leases) -> None:
        group = f"{self.subscription.name}#members"
        await leases.join(group)
        self._failure = None
        try:
            async with anyio.create_task_group() as tasks:
                while True:
                    await self._rebalance(leases, group, tasks)
                    await anyio.sleep(REBALANCE_INTERVAL * random.uniform(0.75, 1.0))
        finally:
            self._owned.clear()
        if self._failure is not None:  # _work cancelled the loop above
            raise self._failure

    async def _rebalance(self, leases: Leases, group: str, tasks: TaskGroup) -> None:
        """Give away partitions beyond ``ceil(N / live members)``, or take free ones up to it."""
        target = -(-self.count // max(1, await leases.members(group)))
        mine = sorted(self._owned)
        for index in mine[target:]:
            owned = self._owned.pop(index)
            owned.scope.cancel()
            await owned.done.wait()
            await leases.release(self.names[index])
        if len(mine) >= target:
            return
        taken = await leases.held(self.names)
        free = [i for i in range(self.count) if self.names[i] not in taken]
        random.shuffle(free)
        for index in free:
            if len(self._owned) >= target:
                break
            if await leases.try_hold(self.names[index]):
                owned = self._owned[index] = _Owned()
                tasks.start_soon(self._work, index, owned, tasks, name=self.names[index])

    async def _work(self, index: int, owned: _Owned, tasks: TaskGroup) -> None:
        """Run partition ``index`` until given away; its failure stops every partition."""
        try:
            with owned.scope:
                await self.worker(index).run()
        except Exception as exc:
            if self._failure is None:
                self._failure = exc
            tasks.cancel_scope.cancel()
        finally:
            owned.done.set()


def _shared(store: EventStore) -> bool:
    """Whether the store's backend shares partitions between processes."""
    return callable(getattr(store.backend, "lease_names", None))


@asynccontextmanager
async def _one_process(subscription: Subscription) -> AsyncIterator[Leases]:
    """Hold the whole name in this process, as an unpartitioned subscription does."""
    store = subscription.store
    async with progress_of(store).lock(subscription.name), store.hold_name(subscription.name):
        yield _OneProcess()


async def _create(store: EventStore, name: str, position: int) -> int:
    """Store checkpoint ``name`` at ``position`` unless one is there; return what is stored."""
    try:
        await store.set_checkpoint(name, position, expected=None)
    except CheckpointConflict as exc:
        if exc.actual is None:
            raise
        return exc.actual
    return position
