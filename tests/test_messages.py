"""Events and commands: frozen models, the envelope, reserved names, the type registry, JSON round
trips through every store, and upcasters (API.md section 3)."""

import enum
import re
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import AwareDatetime, BaseModel, ValidationError

from eventuality import (
    Command,
    Event,
    EventSchemaError,
    EventStore,
    EventualityError,
    InMemoryEventStore,
    SQLiteEventStore,
    UnknownEventType,
    event_class,
    register_upcaster,
    upcaster,
)
from eventuality.stores.base import AppendRequest, StoredEvent
from tests.domain import CreateTodo, TodoCompleted, TodoCreated

EVENT_RESERVED = [
    "event_id",
    "aggregate_id",
    "aggregate_version",
    "position",
    "occurred_at",
    "metadata",
    "event_type",
    "payload",
]
COMMAND_RESERVED = ["command_id", "metadata"]

ODD_TEXT = "ünïcødé 日本語 🎉👩‍👩‍👧 nul\x00 it's \"quoted\" \\ '; DROP TABLE events; -- $1 ? %s"
ODD_STREAM_ID = "Msg-'; DROP TABLE eventuality_events; --\"🎉\x00end"


class MsgColour(enum.StrEnum):
    RED = "red"
    BLUE = "blue"


class MsgAddress(BaseModel):
    street: str
    lines: list[str]
    zone: Decimal | None = None


class MsgCustomer(BaseModel):
    name: str
    addresses: list[MsgAddress]
    tags: dict[str, list[int]]


class MsgRichPayload(Event):
    text: str
    when: datetime
    when_utc: datetime
    day: date
    ref: uuid.UUID
    amount: Decimal
    big: int
    ratio: float
    flag: bool
    missing: str | None
    colour: MsgColour
    pair: tuple[int, str]
    labels: list[str]
    counts: dict[str, int]
    matrix: list[list[float]]
    customer: MsgCustomer


class MsgNote(Event):
    text: str


class MsgProperty(Event):
    text: str
    number: int
    amount: Decimal
    ratio: float
    words: dict[str, int]


class MsgMeasured(Event):
    value: float


class MsgStamped(Event):
    when: datetime


class MsgStampedMany(Event):
    aware: AwareDatetime
    several: list[datetime]


class MsgCustomNamed(Event):
    __event_type__ = "msg.custom-named"

    value: int


class MsgCustomNamedChild(MsgCustomNamed):
    extra: int = 0


class MsgParent(Event):
    parent_field: str


class MsgChild(MsgParent):
    child_field: int


class MsgTitled(Event):
    """Version 1 stored ``{"name": ...}``; version 2 renamed it to ``title``; version 3 added
    ``words``."""

    __event_version__ = 3

    title: str
    words: int


@upcaster("MsgTitled", 1)
def _name_to_title(payload: dict[str, Any]) -> dict[str, Any]:
    return {"title": payload["name"]}


def _count_words(payload: dict[str, Any]) -> dict[str, Any]:
    return {**payload, "words": len(payload["title"].split())}


register_upcaster("MsgTitled", 2, _count_words)


class MsgUnmigrated(Event):
    """At version 2 with no upcaster from version 1."""

    __event_version__ = 2

    title: str


class MsgDeleteThing(Command):
    thing_id: str
    reason: str = ""


