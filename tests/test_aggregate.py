"""Aggregate: record stamps, applies and keeps events pending; a failing apply changes nothing
(API.md section 4)."""

from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import pytest
from pydantic import Field

from eventuality import Aggregate, Event
from tests.domain import CreateTodo, Todo, TodoCompleted, TodoCreated, TodoRenamed


class AggItemAdded(Event):
    item: str


class AggItemRejected(Event):
    """Its apply mutates state in place, then raises."""

    item: str


class AggTagged(Event):
    key: str
    value: str


class AggBasket(Aggregate):
    items: list[str] = Field(default_factory=list)
    tags: dict[str, list[str]] = Field(default_factory=dict)
    owner: str | None = None
    seen: int = 0

    def apply(self, event: Event) -> None:
        self.seen += 1
        match event:
            case AggItemAdded(item=item):
                self.items.append(item)
            case AggTagged(key=key, value=value):
                self.tags.setdefault(key, []).append(value)
            case AggItemRejected(item=item):
                self.items.append(item)
                self.tags.setdefault("rejected", []).append(item)
                self.tags["first"] = ["changed"]
                self.owner = "someone else"
                raise ValueError(f"{item} is not allowed")


class AggRenamedBasket(Aggregate):
    aggregate_type: ClassVar[str] = "basket.v2"

    def apply(self, event: Event) -> None:
        pass


class AggWithoutApply(Aggregate):
    pass


class AggLedger(Aggregate):
    """Remembers the envelope of every event its apply saw."""

    applied: list[tuple[str | None, int | None, str]] = Field(default_factory=list)

    def apply(self, event: Event) -> None:
        self.applied.append((event.aggregate_id, event.aggregate_version, event.event_type))


def _basket_with_items(*items: str) -> AggBasket:
    basket = AggBasket(id="b1")
    for item in items:
        basket.record(AggItemAdded(item=item))
    return basket


# record


def test_record_stamps_the_aggregate_id() -> None:
    todo = Todo(id="t1")

    stamped = todo.record(TodoCreated(description="a"))

    assert stamped.aggregate_id == "t1"


def test_record_stamps_the_next_aggregate_version() -> None:
    todo = Todo(id="t1")
    todo.record(TodoCreated(description="a"))

    stamped = todo.record(TodoRenamed(description="b"))

    assert stamped.aggregate_version == 2


def test_record_stamps_occurred_at_now_in_utc() -> None:
    todo = Todo(id="t1")
    long_ago = datetime(2000, 1, 1, tzinfo=UTC)
    before = datetime.now(UTC)

    stamped = todo.record(TodoCreated(description="a", occurred_at=long_ago))

    assert stamped.occurred_at != long_ago
    assert before <= stamped.occurred_at <= datetime.now(UTC)
    assert stamped.occurred_at.utcoffset() == timedelta(0)


def test_record_keeps_the_events_own_fields() -> None:
    event = TodoCreated(description="a", metadata={"k": "v"})

    stamped = Todo(id="t1").record(event)

    assert (stamped.event_id, stamped.payload, stamped.metadata) == (
        event.event_id,
        {"description": "a"},
        {"k": "v"},
    )
    assert type(stamped) is TodoCreated


def test_record_leaves_the_event_passed_in_unstamped() -> None:
    event = TodoCreated(description="a")

    Todo(id="t1").record(event)

    assert (event.aggregate_id, event.aggregate_version) == (None, None)


def test_record_applies_the_stamped_event() -> None:
    ledger = AggLedger(id="l1")

    ledger.record(AggItemAdded(item="a"))
    ledger.record(AggTagged(key="k", value="v"))

    assert ledger.applied == [("l1", 1, "AggItemAdded"), ("l1", 2, "AggTagged")]


def test_record_adds_the_stamped_event_to_pending_events() -> None:
    todo = Todo(id="t1")

    stamped = todo.record(TodoCreated(description="a"))

    assert todo.pending_events == (stamped,)


def test_pending_events_keep_the_recording_order() -> None:
    todo = Todo(id="t1")

    first = todo.record(TodoCreated(description="a"))
    second = todo.record(TodoRenamed(description="b"))
    third = todo.record(TodoCompleted())

    assert todo.pending_events == (first, second, third)
    assert [e.aggregate_version for e in todo.pending_events] == [1, 2, 3]


def test_pending_events_is_a_tuple() -> None:
    todo = Todo.create(id="t1", description="a")

    pending = todo.pending_events

    assert isinstance(pending, tuple)


def test_pending_events_of_a_new_aggregate_is_empty() -> None:
    todo = Todo(id="t1")

    pending = todo.pending_events

    assert pending == ()


def test_record_returns_the_stamped_event() -> None:
    todo = Todo(id="t1")

    returned = todo.record(TodoCreated(description="a"))

    assert returned is todo.pending_events[-1]
    assert returned.aggregate_id == "t1"
    assert returned.aggregate_version == 1


def test_version_counts_pending_events() -> None:
    todo = Todo(id="t1")

    todo.record(TodoCreated(description="a"))
    todo.record(TodoRenamed(description="b"))

    assert todo.version == 2
    assert len(todo.pending_events) == 2


def test_new_aggregate_has_version_zero() -> None:
    todo = Todo(id="t1")

    version = todo.version

    assert version == 0


def test_record_of_something_not_an_event_raises_type_error() -> None:
    todo = Todo(id="t1")
    not_an_event: Any = CreateTodo(id="t1", description="a")  # a command, a common slip

    with pytest.raises(TypeError, match="CreateTodo"):
        todo.record(not_an_event)

    assert (todo.version, todo.pending_events) == (0, ())


