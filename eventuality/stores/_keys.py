"""Sealing personal data in rows: AES-GCM per subject key, and the stored value's format.

A personal field's value is stored in the payload JSON as one string::

    "eventuality-pd:v1:<key id, 32 hex>:<base64url of nonce (12 bytes) + ciphertext + tag>"

The plaintext is the value's JSON; the associated data is ``["eventuality-pd:v1", subject,
event id, field name]`` as JSON, so a ciphertext moved to another event, field or subject fails
authentication. Keys are 256-bit, one per subject, kept by the backend (``SubjectKeys`` tier)
in the store's own database and found by key id, so reading never needs the event's schema.
Once a key is deleted (``store.forget``), its values read as the field's mask.

``cryptography`` is imported only when personal data is sealed or opened: the core runs without
it (``pip install "eventuality[crypto]"``).
"""

from __future__ import annotations

import base64
import binascii
import os
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from pydantic_core import from_json, to_json

from ..errors import EventSchemaError, StoreUsageError
from ..messages import Event, _registry

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    from .rows import AppendRequest, StoredEvent

__all__ = [
    "PREFIX",
    "KeyClaims",
    "KeyConflict",
    "SubjectKey",
    "comparable_payload",
    "open_rows",
    "seal",
    "sealed_key_ids",
    "subjects_of",
]

PREFIX = "eventuality-pd:v1:"
_MARKER = f'"{PREFIX}'
_KEY_ID_LENGTH = 32
_KEY_ID_END = len(PREFIX) + _KEY_ID_LENGTH
_NONCE_BYTES = 12
_MIN_BLOB = _NONCE_BYTES + 16  # nonce + tag: even an empty plaintext has both


@dataclass(frozen=True, slots=True)
class SubjectKey:
    """One subject's key: 32 random bytes, with a random id that stored values name."""

    subject: str
    key_id: str
    key: bytes

    def __repr__(self) -> str:  # never show the key
        return f"SubjectKey(subject={self.subject!r}, key_id={self.key_id!r})"


@dataclass(frozen=True, slots=True)
class KeyClaims:
    """What an append with personal data asks of the backend, in its own transaction.

    ``keys``: the key each subject's values were sealed with; for subjects in ``new`` the key
    is inserted if the subject has none (else :class:`KeyConflict`), for the others it must
    still be the subject's key (else :class:`KeyConflict`: forgotten meanwhile). ``links``:
    (subject, stream id) pairs to record, so ``forget`` finds the snapshots to delete.
    """

    keys: tuple[SubjectKey, ...]
    new: frozenset[str]
    links: tuple[tuple[str, str], ...]


class KeyConflict(Exception):
    """A claim did not hold (another append created the subject's key first, or the subject
    was forgotten meanwhile); the backend rolled the append back, the front seals again."""


def _aesgcm(key: bytes) -> AESGCM:
    try:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    except ImportError as exc:
        raise StoreUsageError(
            "events with PersonalData fields are encrypted with the cryptography package, "
            f'which is not installed: pip install "eventuality[crypto]" ({exc})'
        ) from exc
    return AESGCM(key)


def new_key(subject: str) -> SubjectKey:
    """A fresh 256-bit key for ``subject`` (from the OS's CSPRNG)."""
    _aesgcm(bytes(32))  # fail early, and clearly, without cryptography
    return SubjectKey(subject, uuid.uuid4().hex, os.urandom(32))


def _associated(subject: str, event_id: str, field: str) -> bytes:
    return to_json(["eventuality-pd:v1", subject, event_id, field])


def subject_of(event: Event) -> str:
    """The subject an event's personal data belongs to, as stored (``str`` of the field)."""
    name = type(event).__personal_subject__
    value = getattr(event, name or "", None)
    if value is None:
        raise ValueError(
            f"{type(event).__name__} {event.event_id} holds personal data but its subject "
            f"{name!r} is None (set it, or record the event through its aggregate); nothing "
            "was written"
        )
    return str(value)


def subjects_of(events: Iterable[Event]) -> set[str]:
    """The subjects of the events that hold personal data."""
    return {subject_of(e) for e in events if type(e).__personal_fields__}


def seal(
    requests: Sequence[AppendRequest],
    events: Sequence[Event],
    keys: Mapping[str, SubjectKey],
    new: frozenset[str],
) -> tuple[list[AppendRequest], KeyClaims]:
    """``requests`` with every personal field encrypted under its subject's key (``keys``
    holds one for each subject); and the claims the backend checks in the same transaction."""
    remaining = iter(events)
    sealed: list[AppendRequest] = []
    used: dict[str, SubjectKey] = {}
    links: set[tuple[str, str]] = set()
    for request in requests:
        rows = []
        for row in request.rows:
            event = next(remaining)
            fields = type(event).__personal_fields__
            if fields:
                subject = subject_of(event)
                key = used[subject] = keys[subject]
                links.add((subject, request.stream_id))
                row = row._replace(data=_sealed_data(row, fields, key))
            rows.append(row)
        sealed.append(replace(request, rows=tuple(rows)))
    claims = KeyClaims(
        tuple(used[s] for s in sorted(used)), frozenset(new) & used.keys(), tuple(sorted(links))
    )
    return sealed, claims


