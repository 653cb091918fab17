"""The relay with a publisher of our own (no broker): what it hands over, when its checkpoint
moves, how it waits out a broker that is away, and the errors for bad input."""

import json
import logging
import subprocess
import sys
from collections.abc import Sequence
from typing import Annotated
from urllib.parse import unquote

import anyio
import pytest

from eventuality import (
    BrokerError,
    BrokerUnavailable,
    Event,
    EventStore,
    InMemoryEventStore,
    OutboundMessage,
    PersonalData,
    Relay,
    subject_token,
)
from tests.brokers._support import Ticked, fill


class Recorder:
    """A broker that confirms what it is given, or fails the next ``failures`` batches."""

    def __init__(self, failures: int = 0, error: Exception | None = None) -> None:
        self.batches: list[list[OutboundMessage]] = []
        self.failures = failures
        self.error = error or BrokerUnavailable("the broker is away")
        self.attempts = 0

    async def publish_batch(self, messages: Sequence[OutboundMessage]) -> None:
        self.attempts += 1
        if self.failures:
            self.failures -= 1
            raise self.error
        self.batches.append(list(messages))

    async def aclose(self) -> None:
        pass

    @property
    def messages(self) -> list[OutboundMessage]:
        return [m for batch in self.batches for m in batch]


async def test_every_event_is_handed_over_in_log_order_with_its_envelope(
    store: EventStore,
) -> None:
    await fill(store, 250, chunk=30)
    await store.append("Clock-x", [Ticked(n=-1, note="é\r\n%", metadata={"correlation_id": "c1"})])
    recorder = Recorder()

    published = await Relay(store, "out", recorder, batch=100).catch_up()

    events = [e async for e in store.read_all()]
    messages = recorder.messages
    assert published == 251
    assert [len(b) for b in recorder.batches] == [100, 100, 51]
    assert [m.message_id for m in messages] == [str(e.event_id) for e in events]
    assert [m.position for m in messages] == [e.position for e in events]
    last = messages[-1]
    assert last.subject == "events.relay%2Eticked"
    assert json.loads(last.body) == {"n": -1, "note": "é\r\n%"}
    assert last.headers["Eventuality-Event-Type"] == "relay.ticked"
    assert last.headers["Eventuality-Correlation-Id"] == "c1"
    assert json.loads(unquote(last.headers["Eventuality-Metadata"])) == {"correlation_id": "c1"}
    assert await store.get_checkpoint("out") == events[-1].position


async def test_an_aggregate_event_carries_its_id_and_version_percent_encoded() -> None:
    async with InMemoryEventStore() as store:
        [event] = await store.append(
            "Clock-1", [Ticked(n=1, aggregate_id="a b\n%", aggregate_version=1)]
        )
        recorder = Recorder()

        await Relay(store, "out", recorder).catch_up()

    headers = recorder.messages[0].headers
    assert "\n" not in "".join(headers.values())
    assert unquote(headers["Eventuality-Aggregate-Id"]) == "a b\n%"
    assert headers["Eventuality-Aggregate-Version"] == "1"
    assert headers["Eventuality-Event-Id"] == str(event.event_id)


async def test_a_failed_publish_leaves_the_checkpoint_at_the_last_confirmed_batch(
    store: EventStore,
) -> None:
    await fill(store, 30)
    recorder = Recorder()
    await Relay(store, "out", recorder, batch=10).catch_up()
    confirmed = await store.last_position()
    await fill(store, 30, first=30)
    recorder.failures = 1

    with pytest.raises(BrokerUnavailable):
        await Relay(store, "out", recorder, batch=10).catch_up()

    assert await store.get_checkpoint("out") == confirmed
    again = await Relay(store, "out", recorder, batch=10).catch_up()
    assert again == 30
    assert [m.position for m in recorder.messages] == [e.position async for e in store.read_all()]


async def test_run_waits_out_an_unavailable_broker_showing_its_lag_then_publishes_everything(
    caplog: pytest.LogCaptureFixture,
) -> None:
    recorder = Recorder(failures=3)
    async with InMemoryEventStore() as store:
        await fill(store, 40)
        relay = Relay(store, "out", recorder)
        seen = []
        async with anyio.create_task_group() as group:
            group.start_soon(relay.run)
            with anyio.fail_after(10):
                while recorder.failures:
                    seen.append(relay.statistics())
                    await anyio.sleep(0.01)
                while relay.statistics().position < 40:
                    await anyio.sleep(0.01)
            group.cancel_scope.cancel()

    waiting = [s for s in seen if s.broker_error is not None]
    assert waiting
    assert (waiting[-1].position, waiting[-1].lag, waiting[-1].log_end) == (0, 40, 40)
    assert relay.statistics().broker_error is None
    assert relay.statistics().lag == 0
    assert [m.position for m in recorder.messages] == list(range(1, 41))
    retries = [r for r in caplog.records if "publishing 40 event(s) again" in r.getMessage()]
    assert len(retries) == 3
    assert all(r.levelno == logging.WARNING for r in retries)


