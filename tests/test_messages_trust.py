"""Messages refuse at build what no store could keep or trust: NaN metadata, bytes that are not
UTF-8, envelopes from untrusted input; stored rows that cannot be read name where they are; a
re-run module may register its upcasters again."""

import importlib
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from eventuality import (
    TRUSTED_ENVELOPE,
    Command,
    Event,
    EventSchemaError,
    InMemoryEventStore,
    register_upcaster,
)
from eventuality.stores.rows import StoredEvent, from_row, to_row


class TrustNote(Event):
    text: str


class TrustBlob(Event):
    raw: bytes


class TrustAttachment(BaseModel):
    name: str
    content: bytes


class TrustMail(Event):
    attachments: list[TrustAttachment]


class TrustAnything(Event):
    value: Any


class TrustDeposit(Command):
    account: str
    amount: int


# metadata: JSON numbers only


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize("where", ["top", "nested list", "nested dict"])
def test_event_metadata_with_a_non_json_number_is_refused_when_built(
    bad: float, where: str
) -> None:
    metadata: dict[str, Any] = {
        "top": {"score": bad},
        "nested list": {"scores": [1.0, bad]},
        "nested dict": {"a": {"b": bad}},
    }[where]

    with pytest.raises(ValidationError, match="NaN and infinity are not JSON"):
        TrustNote(text="x", metadata=metadata)


def test_command_metadata_with_nan_is_refused_when_built() -> None:
    with pytest.raises(ValidationError, match="NaN and infinity are not JSON"):
        TrustDeposit(account="a", amount=1, metadata={"score": float("nan")})


def test_finite_numbers_in_metadata_are_kept() -> None:
    event = TrustNote(text="x", metadata={"score": 1.5, "n": 2, "flag": True, "list": [0.25]})

    assert event.metadata == {"score": 1.5, "n": 2, "flag": True, "list": [0.25]}


# bytes: UTF-8 or refused when built


def test_bytes_that_are_not_utf8_are_refused_when_built_naming_the_field() -> None:
    with pytest.raises(ValidationError) as caught:
        TrustBlob(raw=b"\xff\x00")

    assert caught.value.errors()[0]["loc"] == ("raw",)
    assert "TrustBlob.raw" in str(caught.value)
    assert "base64" in str(caught.value)


def test_bytes_nested_in_a_model_are_checked_when_built() -> None:
    with pytest.raises(ValidationError, match="attachments"):
        TrustMail(attachments=[TrustAttachment(name="a", content=b"\xfe")])


async def test_utf8_bytes_are_built_stored_and_read_back() -> None:
    store = InMemoryEventStore()

    await store.append("blobs-1", [TrustBlob(raw="héllo".encode())])

    assert (await store.read_stream("blobs-1"))[0].payload == {"raw": "héllo".encode()}


def test_a_payload_that_cannot_be_json_fails_at_append_with_the_event_named() -> None:
    event = TrustAnything(value=object())

    with pytest.raises(ValueError, match=r"TrustAnything .* cannot be stored"):
        to_row("s", event)


# the command envelope comes from code, not from input


@pytest.mark.parametrize(
    "given",
    [
        {"metadata": {"correlation_id": "spoofed"}},
        {"command_id": "01a23229-2c57-795c-a9fe-0b69a8a524c7"},
    ],
)
def test_validating_input_refuses_an_envelope(given: dict[str, Any]) -> None:
    data = {"account": "a", "amount": 1, **given}

    with pytest.raises(ValidationError, match="cannot be set from input"):
        TrustDeposit.model_validate(data)


def test_validating_json_input_refuses_an_envelope() -> None:
    raw = '{"account": "a", "amount": 1, "metadata": {"correlation_id": "spoofed"}}'

    with pytest.raises(ValidationError, match="cannot be set from input"):
        TrustDeposit.model_validate_json(raw)


