"""Flow: one command's whole cycle: handler, unit of work, atomic commit, retries, publish."""

from __future__ import annotations

import inspect
import random
import weakref
from collections.abc import Awaitable, Callable, Iterable, Mapping
from contextvars import ContextVar, Token
from typing import Any, TypeVar

import anyio

from . import _telemetry
from .aggregate import Aggregate
from .bus import EventBus, _name
from .errors import AggregateExists, ConcurrencyError, UnknownCommand
from .idempotency import Idempotency, KeepCommands
from .messages import Command, Event
from .stores.base import EventStore, StreamAppend
from .stores.commands import KeyTaken
from .stores.memory import InMemoryEventStore
from .subscriptions import wait_for_subscriptions
from .unit_of_work import Snapshotter, UnitOfWork, active_unit_of_work, check_result

__all__ = ["Flow", "Handler"]

Handler = Callable[[Any], Awaitable[Any]]
H = TypeVar("H", bound=Handler)


class Flow:
    """Dispatches commands to handlers and commits what they decide, all or nothing.

    With ``store=`` every dispatch commits to that store, and events recorded on aggregates of
    another store fail the dispatch. Without it, a dispatch commits to the store of the
    repositories its handler used; ``flow.store`` then names an in-memory store made on first
    read, for code that reads it.

    ``idempotency`` is how long dispatched commands are remembered (see ``dispatch``);
    ``None`` remembers none.
    """

    def __init__(
        self,
        *,
        store: EventStore | None = None,
        bus: EventBus | None = None,
        handlers: Mapping[type[Command], Handler] | None = None,
        retries: int = 3,
        idempotency: KeepCommands | None = KeepCommands(),  # noqa: B008 (frozen)
    ) -> None:
        if not isinstance(retries, int) or retries < 0:
            raise ValueError(f"retries must be an int >= 0, not {retries!r}")
        if idempotency is not None and not isinstance(idempotency, KeepCommands):
            raise TypeError(f"idempotency takes KeepCommands(...) or None, not {idempotency!r}")
        self.idempotency = idempotency
        self._store = store
        self._default: EventStore | None = None
        self.bus: EventBus = bus if bus is not None else EventBus()
        self.retries = retries
        self._handlers: dict[type[Command], Handler] = {}
        for command_class, handler in (handlers or {}).items():
            self._register(command_class, handler)

    @property
    def store(self) -> EventStore:
        """The store given as ``store=``; without one, a new :class:`InMemoryEventStore`."""
        if self._store is None:
            self._store = self._default = InMemoryEventStore()
        return self._store

    @store.setter
    def store(self, store: EventStore) -> None:
        self._store = store

    def _commit_store(self) -> EventStore | None:
        """The store a dispatch must commit to: None when the flow was given none."""
        store = self._store
        return None if store is None or store is self._default else store

    def handles(self, command_class: type[Command]) -> Callable[[H], H]:
        """Register the decorated function as the handler of ``command_class``."""

        def register(handler: H) -> H:
            self._register(command_class, handler)
            return handler

        return register

    def _register(self, command_class: type[Command], handler: Handler) -> None:
        if not (isinstance(command_class, type) and issubclass(command_class, Command)):
            raise TypeError(f"handlers are keyed by Command subclasses, not {command_class!r}")
        if not callable(handler):
            raise TypeError(f"the handler of {command_class.__name__} is not callable: {handler!r}")
        if command_class in self._handlers:
            raise ValueError(
                f"{command_class.__name__} already has a handler "
                f"({_name(self._handlers[command_class])}); a command has exactly one"
            )
        self._handlers[command_class] = handler

    def _handler_for(self, command_class: type[Command]) -> Handler:
        for cls in command_class.__mro__:
            handler = self._handlers.get(cls)
            if handler is not None:
                return handler
        raise UnknownCommand(command_class, [c.__name__ for c in self._handlers])

    async def prune_commands(self, store: EventStore | None = None) -> int:
        """Forget the commands ``idempotency`` no longer keeps, on ``store`` (default: the
        flow's), in small batches; return how many. A forgotten key dispatched again runs again.
        """
        if self.idempotency is None:
            return 0
        return await self.idempotency.prune(store if store is not None else self.store)

    async def dispatch(
        self,
        command: Command,
        *,
        idempotency_key: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        wait_for: Iterable[str] = (),
        wait_timeout: float = 10.0,
    ) -> list[Event]:
        """Run ``command``'s handler and commit every aggregate it touched in one transaction.

        On a :class:`ConcurrencyError` the handler runs again on fresh loads, up to ``retries``
        times; each retry first takes an in-process lock on the conflicting stream, so retries
        on one hot aggregate queue up instead of racing again. Conflicts with other processes
        back off with jitter. :class:`AggregateExists` is never retried. The committed events
        are published, then returned in commit order; an empty list means nothing changed.

        ``wait_for`` names subscriptions (in this process or another) to wait for before
        returning, until each has handled the committed events: read your own writes.

        The command's id, or ``idempotency_key``, is recorded with the events in the same
        transaction. A repeat of the key (any process, after a restart) runs no handler, stores
        and publishes nothing, and returns the first dispatch's events as stored (``wait_for``
        waits for those); so does a repeat of a dispatch that changed nothing. Without
        ``store=`` the key can only be checked at the commit, after the handler ran.

        :raises UnknownCommand: no handler is registered for the command's class.
        :raises ConcurrencyError: still conflicting after every retry.
        :raises AggregateExists: the handler added an aggregate whose id is taken.
        :raises UncommittedEventsError: the handler changed aggregates on a store other than
            the flow's, or on two stores, or returned events no repository tracks.
        :raises SubscriptionTimeout: a ``wait_for`` subscription did not get there in
            ``wait_timeout`` seconds, or failed (the events are committed all the same).
        :raises IdempotencyKeyReused: the key is recorded for another command.
        :raises UnsupportedOperation: ``idempotency_key`` on a store that records no commands.

        Inside a :class:`~eventuality.Reaction`'s handler, the dispatch joins the reaction's
        unit of work instead: the handler runs there, and the events it recorded are returned
        uncommitted (no positions); the reaction commits them with its checkpoint, stamped
        with the input event's causation and correlation (the command's own metadata and
        ``metadata=`` are not applied), and publishes them. No command is recorded: the
        checkpoint move is what makes the effects happen once. A command handler that raises
        leaves none of its events in that unit. Conflicts retry the reaction's handler as a
        whole.
        """
        if isinstance(wait_for, str):
            raise TypeError(f"wait_for takes subscription names, e.g. [{wait_for!r}]")
        if not isinstance(command, Command):
            raise TypeError(f"dispatch() takes a Command instance, not {type(command).__name__}")
        telemetry = _telemetry.hooks
        if telemetry is not None and telemetry.opens_dispatch(command):
            return await telemetry.dispatch(
                self.dispatch, command, idempotency_key=idempotency_key, metadata=metadata,
                wait_for=wait_for, wait_timeout=wait_timeout,
            )  # fmt: skip
        handler = self._handler_for(type(command))
        joined = active_unit_of_work()
        if joined is not None and joined.reaction is not None:
            return await self._join(joined, handler, command, idempotency_key, wait_for)
        envelope = _envelope(command, metadata)
        attempt = 0
        commit_store = self._commit_store()
        guard = self._idempotency(commit_store, command, idempotency_key, envelope)
        locks = _RetryLocks()
        repeat: list[Event] | None = None
        try:
            if guard is not None and not guard.fresh:
                repeat = await guard.enter()
            while repeat is None:
                uow = UnitOfWork(commit_store)
                try:
                    with uow.active():
                        result = handler(command)
                        if inspect.isawaitable(result):
                            result = await result
                    store, committed, touched = await _commit(uow, result, envelope, guard)
                    break
                except KeyTaken:  # another process committed the key first: its result
                    repeat = await _first_result(guard, uow)
                    if repeat is None:
                        raise
                except ConcurrencyError as exc:
                    # The stream may have moved because another process dispatched this key.
                    repeat = await _first_result(guard, uow)
                    if repeat is not None:
                        break
                    if isinstance(exc, AggregateExists):
                        raise
                    if attempt >= self.retries:
                        if exc.expected_version == 0 and uow.is_new(exc.stream_id):
                            raise AggregateExists(exc.stream_id, exc.actual_version) from exc
                        exc.add_note(
                            f"Flow.dispatch ran the handler {attempt + 1} times and the stream "
                            "kept moving: raise Flow(retries=...) for a stream this contended."
                        )
                        raise
                    attempt += 1
                    if _telemetry.hooks is not None:
                        _telemetry.hooks.retrying(command, exc, attempt)
                    locks.after_conflict(uow.store_of(exc.stream_id), exc.stream_id)
                    await anyio.sleep(_backoff(attempt))
                    await locks.acquire()
                except Exception:
                    # A handler may refuse what the key's first dispatch (another process's,
                    # committed meanwhile) already did: that dispatch's result is the answer.
                    repeat = await _first_result(guard, uow)
                    if repeat is None:
                        raise
        finally:
            locks.release()
            if guard is not None:
                guard.exit()
        if repeat is not None:  # a repeat: nothing stored, nothing published
            if wait_for and repeat and guard is not None and guard.store is not None:
                last = max(event.position or 0 for event in repeat)
                await wait_for_subscriptions(guard.store, wait_for, last, timeout=wait_timeout)
            return repeat
        if committed:
            await self.bus.publish(committed)
            for aggregate, appended, repository in touched:
                if repository is not None:
                    await repository.snapshot_if_due(aggregate, appended)
            if wait_for and store is not None:
                last = max(event.position or 0 for event in committed)
                await wait_for_subscriptions(store, wait_for, last, timeout=wait_timeout)
        return committed

    async def _join(
        self,
        uow: UnitOfWork,
        handler: Handler,
        command: Command,
        key: str | None,
        wait_for: Iterable[str],
    ) -> list[Event]:
        """A dispatch inside reaction ``uow.reaction``'s handler: run in its unit of work."""
        where = f"inside Reaction {uow.reaction!r}"
        if key is not None:
            raise ValueError(
                f"idempotency_key={key!r} {where}: nothing was dispatched. A reaction records "
                "no command keys; its checkpoint, moved with the events, makes each input "
                "event's effects happen once. Leave the key out."
            )
        if tuple(wait_for):
            raise ValueError(
                f"wait_for {where}: nothing was dispatched. The events are committed when the "
                "reaction's handler returns, so nothing could wait for them here."
            )
        store = self._commit_store()
        if store is not None and uow.store is not None and store is not uow.store:
            ours = repr(store)
            if ours == repr(uow.store):
                ours += " (another instance)"
            raise ValueError(
                f"{type(command).__name__} was dispatched {where} through a Flow whose store is "
                f"{ours}, but the reaction commits to {uow.store!r}; nothing was dispatched. "
                "Give the reaction a Flow on its own store (or one without store=)."
            )
        return await uow.join(handler, command)

    def _idempotency(
        self, store: EventStore | None, command: Command, key: str | None, envelope: dict[str, Any]
    ) -> Idempotency | None:
        if self.idempotency is None:
            if key is not None:
                raise ValueError(
                    f"idempotency_key={key!r}, but this Flow remembers no commands "
                    "(idempotency=None): nothing was dispatched. Build it with "
                    "idempotency=KeepCommands(...) to use keys."
                )
            return None
        if key is None and store is not None and not store.capabilities.commands:
            return None  # a store that records no commands: dispatch as before
        return Idempotency(store, command, key, envelope["causation_id"])