def _rich_event() -> MsgRichPayload:
    return MsgRichPayload(
        text=ODD_TEXT,
        when=datetime(2024, 2, 29, 23, 59, 59, 999_999, tzinfo=timezone(timedelta(hours=5.5))),
        when_utc=datetime(1970, 1, 1, tzinfo=UTC),
        day=date(2000, 1, 1),
        ref=uuid.UUID("12345678-1234-5678-1234-567812345678"),
        amount=Decimal("12345678901234567890.000000000000000001"),
        big=2**100,
        ratio=0.1 + 0.2,
        flag=True,
        missing=None,
        colour=MsgColour.BLUE,
        pair=(-7, "\x00"),
        labels=["", "a", "🎉", "'; --"],
        counts={"": 0, "ключ": -1, "🎉": 2**63},
        matrix=[[1.5, -0.0], [], [1e308, 5e-324]],
        customer=MsgCustomer(
            name='O\'Brien "the" \\ 🎉',
            addresses=[
                MsgAddress(street="Straße 1", lines=["\n", "\t"], zone=Decimal("-0.5")),
                MsgAddress(street="\x00", lines=[]),
            ],
            tags={"x": [1, 2, 3], "y": []},
        ),
        metadata={
            "causation_id": "c-1",
            "nested": {"list": [1, "two", None, True, 2.5], "text": ODD_TEXT},
            "": None,
        },
    )


def _unstored(event: Event) -> Event:
    """``event`` without what the store fills in: its position and aggregate version."""
    return event.model_copy(update={"position": None, "aggregate_version": None})


async def _read_all(store: EventStore) -> list[Event]:
    return [event async for event in store.read_all()]


def _row(event_type: str, schema_version: int, data: str, stream_id: str = "s") -> StoredEvent:
    """A row as an older (or newer) version of a class would have stored it."""
    return StoredEvent(
        stream_id=stream_id,
        version=0,
        event_type=event_type,
        schema_version=schema_version,
        data=data,
        metadata="{}",
        event_id=str(uuid.uuid4()),
        aggregate_id=None,
        occurred_at=datetime(2020, 1, 1, tzinfo=UTC),
    )


async def _store_row(store: EventStore, row: StoredEvent) -> None:
    await store.backend.append([AppendRequest(row.stream_id, None, (row,))])


# frozen, validated


def test_event_is_frozen() -> None:
    event = TodoCreated(description="a")

    with pytest.raises(ValidationError, match="frozen"):
        event.description = "b"

    assert event.description == "a"


def test_event_envelope_fields_are_frozen() -> None:
    event = TodoCreated(description="a")

    with pytest.raises(ValidationError, match="frozen"):
        event.aggregate_id = "todo-1"

    assert event.aggregate_id is None


def test_command_is_frozen() -> None:
    command = CreateTodo(id="t1", description="a")

    with pytest.raises(ValidationError, match="frozen"):
        command.description = "b"

    assert command.description == "a"


def test_event_with_an_invalid_field_value_raises_validation_error() -> None:
    bad: Any = ["not", "a", "string"]

    with pytest.raises(ValidationError, match="description"):
        TodoCreated(description=bad)


def test_event_with_a_missing_field_raises_validation_error() -> None:
    with pytest.raises(ValidationError, match="description"):
        TodoCreated()  # type: ignore[call-arg]


def test_event_with_an_unknown_field_raises_validation_error() -> None:
    with pytest.raises(ValidationError, match="colour"):
        TodoCreated(description="a", colour="red")  # type: ignore[call-arg]


def test_command_with_an_invalid_field_value_raises_validation_error() -> None:
    bad: Any = {"not": "a string"}

    with pytest.raises(ValidationError, match="description"):
        CreateTodo(id="t1", description=bad)


def test_event_with_non_json_metadata_raises_validation_error() -> None:
    metadata: Any = {"user": object()}

    with pytest.raises(ValidationError, match="metadata"):
        TodoCreated(description="a", metadata=metadata)


# the envelope


def test_new_event_gets_a_uuid_event_id() -> None:
    event = TodoCreated(description="a")

    event_id = event.event_id

    assert isinstance(event_id, uuid.UUID)


def test_new_events_get_distinct_event_ids() -> None:
    events = [TodoCompleted() for _ in range(100)]

    ids = {event.event_id for event in events}

    assert len(ids) == 100


def test_new_event_occurred_at_is_utc_and_timezone_aware() -> None:
    before = datetime.now(UTC)

    event = TodoCompleted()

    assert event.occurred_at.tzinfo is not None
    assert event.occurred_at.utcoffset() == timedelta(0)
    assert before <= event.occurred_at <= datetime.now(UTC)


