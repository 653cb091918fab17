"""Idempotent commands: ``Flow.dispatch`` remembers each command under a key, with its events.

A dispatch records its key (the command's id, or the caller's ``idempotency_key``) in the same
store transaction as its events, so the key is stored exactly when they are. A repeat of the key
runs no handler and returns the events the first dispatch committed, as stored; the same key
with another command raises :class:`~eventuality.IdempotencyKeyReused`. Concurrent dispatches
of one key in one process take turns here (the first runs, the others then read its record);
across processes the store's unique key decides, and a loser's commit stores nothing.

"The same command" is the same command class name and the same payload: the envelope (command
id, metadata) is left out, so a client that rebuilds its command on a retry, with an explicit
key, is still sending the same one. The module is left out too, so a module moved between
deployments does not turn retries into mismatches.

A command whose id was minted in this process (built without a ``command_id``), on its first
dispatch, is neither looked up nor given a turn: no store can hold a key nobody has used yet.
The dispatch marks the id as set on the command (``model_fields_set``), so every later dispatch
of that object, or of a copy made after it, looks the key up. (A copy made before the first
dispatch shares the id unmarked: its own dispatch then runs the handler, and its commit,
refused on the key, still stores nothing and returns the first dispatch's events.)
"""

from __future__ import annotations

import hashlib
import json
import weakref
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio

from .errors import IdempotencyKeyReused
from .messages import Command, Event
from .stores.base import EventStore
from .stores.commands import CommandRecord, RecordedCommand, checked_key

__all__ = ["Idempotency", "KeepCommands"]


@dataclass(frozen=True, slots=True)
class KeepCommands:
    """How long a store remembers dispatched commands: ``Flow(idempotency=KeepCommands(...))``.

    A record goes once it is older than ``max_age`` or not among the ``max_count`` latest
    (``None``: no such limit), when ``await flow.prune_commands()`` runs: call it now and then,
    from a background task for example. A key dispatched again after its record is gone runs
    again. ``batch`` records are deleted per transaction, so writers are never held up long.
    """

    max_age: timedelta | None = timedelta(days=7)
    max_count: int | None = None
    batch: int = 500

    def __post_init__(self) -> None:
        if self.max_age is not None and (
            not isinstance(self.max_age, timedelta) or self.max_age <= timedelta(0)
        ):
            raise ValueError(f"max_age must be None or a positive timedelta, not {self.max_age!r}")
        for name in ("max_count", "batch"):
            value = getattr(self, name)
            if value is None and name == "max_count":
                continue
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, not {value!r}")

    async def prune(self, store: EventStore) -> int:
        """Forget what this policy no longer keeps on ``store``; return how many records."""
        before = None if self.max_age is None else datetime.now(UTC) - self.max_age
        return await store.prune_commands(
            recorded_before=before, keep=self.max_count, batch=self.batch
        )


_ENVELOPE = {"command_id", "metadata"}


def _digest(type_name: str, command: Command) -> str:
    """What identifies a command apart from its envelope: its class name and payload, as
    JSON. The payload's own serialisation is the quick way; one holding objects (dicts, nested
    models) is serialised again with sorted keys, so a dict built in another order matches."""
    try:
        text = type(command).__pydantic_serializer__.to_json(command, exclude=_ENVELOPE)
    except ValueError:  # a str no UTF-8 can hold (a lone surrogate): JSON escapes it below
        text = b"{{"
    if text.find(b"{", 1) != -1:
        payload = command.model_dump(mode="json", exclude=_ENVELOPE)
        text = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.blake2b(type_name.encode() + b"\x00" + text, digest_size=16).hexdigest()


class _NoStore:
    """In-flight table key of flows that learn their store from the handler's repositories."""


class _Turn:
    """One key's dispatch in flight in this process; later ones wait for it to end (the event
    is made only when one does)."""

    __slots__ = ("ended",)

    def __init__(self) -> None:
        self.ended: anyio.Event | None = None

    async def wait(self) -> None:
        if self.ended is None:
            self.ended = anyio.Event()
        await self.ended.wait()

    def end(self) -> None:
        if self.ended is not None:
            self.ended.set()


