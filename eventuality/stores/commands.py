"""Dispatched commands a store remembers under their idempotency keys: the records, the rules
the front applies to them, and pruning.

A record is written in the same transaction as the events its dispatch committed (none, for a
dispatch that changed nothing), so a key is recorded exactly when its events are stored. The
key is unique in the store: of two commits carrying one key, one stores its events and its
record, the other stores nothing and fails with :class:`KeyTaken`. A record keeps the range of
positions its commit was given, so the events come back as stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

import anyio
import anyio.lowlevel

from ..errors import EventualityError
from .rows import StoredEvent

__all__ = [
    "MAX_KEY_BYTES",
    "CommandRecord",
    "KeyTaken",
    "RecordedCommand",
    "checked_key",
    "prune_in_batches",
    "with_positions",
]

MAX_KEY_BYTES = 1024
"""The longest idempotency key, in bytes of UTF-8, that every store takes."""


class CommandRecord(NamedTuple):
    """One dispatched command as a store keeps it under its idempotency key.

    ``digest`` identifies the command (its type and payload, not its envelope), so a repeat
    can be told from another command reusing the key. ``first_position`` and ``last_position``
    are the positions its commit was given (both 0 when it committed no events); the backend
    fills them in.
    """

    key: str
    command_type: str
    command_id: str
    digest: str
    recorded_at: datetime
    first_position: int = 0
    last_position: int = 0


@dataclass(frozen=True, slots=True)
class RecordedCommand:
    """A record with the rows of the events its commit stored, in position order."""

    record: CommandRecord
    rows: list[StoredEvent]


class KeyTaken(EventualityError):
    """A commit carried an idempotency key that is recorded already: nothing was stored.

    Backends raise it; ``Flow.dispatch`` catches it and returns the recorded dispatch's events
    (or raises :class:`~eventuality.IdempotencyKeyReused`).
    """

    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(
            f"idempotency key {key!r} is recorded already, so this commit stored nothing. "
            "Read the first commit's events with store.recorded_command(key)."
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.key,)


def checked_key(key: object) -> str:
    """``key`` if it can be an idempotency key on every store.

    :raises TypeError: not a ``str``.
    :raises ValueError: empty, holding NUL or a lone surrogate, or over 1,024 bytes of UTF-8.
    """
    if not isinstance(key, str):
        raise TypeError(
            f"an idempotency key is a str, not {type(key).__name__} ({key!r}); nothing was "
            "dispatched. Pass str(value) for a UUID or a number."
        )
    if not key or "\x00" in key:
        raise ValueError(
            f"an idempotency key must be a non-empty str without NUL, not {key!r}; nothing was "
            "dispatched. Leave it out to use the command's id."
        )
    try:
        size = len(key.encode())
    except UnicodeEncodeError:
        raise ValueError(
            f"idempotency key {key!r} is not valid Unicode text (it holds a lone surrogate); "
            "nothing was dispatched"
        ) from None
    if size > MAX_KEY_BYTES:
        raise ValueError(
            f"idempotency key {key[:40]!r}... is {size} bytes of UTF-8; keys may be at most "
            f"{MAX_KEY_BYTES} bytes on every store. Nothing was dispatched. Use a shorter key "
            "(a hash of a long one, for example)."
        )
    return key


def with_positions(record: CommandRecord, stored: list[StoredEvent]) -> CommandRecord:
    """``record`` with the positions of the rows its commit ``stored``."""
    if not stored:
        return record._replace(first_position=0, last_position=0)
    return record._replace(first_position=stored[0].position, last_position=stored[-1].position)


async def prune_in_batches(
    backend: Any, recorded_before: datetime | None, keep: int | None, batch: int
) -> int:
    """Delete expired records ``batch`` at a time, each batch its own short transaction, with a
    pause between them where writers go first. Returns how many were deleted.

    :raises ValueError: ``keep`` not None or an int >= 0, ``batch`` under 1, or a naive time.
    """
    if keep is not None and (not isinstance(keep, int) or isinstance(keep, bool) or keep < 0):
        raise ValueError(f"keep must be None or an int >= 0, not {keep!r}")
    if not isinstance(batch, int) or isinstance(batch, bool) or batch < 1:
        raise ValueError(f"batch must be an int >= 1, not {batch!r}")
    if recorded_before is not None and recorded_before.tzinfo is None:
        raise ValueError(f"recorded_before must be timezone-aware, not {recorded_before!r}")
    deleted = 0
    while recorded_before is not None or keep is not None:
        done = await backend.prune_commands(recorded_before, keep, batch)
        deleted += done
        if done < batch:
            break
        await anyio.lowlevel.checkpoint()
    return deleted