def test_new_event_metadata_is_an_empty_dict() -> None:
    event = TodoCompleted()

    metadata = event.metadata

    assert metadata == {}
    assert isinstance(metadata, dict)


def test_new_event_has_no_aggregate_id_aggregate_version_or_position() -> None:
    event = TodoCompleted()

    envelope = (event.aggregate_id, event.aggregate_version, event.position)

    assert envelope == (None, None, None)


def test_new_command_gets_a_uuid_command_id_and_empty_metadata() -> None:
    command = CreateTodo(id="t1", description="a")

    filled = (command.command_id, command.metadata)

    assert isinstance(filled[0], uuid.UUID)
    assert filled[1] == {}
    assert CreateTodo(id="t1", description="a").command_id != command.command_id


# reserved names


@pytest.mark.parametrize("name", EVENT_RESERVED)
def test_event_declaring_a_reserved_field_raises_type_error_naming_it(name: str) -> None:
    namespace: dict[str, Any] = {"__annotations__": {name: str}, "__module__": __name__}

    with pytest.raises(TypeError, match=repr(name)):
        type(f"MsgReserved_{name}", (Event,), namespace)

    with pytest.raises(UnknownEventType):
        event_class(f"MsgReserved_{name}")


@pytest.mark.parametrize("name", EVENT_RESERVED)
def test_event_assigning_a_reserved_name_without_annotation_raises_type_error(name: str) -> None:
    namespace: dict[str, Any] = {name: "x", "__module__": __name__}

    with pytest.raises(TypeError, match=repr(name)):
        type(f"MsgReservedPlain_{name}", (Event,), namespace)


@pytest.mark.parametrize("name", COMMAND_RESERVED)
def test_command_declaring_a_reserved_field_raises_type_error_naming_it(name: str) -> None:
    namespace: dict[str, Any] = {"__annotations__": {name: str}, "__module__": __name__}

    with pytest.raises(TypeError, match=repr(name)):
        type(f"MsgReservedCommand_{name}", (Command,), namespace)


def test_command_may_declare_event_only_reserved_names() -> None:
    class MsgCommandWithPosition(Command):
        position: int

    command = MsgCommandWithPosition(position=3)

    assert command.position == 3


# event_type and payload


def test_event_type_defaults_to_the_class_name() -> None:
    event = TodoCreated(description="a")

    event_type = event.event_type

    assert event_type == "TodoCreated"
    assert TodoCreated.event_type == "TodoCreated"


def test_event_type_is_a_str() -> None:
    event_type = TodoCreated(description="a").event_type

    assert type(event_type) is str


def test_dunder_event_type_overrides_the_name() -> None:
    event = MsgCustomNamed(value=1)

    event_type = event.event_type

    assert event_type == "msg.custom-named"
    assert MsgCustomNamed.event_type == "msg.custom-named"
    assert event_class("msg.custom-named") is MsgCustomNamed


def test_subclass_of_a_renamed_event_gets_its_own_class_name() -> None:
    event = MsgCustomNamedChild(value=1)

    event_type = event.event_type

    assert event_type == "MsgCustomNamedChild"
    assert event_class("MsgCustomNamedChild") is MsgCustomNamedChild


def test_payload_holds_only_the_subclass_fields() -> None:
    event = TodoCreated(description="a", metadata={"k": "v"}, aggregate_id="todo-1")

    payload = event.payload

    assert payload == {"description": "a"}


def test_payload_of_an_event_without_fields_is_empty() -> None:
    event = TodoCompleted(aggregate_id="todo-1")

    payload = event.payload

    assert payload == {}


def test_payload_of_a_subclassed_event_holds_inherited_and_own_fields() -> None:
    event = MsgChild(parent_field="p", child_field=2)

    payload = event.payload

    assert payload == {"parent_field": "p", "child_field": 2}