class _RetryLocks:
    """The in-process locks one dispatch's retries hold: one per stream it conflicted on, so
    retries on hot streams queue up instead of racing again.

    Locks are always taken in one global order, and only by a dispatch holding none (it lets
    go of its own first), so no cycle of waits can form. A dispatch nested in a handler whose
    dispatch holds locks takes none: waiting there could close a cycle, so it backs off only.
    """

    def __init__(self) -> None:
        self._wanted: set[tuple[Any, str]] = set()
        self._held: list[_StreamLock] = []
        self._pending = False

    def after_conflict(self, store: EventStore | None, stream_id: str) -> None:
        """Note the stream that conflicted; let go of every lock if it is a new one."""
        key = (store if store is not None else _NO_STORE, stream_id)
        if key not in self._wanted:
            self._wanted.add(key)
            self.release()
            self._pending = True

    async def acquire(self) -> None:
        """Take the locks of every stream that conflicted so far, in the global order."""
        if not self._pending or _holding.get():
            return
        for store, stream_id in sorted(self._wanted, key=lambda k: (id(k[0]), k[1])):
            self._held.append(await _StreamLock.acquire(store, stream_id))
        self._pending = False

    def release(self) -> None:
        while self._held:
            self._held.pop().release()


class _StreamLock:
    """An in-process lock on one stream of one store, shared by every Flow, dropped once no
    dispatch holds or awaits it."""

    def __init__(self, table: dict[str, _StreamLock], stream_id: str) -> None:
        self._table = table
        self.stream_id = stream_id
        self._lock = anyio.Lock()
        self._users = 0
        self._token: Token[frozenset[int]] | None = None

    @classmethod
    async def acquire(cls, store: Any, stream_id: str) -> _StreamLock:
        """The lock of ``stream_id`` on ``store``, held."""
        table = _stream_locks.setdefault(store, {})
        lock = table.get(stream_id)
        if lock is None:
            lock = table[stream_id] = cls(table, stream_id)
        lock._users += 1
        try:
            await lock._lock.acquire()
        except BaseException:
            lock._leave()
            raise
        lock._token = _holding.set(_holding.get() | {id(lock)})
        return lock

    @classmethod
    async def wait_for_retries(cls, store: EventStore, stream_ids: list[str]) -> None:
        """Before a dispatch that holds no lock commits, let the retries that hold these
        streams' locks commit first: otherwise a stream of first attempts could beat a
        queued retry again and again until its retries run out. (Its own commit then
        conflicts, and it retries holding the locks.) Lock holders never wait here, so no
        cycle of waits can form."""
        table = _stream_locks.get(store)
        if not table or _holding.get():
            return
        for stream_id in sorted(stream_ids):
            if stream_id in table:
                (await cls.acquire(store, stream_id)).release()

    def release(self) -> None:
        if self._token is not None:
            _holding.reset(self._token)
            self._token = None
        self._lock.release()
        self._leave()

    def _leave(self) -> None:
        self._users -= 1
        if not self._users:
            del self._table[self.stream_id]