_NO_STORE: Any = _NoStore()
_NO_TABLE: dict[str, _Turn] = {}
_in_flight: weakref.WeakKeyDictionary[Any, dict[str, _Turn]] = weakref.WeakKeyDictionary()
_holding: ContextVar[frozenset[str]] = ContextVar("eventuality_keys", default=frozenset())


class Idempotency:
    """One dispatch's key: its turn in this process, its record, and the first one's result.

    ``store`` is the store the key lives in: the flow's, or (for a flow without ``store=``)
    the one its commit goes to, learnt at the commit.
    """

    __slots__ = (
        "_done",
        "_explicit",
        "_table",
        "_token",
        "command",
        "command_id",
        "digest",
        "fresh",
        "key",
        "store",
        "type_name",
    )

    def __init__(
        self,
        store: EventStore | None,
        command: Command,
        key: str | None,
        command_id: str | None = None,
    ) -> None:
        self.command_id = str(command.command_id) if command_id is None else command_id
        fields_set = command.__pydantic_fields_set__
        self.fresh = key is None and "command_id" not in fields_set
        fields_set.add("command_id")  # from now on the id is one some store may hold
        self.command = command
        self.store = store
        self.type_name = type(command).__qualname__
        self.digest = _digest(self.type_name, command)
        self._done: _Turn | None = None
        self._table: dict[str, _Turn] = _NO_TABLE
        self._token: Any = None
        if key is None:  # the flow made sure that ``store``, if known, records commands
            self.key = self.command_id
            self._explicit = False
        else:
            self.key = checked_key(key)
            self._explicit = True
            if store is not None:
                self.usable(store)

    def usable(self, store: EventStore) -> bool:
        """Whether ``store`` can record the key. A store without the commands tier dispatches
        without one, unless the key was given explicitly.

        :raises UnsupportedOperation: an explicit key, and ``store`` records no commands.
        """
        if store.capabilities.commands:
            return True
        if self._explicit:
            store.require("commands", f"dispatch with idempotency_key={self.key!r}")
        return False

    def record_for(self, store: EventStore) -> CommandRecord | None:
        """The record to commit with the events on ``store`` (None: it records no commands)."""
        if store is not self.store:
            self.store = store
            if not self.usable(store):
                return None
        elif not store.capabilities.commands:
            return None
        return CommandRecord(
            self.key, self.type_name, self.command_id, self.digest, datetime.now(UTC)
        )

    async def enter(self) -> list[Event] | None:
        """Wait while this process dispatches the key already, then return the recorded
        events if the key is recorded (None: run the handler)."""
        if self.fresh:  # minted here, never dispatched: recorded nowhere, held by no one
            return None
        if self.key not in _holding.get():  # a dispatch nested in the key's own: never wait
            scope = self.store if self.store is not None else _NO_STORE
            table = _in_flight.get(scope)
            if table is None:
                table = _in_flight[scope] = {}
            self._table = table
            while (busy := table.get(self.key)) is not None:
                await busy.wait()
            table[self.key] = self._done = _Turn()
            self._token = _holding.set(_holding.get() | {self.key})
        return await self.recorded()

    def exit(self) -> None:
        """Let the next dispatch of the key in this process go."""
        done, self._done = self._done, None
        if done is None:
            return
        _holding.reset(self._token)
        if self._table.get(self.key) is done:
            del self._table[self.key]
        done.end()

    async def recorded(self) -> list[Event] | None:
        """The events the key's first dispatch committed, or None if the key is not recorded.

        :raises IdempotencyKeyReused: it is recorded for another command.
        """
        store = self.store
        if store is None or not store.capabilities.commands:
            return None
        # The backend directly (the key was checked when this was made): this runs before
        # every dispatch, so it skips the front's second round of checks.
        found: RecordedCommand | None = await store.backend.get_command(self.key)  # type: ignore[attr-defined]
        if found is None:
            return None
        record = found.record
        if record.digest != self.digest:
            raise IdempotencyKeyReused(
                self.key,
                record.command_type,
                record.command_id,
                self.type_name,
                self.command_id,
            )
        return await store.rebuilt(found.rows)