def test_changing_the_payload_dict_leaves_the_event_unchanged() -> None:
    event = TodoCreated(description="a")

    event.payload["description"] = "changed"

    assert event.description == "a"
    assert event.payload == {"description": "a"}


# the registry


def test_event_class_returns_the_registered_class() -> None:
    name = TodoCreated.event_type

    found = event_class(name)

    assert found is TodoCreated


def test_event_class_of_an_unknown_name_raises_unknown_event_type_naming_it() -> None:
    name = "msg.never-defined"

    with pytest.raises(UnknownEventType, match=re.escape("msg.never-defined")) as caught:
        event_class(name)

    assert caught.value.event_type == name


def test_unknown_event_type_is_a_lookup_error_and_an_eventuality_error() -> None:
    with pytest.raises(UnknownEventType) as caught:
        event_class("msg.never-defined-either")

    assert isinstance(caught.value, LookupError)
    assert isinstance(caught.value, EventualityError)


def test_second_class_with_a_taken_event_type_raises_type_error() -> None:
    with pytest.raises(TypeError, match="TodoCreated"):

        class TodoCreated(Event):  # a different module and qualname than tests.domain's
            description: str

    assert event_class("TodoCreated").__module__ == "tests.domain"


def test_second_class_with_a_taken_dunder_event_type_raises_type_error() -> None:
    class MsgFirstOwner(Event):
        __event_type__ = "msg.shared-name"

    with pytest.raises(TypeError, match=re.escape("msg.shared-name")):

        class MsgSecondOwner(Event):
            __event_type__ = "msg.shared-name"

    assert event_class("msg.shared-name") is MsgFirstOwner


def test_class_defined_again_under_its_own_qualified_name_replaces_itself() -> None:
    def define() -> type[Event]:
        class MsgRedefined(Event):
            value: int

        return MsgRedefined

    first = define()

    second = define()

    assert second is not first
    assert event_class("MsgRedefined") is second


async def test_reading_a_stored_type_with_no_class_raises_unknown_event_type(
    store: EventStore,
) -> None:
    await _store_row(store, _row("os.system", 1, "{}"))

    with pytest.raises(UnknownEventType, match=re.escape("os.system")):
        await store.read_stream("s")


# JSON round trips through every store


async def test_rich_payload_reads_back_equal_from_read_stream(store: EventStore) -> None:
    event = _rich_event()

    stored = await store.append(ODD_STREAM_ID, [event])

    read = await store.read_stream(ODD_STREAM_ID)
    assert read == stored
    assert [_unstored(e) for e in read] == [event]


async def test_rich_payload_reads_back_equal_from_read_all(store: EventStore) -> None:
    event = _rich_event()

    stored = await store.append(ODD_STREAM_ID, [event])

    read = await _read_all(store)
    assert read == stored
    assert [_unstored(e) for e in read] == [event]


async def test_rich_payload_reads_back_as_its_own_class_with_every_field_typed(
    store: EventStore,
) -> None:
    event = _rich_event()

    await store.append("rich", [event])

    (read,) = await store.read_stream("rich")
    assert type(read) is MsgRichPayload
    assert isinstance(read, MsgRichPayload)
    assert read.when.utcoffset() == timedelta(hours=5, minutes=30)
    assert isinstance(read.ref, uuid.UUID)
    assert isinstance(read.amount, Decimal)
    assert str(read.amount) == str(event.amount)
    assert isinstance(read.customer.addresses[0], MsgAddress)
    assert read.pair == (-7, "\x00")
    assert read.colour is MsgColour.BLUE
    assert read.event_id == event.event_id
    assert read.occurred_at == event.occurred_at


async def test_rich_payload_keeps_its_envelope_through_the_store(store: EventStore) -> None:
    event = _rich_event().model_copy(update={"aggregate_id": ODD_STREAM_ID})

    await store.append(ODD_STREAM_ID, [event])

    (read,) = await store.read_stream(ODD_STREAM_ID)
    assert read.aggregate_id == ODD_STREAM_ID
    assert read.metadata == event.metadata
    assert read.occurred_at.utcoffset() == timedelta(0)
    assert read.aggregate_version == 1
    assert read.position is not None
    assert read.position > 0


