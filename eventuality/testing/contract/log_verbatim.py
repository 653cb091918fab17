"""The event log keeps stream ids and payloads verbatim: no input changes a query."""

import pytest

from ...stores.base import EventStore
from ._support import (
    ContractNote,
    TodoCreated,
    _created,
    _read_all,
)

__all__ = [
    "test_odd_stream_id_is_stored_verbatim",
    "test_odd_stream_ids_are_distinct_streams",
    "test_odd_payload_string_round_trips",
]

# stream ids and payloads stored verbatim

ODD_STREAM_IDS = [
    "Todo-ünïcødé-日本語-עברית-🎉👩‍👩‍👧",
    "it's \"double\" and 'single' `back`",
    "'; DROP TABLE x; --",
    "'; DROP TABLE eventuality_events; --",
    '"); DELETE FROM eventuality_events; --',
    "nul\x00inside",
    "\x00",
    "back\\slash\\",
    "percent%_under_score",
    "line\nbreak\ttab\r",
    "x" * 1_020 + "-end",
    "CaseSensitive",
    "casesensitive",
    "CASESENSITIVE",
    "trailing",
    "trailing ",
    " trailing",
    " ",
    "$1 ? :name %s {}",
]


@pytest.mark.parametrize(
    "stream_id", ODD_STREAM_IDS, ids=[f"id{i}" for i in range(len(ODD_STREAM_IDS))]
)
async def test_odd_stream_id_is_stored_verbatim(contract_store: EventStore, stream_id: str) -> None:
    events = [TodoCreated(description="a", aggregate_id=stream_id)]

    stored = await contract_store.append(stream_id, events, expected_version=0)

    assert await contract_store.read_stream(stream_id) == stored
    assert await contract_store.stream_version(stream_id) == 1
    assert (await contract_store.read_stream(stream_id))[0].aggregate_id == stream_id


async def test_odd_stream_ids_are_distinct_streams(contract_store: EventStore) -> None:
    stored = {
        stream_id: await contract_store.append(stream_id, _created(f"#{i}"), expected_version=0)
        for i, stream_id in enumerate(ODD_STREAM_IDS)
    }

    read = {stream_id: await contract_store.read_stream(stream_id) for stream_id in ODD_STREAM_IDS}

    assert read == stored
    assert await _read_all(contract_store) == [
        event for events in stored.values() for event in events
    ]
    assert await contract_store.stream_version("nul") == 0


ODD_TEXTS = [
    "nul\x00inside",
    "\x00",
    "emoji 🎉👩‍👩‍👧 and ünïcødé 日本語",
    "'; DROP TABLE x; --",
    'it\'s "quoted" \\ \\u0000 \\\\',
    '{"json": "lookalike"}',
    "\u2028\u2029\ufeff",
    "",
    "y" * 100_000,
]


@pytest.mark.parametrize("text", ODD_TEXTS, ids=[f"text{i}" for i in range(len(ODD_TEXTS))])
async def test_odd_payload_string_round_trips(contract_store: EventStore, text: str) -> None:
    event = ContractNote(text=text, metadata={"text": text})

    stored = await contract_store.append("a", [event])

    read = await contract_store.read_stream("a")
    assert read == stored
    assert (read[0].payload, read[0].metadata) == ({"text": text}, {"text": text})