def _sealed_data(row: StoredEvent, fields: Mapping[str, Any], key: SubjectKey) -> str:
    payload = from_json(row.data)
    cipher = _aesgcm(key.key)
    for name in fields:
        if name not in payload:
            continue
        nonce = os.urandom(_NONCE_BYTES)
        box = cipher.encrypt(
            nonce, to_json(payload[name]), _associated(key.subject, row.event_id, name)
        )
        encoded = base64.urlsafe_b64encode(nonce + box).decode().rstrip("=")
        payload[name] = f"{PREFIX}{key.key_id}:{encoded}"
    return to_json(payload).decode()


def _key_id(value: object) -> str | None:
    """The key id a sealed value names (without decoding it); None for anything else."""
    if (
        type(value) is str
        and value.startswith(PREFIX)
        and value[_KEY_ID_END : _KEY_ID_END + 1] == ":"
    ):
        return value[len(PREFIX) : _KEY_ID_END]
    return None


def _parse(value: object) -> tuple[str, bytes] | None:
    """(key id, nonce + ciphertext) of a sealed value; None for anything else."""
    key_id = _key_id(value)
    if key_id is None:
        return None
    encoded = str(value)[_KEY_ID_END + 1 :]
    try:
        blob = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
    except (binascii.Error, ValueError):
        return None
    return (key_id, blob) if len(blob) >= _MIN_BLOB else None


def sealed_key_ids(rows: Iterable[StoredEvent]) -> set[str]:
    """The key ids the rows' sealed values name. A row without one costs a substring test."""
    ids: set[str] = set()
    for row in rows:
        if _MARKER in row.data:
            payload = from_json(row.data)
            if type(payload) is dict:
                for value in payload.values():
                    key_id = _key_id(value)
                    if key_id is not None:
                        ids.add(key_id)
    return ids


def open_rows(rows: list[StoredEvent], keys: Mapping[str, SubjectKey]) -> list[StoredEvent]:
    """``rows`` with sealed values decrypted (``keys`` by key id), or, where the key is gone,
    replaced by the mask of the event class's field.

    :raises EventSchemaError: a sealed value fails authentication under its own key (damaged or
        tampered with).
    """
    opened: list[StoredEvent] = []
    ciphers: dict[str, AESGCM] = {}
    for row in rows:
        if _MARKER in row.data:
            row = _opened(row, keys, ciphers)
        opened.append(row)
    return opened


def _opened(
    row: StoredEvent, keys: Mapping[str, SubjectKey], ciphers: dict[str, AESGCM]
) -> StoredEvent:
    payload = from_json(row.data)
    if type(payload) is not dict:
        return row
    cls = _registry.get(row.event_type)
    masks: Mapping[str, Any] = cls.__personal_fields__ if cls is not None else {}
    changed = False
    for name, value in payload.items():
        parsed = _parse(value)
        if parsed is None:
            continue
        key = keys.get(parsed[0])
        if key is not None:
            cipher = ciphers.get(key.key_id)
            if cipher is None:
                cipher = ciphers[key.key_id] = _aesgcm(key.key)
            payload[name] = _decrypted(row, name, key, cipher, parsed[1])
            changed = True
        elif name in masks:  # forgotten: the key is gone for good
            payload[name] = masks[name]
            changed = True
    return row._replace(data=to_json(payload).decode()) if changed else row


def _decrypted(row: StoredEvent, name: str, key: SubjectKey, cipher: AESGCM, blob: bytes) -> Any:
    from cryptography.exceptions import InvalidTag  # cryptography is there: cipher was made

    try:
        plain = cipher.decrypt(
            blob[:_NONCE_BYTES], blob[_NONCE_BYTES:], _associated(key.subject, row.event_id, name)
        )
    except InvalidTag:
        raise EventSchemaError(
            row.event_type,
            f"its personal field {name!r} fails authentication under the key of subject "
            f"{key.subject!r}: the stored row was altered or moved. Restore it from a backup",
            stream_id=row.stream_id,
            position=row.position or None,
        ) from None
    return from_json(plain)


def comparable_payload(data: str) -> Any:
    """A stored payload for comparing two appends of one event: sealed values reduced to the
    key they name (their nonces differ on every seal)."""
    payload = from_json(data)
    if _MARKER in data and type(payload) is dict:
        for name, value in payload.items():
            parsed = _parse(value)
            if parsed is not None:
                payload[name] = (PREFIX, parsed[0])
    return payload