@pytest.mark.parametrize(
    "when",
    [
        datetime(2020, 1, 1, 12, tzinfo=timezone(-timedelta(hours=3, seconds=30))),
        datetime(1900, 1, 1, 12, tzinfo=ZoneInfo("Europe/Amsterdam")),  # +00:19:32 then
    ],
    ids=["seconds-offset", "historical-zone"],
)
async def test_datetime_with_a_sub_minute_utc_offset_reads_back_equal(
    store: EventStore, when: datetime
) -> None:
    event = MsgStamped(when=when)

    stored = await store.append("stamped", [event])

    (read,) = await store.read_stream("stamped")
    assert read == stored[0]
    assert isinstance(read, MsgStamped)
    assert read.when == when


async def test_datetimes_in_aware_and_list_fields_with_a_sub_minute_offset_read_back_equal(
    store: EventStore,
) -> None:
    when = datetime(1900, 1, 1, 12, tzinfo=ZoneInfo("Europe/Amsterdam"))
    event = MsgStampedMany(aware=when, several=[when, datetime(2020, 1, 1, tzinfo=UTC)])

    await store.append("stamped-many", [event])

    (read,) = await store.read_stream("stamped-many")
    assert isinstance(read, MsgStampedMany)
    assert read.aware == when
    assert read.several == event.several


@pytest.mark.parametrize("value", [float("inf"), float("-inf")], ids=["inf", "-inf"])
async def test_infinite_float_is_refused_when_built_or_reads_back_equal(
    store: EventStore, value: float
) -> None:
    try:
        event = MsgMeasured(value=value)
    except ValidationError:
        return  # refused before it could reach a store: as good as a round trip

    stored = await store.append("measured", [event])

    assert await store.read_stream("measured") == stored


@pytest.mark.parametrize("value", [uuid.UUID(int=1), object()], ids=["uuid", "object"])
async def test_append_of_event_whose_metadata_is_not_json_raises_value_error_writes_nothing(
    store: EventStore, value: object
) -> None:
    # model_copy(update=...) does not validate: the store is the last line of defence.
    event = MsgNote(text="a").model_copy(update={"metadata": {"user": value}})

    with pytest.raises(ValueError, match="metadata"):
        await store.append("noted", [event])

    assert await store.stream_version("noted") == 0
    assert await store.last_position() == 0


StoreFactory = Callable[[], EventStore]
PROPERTY_STORES: list[Any] = [
    pytest.param(InMemoryEventStore, id="memory"),
    pytest.param(lambda: SQLiteEventStore(":memory:"), id="sqlite-memory"),
]


async def _round_trip(make: StoreFactory, stream_id: str, event: Event) -> None:
    async with make() as store:
        stored = await store.append(stream_id, [event])

        from_stream = await store.read_stream(stream_id)
        from_log = await _read_all(store)

    assert from_stream == stored
    assert from_log == stored
    assert [_unstored(e) for e in from_stream] == [event]


@pytest.mark.parametrize("make", PROPERTY_STORES)
@settings(max_examples=50, deadline=None)
@given(
    stream_id=st.text(min_size=1),
    text=st.text(),
    number=st.integers(),
    amount=st.decimals(allow_nan=False, allow_infinity=False),
    ratio=st.floats(allow_nan=False, allow_infinity=False),
    words=st.dictionaries(st.text(), st.integers(min_value=-(2**63), max_value=2**63)),
    meta=st.dictionaries(st.text(), st.text() | st.integers() | st.none() | st.booleans()),
)
def test_any_payload_and_stream_id_round_trip_through_the_store(
    make: StoreFactory,
    stream_id: str,
    text: str,
    number: int,
    amount: Decimal,
    ratio: float,
    words: dict[str, int],
    meta: dict[str, Any],
) -> None:
    event = MsgProperty(
        text=text, number=number, amount=amount, ratio=ratio, words=words, metadata=meta
    )

    async def check() -> None:
        await _round_trip(make, stream_id, event)

    anyio.run(check)


