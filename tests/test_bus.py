"""EventBus: matching, concurrent fan-out, ordering, failure isolation (API.md §7)."""

import logging

import anyio
import pytest

from eventuality import BusStatistics, Event, EventBus
from tests.domain import TodoCompleted, TodoCreated, TodoRenamed


class BusPinged(Event):
    n: int = 0


class BusLoudPinged(BusPinged):
    pass


class BusCustomNamed(Event):
    __event_type__ = "bus.custom"


async def test_listeners_from_the_constructor_receive_matching_events() -> None:
    seen: list[str] = []

    async def on_created(event: Event) -> None:
        seen.append(f"created:{event.event_type}")

    def on_completed(event: Event) -> None:
        seen.append(f"completed:{event.event_type}")

    bus = EventBus(listeners={TodoCreated: [on_created], TodoCompleted: [on_completed]})

    await bus.publish([TodoCreated(description="a"), TodoRenamed(description="b")])
    await bus.publish([TodoCompleted()])

    assert seen == ["created:TodoCreated", "completed:TodoCompleted"]


async def test_subscribe_returns_a_callable_that_unsubscribes() -> None:
    bus = EventBus()
    seen: list[int] = []
    unsubscribe = bus.subscribe(BusPinged, lambda event: seen.append(event.n))
    await bus.publish([BusPinged(n=1)])

    unsubscribe()
    await bus.publish([BusPinged(n=2)])

    assert seen == [1]


async def test_unsubscribe_leaves_the_other_subscriptions_of_a_listener() -> None:
    bus = EventBus()
    seen: list[str] = []

    def listener(event: Event) -> None:
        seen.append(event.event_type)

    unsubscribe_pinged = bus.subscribe(BusPinged, listener)
    bus.subscribe(TodoCreated, listener)

    unsubscribe_pinged()
    await bus.publish([BusPinged(), TodoCreated(description="x")])

    assert seen == ["TodoCreated"]


async def test_on_decorator_subscribes_and_returns_the_listener() -> None:
    bus = EventBus()
    seen: list[int] = []

    async def listener(event: BusPinged) -> None:
        seen.append(event.n)

    decorated = bus.on(BusPinged)(listener)
    await bus.publish([BusPinged(n=7)])

    assert decorated is listener
    assert seen == [7]


async def test_class_key_matches_the_class_and_its_subclasses() -> None:
    bus = EventBus()
    seen: list[str] = []
    bus.subscribe(BusPinged, lambda event: seen.append(event.event_type))

    await bus.publish([BusPinged(), BusLoudPinged(), TodoCreated(description="x")])

    assert seen == ["BusPinged", "BusLoudPinged"]


async def test_event_key_matches_every_event() -> None:
    bus = EventBus()
    seen: list[str] = []
    bus.subscribe(Event, lambda event: seen.append(event.event_type))

    await bus.publish([BusPinged(), TodoCreated(description="x"), BusCustomNamed()])

    assert seen == ["BusPinged", "TodoCreated", "bus.custom"]


async def test_string_key_matches_by_event_type_name() -> None:
    bus = EventBus()
    by_name: list[str] = []
    by_class_name: list[str] = []
    bus.subscribe("bus.custom", lambda event: by_name.append(event.event_type))
    bus.subscribe("BusCustomNamed", lambda event: by_class_name.append(event.event_type))
    bus.subscribe("TodoCreated", lambda event: by_name.append(event.event_type))

    await bus.publish([BusCustomNamed(), TodoCreated(description="x"), BusPinged()])

    assert by_name == ["bus.custom", "TodoCreated"]
    assert by_class_name == []


async def test_plain_function_listener_is_called_in_the_event_loop() -> None:
    bus = EventBus()
    seen: list[int] = []

    def listener(event: BusPinged) -> None:
        seen.append(event.n)

    bus.subscribe(BusPinged, listener)

    await bus.publish([BusPinged(n=1), BusPinged(n=2)])

    assert seen == [1, 2]


async def test_async_listener_is_awaited() -> None:
    bus = EventBus()
    seen: list[int] = []

    async def listener(event: BusPinged) -> None:
        await anyio.sleep(0)
        seen.append(event.n)

    bus.subscribe(BusPinged, listener)

    await bus.publish([BusPinged(n=1), BusPinged(n=2)])

    assert seen == [1, 2]


