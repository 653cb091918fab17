"""A store as JSON Lines: ``export_store`` writes one, ``import_store`` reads one back.

The first line is a header (``{"format": "eventuality-export", "version": 1, ...}``), then one
line per event in log order (``{"kind": "event", ...}``: an :class:`EventRecord`), then one per
checkpoint, snapshot, stream state, recorded command, personal-data key and key link, and last
``{"kind": "end", "events": N}``, so a cut-off file is told from a whole one. Positions in the
file are the exporting store's; an import translates them to the positions its store assigns.

The file holds the personal-data keys too (base64), so the imported store reads them: keep an
export as safe as the database, and know that forgetting a subject in the store does not reach
a file exported before. ``keys=False`` leaves them out: every personal field then reads as
its mask after an import, as if every subject had been forgotten.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..errors import StoreUsageError
from ._keys import SubjectKey
from ._transfer_checkpoints import CheckpointPlan
from ._transfer_log import merged_log
from ._transfer_tables import Extras, dialect_of
from .base import EventStore
from .commands import CommandRecord
from .records import EventRecord
from .rows import Snapshot
from .transfer import CopyResult, Progress, load, total_events

__all__ = ["FORMAT", "ExportHeader", "export_store", "import_store", "read_export"]

FORMAT = "eventuality-export"
VERSION = 1


@dataclass(frozen=True, slots=True)
class ExportHeader:
    """The first line of an export."""

    store: str
    schema_version: int
    events: int


async def export_store(
    source: EventStore,
    write: Callable[[str], object],
    *,
    keys: bool = True,
    progress: Progress | None = None,
) -> int:
    """Write ``source`` as JSON Lines through ``write`` (one call per line, newline included);
    return how many events."""
    dialect = dialect_of(source, "export a store")
    total = await total_events(dialect)
    header = {"kind": "header", "format": FORMAT, "version": VERSION, "store": dialect.kind}
    write(_line({**header, "schema_version": await dialect.schema_version(), "events": total}))
    count = 0
    async for record in merged_log(source, dialect):
        write(_line({"kind": "event", **record.to_json()}))
        count += 1
        if progress is not None and count % 500 == 0:
            progress(count, total)
    if progress is not None:
        progress(count, total)
    for item in _extras_lines(await dialect.extras(), keys):
        write(_line(item))
    write(_line({"kind": "end", "events": count}))
    return count


def _line(item: dict[str, Any]) -> str:
    return json.dumps(item, ensure_ascii=False, separators=(",", ":")) + "\n"


def _extras_lines(extras: Extras, keys: bool) -> Iterator[dict[str, Any]]:
    for name, position in extras.checkpoints:
        yield {"kind": "checkpoint", "name": name, "position": position}
    for s in extras.snapshots:
        yield {
            "kind": "snapshot",
            "stream_id": s.stream_id,
            "version": s.version,
            "aggregate_type": s.aggregate_type,
            "schema_version": s.schema_version,
            "state": s.state,
        }
    for stream_id, state, version in extras.states:
        yield {"kind": "stream_state", "stream_id": stream_id, "state": state, "version": version}
    for c in extras.commands:
        yield {
            "kind": "command",
            **c._asdict(),
            "recorded_at": c.recorded_at.isoformat(),
        }
    if keys:
        for k in extras.keys:
            key = base64.b64encode(k.key).decode()
            yield {"kind": "subject_key", "subject": k.subject, "key_id": k.key_id, "key": key}
    for subject, stream_id, forgotten in extras.links:
        yield {
            "kind": "subject_link",
            "subject": subject,
            "stream_id": stream_id,
            "forgotten": forgotten,
        }


class _Reader:
    """Parses an export line by line, into its events and its extras."""

    def __init__(self, lines: Iterable[str]) -> None:
        self.lines = iter(enumerate(lines, 1))
        self.extras = Extras()
        self.header: ExportHeader | None = None
        self.ended = False

    def fail(self, number: int, why: str) -> StoreUsageError:
        return StoreUsageError(f"line {number} of the export: {why}. Nothing was imported.")

    def items(self) -> Iterator[tuple[int, dict[str, Any]]]:
        for number, line in self.lines:
            if not line.strip():
                continue
            if self.ended:
                raise self.fail(number, "there is more after the end line")
            try:
                item = json.loads(line)
            except ValueError as exc:
                raise self.fail(number, f"not JSON ({exc})") from None
            if not isinstance(item, dict) or not isinstance(item.get("kind"), str):
                raise self.fail(number, 'not an object with a "kind"')
            yield number, item

    def events(self) -> Iterator[EventRecord]:
        """The events, checking the header first and collecting everything after them."""
        last = 0
        for number, item in self.items():
            kind = item.pop("kind")
            if self.header is None:
                self.header = self._header(number, kind, item)
                continue
            try:
                if kind == "event":
                    if self.extras != Extras():
                        raise ValueError("an event after the checkpoints and snapshots")
                    record = EventRecord.from_json(item)
                    if record.position <= last:
                        raise ValueError(f"position {record.position} is not above {last}")
                    last = record.position
                    yield record
                elif kind == "end":
                    self.ended = True
                else:
                    self._extra(kind, item)
            except (ValueError, KeyError, TypeError) as exc:
                raise self.fail(number, f"a bad {kind} line ({exc!r})") from None
        if self.header is None:
            raise self.fail(1, "the file is empty")
        if not self.ended:
            raise StoreUsageError(
                'the export has no end line ({"kind": "end"}): it was cut off. Nothing was '
                "imported; export the store again."
            )

    def _header(self, number: int, kind: str, item: dict[str, Any]) -> ExportHeader:
        if kind != "header" or item.get("format") != FORMAT:
            raise self.fail(number, f"not an eventuality export (no {FORMAT!r} header)")
        if item.get("version") != VERSION:
            raise self.fail(
                number, f"export format version {item.get('version')!r}, this reads {VERSION}"
            )
        return ExportHeader(str(item.get("store")), int(item["schema_version"]), item["events"])

    def _extra(self, kind: str, item: dict[str, Any]) -> None:
        found = self.extras
        if kind == "checkpoint":
            found.checkpoints.append((_str(item["name"]), _int(item["position"])))
        elif kind == "snapshot":
            found.snapshots.append(Snapshot(**item))
        elif kind == "stream_state":
            if item["state"] not in ("deleted", "archived"):
                raise ValueError(f"state {item['state']!r}")
            found.states.append((_str(item["stream_id"]), item["state"], _int(item["version"])))
        elif kind == "command":
            item["recorded_at"] = datetime.fromisoformat(item["recorded_at"])
            found.commands.append(CommandRecord(**item))
        elif kind == "subject_key":
            key = base64.b64decode(item["key"], validate=True)
            found.keys.append(SubjectKey(_str(item["subject"]), _str(item["key_id"]), key))
        elif kind == "subject_link":
            link = (_str(item["subject"]), _str(item["stream_id"]), bool(item["forgotten"]))
            found.links.append(link)
        else:
            raise ValueError(f"unknown kind {kind!r}")


def _str(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{value!r} is not a string")
    return value


def _int(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{value!r} is not a whole number")
    return value


def read_export(lines: Iterable[str]) -> tuple[ExportHeader, int, Extras]:
    """Read a whole export and check it, writing nothing: its header, event count, extras.

    :raises StoreUsageError: the file is not a whole, well-formed export (names the line).
    """
    reader = _Reader(lines)
    count = sum(1 for _ in reader.events())
    assert reader.header is not None
    return reader.header, count, reader.extras


async def import_store(
    target: EventStore,
    lines: Callable[[], Iterable[str]],
    *,
    rebuild: Iterable[str] = (),
    keep: Iterable[str] = (),
    progress: Progress | None = None,
    check: bool = True,
) -> CopyResult:
    """Import an export into ``target``: an empty store, or one an interrupted import of the
    same export left (it goes on after what is there). ``lines`` is called twice: once to
    check the whole export (bad input writes nothing; ``check=False``: the caller did, with
    :func:`read_export`), once to import it.

    Checkpoints as :func:`~eventuality.stores.transfer.copy_store` treats them: each
    subscription with one in the export must be in ``rebuild`` or ``keep``.

    :raises StoreUsageError: a malformed or cut-off export, a subscription with a checkpoint in
        neither list (or a listed one without), or a target holding other events.
    """
    plan = CheckpointPlan.of(rebuild, keep)
    total = -1
    if check:
        _, total, found = read_export(lines())
        plan.check(name for name, _ in found.checkpoints)
    writing = dialect_of(target, "import into a store")
    reader = _Reader(lines())

    async def log() -> AsyncIterator[EventRecord]:
        for record in reader.events():
            yield record

    async def extras() -> Extras:
        return reader.extras

    return await load(target, writing, log().__aiter__(), total, extras, progress, plan)
