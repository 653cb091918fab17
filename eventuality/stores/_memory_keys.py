"""The memory store's personal-data keys: dicts, checked and changed with the append they seal
without awaiting in between, which makes each step atomic on the event loop."""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import CheckpointConflict
from ._keys import KeyClaims, KeyConflict, SubjectKey
from .commands import CommandRecord
from .rows import AppendRequest, CheckpointMove, Snapshot, StoredEvent

__all__ = ["MemorySubjectKeys"]


class MemorySubjectKeys:
    """The ``SubjectKeys`` tier for :class:`~eventuality.stores.memory.MemoryBackend`."""

    _snapshots: dict[str, dict[int, Snapshot]]
    _checkpoints: dict[str, int]

    def __init__(self) -> None:
        self._keys: dict[str, SubjectKey] = {}
        self._key_ids: dict[str, SubjectKey] = {}
        self._subject_streams: dict[str, set[str]] = {}
        self._forgotten_streams: set[str] = set()

    def _append_now(
        self, requests: Sequence[AppendRequest], *, replay: bool = True
    ) -> list[StoredEvent]:
        raise NotImplementedError

    def _append_recorded(
        self, requests: Sequence[AppendRequest], record: CommandRecord
    ) -> list[StoredEvent]:
        raise NotImplementedError

    async def _pause(self) -> None:
        raise NotImplementedError

    async def keys_for_subjects(self, subjects: Sequence[str]) -> dict[str, SubjectKey]:
        await self._pause()
        return {s: self._keys[s] for s in subjects if s in self._keys}

    async def keys_by_id(self, key_ids: Sequence[str]) -> dict[str, SubjectKey]:
        await self._pause()
        return {i: self._key_ids[i] for i in key_ids if i in self._key_ids}

    async def append_with_keys(
        self,
        requests: Sequence[AppendRequest],
        claims: KeyClaims,
        record: CommandRecord | None = None,
        move: CheckpointMove | None = None,
    ) -> list[StoredEvent]:
        await self._pause()
        if move is not None and self._checkpoints.get(move.name) != move.expected:
            raise CheckpointConflict(move.name, move.expected, self._checkpoints.get(move.name))
        for key in claims.keys:
            current = self._keys.get(key.subject)
            if (current is not None) if key.subject in claims.new else (current != key):
                raise KeyConflict(key.subject)
        if record is not None:
            stored = self._append_recorded(requests, record)
        else:  # a checkpointed append is never a repeat (see append_checkpointed)
            stored = self._append_now(requests, replay=move is None)
        if move is not None:
            self._checkpoints[move.name] = move.position
        for key in claims.keys:
            if key.subject in claims.new:
                self._keys[key.subject] = key
                self._key_ids[key.key_id] = key
        for subject, stream_id in claims.links:
            self._subject_streams.setdefault(subject, set()).add(stream_id)
        return stored

    async def forget(self, subject: str) -> bool:
        await self._pause()
        key = self._keys.pop(subject, None)
        if key is not None:
            del self._key_ids[key.key_id]
        for stream_id in self._subject_streams.get(subject, ()):
            self._snapshots.pop(stream_id, None)
            self._forgotten_streams.add(stream_id)
        return key is not None

    def holds_forgotten(self, stream_id: str) -> bool:
        """Whether ``stream_id`` holds data of a forgotten subject: a state loaded from it may
        predate the forget, so it never gets a snapshot again."""
        return stream_id in self._forgotten_streams