# record when apply raises


def test_record_when_apply_raises_propagates_the_error() -> None:
    basket = _basket_with_items("apple")

    with pytest.raises(ValueError, match="pear is not allowed"):
        basket.record(AggItemRejected(item="pear"))


def test_record_when_apply_raises_records_nothing() -> None:
    basket = _basket_with_items("apple")
    pending = basket.pending_events

    with pytest.raises(ValueError, match="pear"):
        basket.record(AggItemRejected(item="pear"))

    assert basket.pending_events == pending


def test_record_when_apply_raises_leaves_the_version_unchanged() -> None:
    basket = _basket_with_items("apple")

    with pytest.raises(ValueError, match="pear"):
        basket.record(AggItemRejected(item="pear"))

    assert basket.version == 1


def test_record_when_apply_raises_restores_state_mutated_in_place() -> None:
    basket = _basket_with_items("apple")
    basket.record(AggTagged(key="first", value="x"))
    before = basket.model_dump()

    with pytest.raises(ValueError, match="pear"):
        basket.record(AggItemRejected(item="pear"))

    assert basket.model_dump() == before
    assert basket.items == ["apple"]
    assert basket.tags == {"first": ["x"]}
    assert basket.owner is None


def test_record_after_a_failed_apply_continues_the_versions() -> None:
    basket = _basket_with_items("apple")
    with pytest.raises(ValueError, match="pear"):
        basket.record(AggItemRejected(item="pear"))

    stamped = basket.record(AggItemAdded(item="plum"))

    assert stamped.aggregate_version == 2
    assert basket.items == ["apple", "plum"]
    assert [e.aggregate_version for e in basket.pending_events] == [1, 2]


def test_apply_not_defined_raises_not_implemented_error_and_records_nothing() -> None:
    aggregate = AggWithoutApply(id="x")

    with pytest.raises(NotImplementedError, match="AggWithoutApply"):
        aggregate.record(AggItemAdded(item="a"))

    assert (aggregate.version, aggregate.pending_events) == (0, ())


def test_aggregates_do_not_share_mutable_default_state() -> None:
    first = AggBasket(id="b1")
    second = AggBasket(id="b2")

    first.record(AggItemAdded(item="apple"))

    assert second.items == []


# stream id and aggregate type


def test_stream_id_is_aggregate_type_dash_id() -> None:
    todo = Todo(id="t1")

    stream_id = todo.stream_id

    assert stream_id == "Todo-t1"


def test_aggregate_type_defaults_to_the_class_name() -> None:
    basket = AggBasket(id="b1")

    aggregate_type = basket.aggregate_type

    assert aggregate_type == "AggBasket"
    assert AggBasket.aggregate_type == "AggBasket"


def test_aggregate_type_can_be_overridden() -> None:
    basket = AggRenamedBasket(id="b1")

    stream_id = basket.stream_id

    assert AggRenamedBasket.aggregate_type == "basket.v2"
    assert stream_id == "basket.v2-b1"


def test_aggregate_type_can_be_overridden_without_an_annotation() -> None:
    class AggPlainRenamed(Aggregate):
        aggregate_type = "plain"

    aggregate = AggPlainRenamed(id="p1")

    assert aggregate.stream_id == "plain-p1"


def test_stream_id_keeps_odd_ids_verbatim() -> None:
    todo = Todo(id="'; DROP TABLE x; --🎉\x00")

    stream_id = todo.stream_id

    assert stream_id == "Todo-'; DROP TABLE x; --🎉\x00"


# class definition


def test_state_field_without_a_default_raises_type_error_naming_it() -> None:
    with pytest.raises(TypeError, match="title"):

        class AggNoDefault(Aggregate):
            title: str


def test_state_fields_with_defaults_are_accepted() -> None:
    class AggAllDefaults(Aggregate):
        title: str | None = None
        count: int = 0

    aggregate = AggAllDefaults(id="a1")

    assert (aggregate.title, aggregate.count, aggregate.version) == (None, 0, 0)


def test_aggregate_is_mutable() -> None:
    todo = Todo(id="t1")

    todo.description = "changed directly"

    assert todo.description == "changed directly"


def test_collect_events_hands_over_the_pending_events_and_their_expected_version() -> None:
    todo = Todo.create(id="t1", description="x")
    todo.rename("y")

    events, expected_version = todo.collect_events()

    assert [type(e) for e in events] == [TodoCreated, TodoRenamed]
    assert expected_version == 0
    assert todo.pending_events == ()
    assert todo.version == 2


def test_collect_events_after_a_replay_expects_the_replayed_version() -> None:
    todo = Todo(id="t1")
    todo.replay(Todo.create(id="t1", description="x").collect_events().events)
    todo.complete()

    collected = todo.collect_events()

    assert collected.expected_version == 1
    assert [e.aggregate_version for e in collected.events] == [2]


def test_replay_applies_stored_events_without_making_them_pending() -> None:
    source = Todo.create(id="t1", description="x")
    source.rename("y")
    todo = Todo(id="t1")

    todo.replay(source.collect_events().events)

    assert (todo.description, todo.version, todo.pending_events) == ("y", 2, ())


@pytest.mark.parametrize("versions", [[1, 3], [None], [2]])
def test_replay_refuses_events_that_are_not_the_next_versions(versions: list[int | None]) -> None:
    from eventuality.messages import evolve

    events = [evolve(TodoCreated(description="x"), {"aggregate_version": v}) for v in versions]
    todo = Todo(id="t1")

    with pytest.raises(ValueError, match="next version"):
        todo.replay(events)