async def test_matching_listeners_run_concurrently() -> None:
    first_arrived, second_arrived = anyio.Event(), anyio.Event()
    done: list[str] = []

    async def first(event: Event) -> None:
        first_arrived.set()
        await second_arrived.wait()
        done.append("first")

    async def second(event: Event) -> None:
        second_arrived.set()
        await first_arrived.wait()
        done.append("second")

    bus = EventBus(listeners={BusPinged: [first, second]})

    with anyio.fail_after(5):  # run one after the other, they would wait for each other forever
        await bus.publish([BusPinged()])

    assert sorted(done) == ["first", "second"]


async def test_each_listener_sees_the_events_of_one_publish_in_order() -> None:
    bus = EventBus()
    slow: list[int] = []
    quick: list[int] = []

    async def slow_listener(event: BusPinged) -> None:
        for _ in range(event.n % 3 + 1):
            await anyio.sleep(0)
        slow.append(event.n)

    bus.subscribe(BusPinged, slow_listener)
    bus.subscribe(BusLoudPinged, slow_listener)  # one listener, two keys, events interleaved
    bus.subscribe(Event, lambda event: quick.append(event.n))
    events = [BusLoudPinged(n=i) if i % 2 else BusPinged(n=i) for i in range(20)]

    await bus.publish(events)

    assert slow == list(range(20))
    assert quick == list(range(20))


async def test_publish_returns_only_after_every_listener_finished() -> None:
    bus = EventBus()
    finished: list[str] = []

    async def a_few_checkpoints(event: Event) -> None:
        for _ in range(10):
            await anyio.sleep(0)
        finished.append("checkpoints")

    async def a_short_sleep(event: Event) -> None:
        await anyio.sleep(0.02)
        finished.append("sleep")

    bus.subscribe(BusPinged, a_few_checkpoints)
    bus.subscribe(BusPinged, a_short_sleep)

    await bus.publish([BusPinged(), BusPinged()])

    assert sorted(finished) == ["checkpoints", "checkpoints", "sleep", "sleep"]


async def test_a_single_listener_is_awaited_before_publish_returns() -> None:
    bus = EventBus()
    finished: list[int] = []

    async def listener(event: BusPinged) -> None:
        await anyio.sleep(0.01)
        finished.append(event.n)

    bus.subscribe(BusPinged, listener)

    await bus.publish([BusPinged(n=1)])

    assert finished == [1]


async def test_failing_listener_does_not_cancel_a_slow_one() -> None:
    bus = EventBus()
    slow_finished: list[int] = []

    async def failing(event: Event) -> None:
        raise RuntimeError("boom")

    async def slow(event: BusPinged) -> None:
        await anyio.sleep(0.02)
        slow_finished.append(event.n)

    bus.subscribe(BusPinged, failing)
    bus.subscribe(BusPinged, slow)

    await bus.publish([BusPinged(n=1), BusPinged(n=2)])

    assert slow_finished == [1, 2]


async def test_failing_listener_does_not_cancel_one_waiting_on_another() -> None:
    started = anyio.Event()
    finished: list[str] = []

    async def failing_after_the_other_started(event: Event) -> None:
        await started.wait()
        raise RuntimeError("boom")

    async def other(event: Event) -> None:
        started.set()
        for _ in range(20):
            await anyio.sleep(0)
        finished.append("other")

    bus = EventBus(listeners={BusPinged: [failing_after_the_other_started, other]})

    with anyio.fail_after(5):
        await bus.publish([BusPinged()])

    assert finished == ["other"]