class _NoStore:
    """Lock-table key for conflicts on a stream no tracked aggregate names."""


_NO_STORE: Any = _NoStore()
_holding: ContextVar[frozenset[int]] = ContextVar("eventuality_retry_locks", default=frozenset())
_stream_locks: weakref.WeakKeyDictionary[Any, dict[str, _StreamLock]] = weakref.WeakKeyDictionary()


async def _first_result(guard: Idempotency | None, uow: UnitOfWork) -> list[Event] | None:
    """The events of the key's first dispatch, if it is recorded (after a failed attempt). A
    flow without ``store=`` looks in the store of the aggregates the handler used."""
    if guard is None:
        return None
    if guard.store is None:
        guard.store = uow.any_store()
    return await guard.recorded()


def _backoff(attempt: int) -> float:
    """No wait before the first retry, then jittered and growing, capped at 50 ms."""
    return 0.0 if attempt == 1 else random.uniform(0, min(0.05, 0.001 * 2**attempt))


def _envelope(command: Command, metadata: Mapping[str, Any] | None) -> dict[str, Any]:
    """Metadata every event of this dispatch carries: the command's, the caller's, and the
    causation and correlation ids."""
    given = dict(metadata) if metadata else {}
    correlation = given.get("correlation_id") or command.metadata.get("correlation_id")
    causation = str(command.command_id)
    return {
        **command.metadata,
        **given,
        "causation_id": causation,
        "correlation_id": str(correlation) if correlation else causation,
    }


async def _commit(
    uow: UnitOfWork, result: object, envelope: dict[str, Any], guard: Idempotency | None
) -> tuple[EventStore | None, list[Event], list[tuple[Aggregate, int, Snapshotter | None]]]:
    """Append every touched aggregate's pending events in one atomic store call, with the
    command's record (a dispatch that changed nothing commits the record alone)."""
    store, touched = uow.pending()
    check_result(uow, result, [pending.events for pending in touched])
    if store is None and guard is not None:  # no events: record the key where it read
        store = uow.any_store()
    record = None if guard is None or store is None else guard.record_for(store)
    if store is None or not (touched or record):
        return store, [], []
    await _StreamLock.wait_for_retries(store, [p.aggregate.stream_id for p in touched])
    appends = [StreamAppend(p.aggregate.stream_id, *p.aggregate.collect_events()) for p in touched]
    committed = await store.append_streams(appends, metadata=envelope, command=record)
    done = [(p.aggregate, len(p.events), p.repository) for p in touched]
    return store, committed, done