# upcasters


async def test_event_stored_at_an_older_version_is_upcast_step_by_step(store: EventStore) -> None:
    await _store_row(store, _row("MsgTitled", 1, '{"name": "buy more milk"}'))

    (read,) = await store.read_stream("s")

    assert type(read) is MsgTitled
    assert (read.title, read.words) == ("buy more milk", 3)


async def test_event_stored_at_a_middle_version_is_upcast_from_there(store: EventStore) -> None:
    await _store_row(store, _row("MsgTitled", 2, '{"title": "milk"}'))

    read = await _read_all(store)

    assert [(e.title, e.words) for e in read if isinstance(e, MsgTitled)] == [("milk", 1)]


async def test_event_stored_at_the_current_version_is_read_as_is(store: EventStore) -> None:
    event = MsgTitled(title="a b", words=7)

    await store.append("s", [event])

    (read,) = await store.read_stream("s")
    assert isinstance(read, MsgTitled)
    assert (read.title, read.words) == ("a b", 7)


async def test_older_event_without_an_upcaster_raises_event_schema_error(
    store: EventStore,
) -> None:
    await _store_row(store, _row("MsgUnmigrated", 1, '{"name": "x"}'))

    with pytest.raises(EventSchemaError, match="MsgUnmigrated") as caught:
        await store.read_stream("s")

    assert "version 1" in str(caught.value)
    assert caught.value.event_type == "MsgUnmigrated"


async def test_event_written_by_a_newer_version_raises_event_schema_error(
    store: EventStore,
) -> None:
    await _store_row(store, _row("MsgNote", 2, '{"text": "from the future"}'))

    with pytest.raises(EventSchemaError, match="MsgNote"):
        await store.read_stream("s")


async def test_stored_payload_that_no_longer_fits_raises_event_schema_error(
    store: EventStore,
) -> None:
    await _store_row(store, _row("MsgNote", 1, '{"text": ["not", "a", "string"]}'))

    with pytest.raises(EventSchemaError, match="MsgNote"):
        await store.read_stream("s")


def test_registering_a_second_upcaster_for_one_step_raises_value_error() -> None:
    def other(payload: dict[str, Any]) -> dict[str, Any]:
        return payload

    with pytest.raises(ValueError, match="MsgTitled"):
        register_upcaster("MsgTitled", 1, other)


def test_registering_the_same_upcaster_again_is_harmless() -> None:
    register_upcaster("MsgTitled", 2, _count_words)

    again = upcaster("MsgTitled", 2)(_count_words)

    assert again is _count_words


async def test_a_chain_registered_step_by_step_by_running_code_reads_from_the_oldest_step(
    store: EventStore,
) -> None:
    name = f"msg.runtime-chain-{uuid.uuid4().hex[:8]}"

    class MsgRuntimeChain(Event):
        __event_type__ = name
        __event_version__ = 3

        value: int

    register_upcaster(name, 1, lambda payload: {"value": payload["v"]})
    register_upcaster(name, 2, lambda payload: {"value": payload["value"] + 1})
    await _store_row(store, _row(name, 1, '{"v": 1}'))

    (read,) = await store.read_stream("s")

    assert isinstance(read, MsgRuntimeChain)
    assert read.value == 2


def test_an_upcaster_chain_with_a_gap_raises_when_the_class_is_defined() -> None:
    def step(payload: dict[str, Any]) -> dict[str, Any]:
        return payload

    with pytest.raises(TypeError, match=r"'MsgGapped'.*no step from version 2"):

        class MsgGapped(Event):
            __event_version__ = 4
            __event_upcasters__ = {1: step, 3: step}  # noqa: RUF012
