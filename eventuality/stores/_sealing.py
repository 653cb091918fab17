"""The front's side of personal data: appends that seal it, reads that open it.

An append holding personal data asks the backend for its subjects' keys (one query), makes a key
for each new subject, seals, and appends with claims the backend checks in the append's own
transaction (``SubjectKeys.append_with_keys``): two appends that make a key for one new subject
at once both land, the loser sealing again with the winner's key; an append whose key was
forgotten meanwhile seals again under a new one. Reads open a page of rows with one key query,
and none when the page holds no sealed value. Keys are never cached between calls, so a subject
forgotten by another process is forgotten here at the next read.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

from pydantic_core import from_json

from ..errors import DuplicateEventError, TransientStoreError
from ..messages import Event
from ._keys import KeyConflict, new_key, open_rows, seal, sealed_key_ids, subjects_of
from .boundary import Backend, SubjectKeys
from .commands import CommandRecord
from .rows import AppendRequest, CheckpointMove, StoredEvent

__all__ = ["append_sealed", "opened"]

_ATTEMPTS = 8


async def append_sealed(
    backend: Backend,
    requests: Sequence[AppendRequest],
    events: Sequence[Event],
    command: CommandRecord | None = None,
    move: CheckpointMove | None = None,
) -> list[StoredEvent]:
    """Append ``requests`` (rows in plaintext, in the order of ``events``) with their personal
    fields sealed; retry when a key claim fails. ``command`` is recorded, or the checkpoint
    ``move`` made, in the same transaction (a backend with that tier too).

    :raises TransientStoreError: the claims kept failing (a subject forgotten and written over
        and over by others).
    """
    keeper = cast(SubjectKeys, backend)
    subjects = subjects_of(events)
    for _ in range(_ATTEMPTS):
        found = await keeper.keys_for_subjects(sorted(subjects))
        keys = dict(found)
        for subject in subjects - found.keys():
            keys[subject] = new_key(subject)
        sealed, claims = seal(requests, events, keys, frozenset(subjects - found.keys()))
        try:
            if move is not None:  # moved in the same transaction (it has the reactions tier)
                stored = await keeper.append_with_keys(sealed, claims, move=move)
            elif command is not None:  # recorded in the same transaction (commands tier)
                stored = await keeper.append_with_keys(sealed, claims, command)
            else:
                stored = await keeper.append_with_keys(sealed, claims)
        except KeyConflict:
            continue
        await _check_replay(keeper, requests, sealed, stored)
        return stored
    raise TransientStoreError(
        f"could not settle the keys of {len(subjects)} subject(s) in {_ATTEMPTS} attempts: "
        "other writers kept creating or forgetting them. Nothing was written; retry"
    )


async def _check_replay(
    keeper: SubjectKeys,
    requests: Sequence[AppendRequest],
    sealed: Sequence[AppendRequest],
    stored: list[StoredEvent],
) -> None:
    """A retried append returns the stored rows, sealed with other nonces than ours: make sure
    their personal data is the data this append carries, as ``match_retry`` does for the rest.

    :raises DuplicateEventError: an event id is stored with other personal data.
    """
    sent = [row for request in sealed for row in request.rows]
    plain = [(request.stream_id, row) for request in requests for row in request.rows]
    pairs = enumerate(zip(sent, stored, strict=True))
    differing = [i for i, (ours, got) in pairs if ours.data != got.data]
    if not differing:
        return
    rows = [stored[i] for i in differing]
    ids = sealed_key_ids(rows)
    keys = await keeper.keys_by_id(sorted(ids)) if ids else {}
    if keys.keys() != ids:
        return  # a subject forgotten since: nothing left to compare
    for i, got in zip(differing, open_rows(rows, keys), strict=True):
        stream_id, row = plain[i]
        if from_json(got.data) != from_json(row.data):
            raise DuplicateEventError(
                stream_id, row.event_id, "is already stored with other personal data"
            )


async def opened(backend: Backend, rows: list[StoredEvent], keeps_keys: bool) -> list[StoredEvent]:
    """``rows`` with personal data decrypted, or masked where its subject is forgotten: one key
    query for the page, none when no row holds a sealed value."""
    ids = sealed_key_ids(rows)
    if not ids:
        return rows
    keys = await cast(SubjectKeys, backend).keys_by_id(sorted(ids)) if keeps_keys else {}
    return open_rows(rows, keys)