async def test_run_stops_on_a_broker_refusal_without_moving_the_checkpoint() -> None:
    recorder = Recorder(failures=1, error=BrokerError("no such exchange"))
    async with InMemoryEventStore() as store:
        await fill(store, 5)
        relay = Relay(store, "out", recorder)

        with pytest.raises(BrokerError, match="no such exchange"):
            await relay.run()

        assert await store.get_checkpoint("out") == 0
        assert relay.statistics().error is not None


async def test_a_subject_function_maps_events_and_a_bad_subject_stops_the_relay_by_name() -> None:
    async with InMemoryEventStore() as store:
        await fill(store, 3)
        recorder = Recorder()

        await Relay(
            store, "good", recorder, subject=lambda e: f"clock.{subject_token(str(e.n))}"
        ).catch_up()
        bad = Relay(store, "bad", recorder, subject=lambda e: f"clock.{e.n} o'clock")

        with pytest.raises(ValueError, match=r"position 1.*subject_token"):
            await bad.catch_up()

    assert [m.subject for m in recorder.messages] == ["clock.0", "clock.1", "clock.2"]


@pytest.mark.parametrize(
    ("text", "token"),
    [
        ("TodoCreated", "TodoCreated"),
        ("todo.created", "todo%2Ecreated"),
        ("a b*c>d", "a%20b%2Ac%3Ed"),
        ("50%", "50%25"),
        ("café", "caf%C3%A9"),
    ],
)
def test_subject_token_escapes_what_subjects_cannot_hold_and_reverses(
    text: str, token: str
) -> None:
    escaped = subject_token(text)

    assert escaped == token
    assert unquote(escaped) == text


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"batch": 0}, ValueError, "batch must be"),
        ({"prefix": "my events"}, ValueError, "prefix must be"),
        ({"prefix": "events.>"}, ValueError, "prefix must be"),
        ({"prefix": ""}, ValueError, "prefix must be"),
        ({"subject": "events.x"}, TypeError, "subject must be a function"),
        ({"checkpoint_every": 0}, ValueError, "checkpoint_every"),
    ],
)
async def test_bad_options_are_refused_when_the_relay_is_made(
    options: dict[str, object], error: type[Exception], match: str
) -> None:
    async with InMemoryEventStore() as store:
        with pytest.raises(error, match=match):
            Relay(store, "out", Recorder(), **options)


async def test_a_publisher_without_publish_batch_is_refused() -> None:
    async with InMemoryEventStore() as store:
        with pytest.raises(TypeError, match="publish_batch"):
            Relay(store, "out", object())


def test_subject_token_refuses_an_empty_text() -> None:
    with pytest.raises(ValueError, match="non-empty"):
        subject_token("")


def test_importing_eventuality_imports_no_broker_client() -> None:
    code = "import sys, eventuality; print(sorted({'nats', 'aio_pika'} & set(sys.modules)))"

    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)

    assert result.stdout.strip() == "[]", result.stderr


@pytest.mark.parametrize(
    ("module", "extra"),
    [("eventuality.brokers.nats", "nats"), ("eventuality.brokers.rabbitmq", "rabbitmq")],
)
def test_a_missing_client_names_the_extra_to_install(module: str, extra: str) -> None:
    client = "nats" if extra == "nats" else "aio_pika"
    code = f"import sys; sys.modules[{client!r}] = None; import {module}"

    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)

    assert f'pip install "eventuality[{extra}]"' in result.stderr


class RelayedPatientAdmitted(Event):
    __personal_subject__ = "patient_id"

    patient_id: str
    name: Annotated[str, PersonalData]


async def test_personal_data_stops_the_relay_unless_published_knowingly() -> None:
    async with InMemoryEventStore() as store:
        await fill(store, 2)
        await store.append("patient-1", [RelayedPatientAdmitted(patient_id="p1", name="Ada")])
        await fill(store, 1)
        refused, published = Recorder(), Recorder()

        with pytest.raises(
            ValueError, match=r"RelayedPatientAdmitted event at position 3.*\(name\)"
        ):
            await Relay(store, "careful", refused).catch_up()
        await Relay(store, "knowing", published, personal_data="publish").catch_up()
        await Relay(store, "filtered", Recorder(), event_types=["Ticked"]).catch_up()

        assert await store.get_checkpoint("careful") == 2
        assert [m.position for m in refused.messages] == [1, 2]
        assert [m.position for m in published.messages] == [1, 2, 3, 4]
        assert json.loads(published.messages[2].body) == {"patient_id": "p1", "name": "Ada"}
        assert await store.get_checkpoint("filtered") == 4
