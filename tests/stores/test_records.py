"""Records: stored events read without their classes, exactly as stored."""

import uuid
from datetime import UTC, datetime

import pytest

from eventuality import EventRecord, EventStore
from eventuality.stores.rows import AppendRequest, StoredEvent
from tests.cli._populate import MemberJoined
from tests.domain import TodoCreated


async def test_read_records_gives_rows_as_stored(store: EventStore) -> None:
    stored = await store.append("Todo-1", [TodoCreated(description="a", metadata={"m": 1})])

    records = await store.read_records("Todo-1")

    (record,) = records
    assert record == EventRecord(
        event_id=str(stored[0].event_id),
        stream_id="Todo-1",
        version=1,
        position=stored[0].position or 0,
        event_type="TodoCreated",
        schema_version=1,
        payload={"description": "a"},
        metadata={"m": 1},
        aggregate_id=None,
        occurred_at=stored[0].occurred_at,
    )


async def test_records_need_no_registered_class(store: EventStore) -> None:
    row = StoredEvent(
        "Gone-1", 1, "NeverDefined", 3, '{"x": [1, 2]}', "{}", str(uuid.uuid4()), None,
        datetime(2024, 1, 2, tzinfo=UTC),
    )  # fmt: skip
    await store.backend.append([AppendRequest("Gone-1", 0, (row,))])

    records = [r async for r in store.read_all_records()]

    assert [(r.event_type, r.schema_version, r.payload) for r in records] == [
        ("NeverDefined", 3, {"x": [1, 2]})
    ]


async def test_read_all_records_filters_by_type_name_and_position(store: EventStore) -> None:
    await store.append("a", [TodoCreated(description=str(i)) for i in range(5)])
    first = (await store.read_records("a"))[1].position

    records = [
        r async for r in store.read_all_records(from_position=first, event_types=["TodoCreated"])
    ]

    assert [r.payload["description"] for r in records] == ["2", "3", "4"]


async def test_personal_data_stays_sealed_in_records(store: EventStore) -> None:
    if not store.capabilities.personal_data:
        pytest.skip("this store keeps no personal data")
    await store.append("m", [MemberJoined(member_id="ada", name="Ada Lovelace", plan="gold")])

    (record,) = await store.read_records("m")

    assert record.payload["name"].startswith("eventuality-pd:v1:")
    assert "Ada" not in str(record.to_json())


def test_a_record_round_trips_through_json() -> None:
    record = EventRecord(
        str(uuid.uuid4()), "s", 2, 7, "T", 1, {"a": "é"}, {}, "agg", datetime.now(UTC)
    )

    assert EventRecord.from_json(record.to_json()) == record


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"version": "2"}, "version"),
        ({"payload": [1]}, "payload"),
        ({"stream_id": None}, "stream_id"),
    ],
)
def test_a_malformed_record_is_refused(change: dict[str, object], named: str) -> None:
    data = EventRecord(
        str(uuid.uuid4()), "s", 2, 7, "T", 1, {}, {}, None, datetime.now(UTC)
    ).to_json()

    with pytest.raises(ValueError, match=named):
        EventRecord.from_json({**data, **change})
