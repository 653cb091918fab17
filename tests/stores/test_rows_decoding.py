"""Rows decoded many at a time (``from_rows``, ``decoded_prefix``, the log reader's pages, a
stream read) give exactly what ``from_row`` gives one row at a time: equal events of the same
classes, the same fields set, upcasters and validators applied, and the same error at the same
row, the rows before it decoded."""

import json
import sqlite3
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import pytest
from pydantic import BaseModel, ValidationError, field_validator, model_validator

from eventuality import (
    Aggregate,
    Event,
    EventSchemaError,
    InMemoryEventStore,
    Repository,
    SQLiteEventStore,
    UnknownEventType,
    register_upcaster,
)
from eventuality.stores.rows import StoredEvent, decoded_prefix, from_row, from_rows, to_row


class DecodeNote(Event):
    text: str


class DecodeRenamed(Event):
    __event_aliases__ = ("DecodeOldName",)
    title: str


class DecodeShouted(Event):
    """Validators that transform their input: reads must run them exactly as before."""

    text: str
    words: int = 0

    @field_validator("text", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _count(self) -> "DecodeShouted":
        object.__setattr__(self, "words", len(self.text.split()))
        return self


class DecodeLine(BaseModel):
    sku: str
    when: datetime


class DecodeOrder(Event):
    lines: list[DecodeLine]
    due: datetime
    ref: uuid.UUID


class DecodeMigrated(Event):
    __event_version__ = 2
    name: str


register_upcaster("DecodeMigrated", 1, lambda payload: {"name": payload.pop("title")})


class DecodeCounted(Event):
    __event_version__ = 2
    count: int


def _broken_upcaster(payload: dict[str, Any]) -> dict[str, Any]:
    return {"count": int(payload["count"])}


register_upcaster("DecodeCounted", 1, _broken_upcaster)

_WHEN = datetime(2026, 12, 1, 12, 30, tzinfo=UTC)


def _row(
    event_type: str, data: str, *, position: int, schema_version: int = 1, metadata: str = "{}"
) -> StoredEvent:
    return StoredEvent(
        "decode-1",
        position,
        event_type,
        schema_version,
        data,
        metadata,
        str(uuid.uuid4()),
        "1",
        _WHEN + timedelta(seconds=position),
        position,
    )


def _good_rows() -> list[StoredEvent]:
    order = {
        "lines": [{"sku": "a", "when": "2026-12-01T10:00:00+01:00"}],
        "due": "2026-12-24T00:00:00Z",
        "ref": str(uuid.UUID(int=7)),
    }
    return [
        _row("DecodeNote", '{"text": "plain"}', position=1),
        _row("DecodeNote", '{"text": "meta"}', position=2, metadata='{"user": "u", "n": [1.5]}'),
        _row("DecodeOldName", '{"title": "by a former name"}', position=3),
        _row("DecodeShouted", '{"text": "two words"}', position=4),
        _row("DecodeOrder", json.dumps(order), position=5),
        _row("DecodeMigrated", '{"title": "old"}', position=6, schema_version=1),
        _row("DecodeMigrated", '{"name": "new"}', position=7, schema_version=2),
    ]


def _same(got: list[Event], expected: list[Event]) -> None:
    assert got == expected
    for a, b in zip(got, expected, strict=True):
        assert type(a) is type(b)
        assert a.model_fields_set == b.model_fields_set
        assert a.__dict__ == b.__dict__
        assert [type(v) for v in a.__dict__.values()] == [type(v) for v in b.__dict__.values()]
        assert a.occurred_at.tzinfo is b.occurred_at.tzinfo
        assert a.model_config.get("frozen") is True
        with pytest.raises(ValidationError):
            a.position = 99  # type: ignore[misc]


def test_from_rows_gives_the_events_from_row_gives() -> None:
    rows = _good_rows()

    got = from_rows(rows)

    _same(got, [from_row(row) for row in rows])
    assert [type(e).__name__ for e in got[2:4]] == ["DecodeRenamed", "DecodeShouted"]
    shouted = got[3]
    assert isinstance(shouted, DecodeShouted)
    assert shouted.text == "TWO WORDS"
    assert shouted.words == 2
    assert got[5].payload == {"name": "old"}
    assert got[1].metadata == {"user": "u", "n": [1.5]}


def _bad_rows() -> dict[str, StoredEvent]:
    return {
        "payload not json": _row("DecodeNote", "not json", position=4),
        "payload a list": _row("DecodeNote", "[1, 2]", position=4),
        "payload does not fit": _row("DecodeNote", '{"text": 5, "extra": 1}', position=4),
        "metadata not json": _row("DecodeNote", '{"text": "x"}', position=4, metadata="{oops"),
        "metadata a list": _row("DecodeNote", '{"text": "x"}', position=4, metadata="[1]"),
        "unknown type": _row("DecodeNobodyKnows", "{}", position=4),
        "newer schema": _row("DecodeNote", '{"text": "x"}', position=4, schema_version=9),
        "upcaster raises": _row("DecodeCounted", '{"count": "x"}', position=4, schema_version=1),
    }


@pytest.mark.parametrize("case", sorted(_bad_rows()))
def test_a_bad_row_raises_from_row_s_error_after_the_rows_before_it(case: str) -> None:
    good = _good_rows()[:3]
    bad = _bad_rows()[case]
    rows = [*good, bad, *_good_rows()[3:]]
    with pytest.raises((EventSchemaError, UnknownEventType)) as expected:
        from_row(bad)

    with pytest.raises(type(expected.value)) as caught:
        from_rows(rows)

    assert str(caught.value) == str(expected.value)
    assert (caught.value.stream_id, caught.value.position) == ("decode-1", 4)
    assert type(caught.value.__cause__) is type(expected.value.__cause__)
    _same(decoded_prefix(rows), [from_row(row) for row in good])


async def test_a_stream_read_through_a_store_decodes_as_from_row() -> None:
    async with InMemoryEventStore() as store:
        stored = await store.append(
            "decode-2", [DecodeShouted(text="a b c"), DecodeNote(text="n", metadata={"k": 1})]
        )
        rows = [to_row("decode-2", e)._replace(position=e.position or 0) for e in stored]

        read = await store.read_stream("decode-2")

    assert read == stored
    assert isinstance(read[0], DecodeShouted)
    assert (read[0].text, read[0].words) == ("A B C", 3)
    _same(read, [from_row(row._replace(version=i)) for i, row in enumerate(rows, 1)])


async def _damaged_log(tmp_path: Path, bad: set[int]) -> Path:
    path = tmp_path / "log.db"
    async with SQLiteEventStore(path) as store:
        for i in range(1, 101):
            await store.append(f"note-{i % 7}", [DecodeNote(text=str(i))])
    with sqlite3.connect(path) as db:
        for position in bad:
            db.execute(
                "UPDATE eventuality_events SET data = 'not json' WHERE position = ?", (position,)
            )
    db.close()
    return path


@pytest.mark.parametrize("page_size", [1, 7, 33, 1000])
async def test_read_all_raises_at_a_damaged_row_and_goes_on_past_it(
    tmp_path: Path, page_size: int
) -> None:
    path = await _damaged_log(tmp_path, {34, 35, 70})
    seen: list[int] = []
    errors: list[int | None] = []

    async with SQLiteEventStore(path) as store:
        reader = store.read_all(page_size=page_size)
        while True:
            try:
                event = await reader.__anext__()
            except StopAsyncIteration:
                break
            except EventSchemaError as exc:
                errors.append(exc.position)
                continue
            seen.append(event.position or 0)

    assert errors == [34, 35, 70]
    assert seen == [p for p in range(1, 101) if p not in (34, 35, 70)]


async def test_read_all_of_a_sqlite_store_decodes_as_from_row(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    async with SQLiteEventStore(path) as store:
        for i in range(1, 80):
            await store.append(f"s-{i % 3}", [DecodeShouted(text=f"t {i}"), DecodeNote(text="n")])
        read_all = [event async for event in store.read_all(page_size=50)]
        by_stream = [e for i in range(3) for e in await store.read_stream(f"s-{i}")]
        stream_rows = await store.backend.read_stream("s-1", 2, None)
    with sqlite3.connect(path) as db:
        columns = (
            "stream_id, version, event_type, schema_version, data, metadata, event_id, "
            "aggregate_id, occurred_at, position"
        )
        raw = db.execute(f"SELECT {columns} FROM eventuality_events ORDER BY position").fetchall()
    db.close()
    rows = [StoredEvent(*r[:8], datetime.fromisoformat(r[8]), r[9]) for r in raw]  # type: ignore[misc]

    _same(read_all, [from_row(row) for row in rows])
    assert sorted(by_stream, key=lambda e: e.position or 0) == read_all
    assert {e.aggregate_id for e in by_stream} == {None}
    assert [(r.stream_id, r.version) for r in stream_rows] == [("s-1", v) for v in range(2, 55)]
    assert stream_rows == [r for r in rows if r.stream_id == "s-1" and r.version >= 2]


# a repository's load replays rows as it decodes them


class DecodeJournal(Aggregate):
    lines: tuple[str, ...] = ()

    def apply(self, event: Event) -> None:
        match event:
            case DecodeNote(text=text) | DecodeShouted(text=text):
                self.lines = (*self.lines, text)
            case DecodeMigrated(name=name):
                self.lines = (*self.lines, f"migrated {name}")


async def _journal(tmp_path: Path, events: int) -> Path:
    """A journal of ``events`` events; every tenth stored at DecodeMigrated's old version."""
    path = tmp_path / "journal.db"
    async with SQLiteEventStore(path) as store:
        batch: list[Event] = []
        for i in range(1, events + 1):
            if i % 10 == 0:
                batch.append(DecodeMigrated(name=f"m{i}"))
            elif i % 3 == 0:
                batch.append(DecodeShouted(text=f"s {i}"))
            else:
                batch.append(DecodeNote(text=f"n {i}"))
        await store.append("DecodeJournal-j", batch)
    with sqlite3.connect(path) as db:
        db.execute(
            "UPDATE eventuality_events SET schema_version = 1, "
            "data = json_object('title', json_extract(data, '$.name')) "
            "WHERE event_type = 'DecodeMigrated'"
        )
    db.close()
    return path


async def test_a_load_replays_what_read_stream_reads(tmp_path: Path) -> None:
    path = await _journal(tmp_path, 250)

    async with SQLiteEventStore(path) as store:
        loaded = await Repository(DecodeJournal, store).load("j")
        expected = DecodeJournal(id="j")
        expected.replay(await store.read_stream("DecodeJournal-j"))

    assert loaded.model_dump() == expected.model_dump()
    assert loaded.version == 250
    assert loaded.lines[:3] == ("n 1", "n 2", "S 3")
    assert loaded.lines[9] == "migrated m10"


async def test_a_load_of_a_stream_with_a_damaged_row_raises_naming_it(tmp_path: Path) -> None:
    path = await _journal(tmp_path, 100)
    with sqlite3.connect(path) as db:
        db.execute("UPDATE eventuality_events SET data = '[]' WHERE version = 77")
    db.close()

    async with SQLiteEventStore(path) as store:
        with pytest.raises(EventSchemaError) as caught:
            await Repository(DecodeJournal, store).load("j")

    assert (caught.value.stream_id, caught.value.position) == ("DecodeJournal-j", 77)
    assert "damaged" in str(caught.value)


class _CountingStore(SQLiteEventStore):
    """A store whose read_stream a subclass replaced: a load must go through it."""

    reads: ClassVar[list[int]] = []

    async def read_stream(
        self, stream_id: str, *, from_version: int = 1, to_version: int | None = None
    ) -> list[Event]:
        self.reads.append(from_version)
        return await super().read_stream(
            stream_id, from_version=from_version, to_version=to_version
        )


async def test_a_load_reads_through_a_read_stream_a_subclass_replaced(tmp_path: Path) -> None:
    path = await _journal(tmp_path, 9)

    async with _CountingStore(path) as store:
        loaded = await Repository(DecodeJournal, store).load("j")

    assert _CountingStore.reads == [1]
    assert loaded.lines == ("n 1", "n 2", "S 3", "n 4", "n 5", "S 6", "n 7", "n 8", "S 9")