def test_validated_input_gets_a_fresh_envelope() -> None:
    command = TrustDeposit.model_validate({"account": "a", "amount": 1})

    assert isinstance(command.command_id, uuid.UUID)
    assert command.metadata == {}


def test_the_json_schema_does_not_offer_the_envelope() -> None:
    properties = TrustDeposit.model_json_schema()["properties"]

    assert set(properties) == {"account", "amount"}


def test_code_may_set_the_envelope_with_the_constructor() -> None:
    command_id = uuid.uuid4()

    command = TrustDeposit(account="a", amount=1, command_id=command_id, metadata={"k": "v"})

    assert (command.command_id, command.metadata) == (command_id, {"k": "v"})


def test_trusted_input_may_carry_an_envelope() -> None:
    command_id = uuid.uuid4()
    raw = f'{{"account": "a", "amount": 1, "command_id": "{command_id}"}}'

    command = TrustDeposit.model_validate_json(raw, context=TRUSTED_ENVELOPE)

    assert command.command_id == command_id


# stored rows that cannot be read say where they are


def _row(data: str, metadata: str = "{}") -> StoredEvent:
    from datetime import UTC, datetime

    return StoredEvent(
        "notes-7", 3, "TrustNote", 1, data, metadata, str(uuid.uuid4()), "7", datetime.now(UTC), 42
    )


@pytest.mark.parametrize("data", ["not json", "[1, 2]", '"text"'])
def test_a_damaged_payload_is_an_event_schema_error_naming_stream_and_position(data: str) -> None:
    with pytest.raises(EventSchemaError) as caught:
        from_row(_row(data))

    assert (caught.value.stream_id, caught.value.position) == ("notes-7", 42)
    assert "notes-7" in str(caught.value)
    assert "42" in str(caught.value)


def test_damaged_metadata_is_an_event_schema_error() -> None:
    with pytest.raises(EventSchemaError, match="damaged"):
        from_row(_row('{"text": "x"}', metadata="{oops"))


# upcasters of a re-run module


def test_a_reloaded_module_registers_its_upcaster_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "trust_reloaded.py").write_text(
        textwrap.dedent(
            """
            from eventuality import Event, upcaster

            class TrustReloaded(Event):
                __event_version__ = 2
                name: str

            @upcaster("TrustReloaded", from_version=1)
            def v1_to_v2(payload):
                return {"name": payload.pop("title"), **payload}
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("trust_reloaded")
    try:
        reloaded = importlib.reload(module)

        row = _row('{"title": "t"}')._replace(event_type="TrustReloaded", schema_version=1)
        event = from_row(row)
    finally:
        sys.modules.pop("trust_reloaded", None)

    assert event.payload == {"name": "t"}
    assert type(event) is reloaded.TrustReloaded


def test_a_different_upcaster_for_the_same_step_names_both() -> None:
    def first(payload: dict[str, Any]) -> dict[str, Any]:
        return payload

    def second(payload: dict[str, Any]) -> dict[str, Any]:
        return payload

    register_upcaster("TrustTwice", 1, first)

    with pytest.raises(ValueError, match="already registered") as caught:
        register_upcaster("TrustTwice", 1, second)

    assert "first" in str(caught.value)
    assert "second" in str(caught.value)


def test_an_upcaster_that_raises_is_reported_as_an_upcaster_bug_not_a_damaged_row() -> None:
    class TrustCounted(Event):
        __event_version__ = 2
        count: int

    def broken(payload: dict[str, Any]) -> dict[str, Any]:
        return {"count": int(payload["count"])}

    register_upcaster("TrustCounted", 1, broken)
    row = _row('{"count": "not a number"}')._replace(event_type="TrustCounted", schema_version=1)

    with pytest.raises(EventSchemaError) as caught:
        from_row(row)

    assert "upcaster" in str(caught.value)
    assert "damaged" not in str(caught.value)
    assert isinstance(caught.value.__cause__, ValueError)
    assert caught.value.stream_id == "notes-7"