async def test_listener_failure_is_logged_naming_the_event_and_the_listener(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bus = EventBus()

    def exploding_listener(event: Event) -> None:
        raise RuntimeError("listener exploded")

    bus.subscribe(BusPinged, exploding_listener)
    event = BusPinged()

    with caplog.at_level(logging.ERROR, logger="eventuality"):
        await bus.publish([event])

    records = [r for r in caplog.records if r.name == "eventuality"]
    assert len(records) == 1
    message = records[0].getMessage()
    assert "exploding_listener" in message
    assert "BusPinged" in message
    assert str(event.event_id) in message
    assert records[0].exc_info is not None
    assert isinstance(records[0].exc_info[1], RuntimeError)


async def test_listener_failure_is_handed_to_a_plain_on_error() -> None:
    failures: list[tuple[Event, object, BaseException]] = []
    error = RuntimeError("boom")

    def listener(event: Event) -> None:
        raise error

    def on_error(event: Event, failed: object, exc: Exception) -> None:
        failures.append((event, failed, exc))

    bus = EventBus(listeners={BusPinged: [listener]}, on_error=on_error)
    event = BusPinged()

    await bus.publish([event])

    assert failures == [(event, listener, error)]


async def test_listener_failure_is_handed_to_an_async_on_error() -> None:
    failures: list[tuple[Event, object, BaseException]] = []
    error = ValueError("bad")

    async def listener(event: Event) -> None:
        raise error

    async def on_error(event: Event, failed: object, exc: Exception) -> None:
        await anyio.sleep(0)
        failures.append((event, failed, exc))

    bus = EventBus(listeners={BusPinged: [listener]}, on_error=on_error)
    first, second = BusPinged(n=1), BusPinged(n=2)

    await bus.publish([first, second])

    assert failures == [(first, listener, error), (second, listener, error)]


async def test_on_error_that_raises_is_logged_and_publish_still_returns(
    caplog: pytest.LogCaptureFixture,
) -> None:
    other_finished: list[int] = []

    def listener(event: Event) -> None:
        raise RuntimeError("listener failed")

    async def other(event: BusPinged) -> None:
        await anyio.sleep(0.01)
        other_finished.append(event.n)

    def broken_on_error(event: Event, failed: object, exc: Exception) -> None:
        raise KeyError("on_error failed too")

    bus = EventBus(listeners={BusPinged: [listener, other]}, on_error=broken_on_error)

    with caplog.at_level(logging.ERROR, logger="eventuality"):
        await bus.publish([BusPinged(n=1)])

    assert other_finished == [1]
    logged = [r for r in caplog.records if r.name == "eventuality"]
    about_on_error = [r for r in logged if "broken_on_error" in r.getMessage()]
    assert len(about_on_error) == 1
    assert about_on_error[0].exc_info is not None
    assert isinstance(about_on_error[0].exc_info[1], KeyError)


async def test_listener_subscribed_under_two_matching_keys_gets_each_event_once() -> None:
    seen: list[int] = []

    def listener(event: BusPinged) -> None:
        seen.append(event.n)

    bus = EventBus(listeners={BusPinged: [listener], Event: [listener]})
    bus.subscribe("BusLoudPinged", listener)

    await bus.publish([BusPinged(n=1), BusLoudPinged(n=2)])

    assert seen == [1, 2]


class _BusProjection:
    def __init__(self) -> None:
        self.seen: list[int] = []

    async def handle(self, event: BusPinged) -> None:
        for _ in range(5 - event.n):
            await anyio.sleep(0)
        self.seen.append(event.n)


async def test_bound_method_subscribed_under_two_keys_gets_each_event_once_in_order() -> None:
    projection = _BusProjection()
    bus = EventBus()
    bus.subscribe(BusLoudPinged, projection.handle)  # each access makes a new bound method
    bus.subscribe(Event, projection.handle)

    await bus.publish([BusPinged(n=1), BusLoudPinged(n=2), BusPinged(n=3)])

    assert projection.seen == [1, 2, 3]


async def test_statistics_count_listeners_events_deliveries_and_failures() -> None:
    def ok(event: Event) -> None:
        pass

    def failing(event: Event) -> None:
        raise RuntimeError("boom")

    bus = EventBus(listeners={BusPinged: [ok, failing], TodoCreated: [ok]})
    unsubscribe = bus.subscribe(TodoCompleted, ok)
    unsubscribe()

    await bus.publish([BusPinged(), BusPinged(), TodoCreated(description="x")])
    await bus.publish([TodoCompleted()])

    assert bus.statistics() == BusStatistics(listeners=3, published=4, deliveries=5, failures=2)
