"""One HTTP request to examples/fastapi_app.py is one trace: the request's server span (from
opentelemetry-instrumentation-fastapi), the dispatch under it, the append under the dispatch,
and the projection's handling (in the app's SubscriptionRunner) under the append, through the
``traceparent`` the append wrote into the event's metadata."""

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind

from examples.fastapi_app import READ_MODEL, create_app
from tests._otel import Telemetry, instrumented, parent_of, span_id, trace_id
from tests.conftest import POSTGRES_DSN, postgres_schema, requires_postgres


@pytest.fixture(params=["sqlite-file", pytest.param("postgres", marks=requires_postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite-file":
        return f"sqlite:///{tmp_path / 'todo_api.db'}"
    separator = "&" if "?" in POSTGRES_DSN else "?"
    return f"{POSTGRES_DSN}{separator}schema={postgres_schema(tmp_path)}"


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    yield from instrumented()  # uninstruments eventuality after the test


async def post_one_todo(url: str, telemetry: Telemetry) -> tuple[httpx.Response, list[str]]:
    """POST /todos to an instrumented app with its lifespan (and projection) running; the
    app's lifespan ends before returning, so every span has ended."""
    app = create_app(url)
    FastAPIInstrumentor.instrument_app(app, tracer_provider=telemetry.tracer_provider)
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://todos") as client:
                created = await client.post("/todos", json={"id": "t1", "description": "x"})
            stored = [event async for event in app.state.store.read_all()]
    finally:
        FastAPIInstrumentor.uninstrument_app(app)
    return created, [str(event.metadata.get("traceparent", "")) for event in stored]


def ancestors(span: ReadableSpan, spans: list[ReadableSpan]) -> list[str]:
    """The names of ``span``'s ancestors, nearest first."""
    by_id = {span_id(s): s for s in spans}
    names, parent = [], parent_of(span)
    while parent is not None and parent in by_id:
        names.append(by_id[parent].name)
        parent = parent_of(by_id[parent])
    return names


async def test_a_post_is_one_trace_from_request_to_projection(
    store_url: str, telemetry: Telemetry
) -> None:
    created, traceparents = await post_one_todo(store_url, telemetry)

    assert created.status_code == 201
    [request] = [s for s in telemetry.spans() if s.kind == SpanKind.SERVER]
    dispatch = telemetry.span("dispatch CreateTodo")
    append = telemetry.span("append")
    process = telemetry.span(f"process {READ_MODEL}")
    assert request.name == "POST /todos"
    assert {trace_id(s) for s in (request, dispatch, append, process)} == {trace_id(request)}
    assert parent_of(dispatch) == span_id(request)
    assert "dispatch CreateTodo" in ancestors(append, telemetry.spans())
    assert parent_of(process) == span_id(append)  # through the event's metadata, not a context
    [traceparent] = traceparents  # version-trace-parent-flags: the append span's context
    assert traceparent.split("-")[1:3] == [f"{trace_id(append):032x}", f"{span_id(append):016x}"]
    assert process.kind == SpanKind.CONSUMER
    assert ancestors(process, telemetry.spans())[-1] == "POST /todos"


async def test_without_eventuality_instrumented_the_request_span_is_alone(
    store_url: str, telemetry: Telemetry
) -> None:
    from eventuality import otel

    otel.uninstrument()
    created, traceparents = await post_one_todo(store_url, telemetry)

    assert created.status_code == 201
    assert [s.name for s in telemetry.spans() if s.kind == SpanKind.SERVER] == ["POST /todos"]
    assert not [s for s in telemetry.spans() if s.name.startswith(("dispatch", "append"))]
    assert traceparents == [""]
